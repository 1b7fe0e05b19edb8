//! The admin API's OpenAPI 3.1 document, `GET /api/v1/openapi.json`. It is generated
//! from the handlers' annotations and the types they answer with, so a handler whose
//! answer changes changes the document too; `tests/openapi.rs` checks real answers of
//! every operation against it, and that every operation was exercised.

use super::error::ErrorBody;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gatehouse admin API",
        description = "Organisations, products, members, pull secrets, content (versions, copy, \
                       sign, import), remotes, edge sites, jobs and audit. Callers authenticate \
                       like `podman login` does (Basic), or with a bearer token from `/v2/token`. \
                       Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
        license(name = "Apache-2.0"),
    ),
    paths(
        super::whoami,
        super::list_users,
        super::create_user,
        super::delete_user,
        super::set_password,
        super::list_orgs,
        super::create_org,
        super::show_org,
        super::update_org,
        super::list_products,
        super::create_product,
        super::update_product,
        super::list_members,
        super::add_member,
        super::remove_member,
        super::remove_member_by_path,
        super::list_pull_secrets,
        super::create_pull_secret,
        super::revoke_pull_secret,
        super::org_audit,
        super::all_audit,
        super::repositories::list,
        super::content::versions,
        super::content::version,
        super::content::signature_status,
        super::content::manifest_detail,
        super::content::readme,
        super::content::edit_readme,
        super::content::rollback,
        super::content::copy,
        super::content::remove,
        super::content::sign,
        super::content::tag,
        super::content::untag,
        super::content::import,
        super::content::delete_repository,
        super::content::list_jobs,
        super::content::list_events,
        super::content::get_distribution,
        super::content::put_distribution,
        super::content::delete_distribution,
        super::signing::list,
        super::signing::create,
        super::signing::show,
        super::signing::delete,
        super::remotes::list,
        super::remotes::create,
        super::remotes::show,
        super::remotes::update,
        super::remotes::delete,
        super::remotes::sync_now,
        super::remotes::show_job,
        super::proxies::list,
        super::proxies::create,
        super::proxies::show,
        super::proxies::update,
        super::proxies::delete,
        super::proxies::sync_now,
        super::proxies::authz,
        super::proxies::status,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Common),
    security(("basic" = []), ("bearer" = [])),
)]
struct ApiDoc;

/// What every operation shares: the two ways to authenticate, and the error body for
/// every status it does not describe itself.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (from /v2/token)")
                    .build(),
            ),
        );
        let error = ResponseBuilder::new()
            .description("an error: what went wrong and, for bad input, which field")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"))))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .entry("default".to_owned())
                    .or_insert_with(|| RefOr::T(error.clone()));
            }
        }
    }
}

/// The document as JSON, built once.
pub(super) fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default())
}

/// `GET /api/v1/openapi.json`: public, like the API's shape in the README.
pub(super) async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_and_refers_only_to_schemas_it_has() {
        let doc: serde_json::Value = serde_json::from_str(super::document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = super::document();
        for (i, _) in text.match_indices("#/components/schemas/") {
            let rest = &text[i + "#/components/schemas/".len()..];
            let name = &rest[..rest.find('"').unwrap()];
            assert!(schemas.contains_key(name), "{name} is referred to but not defined");
        }
        assert!(doc["paths"].as_object().unwrap().len() > 40);
    }
}
