//! Sigstore signing keys (ECDSA P-256, as cosign, podman and skopeo make them) and the
//! signatures made with them: a cosign "simple signing" payload signed with ECDSA over
//! SHA-256, the signature base64 of its ASN.1 DER form.
//!
//! Keys are read in every form those tools write: PKCS#8 (`PRIVATE KEY`), SEC 1
//! (`EC PRIVATE KEY`), and cosign's passphrase-encrypted `ENCRYPTED SIGSTORE PRIVATE KEY`
//! / `ENCRYPTED COSIGN PRIVATE KEY` (scrypt, then NaCl secretbox, as
//! go-securesystemslib's `encrypted` package). Public keys are PEM `PUBLIC KEY` (SPKI),
//! what `policy.json`'s `sigstoreSigned` `keyPath` takes.

use super::{SignedClaim, SigningError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

pub const KIND_SIGSTORE: &str = "sigstore";
/// The `critical.type` of a sigstore payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

type Result<T> = std::result::Result<T, SigningError>;

fn invalid(why: impl std::fmt::Display) -> SigningError {
    SigningError::Invalid("key", why.to_string())
}

fn crypto(why: impl std::fmt::Display) -> SigningError {
    SigningError::Crypto(why.to_string())
}

/// A new key: (PKCS#8 PEM of the private key, SPKI PEM of the public key).
pub fn generate() -> Result<(String, String)> {
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(crypto)?.to_string();
    Ok((private, public_pem(&key)?))
}

fn public_pem(key: &SigningKey) -> Result<String> {
    key.verifying_key().to_public_key_pem(LineEnding::LF).map_err(crypto)
}

/// The fingerprint of a public key: SHA-256 of its SPKI DER, lower-case hex.
pub fn fingerprint(public_pem: &str) -> Result<String> {
    let key = VerifyingKey::from_public_key_pem(public_pem).map_err(crypto)?;
    let der = key.to_public_key_der().map_err(crypto)?;
    Ok(hex::encode(Sha256::digest(der.as_bytes())))
}

/// What an imported PEM holds: (PKCS#8 PEM of the private key if any, public PEM).
pub fn import(text: &str, passphrase: Option<&str>) -> Result<(Option<String>, String)> {
    let label = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| invalid("not a PEM key (no BEGIN line)"))?;
    let key = match label {
        "PUBLIC KEY" => {
            let public = VerifyingKey::from_public_key_pem(text)
                .map_err(|e| invalid(format!("not an ECDSA P-256 public key: {e}")))?;
            let pem = public.to_public_key_pem(LineEnding::LF).map_err(crypto)?;
            return Ok((None, pem));
        }
        "PRIVATE KEY" => {
            SigningKey::from_pkcs8_pem(text).map_err(|e| invalid(format!("not an ECDSA P-256 private key: {e}")))?
        }
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_pem(text)
            .map(SigningKey::from)
            .map_err(|e| invalid(format!("not an ECDSA P-256 private key: {e}")))?,
        "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
            let Some(pass) = passphrase else {
                return Err(SigningError::Invalid(
                    "passphrase",
                    "the key is encrypted: give its passphrase".into(),
                ));
            };
            let der = decrypt(pem_body(text)?, pass.as_bytes())?;
            SigningKey::from_pkcs8_der(&der).map_err(|e| invalid(format!("not an ECDSA P-256 key: {e}")))?
        }
        other => return Err(invalid(format!("a {other:?} PEM is not a sigstore key"))),
    };
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(crypto)?.to_string();
    Ok((Some(private), public_pem(&key)?))
}

fn pem_body(text: &str) -> Result<Vec<u8>> {
    let b64: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(b64).map_err(|e| invalid(format!("bad PEM body: {e}")))
}

/// go-securesystemslib's `encrypted` envelope.
#[derive(Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

