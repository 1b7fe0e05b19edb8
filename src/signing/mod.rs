//! Organisations' signing keys, and the image signatures gatehouse makes with them.
//!
//! An org admin has gatehouse generate a key (an OpenPGP Ed25519 key whose primary key
//! signs, which GnuPG and therefore podman and skopeo verify) or imports one: a secret
//! key to sign with, or a public key only. Private keys are sealed with the secrets key
//! like remote passwords, and never leave the server; the armored public key is what
//! clients put in `policy.json` (`signedBy`, `keyPath`).
//!
//! Sigstore keys (ECDSA P-256, `sigstore`) are generated or imported the same way; their
//! public key is a PEM for `policy.json`'s `sigstoreSigned`.
//!
//! A GPG signature is "simple signing" (containers-signature(5)): a JSON payload naming the
//! manifest digest and the docker reference clients pull, in an OpenPGP signed message.
//! A sigstore signature signs the same claim in cosign's payload, and is stored as a
//! `sha256-<hex>.sig` attachment. Signing names the public repository, never the push repository the bytes came in by,
//! so that the signature verifies for what users pull (Pulp's `future_base_path`).

use crate::db::{Database, now_ms};
use crate::identity::credentials::validate_account_name;
use crate::secrets::SecretBox;
use crate::store::signatures::{MadeSignature, Signature, SigstoreSignature};
use pgp::composed::{
    ArmorOptions, Deserializable, EncryptionCaps, KeyType, Message, MessageBuilder, SecretKeyParamsBuilder,
    SignedPublicKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{KeyDetails, Password};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use std::sync::Arc;

pub mod sigstore;

pub use sigstore::KIND_SIGSTORE;

pub const KIND_GPG: &str = "gpg";
/// Armored keys larger than this are refused on import.
const MAX_KEY_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A field of the request is wrong: (field, why).
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error("no signing key {0}")]
    NotFound(String),
    #[error("signing key {0} exists already")]
    Exists(String),
    #[error("signing key {0} holds no private key (imported to verify only)")]
    PublicOnly(String),
    #[error("the sealed private key cannot be opened: {0}")]
    Sealed(#[from] crate::secrets::SecretError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("OpenPGP: {0}")]
    Pgp(String),
    #[error("ECDSA: {0}")]
    Crypto(String),
}

type Result<T> = std::result::Result<T, SigningError>;

fn pgp_err(e: impl std::fmt::Display) -> SigningError {
    SigningError::Pgp(e.to_string())
}

/// A signing key as the API shows it: never its private part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SigningKey {
    pub org: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub fingerprint: String,
    /// The armored public key (for `policy.json`).
    pub public_key: String,
    /// Whether gatehouse holds the private key (it can sign).
    pub can_sign: bool,
    pub created_at: i64,
}

/// The simple-signing payload for `manifest_digest` pulled as `docker_reference`.
pub fn simple_signing_payload(manifest_digest: &str, docker_reference: &str, timestamp_secs: i64) -> Vec<u8> {
    json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": manifest_digest },
            "type": "atomic container signature",
        },
        "optional": {
            "creator": concat!("gatehouse ", env!("CARGO_PKG_VERSION")),
            "timestamp": timestamp_secs,
        },
    })
    .to_string()
    .into_bytes()
}

/// What a verified simple signing signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedClaim {
    pub manifest_digest: String,
    pub docker_reference: String,
}

/// Verify `signature` (an OpenPGP signed message) with the armored public key
/// `public_key`, and read the claim it signs.
pub fn verify(public_key: &str, signature: &[u8]) -> Result<SignedClaim> {
    let (key, _) = SignedPublicKey::from_string(public_key).map_err(pgp_err)?;
    let mut msg = Message::from_bytes(signature).map_err(pgp_err)?;
    if msg.is_compressed() {
        msg = msg.decompress().map_err(pgp_err)?;
    }
    let payload = msg.as_data_vec().map_err(pgp_err)?;
    msg.verify(&key.primary_key).map_err(pgp_err)?;
    read_claim(&payload, "atomic container signature")
}

