//! JSON Web Tokens: verifying tokens from an identity service (HS256 with a shared secret,
//! RS256 and ES256 with published keys), and minting the short-lived tokens of the
//! development login.
//!
//! Parsing, claims and the signature check are done by `jwt-compact`, with HS256 computed
//! by the same `hmac` and `sha2` that sign the upload URLs ([`HmacSha256`]), so the
//! Worker carries one SHA-256. This module decides which issuer a token is checked
//! against and what its claims must say:
//!
//! - `alg` must be one the issuer accepts, and the issuer's kind of key decides which:
//!   HS256 only with a secret, RS256 and ES256 only with published keys, so an HS256
//!   token can never be checked against a public key used as a secret (no algorithm
//!   confusion), and `none` is never accepted;
//! - `exp` is required; `nbf` is checked when present; both with the issuer's leeway;
//! - `iss` and `aud` are checked when the issuer configures them;
//! - the subject claim (`sub` by default) must be a non-empty string.
//!
//! See RFC 7519 (JWT) and RFC 8725 (JWT best current practices).

use base64ct::{Base64UrlUnpadded, Encoding};
use chrono::{DateTime, Duration, Utc};
use std::borrow::Cow;
use std::num::NonZeroUsize;

use hmac::{Hmac, KeyInit, Mac};
use jwt_compact::{
    Algorithm, AlgorithmExt, AlgorithmSignature, Claims, Header, TimeOptions, UntrustedToken,
    ValidationError,
};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::{AuthError, Principal};
use crate::config::{IssuerKey, JwtIssuer};
use crate::secret::Secret;

type CustomClaims = Map<String, Value>;

/// Whether a bearer credential has the shape of a compact JWT (three dot-separated parts).
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.bytes().filter(|b| *b == b'.').count() == 2
}

/// A token signed with a published key: its signature is checked by the Worker (with
/// WebCrypto), then [`PendingToken::finish`] checks its claims.
#[derive(Debug, Clone)]
pub struct PendingToken<'a> {
    /// The issuer whose keys verify it.
    pub issuer: &'a JwtIssuer,
    /// `RS256` or `ES256`.
    pub alg: String,
    /// The key id from the token's header.
    pub kid: Option<String>,
    /// `base64url(header) "." base64url(claims)`, the signed bytes.
    pub signing_input: String,
    /// The signature (for ES256, the 64 bytes of r and s, as WebCrypto wants them).
    pub signature: Vec<u8>,
    claims: Claims<CustomClaims>,
}

impl PendingToken<'_> {
    /// Checks the claims once the signature has been verified.
    pub fn finish(&self, signature_ok: bool, now: DateTime<Utc>) -> Result<Principal, AuthError> {
        if !signature_ok {
            return Err(AuthError::BadSignature);
        }
        check_claims(&self.claims, self.issuer, now)
    }
}

/// Where verifying a token stands.
#[derive(Debug, Clone)]
pub enum Verified<'a> {
    /// Verified (HS256): the caller.
    Done(Principal),
    /// Parsed and matched to an issuer whose published key must verify it.
    NeedsKey(PendingToken<'a>),
}

