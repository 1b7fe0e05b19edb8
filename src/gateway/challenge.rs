//! `WWW-Authenticate: Bearer …` challenges. containers/image keeps one value per key and
//! splits a scope on `:` into exactly three parts, so a challenge carries at most one
//! scope, whose name is the repository path as the client wrote it.

use crate::gateway::scope::Access;

/// Why a request with a token was refused (`error=` of the challenge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    /// Malformed, badly signed, expired, or for another service.
    InvalidToken,
    /// A valid token that lacks the needed action.
    InsufficientScope,
}

/// Format a Bearer challenge: `realm` is the token endpoint's absolute URL, `service`
/// the audience tokens are issued for.
pub fn bearer(realm: &str, service: &str, scope: Option<&Access>, error: Option<ChallengeError>) -> String {
    let mut out = format!("Bearer realm=\"{}\",service=\"{}\"", quote(realm), quote(service));
    if let Some(scope) = scope {
        out.push_str(&format!(",scope=\"{}\"", quote(&scope.to_scope())));
    }
    match error {
        Some(ChallengeError::InvalidToken) => out.push_str(",error=\"invalid_token\""),
        Some(ChallengeError::InsufficientScope) => out.push_str(",error=\"insufficient_scope\""),
        None => {}
    }
    out
}

/// RFC 9110 quoted-string escaping.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_ping_and_insufficient_scope_challenges() {
        assert_eq!(
            bearer("https://reg.example/v2/token", "reg.example", None, None),
            r#"Bearer realm="https://reg.example/v2/token",service="reg.example""#
        );
        let scope = Access::new("registry", "catalog", &["*"]);
        assert_eq!(
            bearer(
                "https://r/v2/token",
                "r",
                Some(&scope),
                Some(ChallengeError::InsufficientScope)
            ),
            r#"Bearer realm="https://r/v2/token",service="r",scope="registry:catalog:*",error="insufficient_scope""#
        );
        assert!(bearer("x", "a\"b", None, Some(ChallengeError::InvalidToken)).contains(r#"service="a\"b""#));
    }
}
