#!/usr/bin/env bash
# Soak: a main server (running its own GC), an edge site and a remote's upstream, all
# release builds on loopback, under mixed load for SOAK_SECONDS (default 1800): pushes
# of new and shared layers, pulls checked byte for byte at the main server and the edge,
# token requests, admin changes, tag removals feeding GC, remote syncs. Every 10 s it
# samples each server's RSS, open files and threads (CSV on stdout, kept in
# bench/soak-last.csv); at the end every image still tagged is verified at both servers.
# Fails on any error answer or failed verification.
#
#   bench/soak.sh                  # 30 minutes
#   SOAK_SECONDS=300 bench/soak.sh # a quick pass
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${SOAK_SECONDS:-1800}
echo "building release binaries..." >&2
cargo build --release --quiet --bin gatehouse --example soak
TARGET=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d /var/tmp/gatehouse-soak.XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0
"$TARGET/release/examples/soak" "$TARGET/release/gatehouse" "$work" "$SECONDS_TO_RUN" | tee "$work/out" || status=$?
grep -E '^[0-9]' "$work/out" > bench/soak-last.csv || true
exit $status
