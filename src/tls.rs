//! TLS: the development certificate authority that `gatehouse certs init` (and the first
//! `serve`) creates, and the rustls server configuration.
//!
//! Files in the certificate directory:
//! ```text
//! ca.crt      development CA certificate: what clients trust (podman: certs.d/<host>/ca.crt)
//! ca.key      its private key (mode 0600); kept so that new server certificates chain to
//!             the CA clients already trust
//! server.crt  server certificate for the listed hosts, followed by ca.crt
//! server.key  its private key (mode 0600)
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{0}: no usable {1} in PEM file")]
    Pem(PathBuf, &'static str),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The four files of a certificate directory.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl CertFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        }
    }

    pub fn server_pair_exists(&self) -> bool {
        self.server_cert.is_file() && self.server_key.is_file()
    }
}

/// Host names a development server certificate covers when none are given: the local
/// names and addresses, and this machine's host name.
pub fn default_hosts() -> Vec<String> {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim().to_lowercase();
        if !name.is_empty() && !hosts.contains(&name) {
            hosts.push(name);
        }
    }
    hosts
}

/// The CA's certificate parameters. Deterministic, so that a CA key loaded from disk
/// issues certificates whose issuer name and key identifier match the CA certificate.
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "gatehouse");
    dn.push(DnType::CommonName, "gatehouse development CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

/// Create the development CA (unless `ca.crt`/`ca.key` exist already, which are reused)
/// and a server certificate for `hosts` (replacing an existing one).
pub fn init_dev_certs(dir: &Path, hosts: &[String]) -> Result<CertFiles, TlsError> {
    let files = CertFiles::in_dir(dir);
    std::fs::create_dir_all(dir).map_err(|e| TlsError::Io(dir.to_owned(), e))?;
    let now = OffsetDateTime::now_utc();

    let (ca_key, ca_pem) = if files.ca_cert.is_file() && files.ca_key.is_file() {
        let key_pem = read(&files.ca_key)?;
        let key = KeyPair::from_pem(&key_pem)?;
        (key, read(&files.ca_cert)?)
    } else {
        let key = KeyPair::generate()?;
        let mut params = ca_params()?;
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key)?;
        write(&files.ca_key, key.serialize_pem().as_bytes(), true)?;
        write(&files.ca_cert, cert.pem().as_bytes(), false)?;
        (key, cert.pem())
    };
    let issuer = Issuer::new(ca_params()?, ca_key);

    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        hosts.first().map(String::as_str).unwrap_or("localhost"),
    );
    params.distinguished_name = dn;
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(397);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&server_key, &issuer)?;
    write(&files.server_key, server_key.serialize_pem().as_bytes(), true)?;
    // The chain clients need: the server certificate, then the CA.
    write(
        &files.server_cert,
        format!("{}{}", cert.pem(), ca_pem).as_bytes(),
        false,
    )?;
    Ok(files)
}

/// A rustls server configuration from a PEM certificate chain and private key.
/// Make ring the process's TLS provider (the outgoing HTTP client, for syncs and the
/// edge's upstream, uses the process default). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|_| TlsError::Pem(cert_path.to_owned(), "certificate"))?
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem(cert_path.to_owned(), "certificate"))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(cert_path.to_owned(), "certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|_| TlsError::Pem(key_path.to_owned(), "private key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| TlsError::Io(path.to_owned(), e))
}

/// Write a file whole; private keys are created readable by the owner only.
fn write(path: &Path, data: &[u8], private: bool) -> Result<(), TlsError> {
    let err = |e| TlsError::Io(path.to_owned(), e);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(if private { 0o600 } else { 0o644 });
        let mut f = opts.open(path).map_err(err)?;
        // `mode` applies only to new files; an existing key file is tightened too.
        if private {
            f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
        f.write_all(data).map_err(err)?;
        f.sync_all().map_err(err)
    }
    #[cfg(not(unix))]
    {
        let _ = private;
        let mut f = opts.open(path).map_err(err)?;
        f.write_all(data).map_err(err)?;
        f.sync_all().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_private_keys_and_reuses_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let files = init_dev_certs(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [&files.ca_key, &files.server_key] {
                assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
            }
        }
        let ca_before = std::fs::read(&files.ca_cert).unwrap();
        init_dev_certs(dir.path(), &["registry.example".into()]).unwrap();
        assert_eq!(
            std::fs::read(&files.ca_cert).unwrap(),
            ca_before,
            "the CA clients trust is kept"
        );
        server_config(&files.server_cert, &files.server_key).unwrap();
    }

    #[test]
    fn unreadable_pem_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("x.pem");
        std::fs::write(&bogus, "not pem").unwrap();
        let err = server_config(&bogus, &bogus).unwrap_err().to_string();
        assert!(err.contains("x.pem"), "{err}");
    }
}
