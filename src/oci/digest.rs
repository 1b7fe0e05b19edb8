//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and streaming hashers.
//!
//! The registry accepts exactly the two algorithms the OCI image spec registers; any
//! other algorithm is refused at the edge, so every `Digest` value in the program is
//! known to be well-formed and safe to use as a file name component.

use sha2::{Digest as _, Sha256, Sha512};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

impl DigestAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }
}

/// A validated digest. Ordering and equality are on the canonical string form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("digest must have the form algorithm:hex")]
    Malformed,
    #[error("unsupported digest algorithm {0:?}; use sha256 or sha512")]
    UnsupportedAlgorithm(String),
    #[error("digest hex part must be {0} lowercase hexadecimal characters")]
    BadHex(usize),
}

impl Digest {
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The hex-encoded hash, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Digest of an in-memory byte string (manifests, test data).
    pub fn of(algorithm: DigestAlgorithm, data: &[u8]) -> Self {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }

    pub fn sha256_of(data: &[u8]) -> Self {
        Self::of(DigestAlgorithm::Sha256, data)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        let algorithm = match alg {
            "sha256" => DigestAlgorithm::Sha256,
            "sha512" => DigestAlgorithm::Sha512,
            "" => return Err(DigestError::Malformed),
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        };
        let want = algorithm.hex_len();
        if hex.len() != want || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::BadHex(want));
        }
        Ok(Self {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

/// An incremental hasher for one of the supported algorithms. `Clone` so that an
/// upload session can keep its running state between chunks.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Sha256 => Self::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => Self::Sha512(Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        match self {
            Self::Sha256(_) => DigestAlgorithm::Sha256,
            Self::Sha512(_) => DigestAlgorithm::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Self::Sha256(h) => (DigestAlgorithm::Sha256, hex::encode(h.finalize())),
            Self::Sha512(h) => (DigestAlgorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonical_form() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert_eq!(d, Digest::sha256_of(b""));
        assert_eq!(d.to_string().len(), 71);
    }

    #[test]
    fn rejects_bad_digests() {
        assert_eq!("sha256".parse::<Digest>(), Err(DigestError::Malformed));
        assert_eq!(
            "md5:abc".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm("md5".into()))
        );
        assert_eq!("sha256:ABC".parse::<Digest>(), Err(DigestError::BadHex(64)));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert_eq!(upper.parse::<Digest>(), Err(DigestError::BadHex(64)));
        let traversal = format!("sha256:../{}", "a".repeat(61));
        assert!(traversal.parse::<Digest>().is_err());
    }

    #[test]
    fn sha512_round_trips() {
        let d = Digest::of(DigestAlgorithm::Sha512, b"abc");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(d.hex().len(), 128);
    }
}