/// Verifies a token against the configured issuers; with `access_only`, only against
/// Cloudflare Access.
pub fn verify<'a>(
    token: &str,
    issuers: &'a [JwtIssuer],
    access_only: bool,
    now: DateTime<Utc>,
) -> Result<Verified<'a>, AuthError> {
    let untrusted = UntrustedToken::new(token)
        .map_err(|e| AuthError::MalformedToken(e.to_string().to_ascii_lowercase()))?;
    let alg = untrusted.algorithm().to_owned();
    if !matches!(alg.as_str(), "HS256" | "RS256" | "ES256") {
        return Err(AuthError::AlgorithmNotAllowed(
            alg.chars().take(16).collect(),
        ));
    }
    if has_critical_extensions(token) {
        return Err(AuthError::MalformedToken(
            "it names critical header extensions (crit), which this signer does not support".into(),
        ));
    }

    // The unverified `iss` only picks which keys to try; nothing else is read before
    // the signature verifies.
    let unverified: Claims<CustomClaims> =
        untrusted.deserialize_claims_unchecked().map_err(|_| {
            AuthError::MalformedToken(
                "the claims must be a JSON object whose exp, nbf and iat are numbers of \
             seconds"
                    .into(),
            )
        })?;
    let claimed_issuer = unverified.custom.get("iss").and_then(Value::as_str);
    let candidates: Vec<&JwtIssuer> = issuers
        .iter()
        .filter(|i| !access_only || i.access)
        .filter(|i| i.issuer.is_none() || i.issuer.as_deref() == claimed_issuer)
        .collect();
    if candidates.is_empty() {
        return Err(AuthError::UnknownIssuer);
    }

    let mut outcome = Err(AuthError::AlgorithmNotAllowed(alg.clone()));
    for issuer in candidates {
        if !issuer.algorithms.contains(&alg) {
            continue;
        }
        match &issuer.key {
            IssuerKey::Hmac(secret) => {
                match HmacSha256
                    .validator::<CustomClaims>(secret)
                    .validate(&untrusted)
                {
                    Ok(verified) => {
                        return check_claims(verified.claims(), issuer, now).map(Verified::Done);
                    }
                    Err(_) => outcome = Err(AuthError::BadSignature),
                }
            }
            IssuerKey::Jwks { .. } => {
                let signing_input = token
                    .rsplit_once('.')
                    .map(|(input, _)| input.to_owned())
                    .unwrap_or_default();
                return Ok(Verified::NeedsKey(PendingToken {
                    issuer,
                    alg,
                    kid: untrusted.header().key_id.clone(),
                    signing_input,
                    signature: untrusted.signature_bytes().to_vec(),
                    claims: unverified,
                }));
            }
        }
    }
    outcome
}

/// Whether the header has a `crit` member: RFC 7515 section 4.1.11 says a token naming
/// extensions the recipient does not understand must be refused, and this signer
/// understands none.
fn has_critical_extensions(token: &str) -> bool {
    let header = token.split('.').next().unwrap_or_default();
    Base64UrlUnpadded::decode_vec(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .is_some_and(|h| h.contains_key("crit"))
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
    let IssuerKey::Hmac(secret) = &issuer.key else {
        return Err("the issuer has no HS256 secret".to_owned());
    };
    HmacSha256
        .token(&Header::empty().with_token_type("JWT"), &claims, secret)
        .map_err(|e| e.to_string())
}

/// HS256 (RFC 7518 section 3.2): HMAC-SHA256 with a shared secret.
///
/// `jwt-compact` has its own, built on older versions of `hmac` and `sha2` than the
/// signing of URLs uses; this one keeps a second SHA-256 out of the Worker.
#[derive(Debug, Clone, Copy)]
pub struct HmacSha256;

/// An HS256 signature: 32 bytes.
#[derive(Debug, Clone)]
pub struct HmacSha256Signature([u8; 32]);

impl AlgorithmSignature for HmacSha256Signature {
    const LENGTH: Option<NonZeroUsize> = NonZeroUsize::new(32);

    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        Ok(Self(slice.try_into()?))
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
}

impl Algorithm for HmacSha256 {
    type SigningKey = Secret;
    type VerifyingKey = Secret;
    type Signature = HmacSha256Signature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("HS256")
    }

    fn sign(&self, key: &Secret, message: &[u8]) -> HmacSha256Signature {
        HmacSha256Signature(keyed(key, message).finalize().into_bytes().into())
    }

    /// Compares in constant time.
    fn verify_signature(
        &self,
        signature: &HmacSha256Signature,
        key: &Secret,
        message: &[u8],
    ) -> bool {
        keyed(key, message).verify_slice(&signature.0).is_ok()
    }
}

fn keyed(key: &Secret, message: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(message);
    mac
}
