//! Public repository names and the backend names they map to.
//!
//! Public names are `org/product/name`, or `org/name` for the organisation's own push
//! product (`ORG_PUSH_PRODUCT`, created on first push). Every label is lowercase
//! `[a-z0-9]+([._-][a-z0-9]+)*`. The backend repository is always the three-part
//! `org/product/name`, so both public forms of one repository reach the same content.

use crate::error::{Error, ErrorCode};
use crate::identity::valid_label;

/// The product that `org/name` pushes land in.
pub const ORG_PUSH_PRODUCT: &str = "containers";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoPath {
    pub org: String,
    pub product: String,
    pub name: String,
    /// The name exactly as the client wrote it (for scopes and challenges).
    pub public: String,
}

impl RepoPath {
    /// Parse a public name; anything but two or three valid labels is NAME_INVALID.
    pub fn parse(public: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = public.split('/').collect();
        let bad = || {
            Error::new(
                ErrorCode::NameInvalid,
                format!(
                    "invalid repository name {public:?}: use org/product/name or org/name, each part lowercase \
                     letters and digits separated by single '.', '_' or '-'"
                ),
            )
        };
        if !parts.iter().all(|p| valid_label(p)) {
            return Err(bad());
        }
        let (org, product, name) = match parts.as_slice() {
            [org, name] => (*org, ORG_PUSH_PRODUCT, *name),
            [org, product, name] => (*org, *product, *name),
            _ => return Err(bad()),
        };
        Ok(Self {
            org: org.to_owned(),
            product: product.to_owned(),
            name: name.to_owned(),
            public: public.to_owned(),
        })
    }

    /// The repository's name in the backend store.
    pub fn backend_name(&self) -> String {
        format!("{}/{}/{}", self.org, self.product, self.name)
    }
}

/// The push repository behind a normal repository: a fourth name component, which no
/// public name has, so it never shows in the catalog or collides with a public name.
pub fn push_repository(normal: &str) -> String {
    format!("{normal}/push")
}

/// The public name for a backend repository name, or `None` for names that no public
/// path reaches (they are never shown). The org push product is shown as `org/name`.
pub fn public_name(backend: &str) -> Option<RepoPath> {
    let path = RepoPath::parse(backend).ok()?;
    if backend.split('/').count() != 3 {
        return None;
    }
    if path.product == ORG_PUSH_PRODUCT {
        let public = format!("{}/{}", path.org, path.name);
        return Some(RepoPath { public, ..path });
    }
    Some(path)
}

/// Rewrite a backend `Location` or `Link` URL to the public name: drop the backend's
/// scheme and authority (clients resolve a relative URL against the request's), and
/// replace `/v2/<backend>/` with `/v2/<public>/`. Query strings (an upstream's `_state`)
/// are kept. Anything else is returned as it came.
pub fn rewrite_url(url: &str, backend: &str, public: &str) -> String {
    let path_and_query = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => url,
    };
    // Anything outside the registry API (a presigned object-storage URL a blob GET
    // redirects to) is the client's to follow as it is.
    if !path_and_query.starts_with("/v2/") {
        return url.to_owned();
    }
    let from = format!("/v2/{backend}/");
    match path_and_query.strip_prefix(&from) {
        Some(rest) => format!("/v2/{public}/{rest}"),
        None => path_and_query.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_and_three_part_names_map_to_one_backend_repository() {
        let long = RepoPath::parse("acme/web/app").unwrap();
        assert_eq!(
            (long.org.as_str(), long.product.as_str(), long.name.as_str()),
            ("acme", "web", "app")
        );
        assert_eq!(long.backend_name(), "acme/web/app");
        let short = RepoPath::parse("acme/app").unwrap();
        assert_eq!(short.backend_name(), format!("acme/{ORG_PUSH_PRODUCT}/app"));
        assert_eq!(short.public, "acme/app");
    }

    #[test]
    fn other_shapes_are_name_invalid() {
        for bad in [
            "acme",
            "a/b/c/d",
            "Acme/app",
            "acme//app",
            "acme/-x",
            "acme/a..b",
            "acme/app/",
            "/acme/app",
        ] {
            let e = RepoPath::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::NameInvalid, "{bad}");
        }
    }

    #[test]
    fn backend_names_show_as_public_names() {
        assert_eq!(public_name("acme/web/app").unwrap().public, "acme/web/app");
        assert_eq!(
            public_name(&format!("acme/{ORG_PUSH_PRODUCT}/app")).unwrap().public,
            "acme/app"
        );
        assert!(public_name("library/busybox").is_none());
        assert!(public_name("a/b/c/d").is_none());
    }

    #[test]
    fn locations_are_rewritten_to_public_names() {
        assert_eq!(
            rewrite_url(
                "/v2/acme/containers/app/blobs/uploads/u1",
                "acme/containers/app",
                "acme/app"
            ),
            "/v2/acme/app/blobs/uploads/u1"
        );
        assert_eq!(
            rewrite_url(
                "http://10.0.0.2:5000/v2/acme/web/app/blobs/uploads/u1?_state=xyz",
                "acme/web/app",
                "acme/web/app"
            ),
            "/v2/acme/web/app/blobs/uploads/u1?_state=xyz"
        );
        assert_eq!(
            rewrite_url("/v2/other/x", "acme/web/app", "acme/web/app"),
            "/v2/other/x"
        );
        // A redirect to object storage is left for the client to follow.
        let presigned = "https://s3.example/bucket/blobs/sha256/ab/abcd?X-Amz-Signature=f00";
        assert_eq!(rewrite_url(presigned, "acme/web/app", "acme/web/app"), presigned);
    }
}
