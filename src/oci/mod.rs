//! OCI primitives shared by the store and (later) the gateway: digests and hashing,
//! repository names and references, media types, and the parser that turns a
//! `/v2/...` path into a typed route. Nothing here does I/O.

pub mod digest;
pub mod media;
pub mod name;
pub mod range;
pub mod route;

pub use digest::{Digest, DigestAlgorithm, Hasher};
pub use name::{Reference, RepoName, Tag};
pub use route::{EXTENSIONS_PREFIX, OciRoute, SIGNATURES_HEADER, parse_path, parse_v2_path};

/// Whether `url` is a registry's base URL: `https://host[:port]` (or `http://`), no path.
pub fn is_base_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && reqwest::Url::parse(url).is_ok_and(|u| u.host().is_some() && (u.path() == "/" || u.path().is_empty()))
}
