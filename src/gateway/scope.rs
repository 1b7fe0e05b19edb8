//! Scopes of the token protocol: `repository:acme/web/app:pull,push`,
//! `registry:catalog:*`. A token request may repeat the `scope` parameter and a value
//! may hold several space-separated scopes (the OAuth2 POST form).

use serde::{Deserialize, Serialize};

/// One resource and the actions asked for or granted on it: the `access` entries of a
/// token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error("malformed scope {0:?}: expected <type>:<name>:<action>[,<action>...]")]
    Malformed(String),
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Access {
    pub fn new(kind: &str, name: &str, actions: &[&str]) -> Self {
        Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Parse one scope. The type ends at the first `:` and the actions start after the
    /// last one, so a name may itself contain `:` (a `host:port/` prefix). The deprecated
    /// `repository(plugin)` type form is read as `repository`.
    pub fn parse(scope: &str) -> Result<Self, ScopeError> {
        let bad = || ScopeError::Malformed(scope.to_owned());
        let (kind, rest) = scope.split_once(':').ok_or_else(bad)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
        let kind = match kind.split_once('(') {
            Some((base, plugin)) if plugin.ends_with(')') => base,
            Some(_) => return Err(bad()),
            None => kind,
        };
        if !is_word(kind) || name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let actions: Vec<String> = actions.split(',').map(str::to_owned).collect();
        if actions.iter().any(|a| a != "*" && !is_word(a)) {
            return Err(bad());
        }
        let mut access = Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions,
        };
        access.normalise();
        Ok(access)
    }

    /// The scope string: `type:name:a,b`.
    pub fn to_scope(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }

    pub fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action || a == "*")
    }

    fn normalise(&mut self) {
        self.actions.sort();
        self.actions.dedup();
    }
}

/// All scopes of a token request: every `scope` value, each split on spaces; the same
/// resource named twice has its actions merged.
pub fn parse_scopes<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<Access>, ScopeError> {
    let mut out: Vec<Access> = Vec::new();
    for scope in values.into_iter().flat_map(str::split_whitespace) {
        let access = Access::parse(scope)?;
        match out.iter_mut().find(|a| a.kind == access.kind && a.name == access.name) {
            Some(existing) => {
                existing.actions.extend(access.actions);
                existing.normalise();
            }
            None => out.push(access),
        }
    }
    Ok(out)
}

/// How the registry path reports it (the OCI error format).
impl From<ScopeError> for crate::error::Error {
    fn from(e: ScopeError) -> Self {
        Self::new(crate::error::ErrorCode::InvalidRequest, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repository_catalog_and_plugin_forms() {
        let a = Access::parse("repository:acme/web/app:push,pull").unwrap();
        assert_eq!(a, Access::new("repository", "acme/web/app", &["pull", "push"]));
        assert_eq!(a.to_scope(), "repository:acme/web/app:pull,push");
        assert!(Access::parse("registry:catalog:*").unwrap().allows("anything"));
        assert_eq!(Access::parse("repository(plugin):a/b:pull").unwrap().kind, "repository");
        // A name with a host:port prefix keeps its colon.
        assert_eq!(
            Access::parse("repository:localhost:5000/a/b:pull").unwrap().name,
            "localhost:5000/a/b"
        );
    }

    #[test]
    fn rejects_malformed_scopes() {
        for bad in [
            "",
            "repository",
            "repository:a",
            ":a:pull",
            "repository::pull",
            "repository:a:",
            "Repo:a:pull",
            "repository:a:pu ll",
            "repository(x:a:pull",
            "repository:a:pull,,push",
        ] {
            assert!(Access::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn merges_repeated_and_space_joined_scopes() {
        let s = parse_scopes(["repository:a:pull repository:b:pull", "repository:a:push"]).unwrap();
        assert_eq!(
            s,
            vec![
                Access::new("repository", "a", &["pull", "push"]),
                Access::new("repository", "b", &["pull"])
            ]
        );
        assert!(parse_scopes(["repository:a:pull nonsense"]).is_err());
        assert_eq!(parse_scopes(Vec::<&str>::new()).unwrap(), vec![]);
    }
}
