//! Who is calling: the bearer credential of a request, checked against the configuration.
//!
//! A credential is either an API key (for servers) or a JWT (for browsers). Both give a
//! [`Principal`]: a subject, which key templates and ownership rules use, and the
//! profiles the credential may use. Every failure is an [`AuthError`] whose message tells
//! the client what to fix without revealing anything about the configured secrets.

#![forbid(unsafe_code)]

pub mod jwks;
pub mod jwt;

use std::fmt;

use chrono::{DateTime, Utc};

use crate::config::AuthConfig;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The subject: an API key's name, or the JWT's subject claim.
    pub subject: String,
    /// What proved it, for the audit log: `api-key:<name>` or `jwt:<issuer>`.
    pub credential: String,
    /// The profiles this caller may use; `None` means all.
    pub profiles: Option<Vec<String>>,
    /// Keeps this caller's keys apart from those of other sources of subjects: `key` for
    /// API keys, the issuer's `namespace` setting for JWTs.
    pub namespace: Option<String>,
}

impl Principal {
    /// The path segment under which this caller's objects lie.
    pub fn owner(&self) -> String {
        crate::policy::key::owner_segment(self.namespace.as_deref(), &self.subject)
    }

    /// Whether the caller may use a profile.
    pub fn may_use_profile(&self, profile: &str) -> bool {
        self.profiles
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|p| p == profile))
    }
}

/// Why a request is not authenticated. Every kind answers 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// The header is not `Bearer <credential>`.
    NotBearer,
    /// The credential is neither a known API key nor a valid JWT.
    UnknownKey,
    /// The JWT cannot be parsed.
    MalformedToken(String),
    /// The JWT's algorithm is not accepted.
    AlgorithmNotAllowed(String),
    /// No configured issuer matches the JWT's `iss`.
    UnknownIssuer,
    /// The JWT's signature does not verify.
    BadSignature,
    /// The JWT has no `exp`.
    NoExpiry,
    /// The JWT has expired.
    Expired,
    /// The JWT's `nbf` is in the future.
    NotYetValid,
    /// The JWT's `aud` is not accepted.
    WrongAudience,
    /// The JWT has no usable subject.
    NoSubject(String),
    /// No published key of the issuer has the token's `kid` (and algorithm).
    UnknownKeyId,
    /// The issuer's published key for the token cannot be used.
    UnusableKey,
    /// The issuer's key set could not be fetched, so no token of it can be checked now.
    KeysUnavailable,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("the request has no Authorization header"),
            Self::NotBearer => {
                f.write_str("the Authorization header must be `Bearer <credential>`")
            }
            Self::UnknownKey => f.write_str("the bearer credential is not a valid API key or JWT"),
            Self::MalformedToken(why) => write!(f, "the JWT is malformed: {why}"),
            Self::AlgorithmNotAllowed(alg) => {
                write!(f, "the JWT's algorithm `{alg}` is not accepted")
            }
            Self::UnknownIssuer => f.write_str("the JWT's issuer is not accepted"),
            Self::BadSignature => f.write_str("the JWT's signature is not valid"),
            Self::NoExpiry => f.write_str("the JWT has no `exp` claim"),
            Self::Expired => f.write_str("the JWT has expired"),
            Self::NotYetValid => f.write_str("the JWT is not valid yet (`nbf`)"),
            Self::WrongAudience => f.write_str("the JWT's audience is not accepted"),
            Self::UnknownKeyId => {
                f.write_str("the JWT's key id (kid) is not among its issuer's published keys")
            }
            Self::UnusableKey => {
                f.write_str("the issuer's published key for this JWT is malformed")
            }
            Self::KeysUnavailable => {
                f.write_str("the issuer's published keys cannot be fetched right now; try again")
            }
            Self::NoSubject(claim) => write!(
                f,
                "the JWT's `{claim}` claim, its subject, must be a string of 1 to 256 bytes (UTF-8)"
            ),
        }
    }
}

impl std::error::Error for AuthError {}

/// Checks a request's credential: the `Authorization` header, or else Cloudflare Access's
/// `Cf-Access-Jwt-Assertion` header. A token signed with a published key comes back as
/// [`jwt::Verified::NeedsKey`] for the Worker to verify.
pub fn authenticate<'a>(
    authorization: Option<&str>,
    access_assertion: Option<&str>,
    config: &'a AuthConfig,
    now: DateTime<Utc>,
) -> Result<jwt::Verified<'a>, AuthError> {
    let (credential, access_only) = match (authorization, access_assertion) {
        (Some(header), _) => (bearer_credential(header)?, false),
        (None, Some(assertion)) if config.jwt_issuers.iter().any(|i| i.access) => {
            (assertion.trim(), true)
        }
        _ => return Err(AuthError::Missing),
    };

    if jwt::looks_like_jwt(credential) {
        return jwt::verify(credential, &config.jwt_issuers, access_only, now);
    }
    if access_only {
        return Err(AuthError::MalformedToken(
            "the Access assertion is not a JWT".into(),
        ));
    }
    api_key(credential, config)
        .map(jwt::Verified::Done)
        .ok_or(AuthError::UnknownKey)
}

fn bearer_credential(header: &str) -> Result<&str, AuthError> {
    let (scheme, credential) = header.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
        return Err(AuthError::NotBearer);
    }
    Ok(credential)
}

/// Finds the API key that matches, comparing with every key in constant time.
fn api_key(credential: &str, config: &AuthConfig) -> Option<Principal> {
    let mut found = None;
    for key in &config.api_keys {
        if key.key.matches(credential) && found.is_none() {
            found = Some(Principal {
                subject: key.name.clone(),
                credential: format!("api-key:{}", key.name),
                profiles: key.profiles.clone(),
                namespace: Some("key".to_owned()),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests;
