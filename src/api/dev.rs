//! `POST /v1/dev/token`: the development login.
//!
//! Under `wrangler dev`, the demo page needs a credential before anyone has set up an
//! identity service. When the `DEV_LOGIN` setting is `on` (it is, in `.dev.vars.example`)
//! and the request came to a loopback host, this route hands out a one-hour HS256 token
//! for a fresh subject `dev-<random>`, signed as the first HS256 issuer would sign it.
//! Anywhere else the route does not exist (404), so a deployed Worker never mints tokens.

#![forbid(unsafe_code)]

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{ApiError, ErrorCode};
use crate::auth::jwt;
use crate::config::{Config, IssuerKey, RequestOrigin};
use crate::time::rfc3339;

/// How long a development token is valid.
const LIFETIME_MINUTES: i64 = 60;

/// The answer: a token and what it stands for.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DevToken {
    /// The JWT to send as `Authorization: Bearer`.
    pub token: String,
    /// Its subject.
    pub subject: String,
    /// When it expires.
    pub expires_at: String,
}

/// Mints a development token, if this deployment and this request allow it.
pub fn issue(
    config: &Config,
    origin: &RequestOrigin,
    now: DateTime<Utc>,
    random: [u8; 16],
) -> Result<DevToken, ApiError> {
    let not_here = || ApiError::new(ErrorCode::NotFound, "no route /v1/dev/token");
    if !config.dev_login || !origin.is_loopback() {
        return Err(not_here());
    }
    let issuer = config
        .auth
        .jwt_issuers
        .iter()
        .find(|i| matches!(i.key, IssuerKey::Hmac(_)))
        .ok_or_else(not_here)?;

    let subject = format!(
        "dev-{}",
        random[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let lifetime = Duration::minutes(LIFETIME_MINUTES);
    let token = jwt::mint(issuer, &subject, now, lifetime).map_err(|e| {
        ApiError::new(
            ErrorCode::ConfigInvalid,
            "the development token could not be made",
        )
        .with_log_detail(e)
    })?;
    Ok(DevToken {
        token,
        subject,
        expires_at: rfc3339(now + lifetime),
    })
}
