//! gatehouse: a container registry gateway and the OCI registry store it forwards to.
//!
//! Module map (calls flow downwards):
//! - `cli`, `config`: command line and settings;
//! - `server`: router assembly, request logging, serving over TLS or plain HTTP;
//! - `tls`: the development CA (`gatehouse certs init`) and the rustls configuration;
//! - `gateway`: token protocol building blocks (scopes, challenges, credentials, JWTs);
//! - `policy`: authorization decisions from the Cedar policies in `policies/`;
//! - `store`: the OCI Distribution registry (HTTP API, service, metadata, blobs, GC);
//! - `oci`: digests, names, references and the `/v2/` route parser;
//! - `error`: every client-visible error and its HTTP mapping.

pub mod admin;
pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod gateway;
pub mod identity;
pub mod oci;
pub mod policy;
pub mod server;
pub mod store;
pub mod tls;
