//! Repository names, tags and references, validated by the OCI distribution grammar.
//!
//! ```text
//! name       = component *("/" component)           (at most 255 characters)
//! component  = [a-z0-9]+ *(separator [a-z0-9]+)
//! separator  = "." / "_" / "__" / "-"+
//! tag        = [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
//! ```

use crate::oci::digest::{Digest, DigestError};
use std::fmt;
use std::str::FromStr;

/// Longest repository name accepted (the limit Distribution and most clients use).
pub const MAX_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("repository name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error(
        "invalid repository name {0:?}: components must be lowercase letters and digits \
         separated by '.', '_', '__' or '-', joined by '/'"
    )]
    Invalid(String),
}

impl RepoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

impl FromStr for RepoName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if s.split('/').all(valid_component) {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::Invalid(s.to_owned()))
        }
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid tag {0:?}: a tag is 1 to 128 characters of [A-Za-z0-9_.-] and cannot start with '.' or '-'")]
pub struct TagError(pub String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(TagError(s.to_owned()))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `<reference>` of a manifest URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Tag(#[from] TagError),
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A tag can never contain ':', so its presence decides the kind.
        if s.contains(':') {
            Ok(Self::Digest(s.parse()?))
        } else {
            Ok(Self::Tag(s.parse()?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) => t.fmt(f),
            Self::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_grammar_names() {
        for ok in ["a", "acme/web/app", "a.b/c__d/e---f", "library/alpine", "x0/y-1_z.2"] {
            assert!(ok.parse::<RepoName>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "", "/a", "a/", "a//b", "A/b", "a/../b", "..", "a/..", "a/.b", "a_", "a___b", "a-.b", "a b", "a%2fb",
        ] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad}");
        }
        assert_eq!("a".repeat(300).parse::<RepoName>(), Err(NameError::TooLong));
    }

    #[test]
    fn tags_and_references() {
        assert!("v1.0_rc-1".parse::<Tag>().is_ok());
        assert!("_x".parse::<Tag>().is_ok());
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
        assert!(matches!("latest".parse::<Reference>(), Ok(Reference::Tag(_))));
        assert!("sha256:zz".parse::<Reference>().is_err());
    }
}
