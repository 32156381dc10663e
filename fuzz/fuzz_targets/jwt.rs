//! Bearer credentials and JWTs (`auth::authenticate`, `auth::jwt`), against the
//! fixture's API keys and HS256 issuer, an issuer with published keys and Cloudflare
//! Access, at a fixed time.
//!
//! No credential makes authentication panic; no token signed with another secret is
//! accepted; an accepted token has an `exp` no further in the past than the leeway and a
//! subject of 1 to 256 bytes; no error message holds the HS256 secret (unless the input
//! does, in any case).
//!
//! Input: one byte that picks the mode (modulo 4), then:
//! - `0`: an `Authorization` header value, as sent;
//! - `1`: a `Cf-Access-Jwt-Assertion` header value;
//! - `2`: a token's header JSON, a `\n`, its claims JSON: the target encodes them and signs
//!   the token with the fixture's HS256 secret, so the claim checks are reached;
//! - `3`: the same, signed with another secret.

#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_presigner::auth::jwt::{self, Verified};
use edge_presigner::auth::{AuthError, Principal, authenticate};
use edge_presigner::config::{AuthConfig, Config};
use edge_presigner_fuzz::{fixture, now, selector, split_line};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// The fixture's API keys and HS256 issuer, an issuer with published keys and Access.
fn auth() -> &'static AuthConfig {
    static AUTH: OnceLock<AuthConfig> = OnceLock::new();
    AUTH.get_or_init(|| {
        let mut source = fixture();
        source.vars.insert(
            "AUTH".to_owned(),
            r#"{
                "apiKeys": [{"name": "backend", "secret": "API_KEY_BACKEND"}],
                "jwt": [
                    {"secret": "JWT_SECRET", "issuer": "https://id.example.com",
                     "audience": "edge-presigner", "profilesClaim": "scope"},
                    {"jwksUrl": "https://idp.example.com/jwks.json",
                     "issuer": "https://idp.example.com/", "audience": ["a", "b"],
                     "namespace": "idp", "subjectClaim": "email"}
                ],
                "access": {"teamDomain": "team.cloudflareaccess.com", "audience": "tag"}
            }"#
            .to_owned(),
        );
        Config::load(&source)
            .expect("the fuzz configuration loads")
            .auth
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = selector(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let outcome = match mode % 4 {
        0 => authenticate(Some(text), None, auth(), now()),
        1 => authenticate(None, Some(text), auth(), now()),
        signed => {
            let secret = if signed == 2 {
                SECRET
            } else {
                "another secret"
            };
            let (header, claims) = split_line(rest);
            let token = sign(header, claims, secret);
            let outcome = jwt::verify(&token, &auth().jwt_issuers, false, now());
            if signed == 3 {
                assert!(!matches!(outcome, Ok(Verified::Done(_))), "forged: {token}");
            }
            if let Ok(Verified::Done(principal)) = &outcome {
                check_accepted(claims, principal);
            }
            outcome
        }
    };
    match outcome {
        Ok(Verified::Done(principal)) => check_principal(&principal),
        Ok(Verified::NeedsKey(pending)) => {
            assert_eq!(pending.finish(false, now()), Err(AuthError::BadSignature));
            if let Ok(principal) = pending.finish(true, now()) {
                check_principal(&principal);
            }
        }
        // An error may quote the input, which may hold the secret's text itself; a malformed
        // token's message is lower-cased, so the input counts in any case.
        Err(error) => assert!(
            text.to_ascii_lowercase().contains(SECRET) || !error.to_string().contains(SECRET)
        ),
    }
});

/// `base64url(header) "." base64url(claims) "." base64url(HS256)`.
fn sign(header: &[u8], claims: &[u8], secret: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn check_principal(principal: &Principal) {
    assert!((1..=256).contains(&principal.subject.len()));
}

/// An accepted HS256 token's claims have an `exp` within the leeway (30 s). RFC 7519
/// lets `exp` have a fraction of a second, so it is read as a float.
fn check_accepted(claims: &[u8], principal: &Principal) {
    let claims: serde_json::Value = serde_json::from_slice(claims).expect("accepted claims parse");
    let exp = claims["exp"]
        .as_f64()
        .expect("an accepted token has a numeric exp");
    assert!(exp + 30.0 >= now().timestamp() as f64, "exp {exp}");
    assert_eq!(claims["sub"].as_str(), Some(principal.subject.as_str()));
}
