//! Organisations' signing keys:
//! - `GET /api/v1/orgs/{org}/signing-keys` (members), `POST` `{"name", "type": "gpg" |
//!   "sigstore", "identity"?}` to generate one or `{"name", "key", "passphrase"?}` to
//!   import an armored OpenPGP or PEM sigstore (ECDSA P-256) secret or public key (org
//!   admins);
//! - `GET …/signing-keys/{name}` (members): the key as JSON, or its public key file for
//!   `policy.json` with `?format=armored` / `?format=pem` (or `Accept:
//!   application/pgp-keys` / `application/x-pem-file`);
//! - `DELETE …/signing-keys/{name}` (org admins).
//!
//! Private keys are never shown; the answers carry the fingerprint and public key.

use super::{Admin, ApiError, ApiResult};
use crate::gateway::Gateway;
use crate::signing::{KIND_GPG, KIND_SIGSTORE, SigningError, SigningKeys};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

impl From<SigningError> for ApiError {
    fn from(e: SigningError) -> Self {
        match e {
            SigningError::Invalid(field, why) => ApiError::invalid(field, &why),
            SigningError::NotFound(name) => ApiError::not_found(&format!("no signing key {name:?}")),
            SigningError::Exists(name) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("signing key {name:?} exists already"),
            ),
            SigningError::PublicOnly(name) => ApiError::invalid(
                "key",
                &format!("signing key {name:?} holds no private key (it was imported to verify only)"),
            ),
            SigningError::Db(db) => crate::error::Error::from(db).into(),
            other => ApiError::internal(&other),
        }
    }
}

/// Members of the organisation (and global admins) see its keys.
async fn require_member(gw: &Gateway, a: &Admin, org: &str) -> ApiResult<()> {
    if !(a.is_global_admin() || a.has_binding_in(org)) || gw.identities().org(org).await?.is_none() {
        return Err(ApiError::not_found(&format!("no organisation {org:?}")));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/signing-keys", tag = "signing", params(("org" = String, Path)),
    responses((status = 200, description = "the organisation's keys (members)", body = KeyList)))]
pub(super) async fn list(
    State(gw): State<Gateway>,
    Extension(keys): Extension<SigningKeys>,
    a: Admin,
    Path(org): Path<String>,
) -> ApiResult {
    require_member(&gw, &a, &org).await?;
    Ok(Json(KeyList {
        signing_keys: keys.list(&org).await?,
    })
    .into_response())
}

#[derive(Serialize, ToSchema)]
pub(super) struct KeyList {
    signing_keys: Vec<crate::signing::SigningKey>,
}

/// Generate a key (`type`, `identity`) or import one (`key`, `passphrase`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKey {
    name: String,
    /// `gpg` (the default) or `sigstore`.
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    identity: Option<String>,
    /// A key to import instead of generating one: armored OpenPGP, or PEM (sigstore).
    #[serde(default)]
    key: Option<String>,
    /// The passphrase of an imported encrypted sigstore key (cosign's format).
    #[serde(default)]
    passphrase: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/signing-keys", tag = "signing", params(("org" = String, Path)), request_body = NewKey,
    responses((status = 201, description = "generated or imported", body = crate::signing::SigningKey)))]
pub(super) async fn create(
    State(gw): State<Gateway>,
    Extension(keys): Extension<SigningKeys>,
    a: Admin,
    Path(org): Path<String>,
    body: Result<Json<NewKey>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    let Json(req) = body.map_err(ApiError::from_json_rejection)?;
    let key = match (&req.key, &req.identity) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "identity",
                "an imported key has its own identity; give key or identity, not both",
            ));
        }
        (Some(text), None) => {
            let imported = keys.import(&org, &req.name, text, req.passphrase.as_deref()).await?;
            if let Some(kind) = req.kind.as_deref().filter(|k| *k != imported.kind) {
                // Not kept: the type given contradicts the key.
                keys.delete(&org, &req.name).await?;
                return Err(ApiError::invalid(
                    "type",
                    &format!("the key is a {} key, not {kind:?}", imported.kind),
                ));
            }
            imported
        }
        (None, identity) => {
            if req.passphrase.is_some() {
                return Err(ApiError::invalid(
                    "passphrase",
                    "only an imported key takes a passphrase",
                ));
            }
            let kind = req.kind.as_deref().unwrap_or(KIND_GPG);
            keys.create(&org, &req.name, kind, identity.as_deref()).await?
        }
    };
    let how = if req.key.is_some() { "imported" } else { "generated" };
    a.audit(
        &gw,
        "create_signing_key",
        Some(&org),
        format!("signing key {} ({how}, {})", key.name, key.fingerprint),
    );
    Ok((StatusCode::CREATED, Json(key)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Format {
    /// `json` (the default), or the public key file: `armored` (GPG) or `pem` (sigstore).
    format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/signing-keys/{name}", tag = "signing", params(("org" = String, Path), ("name" = String, Path), Format),
    responses((status = 200, description = "the key, or its public key file", content(
        (crate::signing::SigningKey = "application/json"),
        (String = "application/pgp-keys"),
        (String = "application/x-pem-file")))))]
pub(super) async fn show(
    State(gw): State<Gateway>,
    Extension(keys): Extension<SigningKeys>,
    a: Admin,
    Path((org, name)): Path<(String, String)>,
    Query(format): Query<Format>,
    headers: HeaderMap,
) -> ApiResult {
    require_member(&gw, &a, &org).await?;
    let key = keys.get(&org, &name).await?;
    // The public key as a file for policy.json: armored OpenPGP for a GPG key, a PEM
    // for a sigstore key, whichever the client names.
    let wants_file = matches!(format.format.as_deref(), Some("armored" | "pem"))
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/pgp-keys") || v.contains("application/x-pem-file"));
    if wants_file {
        let content_type = if key.kind == KIND_SIGSTORE {
            "application/x-pem-file"
        } else {
            "application/pgp-keys"
        };
        return Ok(([(header::CONTENT_TYPE, content_type)], key.public_key).into_response());
    }
    if let Some(f) = format.format.as_deref().filter(|f| *f != "json") {
        return Err(ApiError::invalid("format", &format!("{f:?}: use json, armored or pem")));
    }
    Ok(Json(key).into_response())
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/signing-keys/{name}", tag = "signing", params(("org" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "deleted; products requiring it no longer can be pulled until changed")))]
pub(super) async fn delete(
    State(gw): State<Gateway>,
    Extension(keys): Extension<SigningKeys>,
    a: Admin,
    Path((org, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    a.require_manage(&gw, &org).await?;
    keys.delete(&org, &name).await?;
    a.audit(&gw, "delete_signing_key", Some(&org), format!("signing key {name}"));
    Ok(StatusCode::NO_CONTENT.into_response())
}
