//! Secrets gatehouse must send to another registry (remote passwords, the edge's
//! credential) cannot be hashed; they are kept encrypted with a key that never enters
//! the database: ChaCha20-Poly1305 with a random 256-bit key in `<data>/secrets.key`
//! (mode 0600, created on first start). Sealed values are `base64(nonce | ciphertext)`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::io::Write;
use std::path::Path;

pub struct SecretBox {
    key: LessSafeKey,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key file {0}: {1}")]
    Io(String, std::io::Error),
    #[error("secret key file {0} must hold exactly 32 bytes")]
    BadKey(String),
    #[error("a sealed secret could not be opened (wrong key or damaged)")]
    Open,
    #[error("outgoing HTTP client: {0}")]
    Client(String),
}

impl SecretBox {
    /// The key in `path`, created (0600) when absent.
    pub fn open_or_create(path: &Path) -> Result<Self, SecretError> {
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut key)
                    .map_err(|_| SecretError::BadKey(name.clone()))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(mut f) => {
                        f.write_all(&key)
                            .and_then(|_| f.sync_all())
                            .map_err(|e| SecretError::Io(name.clone(), e))?;
                        key.to_vec()
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::fs::read(path).map_err(|e| SecretError::Io(name.clone(), e))?
                    }
                    Err(e) => return Err(SecretError::Io(name, e)),
                }
            }
            Err(e) => return Err(SecretError::Io(name, e)),
        };
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| SecretError::BadKey(name))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    pub fn seal(&self, plain: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SecretError::Open)?;
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map_err(|_| SecretError::Open)?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let raw = STANDARD.decode(sealed).map_err(|_| SecretError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Open)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut data)
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_refuses_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let b = SecretBox::open_or_create(&path).unwrap();
        let sealed = b.seal("hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(b.open(&sealed).unwrap(), "hunter2");
        // The same key file opens it again; a flipped byte does not.
        assert_eq!(
            SecretBox::open_or_create(&path).unwrap().open(&sealed).unwrap(),
            "hunter2"
        );
        let mut raw = STANDARD.decode(&sealed).unwrap();
        raw[NONCE_LEN] ^= 1;
        assert!(b.open(&STANDARD.encode(raw)).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
