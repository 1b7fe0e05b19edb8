//! The authorizing gateway's building blocks for the Docker/OCI token protocol: scopes,
//! `WWW-Authenticate` challenges, Basic credentials with Argon2id password hashes, and
//! the token service's signing keys and JWTs. The gateway's request path (who may do
//! what, by policy) is built on these; nothing here does HTTP or knows about policies.

pub mod challenge;
pub mod credentials;
pub mod scope;
pub mod token;
