//! Properties of the parsers of network input (proptest): generated inputs, shaped like
//! the real thing and not, go through the same checks the fuzz targets make (round trips,
//! no panic), plus round trips that need structured inputs.

use gatehouse::oci::{Digest, RepoName, Tag};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

/// A repository name component per the distribution spec's grammar.
fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,8}(([._]|__|-+)[a-z0-9]{1,8}){0,2}"
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn digests_print_back_the_same(hex in "[0-9a-f]{64}") {
        let text = format!("sha256:{hex}");
        let d: Digest = text.parse().unwrap();
        prop_assert_eq!(d.to_string(), text);
        gatehouse::fuzzing::references(d.to_string().as_bytes());
    }

    #[test]
    fn names_of_the_grammar_parse_and_print_back(parts in prop::collection::vec(component(), 1..4)) {
        let name = parts.join("/");
        let parsed: RepoName = name.parse().unwrap();
        prop_assert_eq!(parsed.as_str(), name.as_str());
    }

    #[test]
    fn tags_of_the_grammar_parse(tag in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") {
        let parsed: Tag = tag.parse().unwrap();
        prop_assert_eq!(parsed.as_str(), tag.as_str());
    }

    #[test]
    fn any_text_as_a_reference_or_path_is_handled(s in "\\PC{0,80}") {
        gatehouse::fuzzing::references(s.as_bytes());
        gatehouse::fuzzing::v2_path(s.as_bytes());
        gatehouse::fuzzing::v2_path(format!("/v2/{s}").as_bytes());
        gatehouse::fuzzing::scopes(s.as_bytes());
    }

    #[test]
    fn routes_of_real_shapes_round_trip(
        parts in prop::collection::vec(component(), 2..4),
        kind in 0..7usize,
        tail in "[a-zA-Z0-9._:-]{1,70}",
    ) {
        let name = parts.join("/");
        let path = match kind {
            0 => format!("/v2/{name}/tags/list"),
            1 => format!("/v2/{name}/manifests/{tail}"),
            2 => format!("/v2/{name}/blobs/{tail}"),
            3 => format!("/v2/{name}/blobs/uploads/"),
            4 => format!("/v2/{name}/blobs/uploads/{tail}"),
            5 => format!("/v2/{name}/referrers/{tail}"),
            _ => format!("/extensions/v2/{name}/signatures/{tail}"),
        };
        prop_assert!(gatehouse::oci::route::parse_path(&path).is_some(), "{}", path);
        gatehouse::fuzzing::v2_path(path.as_bytes());
    }

    #[test]
    fn scopes_of_real_shapes_round_trip(
        parts in prop::collection::vec(component(), 1..4),
        actions in prop::collection::vec(prop::sample::select(vec!["pull", "push", "delete", "*"]), 1..4),
    ) {
        let scope = format!("repository:{}:{}", parts.join("/"), actions.join(","));
        let parsed = gatehouse::gateway::scope::parse_scopes([scope.as_str()]).unwrap();
        prop_assert_eq!(parsed.len(), 1);
        gatehouse::fuzzing::scopes(scope.as_bytes());
    }

    #[test]
    fn basic_credentials_round_trip(user in "[^:\\x00-\\x1f]{1,40}", password in "\\PC{0,60}") {
        let header = gatehouse::identity::credentials::basic_header(&user, &password);
        let parsed = gatehouse::identity::credentials::parse_basic(&header).unwrap().unwrap();
        prop_assert_eq!(parsed.username, user);
        prop_assert_eq!(parsed.password.expose(), password.as_str());
        gatehouse::fuzzing::authorization(header.as_bytes());
    }

    #[test]
    fn any_bytes_as_an_authorization_header_are_handled(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        gatehouse::fuzzing::authorization(&bytes);
    }

    #[test]
    fn any_bytes_as_a_token_never_verify(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        gatehouse::fuzzing::token(&bytes);
    }

    #[test]
    fn manifests_with_any_descriptors_are_handled(
        pick: u8,
        media in prop::sample::select(vec![
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "text/plain",
        ]),
        digests in prop::collection::vec("(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}|[a-z0-9:]{0,20})", 0..5),
        sizes in prop::collection::vec(any::<i64>(), 5),
    ) {
        let descriptor = |i: usize, d: &String| serde_json::json!({
            "mediaType": media, "digest": d, "size": sizes[i % sizes.len()],
        });
        let list: Vec<_> = digests.iter().enumerate().map(|(i, d)| descriptor(i, d)).collect();
        let doc = serde_json::json!({
            "schemaVersion": 2, "mediaType": media,
            "config": list.first().cloned().unwrap_or(serde_json::Value::Null),
            "layers": list.clone(), "manifests": list,
        });
        let mut input = vec![pick];
        input.extend(serde_json::to_vec(&doc).unwrap());
        gatehouse::fuzzing::manifest(&input);
    }

    #[test]
    fn any_bytes_as_a_signature_body_are_handled(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        gatehouse::fuzzing::signature_body(&bytes);
    }
}
