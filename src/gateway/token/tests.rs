use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

const ISS: &str = "gatehouse";
const AUD: &str = "registry.example";

fn claims(exp_offset: i64, nbf_offset: i64) -> Claims {
    let now = now_secs() as i64;
    Claims {
        iss: ISS.into(),
        sub: "alice".into(),
        aud: AUD.into(),
        exp: (now + exp_offset) as u64,
        nbf: (now + nbf_offset) as u64,
        iat: now as u64,
        jti: new_jti(),
        access: vec![Access::new("repository", "acme/web/app", &["pull"])],
        cid: Some(7),
    }
}

fn ring() -> (tempfile::TempDir, Keyring) {
    let dir = tempfile::tempdir().unwrap();
    let ring = Keyring::load_or_create(&dir.path().join("keys")).unwrap();
    (dir, ring)
}

fn parts(token: &str) -> (String, String, String) {
    let mut it = token.split('.');
    (
        it.next().unwrap().into(),
        it.next().unwrap().into(),
        it.next().unwrap_or_default().into(),
    )
}

#[test]
fn issued_token_verifies_and_carries_kid_and_access() {
    let (_d, ring) = ring();
    let c = claims(300, 0);
    let token = ring.sign(&c).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some(ring.active_kid()));
    assert_eq!(ring.verify(&token, ISS, AUD, Expiry::Enforce).unwrap(), c);
}

#[test]
fn alg_none_is_rejected() {
    let (_d, ring) = ring();
    let token = ring.sign(&claims(300, 0)).unwrap();
    let (_, payload, _) = parts(&token);
    let header = B64.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, ring.active_kid()));
    assert!(
        ring.verify(&format!("{header}.{payload}."), ISS, AUD, Expiry::Enforce)
            .is_err()
    );
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    let (_d, ring) = ring();
    let jwks = ring.jwks();
    let public = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(ring.active_kid().to_owned());
    let forged = jsonwebtoken::encode(&header, &claims(300, 0), &EncodingKey::from_secret(&public)).unwrap();
    assert!(ring.verify(&forged, ISS, AUD, Expiry::Enforce).is_err());
}

#[test]
fn tampered_access_claim_is_rejected() {
    let (_d, ring) = ring();
    let token = ring.sign(&claims(300, 0)).unwrap();
    let (h, p, s) = parts(&token);
    let mut payload: Value = serde_json::from_slice(&B64.decode(p).unwrap()).unwrap();
    payload["access"][0]["actions"] = json!(["pull", "push", "delete"]);
    let tampered = format!("{h}.{}.{s}", B64.encode(serde_json::to_vec(&payload).unwrap()));
    assert!(ring.verify(&tampered, ISS, AUD, Expiry::Enforce).is_err());
}

#[test]
fn expiry_and_not_before_allow_60s_of_skew_and_no_more() {
    let (_d, ring) = ring();
    let within = ring.sign(&claims(-30, -300)).unwrap();
    assert!(
        ring.verify(&within, ISS, AUD, Expiry::Enforce).is_ok(),
        "expired 30 s ago: within leeway"
    );
    let expired = ring.sign(&claims(-120, -300)).unwrap();
    assert!(ring.verify(&expired, ISS, AUD, Expiry::Enforce).is_err());
    let early = ring.sign(&claims(600, 30)).unwrap();
    assert!(
        ring.verify(&early, ISS, AUD, Expiry::Enforce).is_ok(),
        "nbf 30 s ahead: within leeway"
    );
    let future = ring.sign(&claims(600, 120)).unwrap();
    assert!(ring.verify(&future, ISS, AUD, Expiry::Enforce).is_err());
}

#[test]
fn expired_token_passes_only_when_expiry_is_ignored_and_still_needs_a_good_signature() {
    let (_d, ring) = ring();
    let expired = ring.sign(&claims(-3600, -7200)).unwrap();
    assert!(ring.verify(&expired, ISS, AUD, Expiry::Ignore).is_ok());
    let (h, p, _) = parts(&expired);
    let (_, _, other_sig) = parts(&ring.sign(&claims(300, 0)).unwrap());
    assert!(
        ring.verify(&format!("{h}.{p}.{other_sig}"), ISS, AUD, Expiry::Ignore)
            .is_err()
    );
}

#[test]
fn other_audience_issuer_or_key_is_rejected() {
    let (_d, ring) = ring();
    let token = ring.sign(&claims(300, 0)).unwrap();
    assert!(ring.verify(&token, ISS, "other.example", Expiry::Enforce).is_err());
    assert!(ring.verify(&token, "someone-else", AUD, Expiry::Enforce).is_err());
    let (_d2, other) = super::tests::ring();
    assert!(matches!(
        other.verify(&token, ISS, AUD, Expiry::Enforce),
        Err(TokenError::UnknownKey)
    ));
    assert!(ring.verify("not.a.jwt", ISS, AUD, Expiry::Enforce).is_err());
}

#[test]
fn keys_persist_with_private_mode_and_rotation_keeps_old_tokens_valid_until_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let mut ring = Keyring::load_or_create(&keys).unwrap();
    let first = ring.active_kid().to_owned();
    assert_eq!(
        Keyring::load_or_create(&keys).unwrap().active_kid(),
        first,
        "reloaded, not regenerated"
    );
    #[cfg(unix)]
    for entry in std::fs::read_dir(&keys).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(entry.unwrap().metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }

    let old_token = ring.sign(&claims(300, 0)).unwrap();
    let second = ring.rotate().unwrap();
    assert_ne!(first, second);
    assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
    assert!(
        ring.verify(&old_token, ISS, AUD, Expiry::Enforce).is_ok(),
        "old kid accepted after rotation"
    );
    let new_token = ring.sign(&claims(300, 0)).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new_token).unwrap().kid.as_deref(),
        Some(second.as_str())
    );

    // Retired long enough ago for every token it signed to have expired: gone.
    assert_eq!(
        ring.prune(Duration::from_secs(3600)).unwrap(),
        0,
        "recently retired key kept"
    );
    ring.keys[1].created_ms -= 2 * 3600 * 1000;
    assert_eq!(ring.prune(Duration::from_secs(3600)).unwrap(), 1);
    assert!(ring.verify(&old_token, ISS, AUD, Expiry::Enforce).is_err());
    assert!(ring.verify(&new_token, ISS, AUD, Expiry::Enforce).is_ok());
    assert_eq!(
        Keyring::load_or_create(&keys).unwrap().jwks()["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
