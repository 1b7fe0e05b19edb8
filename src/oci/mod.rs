//! OCI primitives shared by the store and (later) the gateway: digests and hashing,
//! repository names and references, media types, and the parser that turns a
//! `/v2/...` path into a typed route. Nothing here does I/O.

pub mod digest;
pub mod media;
pub mod name;
pub mod route;

pub use digest::{Digest, DigestAlgorithm, Hasher};
pub use name::{Reference, RepoName, Tag};
pub use route::{EXTENSIONS_PREFIX, OciRoute, SIGNATURES_HEADER, parse_path, parse_v2_path};
