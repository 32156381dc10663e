//! JSON Web Tokens: verifying HS256 tokens from an identity service, and minting the
//! short-lived tokens of the development login.
//!
//! Parsing and the HMAC check are done by `jwt-compact`; this module decides which issuer
//! a token is checked against and what its claims must say:
//!
//! - `alg` must be exactly `HS256` (a token that says `none`, `HS512` or `RS256` is
//!   refused before any key is used: no algorithm confusion);
//! - `exp` is required; `nbf` is checked when present; both with the issuer's leeway;
//! - `iss` and `aud` are checked when the issuer configures them;
//! - the subject claim (`sub` by default) must be a non-empty string.
//!
//! See RFC 7519 (JWT) and RFC 8725 (JWT best current practices).

use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken, ValidationError};
use serde_json::{Map, Value};

use super::{AuthError, Principal};
use crate::config::JwtIssuer;

type CustomClaims = Map<String, Value>;

/// Whether a bearer credential has the shape of a compact JWT (three dot-separated parts).
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.bytes().filter(|b| *b == b'.').count() == 2
}

/// Verifies a token against the configured issuers.
pub fn verify(
    token: &str,
    issuers: &[JwtIssuer],
    now: DateTime<Utc>,
) -> Result<Principal, AuthError> {
    let untrusted = UntrustedToken::new(token)
        .map_err(|e| AuthError::MalformedToken(e.to_string().to_ascii_lowercase()))?;
    if untrusted.algorithm() != "HS256" {
        return Err(AuthError::AlgorithmNotAllowed(
            untrusted.algorithm().chars().take(16).collect(),
        ));
    }

    // The unverified `iss` only picks which keys to try; nothing else is read before
    // the signature verifies.
    let unverified: Claims<CustomClaims> =
        untrusted.deserialize_claims_unchecked().map_err(|_| {
            AuthError::MalformedToken(
                "the claims must be a JSON object whose exp, nbf and iat are whole numbers \
                 of seconds"
                    .into(),
            )
        })?;
    let claimed_issuer = unverified.custom.get("iss").and_then(Value::as_str);

    let mut outcome = Err(AuthError::UnknownIssuer);
    for issuer in issuers
        .iter()
        .filter(|i| i.issuer.is_none() || i.issuer.as_deref() == claimed_issuer)
    {
        let key = Hs256Key::new(issuer.hmac_secret.expose().as_bytes());
        match Hs256.validator::<CustomClaims>(&key).validate(&untrusted) {
            Ok(verified) => return check_claims(verified.claims(), issuer, now),
            Err(ValidationError::InvalidSignature) => outcome = Err(AuthError::BadSignature),
            Err(ValidationError::MalformedClaims(_)) => {
                return Err(AuthError::MalformedToken(
                    "a time claim is not a whole number of seconds".into(),
                ));
            }
            Err(_) => return Err(AuthError::BadSignature),
        }
    }
    outcome
}

fn check_claims(
    claims: &Claims<CustomClaims>,
    issuer: &JwtIssuer,
    now: DateTime<Utc>,
) -> Result<Principal, AuthError> {
    let options = TimeOptions::new(Duration::seconds(issuer.leeway_seconds.into()), || now);
    claims.validate_expiration(&options).map_err(|e| match e {
        ValidationError::NoClaim(_) => AuthError::NoExpiry,
        _ => AuthError::Expired,
    })?;
    if claims.not_before.is_some() {
        claims
            .validate_maturity(&options)
            .map_err(|_| AuthError::NotYetValid)?;
    }
    if let Some(accepted) = &issuer.audience {
        let audience_ok = match claims.custom.get("aud") {
            Some(Value::String(one)) => accepted.contains(one),
            Some(Value::Array(many)) => many
                .iter()
                .filter_map(Value::as_str)
                .any(|a| accepted.iter().any(|b| a == b)),
            _ => false,
        };
        if !audience_ok {
            return Err(AuthError::WrongAudience);
        }
    }

    let subject = match claims.custom.get(&issuer.subject_claim) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
        _ => return Err(AuthError::NoSubject(issuer.subject_claim.clone())),
    };
    let profiles = issuer.profiles_claim.as_ref().map(|claim| {
        match claims.custom.get(claim) {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(spaced)) => spaced.split_whitespace().map(str::to_owned).collect(),
            // A token without the claim may use no profile at all.
            _ => Vec::new(),
        }
    });
    Ok(Principal {
        subject,
        credential: format!("jwt:{}", issuer.issuer.as_deref().unwrap_or("any")),
        profiles,
        namespace: issuer.namespace.clone(),
    })
}

/// Mints an HS256 token for `subject`, valid for `lifetime`, as `issuer` would.
///
/// Used only by the development login, which hands a browser a token so the demo page
/// works as soon as `wrangler dev` starts.
pub fn mint(
    issuer: &JwtIssuer,
    subject: &str,
    now: DateTime<Utc>,
    lifetime: Duration,
) -> Result<String, String> {
    let mut custom = CustomClaims::new();
    custom.insert("sub".into(), Value::String(subject.to_owned()));
    if let Some(iss) = &issuer.issuer {
        custom.insert("iss".into(), Value::String(iss.clone()));
    }
    if let Some(aud) = issuer.audience.as_ref().and_then(|a| a.first()) {
        custom.insert("aud".into(), Value::String(aud.clone()));
    }
    let options = TimeOptions::new(Duration::zero(), || now);
    let claims = Claims::new(custom).set_duration_and_issuance(&options, lifetime);
    let key = Hs256Key::new(issuer.hmac_secret.expose().as_bytes());
    Hs256
        .token(&Header::empty().with_token_type("JWT"), &claims, &key)
        .map_err(|e| e.to_string())
}
