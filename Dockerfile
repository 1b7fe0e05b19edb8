# gatehouse: one image for the main server and edge sites.
#   docker build -t gatehouse .
# Build stage: a release build (the dependency tree is kept lean; ~10 minutes on 2 cores).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY policies policies
COPY examples examples
RUN cargo build --release --locked --bin gatehouse

# The small S3-compatible server the tests use, for docker-compose.scale.yml only
# (`docker build --target s3-test-server`); use a real object store in production.
FROM rust:1-bookworm AS s3-test-server-build
RUN cargo install s3s-fs --version 0.14.1 --features binary --locked --root /usr/local
FROM debian:bookworm-slim AS s3-test-server
COPY --from=s3-test-server-build /usr/local/bin/s3s-fs /usr/local/bin/s3s-fs

# Runtime: Debian slim with the system CA bundle, an unprivileged user, the default
# policies, and data under /data.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data gatehouse \
 && mkdir -p /data /certs \
 && chown gatehouse /data /certs
COPY --from=build /src/target/release/gatehouse /usr/local/bin/gatehouse
COPY policies /etc/gatehouse/policies
ENV GATEHOUSE_DATA_DIR=/data \
    GATEHOUSE_TLS_DIR=/certs \
    GATEHOUSE_POLICY_DIR=/etc/gatehouse/policies
USER gatehouse
VOLUME ["/data"]
EXPOSE 5000
ENTRYPOINT ["gatehouse"]
CMD ["serve", "--listen", "0.0.0.0:5000"]
