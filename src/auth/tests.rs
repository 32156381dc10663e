//! Tokens here are built by hand (base64url and HMAC-SHA256), not by the library under
//! test, so that malformed and hostile tokens can be made too.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::*;
use crate::config::{ApiKey, IssuerKey, JwtIssuer};
use crate::secret::Secret;

const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().unwrap()
}

fn config() -> AuthConfig {
    AuthConfig {
        api_keys: vec![
            ApiKey {
                name: "backend".into(),
                key: Secret::new("key-backend-1"),
                profiles: None,
            },
            ApiKey {
                name: "cron".into(),
                key: Secret::new("key-cron-2"),
                profiles: Some(vec!["reports".into()]),
            },
        ],
        jwt_issuers: vec![JwtIssuer {
            issuer: Some("https://id.example.com".into()),
            audience: Some(vec!["edge-presigner".into()]),
            key: IssuerKey::Hmac(Secret::new(SECRET)),
            algorithms: vec!["HS256".into()],
            access: false,
            subject_claim: "sub".into(),
            profiles_claim: None,
            leeway_seconds: 30,
            namespace: None,
        }],
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn token_with(header: &Value, claims: &Value, secret: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn good_claims() -> Value {
    json!({
        "iss": "https://id.example.com",
        "aud": "edge-presigner",
        "sub": "alice",
        "exp": now().timestamp() + 600,
    })
}

fn hs256(claims: &Value) -> String {
    token_with(&json!({"alg": "HS256", "typ": "JWT"}), claims, SECRET)
}

/// The caller, for credentials that need no published key.
fn done(result: Result<jwt::Verified<'_>, AuthError>) -> Result<Principal, AuthError> {
    match result? {
        jwt::Verified::Done(principal) => Ok(principal),
        jwt::Verified::NeedsKey(_) => panic!("an HS256 token or API key needs no published key"),
    }
}

fn check(token: &str) -> Result<Principal, AuthError> {
    done(authenticate(
        Some(&format!("Bearer {token}")),
        None,
        &config(),
        now(),
    ))
}

#[test]
fn api_key_authenticates_as_its_name() {
    let principal = check("key-backend-1").unwrap();
    assert_eq!(principal.subject, "backend");
    assert_eq!(principal.credential, "api-key:backend");
    assert!(principal.may_use_profile("anything"));
}

#[test]
fn api_key_scopes_limit_profiles() {
    let principal = check("key-cron-2").unwrap();
    assert!(principal.may_use_profile("reports"));
    assert!(!principal.may_use_profile("default"));
}

#[test]
fn unknown_api_key_is_rejected() {
    assert_eq!(check("key-backend-2"), Err(AuthError::UnknownKey));
}

#[test]
fn missing_or_non_bearer_header_is_rejected() {
    assert_eq!(
        done(authenticate(None, None, &config(), now())),
        Err(AuthError::Missing)
    );
    for header in ["Basic abc", "Bearer", "Bearer   ", "key-backend-1"] {
        assert_eq!(
            done(authenticate(Some(header), None, &config(), now())),
            Err(AuthError::NotBearer),
            "{header}"
        );
    }
}

#[test]
fn valid_hs256_token_authenticates_its_subject() {
    let principal = check(&hs256(&good_claims())).unwrap();
    assert_eq!(principal.subject, "alice");
    assert_eq!(principal.credential, "jwt:https://id.example.com");
}

#[test]
fn audience_may_be_a_list() {
    let mut claims = good_claims();
    claims["aud"] = json!(["other", "edge-presigner"]);
    assert!(check(&hs256(&claims)).is_ok());
}

#[test]
fn expired_token_is_rejected_after_the_leeway() {
    let mut claims = good_claims();
    claims["exp"] = json!(now().timestamp() - 20);
    assert!(check(&hs256(&claims)).is_ok(), "within 30 s of leeway");
    claims["exp"] = json!(now().timestamp() - 31);
    assert_eq!(check(&hs256(&claims)), Err(AuthError::Expired));
}

#[test]
fn fractional_exp_counts_whole_seconds_rounded_down() {
    // RFC 7519's NumericDate may have a fraction; the fraction never adds time.
    let mut claims = good_claims();
    claims["exp"] = json!(now().timestamp() as f64 + 600.75);
    assert!(check(&hs256(&claims)).is_ok());
    claims["exp"] = json!(now().timestamp() as f64 - 30.5);
    assert_eq!(check(&hs256(&claims)), Err(AuthError::Expired));
}

#[test]
fn token_without_exp_is_rejected() {
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("exp");
    assert_eq!(check(&hs256(&claims)), Err(AuthError::NoExpiry));
}

#[test]
fn token_not_yet_valid_is_rejected() {
    let mut claims = good_claims();
    claims["nbf"] = json!(now().timestamp() + 120);
    assert_eq!(check(&hs256(&claims)), Err(AuthError::NotYetValid));
}

#[test]
fn alg_none_is_rejected() {
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good_claims())
    );
    assert_eq!(
        check(&unsigned),
        Err(AuthError::AlgorithmNotAllowed("none".into()))
    );
}

#[test]
fn other_algorithms_are_rejected_even_with_a_valid_hmac() {
    for alg in ["HS512", "RS256", "hs256", "ES256", "PS256"] {
        let token = token_with(&json!({"alg": alg}), &good_claims(), SECRET);
        assert_eq!(
            check(&token),
            Err(AuthError::AlgorithmNotAllowed(alg.into())),
            "{alg}"
        );
    }
}

#[test]
fn token_signed_with_another_secret_is_rejected() {
    let token = token_with(&json!({"alg": "HS256"}), &good_claims(), "another-secret");
    assert_eq!(check(&token), Err(AuthError::BadSignature));
}

#[test]
fn edited_claims_break_the_signature() {
    let token = hs256(&good_claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = good_claims();
    claims["sub"] = json!("mallory");
    parts[1] = b64(&claims);
    assert_eq!(check(&parts.join(".")), Err(AuthError::BadSignature));
}

#[test]
fn wrong_issuer_or_audience_is_rejected() {
    let mut claims = good_claims();
    claims["iss"] = json!("https://evil.example.com");
    assert_eq!(check(&hs256(&claims)), Err(AuthError::UnknownIssuer));
    let mut claims = good_claims();
    claims["aud"] = json!("someone-else");
    assert_eq!(check(&hs256(&claims)), Err(AuthError::WrongAudience));
}

#[test]
fn token_without_subject_is_rejected() {
    let mut claims = good_claims();
    claims["sub"] = json!("");
    assert_eq!(
        check(&hs256(&claims)),
        Err(AuthError::NoSubject("sub".into()))
    );
}

#[test]
fn malformed_tokens_are_rejected() {
    for token in ["a.b.c", "!!.??.##", "e30.e30.", "x..y"] {
        assert!(check(token).is_err(), "{token}");
    }
    let text_exp = token_with(
        &json!({"alg": "HS256"}),
        &json!({"sub": "a", "exp": "soon", "iss": "https://id.example.com"}),
        SECRET,
    );
    assert!(matches!(
        check(&text_exp),
        Err(AuthError::MalformedToken(_))
    ));
}

#[test]
fn minted_dev_token_verifies_and_expires() {
    let issuer = &config().jwt_issuers[0];
    let token = jwt::mint(issuer, "dev-123", now(), Duration::minutes(10)).unwrap();
    assert_eq!(check(&token).unwrap().subject, "dev-123");
    let later = now() + Duration::minutes(11);
    assert_eq!(
        done(authenticate(
            Some(&format!("Bearer {token}")),
            None,
            &config(),
            later
        )),
        Err(AuthError::Expired)
    );
}

/// A configuration with an HS256 issuer, an RS256/ES256 issuer and Cloudflare Access.
fn with_published_keys() -> AuthConfig {
    let mut config = config();
    config.jwt_issuers.push(JwtIssuer {
        issuer: Some("https://idp.example.com".into()),
        audience: Some(vec!["edge-presigner".into()]),
        key: IssuerKey::Jwks {
            url: "https://idp.example.com/jwks.json".into(),
            min_refetch_seconds: 60,
        },
        algorithms: vec!["RS256".into(), "ES256".into()],
        access: false,
        subject_claim: "sub".into(),
        profiles_claim: None,
        leeway_seconds: 30,
        namespace: Some("idp".into()),
    });
    config.jwt_issuers.push(JwtIssuer {
        issuer: Some("https://team.cloudflareaccess.com".into()),
        key: IssuerKey::Jwks {
            url: "https://team.cloudflareaccess.com/cdn-cgi/access/certs".into(),
            min_refetch_seconds: 60,
        },
        algorithms: vec!["RS256".into()],
        access: true,
        namespace: Some("access".into()),
        ..config.jwt_issuers[1].clone()
    });
    config
}

fn claims_from(issuer: &str) -> Value {
    let mut claims = good_claims();
    claims["iss"] = json!(issuer);
    claims
}

#[test]
fn rs256_token_of_a_jwks_issuer_waits_for_its_published_key() {
    let config = with_published_keys();
    let header = json!({"alg": "RS256", "kid": "k1"});
    let token = format!(
        "{}.{}.{}",
        b64(&header),
        b64(&claims_from("https://idp.example.com")),
        URL_SAFE_NO_PAD.encode([7u8; 256])
    );
    let result = authenticate(Some(&format!("Bearer {token}")), None, &config, now()).unwrap();
    let jwt::Verified::NeedsKey(pending) = result else {
        panic!("an RS256 token needs the issuer's key");
    };
    assert_eq!(pending.kid.as_deref(), Some("k1"));
    assert_eq!(pending.alg, "RS256");
    assert_eq!(pending.signature, vec![7u8; 256]);
    assert!(token.starts_with(&format!("{}.", pending.signing_input)));
    assert_eq!(pending.finish(false, now()), Err(AuthError::BadSignature));
    let principal = pending.finish(true, now()).unwrap();
    assert_eq!(principal.owner(), "~idp-alice");
}

#[test]
fn claims_of_a_published_key_token_are_checked_after_its_signature() {
    let config = with_published_keys();
    let mut claims = claims_from("https://idp.example.com");
    claims["exp"] = json!(now().timestamp() - 600);
    let token = format!("{}.{}.AAAA", b64(&json!({"alg": "ES256"})), b64(&claims));
    let result = authenticate(Some(&format!("Bearer {token}")), None, &config, now()).unwrap();
    let jwt::Verified::NeedsKey(pending) = result else {
        panic!("an ES256 token needs the issuer's key");
    };
    assert_eq!(pending.finish(true, now()), Err(AuthError::Expired));
}

#[test]
fn hs256_token_presented_to_a_jwks_issuer_is_refused() {
    // Algorithm confusion: an HS256 token "signed" with the issuer's public key as secret.
    let config = with_published_keys();
    let token = token_with(
        &json!({"alg": "HS256"}),
        &claims_from("https://idp.example.com"),
        "the issuer's public key, used as an HMAC secret",
    );
    assert_eq!(
        done(authenticate(
            Some(&format!("Bearer {token}")),
            None,
            &config,
            now()
        )),
        Err(AuthError::AlgorithmNotAllowed("HS256".into()))
    );
}

#[test]
fn rs256_token_claiming_the_hs256_issuer_is_refused() {
    let config = with_published_keys();
    let token = format!(
        "{}.{}.AAAA",
        b64(&json!({"alg": "RS256"})),
        b64(&good_claims())
    );
    assert_eq!(
        done(authenticate(
            Some(&format!("Bearer {token}")),
            None,
            &config,
            now()
        )),
        Err(AuthError::AlgorithmNotAllowed("RS256".into()))
    );
}

#[test]
fn tokens_naming_critical_extensions_are_refused() {
    let token = token_with(
        &json!({"alg": "HS256", "crit": ["exp"]}),
        &good_claims(),
        SECRET,
    );
    assert!(matches!(check(&token), Err(AuthError::MalformedToken(_))));
}

#[test]
fn the_access_header_is_checked_against_access_only() {
    let config = with_published_keys();
    let access = format!(
        "{}.{}.AAAA",
        b64(&json!({"alg": "RS256", "kid": "a"})),
        b64(&claims_from("https://team.cloudflareaccess.com"))
    );
    let result = authenticate(None, Some(&access), &config, now()).unwrap();
    assert!(matches!(result, jwt::Verified::NeedsKey(p) if p.issuer.access));
    // An HS256 token in the Access header does not reach the HS256 issuer.
    let hs = hs256(&good_claims());
    assert_eq!(
        done(authenticate(None, Some(&hs), &config, now())),
        Err(AuthError::UnknownIssuer)
    );
    // Without Access configured the header is ignored.
    assert_eq!(
        done(authenticate(None, Some(&access), &self::config(), now())),
        Err(AuthError::Missing)
    );
}
