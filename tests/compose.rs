//! docker-compose.yml (a main server and an edge site) is a valid Compose file, as
//! Debian's docker-compose reads it, and describes that topology. The tests in
//! `tests/edge.rs` run the same topology as two processes on loopback.

use std::process::Command;

#[test]
fn compose_file_parses_and_runs_a_main_server_and_an_edge() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(root)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!(
            "docker-compose is required for this test ({e}); install it with `apt-get install -y docker-compose` \
             (scripts/test does this)"
        ),
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "main:",
        "edge1:",
        "- serve",
        "- edge",
        "https://main:5000",
        "/run/secrets/edge1",
        "published: 5000",
        "published: 5001",
    ] {
        assert!(config.contains(needle), "{needle:?} missing from:\n{config}");
    }
    // The image the services build exists and runs the same binary.
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked --bin gatehouse"));
    assert!(dockerfile.contains("ENTRYPOINT [\"gatehouse\"]"));
}

#[test]
fn scale_compose_file_runs_two_replicas_behind_a_load_balancer() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.scale.yml", "config"])
        .current_dir(root)
        .output()
        .expect("docker-compose is required (apt-get install -y docker-compose; scripts/test does this)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "replica1:",
        "replica2:",
        "lb:",
        "postgres:",
        "s3:",
        "edge1:",
        "GATEHOUSE_DATABASE: postgres://gatehouse:",
        "GATEHOUSE_BLOBS: s3://registry/gatehouse",
        "GATEHOUSE_S3_ENDPOINT: http://s3:8014",
        "GATEHOUSE_KEYS_DIR: /shared/keys",
        "GATEHOUSE_SECRETS_FILE: /shared/secrets.key",
        "https://lb:5000",
        "published: 5000",
        "target: s3-test-server",
    ] {
        assert!(config.contains(needle), "{needle:?} missing from:\n{config}");
    }
    // Both replicas get the same settings (one anchor), and nginx balances over both.
    assert_eq!(config.matches("GATEHOUSE_DATABASE:").count(), 2, "{config}");
    let nginx = std::fs::read_to_string(format!("{root}/deploy/nginx-scale.conf")).unwrap();
    assert!(nginx.contains("server replica1:5000") && nginx.contains("server replica2:5000"));
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    assert!(dockerfile.contains("AS s3-test-server"));
}