/// The claim of a signed simple signing payload whose `critical.type` is `kind`.
pub(crate) fn read_claim(payload: &[u8], kind: &str) -> Result<SignedClaim> {
    let bad = |why: &str| SigningError::Crypto(why.to_owned());
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| bad(&e.to_string()))?;
    let critical = &v["critical"];
    if critical["type"] != kind {
        return Err(bad("not a container signature"));
    }
    let field = |path: [&str; 2]| critical[path[0]][path[1]].as_str().map(str::to_owned);
    match (
        field(["image", "docker-manifest-digest"]),
        field(["identity", "docker-reference"]),
    ) {
        (Some(manifest_digest), Some(docker_reference)) => Ok(SignedClaim {
            manifest_digest,
            docker_reference,
        }),
        _ => Err(bad("the signed payload lacks the digest or the reference")),
    }
}

/// What a stored signature claims, if `key` made it (a key verifies only the form of
/// signature its kind makes).
pub fn claim_of(key: &SigningKey, sig: StoredSignature<'_>) -> Option<SignedClaim> {
    match (key.kind.as_str(), sig) {
        (KIND_GPG, StoredSignature::Simple(s)) => verify(&key.public_key, &s.content).ok(),
        (KIND_SIGSTORE, StoredSignature::Sigstore(s)) => {
            sigstore::verify(&key.public_key, &s.payload, &s.signature).ok()
        }
        _ => None,
    }
}

