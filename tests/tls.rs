//! TLS is on by default: the development CA, real handshakes, and podman and skopeo
//! pushing and pulling with only that CA trusted (no `--tls-verify=false`).

mod common;

use common::clients::{Podman, Skopeo};
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over TLS, trusting only the CA in `ca` (none: trust nothing).
async fn https_get(addr: SocketAddr, ca: Option<&Path>, name: &str, path: &str) -> Result<(u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
            roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = connector.connect(server_name, tcp).await.map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    // A close_notify-less close is fine here: the whole response has arrived.
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("no HTTP response: {text:?}"))?;
    Ok((status, text))
}

#[tokio::test]
async fn handshake_trusts_the_dev_ca_for_localhost_and_loopback_ip() {
    let srv = TestServer::start_tls().await;
    for name in ["localhost", "127.0.0.1"] {
        let (status, text) = https_get(srv.addr, Some(&srv.ca_cert()), name, "/v2/").await.unwrap();
        assert_eq!(status, 200, "{text}");
        assert!(
            text.to_lowercase()
                .contains("docker-distribution-api-version: registry/2.0")
        );
    }
    // A client that does not trust the CA, or asks for another name, is refused.
    assert!(https_get(srv.addr, None, "localhost", "/v2/").await.is_err());
    assert!(
        https_get(srv.addr, Some(&srv.ca_cert()), "registry.example", "/v2/")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn plain_http_is_not_served_on_the_tls_port() {
    let srv = TestServer::start_tls().await;
    let r = http().get(format!("http://{}/v2/", srv.addr)).send().await;
    match r {
        Err(_) => {}
        Ok(resp) => panic!("plain HTTP got an HTTP answer: {}", resp.status()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_and_skopeo_push_and_pull_over_tls_trusting_only_the_dev_ca() {
    let srv = TestServer::start_tls().await;
    let certs = tempfile::tempdir().unwrap();
    std::fs::copy(srv.ca_cert(), certs.path().join("ca.crt")).unwrap();
    let cert_dir = certs.path().to_str().unwrap().to_owned();
    let host = format!("localhost:{}", srv.addr.port());
    let marker = random_bytes(32, 41)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();

    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().to_owned();
    let pulled_marker = {
        let (host, marker) = (host.clone(), marker.clone());
        tokio::task::spawn_blocking(move || {
            let pusher = Podman::new();
            pusher.import_files("localhost/app:1.0", &[("etc/marker", marker.as_bytes())]);
            let remote = format!("{host}/acme/web/app:1.0");
            pusher.run(&["push", "--cert-dir", &cert_dir, "localhost/app:1.0", &remote]);
            let puller = Podman::new();
            puller.run(&["pull", "--cert-dir", &cert_dir, &remote]);
            // skopeo copies the pushed image on to an OCI layout, verifying TLS the same way.
            Skopeo::new().copy_verified(
                &["--src-cert-dir", &cert_dir],
                &format!("docker://{remote}"),
                &format!("oci:{}:app", out.display()),
            );
            puller.save_archive(&remote)
        })
        .await
        .unwrap()
    };
    assert!(pulled_marker.windows(marker.len()).any(|w| w == marker.as_bytes()));
    assert!(out_dir.path().join("index.json").is_file());
}

#[test]
fn first_start_creates_certificates_prints_how_to_trust_them_and_reuses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path().join("data"))
            .envs(common::backend_env(&tmp.path().join("data")))
            .arg("--tls-dir")
            .arg(&certs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut addr = None;
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listen=").nth(1) {
                assert!(line.contains(r#"scheme="https""#), "{line}");
                addr = Some(rest.split_whitespace().next().unwrap().parse::<SocketAddr>().unwrap());
                break;
            }
        }
        (child, addr.expect("server logs its address"))
    };

    let (mut child, addr) = start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, _) = rt
        .block_on(https_get(addr, Some(&certs.join("ca.crt")), "localhost", "/v2/"))
        .unwrap();
    // The gateway answers over verified TLS: a ping without a token gets the challenge.
    assert_eq!(status, 401);
    child.kill().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    child.wait().unwrap();
    assert!(
        stderr.contains("/etc/containers/certs.d/localhost:"),
        "trust hint printed: {stderr}"
    );
    // The first start also creates the administrator and shows its password once.
    let password = std::fs::read_to_string(tmp.path().join("data/initial-admin-password")).unwrap();
    assert!(stderr.contains(password.trim()), "password printed once: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let cert_before = std::fs::read(certs.join("server.crt")).unwrap();
    let (mut child, addr) = start();
    let (status, _) = rt
        .block_on(https_get(addr, Some(&certs.join("ca.crt")), "127.0.0.1", "/v2/"))
        .unwrap();
    assert_eq!(status, 401);
    child.kill().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    child.wait().unwrap();
    assert!(
        !stderr.contains("password"),
        "no new administrator on a later start: {stderr}"
    );
    assert_eq!(
        std::fs::read(certs.join("server.crt")).unwrap(),
        cert_before,
        "existing certificate reused"
    );
}

#[test]
fn certs_init_command_writes_the_four_files_for_the_given_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["certs", "init", "--dir"])
        .arg(tmp.path())
        .args(["--host", "registry.example", "--host", "10.1.2.3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["ca.crt", "ca.key", "server.crt", "server.key"] {
        assert!(tmp.path().join(f).is_file(), "{f}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("registry.example, 10.1.2.3"));
}

/// A client that completes the handshake and then dribbles an unfinished request head
/// is disconnected instead of holding the connection forever.
#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let limits = gatehouse::server::ConnLimits {
        header_read_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let srv = TestServer::start_tls_with_limits(limits).await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(srv.ca_cert()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // Never finish the head. The server must close the connection (bounded wait).
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(30), tls.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "connection still open after 30 s with a 1 s header timeout"
    );
}