fn decrypt(envelope: Vec<u8>, passphrase: &[u8]) -> Result<Vec<u8>> {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let env: Envelope =
        serde_json::from_slice(&envelope).map_err(|e| invalid(format!("not a cosign encrypted key: {e}")))?;
    if env.kdf.name != "scrypt" || env.cipher.name != "nacl/secretbox" {
        return Err(invalid(format!(
            "unsupported encryption {} + {}",
            env.kdf.name, env.cipher.name
        )));
    }
    let KdfParams { n, r, p } = env.kdf.params;
    // Bounded so that an imported key cannot make the server spend gigabytes.
    if !n.is_power_of_two() || !(2..=1 << 20).contains(&n) || !(1..=32).contains(&r) || !(1..=16).contains(&p) {
        return Err(invalid("scrypt parameters out of range"));
    }
    let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p, 32).map_err(invalid)?;
    let mut key = [0u8; 32];
    scrypt::scrypt(passphrase, &env.kdf.salt, &params, &mut key).map_err(invalid)?;
    if env.cipher.nonce.len() != 24 {
        return Err(invalid("the nonce is not 24 bytes"));
    }
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
    let mut nonce = crypto_secretbox::Nonce::default();
    nonce.copy_from_slice(&env.cipher.nonce);
    cipher
        .decrypt(&nonce, env.ciphertext.as_slice())
        .map_err(|_| SigningError::Invalid("passphrase", "wrong passphrase (the key does not decrypt)".into()))
}

/// The payload a sigstore signature signs: `manifest_digest` pulled as `docker_reference`.
pub fn payload(manifest_digest: &str, docker_reference: &str, timestamp_secs: i64) -> Vec<u8> {
    json!({
        "critical": {
            "identity": { "docker-reference": docker_reference },
            "image": { "docker-manifest-digest": manifest_digest },
            "type": PAYLOAD_TYPE,
        },
        "optional": {
            "creator": concat!("gatehouse ", env!("CARGO_PKG_VERSION")),
            "timestamp": timestamp_secs,
        },
    })
    .to_string()
    .into_bytes()
}

/// Sign `payload` with the PKCS#8 PEM private key; the signature in base64.
pub fn sign(private_pem: &str, payload: &[u8]) -> Result<String> {
    let key = SigningKey::from_pkcs8_pem(private_pem).map_err(crypto)?;
    let sig: Signature = key.sign(payload);
    Ok(STANDARD.encode(sig.to_der().as_bytes()))
}

/// Verify a sigstore signature (base64 DER) of `payload` with the PEM public key, and
/// read the claim it signs.
pub fn verify(public_pem: &str, payload: &[u8], signature_b64: &str) -> Result<SignedClaim> {
    let key = VerifyingKey::from_public_key_pem(public_pem).map_err(crypto)?;
    let der = STANDARD.decode(signature_b64.trim()).map_err(crypto)?;
    let sig = Signature::from_der(&der).map_err(crypto)?;
    key.verify(payload, &sig).map_err(crypto)?;
    super::read_claim(payload, PAYLOAD_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_what_its_public_key_verifies() {
        let (private, public) = generate().unwrap();
        let p = payload("sha256:ab", "example.com/a/b:1", 1);
        let sig = sign(&private, &p).unwrap();
        let claim = verify(&public, &p, &sig).unwrap();
        assert_eq!(claim.manifest_digest, "sha256:ab");
        assert_eq!(claim.docker_reference, "example.com/a/b:1");
        let other = payload("sha256:cd", "example.com/a/b:1", 1);
        assert!(
            verify(&public, &other, &sig).is_err(),
            "another payload does not verify"
        );
        let (_, stranger) = generate().unwrap();
        assert!(verify(&stranger, &p, &sig).is_err(), "another key does not verify");
        assert_eq!(fingerprint(&public).unwrap().len(), 64);
    }

    #[test]
    fn imported_forms_give_the_same_public_key() {
        let (private, public) = generate().unwrap();
        let (again, public2) = import(&private, None).unwrap();
        assert_eq!(public, public2);
        assert!(again.is_some());
        let (none, public3) = import(&public, None).unwrap();
        assert!(none.is_none());
        assert_eq!(public, public3);
        assert!(matches!(
            import("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n", None),
            Err(SigningError::Invalid("key", _))
        ));
    }
}
