//! gatehouse: a container registry gateway and the OCI registry store it forwards to.
//!
//! Module map (calls flow downwards):
//! - `cli`, `config`, `app`: command line, settings, and assembling a running server;
//! - `server`: request logging, serving over TLS or plain HTTP, graceful shutdown;
//! - `tls`: the development CA (`gatehouse certs init`) and the rustls configuration;
//! - `gateway`: the public `/v2/` face: token service, authorization of every request,
//!   forwarding to a `Backend` (the store in-process, or a registry over HTTP);
//! - `admin`: the `/api/v1` admin API; `audit`: the bounded audit log;
//! - `identity`: users, organisations, products, role bindings, pull secrets;
//! - `policy`: authorization decisions from the Cedar policies in `policies/`;
//! - `store`: the OCI Distribution registry (HTTP API, service, metadata, blobs in files
//!   or S3-compatible object storage, upload sessions, GC);
//! - `sync`: pulling content from other registries into normal repositories: remotes,
//!   and edge sites (smart proxies) mirroring this server;
//! - `signing`: organisations' signing keys, and image signatures made with them;
//! - `secrets`: what must be kept recoverable (remote passwords, private keys), sealed
//!   at rest with a key outside the database;
//! - `db`: the metadata database shared by the domains above (SQLite, or PostgreSQL
//!   shared by replicas, with change announcements between them);
//! - `oci`: digests, names, references and the `/v2/` route parser;
//! - `error`: every client-visible registry error and its HTTP mapping.

pub mod admin;
pub mod app;
pub mod audit;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod db;
pub mod error;
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod identity;
pub mod metrics;
pub mod oci;
pub mod ops;
pub mod policy;
pub mod secrets;
pub mod server;
pub mod signing;
pub mod store;
pub mod sync;
pub mod tls;