/// A signature as stored: through the extension API, or a sigstore attachment.
#[derive(Clone, Copy)]
pub enum StoredSignature<'a> {
    Simple(&'a Signature),
    Sigstore(&'a SigstoreSignature),
}

fn sign_with(key: &SignedSecretKey, payload: Vec<u8>) -> Result<Vec<u8>> {
    let mut builder = MessageBuilder::from_bytes("", payload);
    builder.sign(&key.primary_key, Password::empty(), HashAlgorithm::Sha256);
    builder.to_vec(rand::thread_rng()).map_err(pgp_err)
}

fn check_name(name: &str) -> Result<()> {
    validate_account_name(name).map_err(|e| SigningError::Invalid("name", e.to_string()))
}

/// The signing keys of every organisation.
#[derive(Clone)]
pub struct SigningKeys {
    db: Database,
    secrets: Arc<SecretBox>,
}

const COLUMNS: &str = "org, name, kind, fingerprint, public_key, \
     CASE WHEN private_sealed IS NULL THEN 0 ELSE 1 END, created_at";

fn key_row(r: sqlx::any::AnyRow) -> SigningKey {
    SigningKey {
        org: r.get(0),
        name: r.get(1),
        kind: r.get(2),
        fingerprint: r.get(3),
        public_key: r.get(4),
        can_sign: r.get::<i64, _>(5) != 0,
        created_at: r.get(6),
    }
}

impl SigningKeys {
    pub fn new(db: Database, secrets: Arc<SecretBox>) -> Self {
        Self { db, secrets }
    }

    /// Generate a key of `kind` (`gpg` or `sigstore`) for `org` named `name`; a GPG key's
    /// `identity` is its user id (`Name <email>`), by default `<name> (<org>, gatehouse)`.
    pub async fn create(&self, org: &str, name: &str, kind: &str, identity: Option<&str>) -> Result<SigningKey> {
        check_name(name)?;
        if kind == KIND_SIGSTORE {
            if identity.is_some() {
                return Err(SigningError::Invalid(
                    "identity",
                    "a sigstore key has no identity; leave it out".into(),
                ));
            }
            let (private, public) = sigstore::generate()?;
            let fingerprint = sigstore::fingerprint(&public)?;
            return self
                .insert(org, name, KIND_SIGSTORE, &fingerprint, &public, Some(&private))
                .await;
        }
        if kind != KIND_GPG {
            return Err(SigningError::Invalid(
                "type",
                format!("{kind:?} is not a supported key type; use \"gpg\" or \"sigstore\""),
            ));
        }
        let uid = match identity {
            Some(i) if i.trim().is_empty() || i.len() > 256 || i.contains(['\n', '\r']) => {
                return Err(SigningError::Invalid(
                    "identity",
                    "one line of 1 to 256 characters".into(),
                ));
            }
            Some(i) => i.to_owned(),
            None => format!("{name} ({org}, gatehouse)"),
        };
        let secret = tokio::task::spawn_blocking(move || -> Result<SignedSecretKey> {
            let mut params = SecretKeyParamsBuilder::default();
            params
                .key_type(KeyType::Ed25519Legacy)
                .can_certify(true)
                .can_sign(true)
                .can_encrypt(EncryptionCaps::None)
                .primary_user_id(uid);
            params
                .build()
                .map_err(pgp_err)?
                .generate(rand::thread_rng())
                .map_err(pgp_err)
        })
        .await
        .map_err(pgp_err)??;
        self.insert_pgp(org, name, &secret.to_public_key(), Some(&secret)).await
    }

    /// Import a key: an armored OpenPGP secret key (without a passphrase) or public key,
    /// or a PEM sigstore key (a private key, cosign's encrypted private key with its
    /// `passphrase`, or a public key). A public key verifies only.
    pub async fn import(&self, org: &str, name: &str, text: &str, passphrase: Option<&str>) -> Result<SigningKey> {
        check_name(name)?;
        if text.len() > MAX_KEY_BYTES {
            return Err(SigningError::Invalid("key", "larger than 64 KiB".into()));
        }
        if !text.contains("-----BEGIN PGP") {
            let (text, passphrase) = (text.to_owned(), passphrase.map(str::to_owned));
            // scrypt is seconds of CPU by design: off the async workers.
            let (private, public) = tokio::task::spawn_blocking(move || sigstore::import(&text, passphrase.as_deref()))
                .await
                .map_err(|e| SigningError::Crypto(e.to_string()))??;
            let fingerprint = sigstore::fingerprint(&public)?;
            return self
                .insert(org, name, KIND_SIGSTORE, &fingerprint, &public, private.as_deref())
                .await;
        }
        if passphrase.is_some() {
            return Err(SigningError::Invalid(
                "passphrase",
                "only encrypted sigstore keys take one; import the OpenPGP key without a passphrase".into(),
            ));
        }
        if let Ok((secret, _)) = SignedSecretKey::from_string(text) {
            secret
                .verify_bindings()
                .map_err(|e| SigningError::Invalid("key", format!("its self-signatures do not verify: {e}")))?;
            // A key gatehouse cannot use (a passphrase, a primary that cannot sign) is
            // refused now rather than at the first signing.
            let probe = sign_with(&secret, b"probe".to_vec())
                .map_err(|e| SigningError::Invalid("key", format!("cannot sign with it (a passphrase?): {e}")))?;
            let public = secret.to_public_key();
            verify_raw(&public, &probe)
                .map_err(|e| SigningError::Invalid("key", format!("its primary key cannot sign: {e}")))?;
            return self.insert_pgp(org, name, &public, Some(&secret)).await;
        }
        let (public, _) = SignedPublicKey::from_string(text)
            .map_err(|e| SigningError::Invalid("key", format!("not an armored OpenPGP secret or public key: {e}")))?;
        public
            .verify_bindings()
            .map_err(|e| SigningError::Invalid("key", format!("its self-signatures do not verify: {e}")))?;
        self.insert_pgp(org, name, &public, None).await
    }

    async fn insert_pgp(
        &self,
        org: &str,
        name: &str,
        public: &SignedPublicKey,
        secret: Option<&SignedSecretKey>,
    ) -> Result<SigningKey> {
        let public_armored = public.to_armored_string(ArmorOptions::default()).map_err(pgp_err)?;
        let secret_armored = match secret {
            Some(s) => Some(s.to_armored_string(ArmorOptions::default()).map_err(pgp_err)?),
            None => None,
        };
        let fingerprint = format!("{:X}", public.fingerprint());
        self.insert(
            org,
            name,
            KIND_GPG,
            &fingerprint,
            &public_armored,
            secret_armored.as_deref(),
        )
        .await
    }

    async fn insert(
        &self,
        org: &str,
        name: &str,
        kind: &str,
        fingerprint: &str,
        public: &str,
        private: Option<&str>,
    ) -> Result<SigningKey> {
        let sealed = match private {
            Some(p) => Some(self.secrets.seal(p)?),
            None => None,
        };
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM signing_keys WHERE org = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(SigningError::Exists(name.to_owned()));
        }
        sqlx::query(
            "INSERT INTO signing_keys (org, name, kind, fingerprint, public_key, private_sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(org)
        .bind(name)
        .bind(kind)
        .bind(fingerprint)
        .bind(public)
        .bind(sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SigningKey {
            org: org.to_owned(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            fingerprint: fingerprint.to_owned(),
            public_key: public.to_owned(),
            can_sign: private.is_some(),
            created_at: now,
        })
    }

    pub async fn list(&self, org: &str) -> Result<Vec<SigningKey>> {
        let sql = format!("SELECT {COLUMNS} FROM signing_keys WHERE org = $1 ORDER BY name");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .fetch_all(&self.db.read.clone())
            .await?
            .into_iter()
            .map(key_row)
            .collect())
    }

    pub async fn get(&self, org: &str, name: &str) -> Result<SigningKey> {
        let sql = format!("SELECT {COLUMNS} FROM signing_keys WHERE org = $1 AND name = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(name)
            .fetch_optional(&self.db.read.clone())
            .await?
            .map(key_row)
            .ok_or_else(|| SigningError::NotFound(name.to_owned()))
    }

    /// Delete a key; signatures made with it stay (they are content).
    pub async fn delete(&self, org: &str, name: &str) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        let r = sqlx::query("DELETE FROM signing_keys WHERE org = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if r.rows_affected() == 0 {
            return Err(SigningError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    /// A signature of `manifest_digest` as `docker_reference` by `org`'s key `name`: a
    /// simple signing message for a GPG key, a payload and its signature for a sigstore key.
    pub async fn sign(
        &self,
        org: &str,
        name: &str,
        manifest_digest: &str,
        docker_reference: &str,
    ) -> Result<MadeSignature> {
        let row = sqlx::query("SELECT kind, private_sealed FROM signing_keys WHERE org = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .fetch_optional(&self.db.read.clone())
            .await?
            .map(|r| (r.get::<String, _>(0), r.get::<Option<String>, _>(1)));
        let (kind, sealed) = match row {
            None => return Err(SigningError::NotFound(name.to_owned())),
            Some((_, None)) => return Err(SigningError::PublicOnly(name.to_owned())),
            Some((kind, Some(s))) => (kind, s),
        };
        let private = self.secrets.open(&sealed)?;
        let now = now_ms() / 1000;
        if kind == KIND_SIGSTORE {
            let payload = sigstore::payload(manifest_digest, docker_reference, now);
            let signature = sigstore::sign(&private, &payload)?;
            return Ok(MadeSignature::Sigstore(SigstoreSignature { payload, signature }));
        }
        let payload = simple_signing_payload(manifest_digest, docker_reference, now);
        tokio::task::spawn_blocking(move || {
            let (key, _) = SignedSecretKey::from_string(&private).map_err(pgp_err)?;
            sign_with(&key, payload)
        })
        .await
        .map_err(pgp_err)?
        .map(MadeSignature::Simple)
    }
}

#[async_trait::async_trait]
impl crate::store::signatures::ImageSigner for SigningKeys {
    async fn sign(
        &self,
        org: &str,
        key: &str,
        manifest_digest: &str,
        reference: &str,
    ) -> std::result::Result<MadeSignature, String> {
        SigningKeys::sign(self, org, key, manifest_digest, reference)
            .await
            .map_err(|e| e.to_string())
    }
}

fn verify_raw(public: &SignedPublicKey, signature: &[u8]) -> Result<()> {
    let mut msg = Message::from_bytes(signature).map_err(pgp_err)?;
    msg.as_data_vec().map_err(pgp_err)?;
    msg.verify(&public.primary_key).map_err(pgp_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_signed_here_verifies_and_says_what_it_signs() {
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id("t <t@example.com>".into());
        let key = params.build().unwrap().generate(rand::thread_rng()).unwrap();
        let public = key.to_public_key().to_armored_string(ArmorOptions::default()).unwrap();
        let payload = simple_signing_payload("sha256:ab", "example.com/a/b:1", 1);
        let sig = sign_with(&key, payload).unwrap();
        let claim = verify(&public, &sig).unwrap();
        assert_eq!(claim.manifest_digest, "sha256:ab");
        assert_eq!(claim.docker_reference, "example.com/a/b:1");
        let mut bad = sig.clone();
        let last = bad.len() - 3;
        bad[last] ^= 1;
        assert!(verify(&public, &bad).is_err(), "a damaged signature does not verify");
    }
}
