//! The one parser for `/v2/...` paths. Repository names contain slashes, so a route is
//! recognised from its tail (`/manifests/<ref>`, `/blobs/uploads/<id>`, ...) and the
//! remainder is the name. Names and references stay raw strings here; the handlers
//! validate them so that each failure maps to its own OCI error code.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciRoute {
    /// `GET /v2/`
    Base,
    /// `GET /v2/_catalog`
    Catalog,
    Tags {
        name: String,
    },
    Manifest {
        name: String,
        reference: String,
    },
    Blob {
        name: String,
        digest: String,
    },
    /// `POST /v2/<name>/blobs/uploads/`
    UploadStart {
        name: String,
    },
    Upload {
        name: String,
        id: String,
    },
    Referrers {
        name: String,
        digest: String,
    },
    /// `/extensions/v2/<name>/signatures/<digest>`: simple-signing signatures (the
    /// containers/image signature extension).
    Signatures {
        name: String,
        digest: String,
    },
}

/// Where the signature extension lives.
pub const EXTENSIONS_PREFIX: &str = "/extensions/v2/";

/// Clients look for this header (value `1`) on `/v2/` answers, a 401 included, before
/// they read or write signatures through the extension.
pub const SIGNATURES_HEADER: &str = "x-registry-supports-signatures";

impl OciRoute {
    /// The path prefix before the repository name: `/v2/` or the extension's.
    pub fn prefix(&self) -> &'static str {
        match self {
            OciRoute::Signatures { .. } => EXTENSIONS_PREFIX,
            _ => "/v2/",
        }
    }
}

/// Parse a request path: `/v2/...` or `/extensions/v2/<name>/signatures/<digest>`.
pub fn parse_path(path: &str) -> Option<OciRoute> {
    if let Some(rest) = path.strip_prefix(EXTENSIONS_PREFIX) {
        let (name, digest) = rest.rsplit_once("/signatures/")?;
        return (!name.is_empty() && !digest.is_empty() && !digest.contains('/')).then(|| OciRoute::Signatures {
            name: name.to_owned(),
            digest: digest.to_owned(),
        });
    }
    if path == "/v2" {
        return Some(OciRoute::Base);
    }
    parse_v2_path(path.strip_prefix("/v2/")?)
}

/// Parse the part of the path after `/v2/` (an empty string is the base route).
/// Returns `None` when the path matches no route.
pub fn parse_v2_path(rest: &str) -> Option<OciRoute> {
    if rest.is_empty() {
        return Some(OciRoute::Base);
    }
    if rest == "_catalog" {
        return Some(OciRoute::Catalog);
    }
    let (head, last) = rest.rsplit_once('/')?;
    let name = |suffix: &str| head.strip_suffix(suffix).filter(|n| !n.is_empty()).map(str::to_owned);

    if last == "list"
        && let Some(name) = name("/tags")
    {
        return Some(OciRoute::Tags { name });
    }
    if let Some(name) = name("/manifests") {
        return Some(OciRoute::Manifest {
            name,
            reference: last.to_owned(),
        });
    }
    if let Some(name) = name("/blobs/uploads") {
        return Some(if last.is_empty() {
            OciRoute::UploadStart { name }
        } else {
            OciRoute::Upload {
                name,
                id: last.to_owned(),
            }
        });
    }
    if let Some(name) = name("/blobs") {
        return Some(if last == "uploads" {
            OciRoute::UploadStart { name }
        } else {
            OciRoute::Blob {
                name,
                digest: last.to_owned(),
            }
        });
    }
    if let Some(name) = name("/referrers") {
        return Some(OciRoute::Referrers {
            name,
            digest: last.to_owned(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_extension_paths() {
        assert_eq!(
            parse_path("/extensions/v2/acme/web/app/signatures/sha256:ab"),
            Some(OciRoute::Signatures {
                name: "acme/web/app".into(),
                digest: "sha256:ab".into()
            })
        );
        assert_eq!(parse_path("/extensions/v2/signatures/sha256:ab"), None);
        assert_eq!(parse_path("/extensions/v2/a/signatures/"), None);
        assert_eq!(parse_path("/extensions/v2/a/signatures/x/y"), None);
        assert_eq!(parse_path("/v2"), Some(OciRoute::Base));
        assert_eq!(parse_path("/v2/"), Some(OciRoute::Base));
        assert_eq!(parse_path("/v3/"), None);
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn parses_every_route() {
        assert_eq!(parse_v2_path(""), Some(OciRoute::Base));
        assert_eq!(parse_v2_path("_catalog"), Some(OciRoute::Catalog));
        assert_eq!(parse_v2_path("a/b/tags/list"), Some(OciRoute::Tags { name: s("a/b") }));
        assert_eq!(
            parse_v2_path("acme/web/app/manifests/1.0"),
            Some(OciRoute::Manifest {
                name: s("acme/web/app"),
                reference: s("1.0")
            })
        );
        assert_eq!(
            parse_v2_path("a/blobs/sha256:00"),
            Some(OciRoute::Blob {
                name: s("a"),
                digest: s("sha256:00")
            })
        );
        assert_eq!(
            parse_v2_path("a/blobs/uploads/"),
            Some(OciRoute::UploadStart { name: s("a") })
        );
        assert_eq!(
            parse_v2_path("a/blobs/uploads"),
            Some(OciRoute::UploadStart { name: s("a") })
        );
        assert_eq!(
            parse_v2_path("a/blobs/uploads/xyz"),
            Some(OciRoute::Upload {
                name: s("a"),
                id: s("xyz")
            })
        );
        assert_eq!(
            parse_v2_path("a/referrers/sha256:00"),
            Some(OciRoute::Referrers {
                name: s("a"),
                digest: s("sha256:00")
            })
        );
    }

    #[test]
    fn names_may_contain_route_words() {
        assert_eq!(
            parse_v2_path("blobs/manifests/manifests/latest"),
            Some(OciRoute::Manifest {
                name: s("blobs/manifests"),
                reference: s("latest")
            })
        );
        assert_eq!(parse_v2_path("tags/list"), None);
        assert_eq!(parse_v2_path("a/unknown/x"), None);
        assert_eq!(parse_v2_path("/manifests/x"), None);
    }
}
