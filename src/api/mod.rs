//! The HTTP API of `API.md`, as pure functions: a route table, request bodies in, response
//! bodies or [`ApiError`]s out.
//!
//! Nothing here touches the Worker runtime. The edge (`crate::edge`) reads the request,
//! the clock and random bytes, calls these functions and writes the response, so every
//! rule of the API can be tested natively.

#![forbid(unsafe_code)]

pub mod dev;
pub mod error;
pub mod json;
pub mod uploads;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

pub use error::{ApiError, ErrorCode};

use crate::auth::Principal;
use crate::config::{Config, RequestOrigin};

/// The largest request body the API reads, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What a request may do once routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/health`.
    Health,
    /// `POST /v1/uploads`.
    CreateUpload,
    /// `POST /v1/dev/token` (development login).
    DevToken,
}

impl Route {
    /// Whether the route needs a bearer credential.
    pub fn needs_auth(self) -> bool {
        !matches!(self, Self::Health | Self::DevToken)
    }

    /// A stable name for logs (paths may carry tokens; names never do).
    pub fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::CreateUpload => "create-upload",
            Self::DevToken => "dev-token",
        }
    }

    /// Whether the route reads a JSON body.
    pub fn has_json_body(self) -> bool {
        matches!(self, Self::CreateUpload)
    }
}

/// The route table: each path with the methods it answers.
const ROUTES: &[(&str, &[(&str, Route)])] = &[
    ("/v1/health", &[("GET", Route::Health)]),
    ("/v1/uploads", &[("POST", Route::CreateUpload)]),
    ("/v1/dev/token", &[("POST", Route::DevToken)]),
];

/// Finds the route of a request: 404 for an unknown path, 405 (with `Allow`) for a known
/// path and another method.
pub fn resolve(method: &str, path: &str) -> Result<Route, ApiError> {
    let methods = ROUTES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, methods)| *methods)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no route {path}")))?;
    let method = if method == "HEAD" { "GET" } else { method };
    methods
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, route)| *route)
        .ok_or_else(|| {
            let allow: Vec<&str> = methods.iter().map(|(m, _)| *m).collect();
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{path} answers {} only", allow.join(", ")),
            )
            .with_header("allow", allow.join(", "))
        })
}

/// Everything a handler knows about one authenticated request.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    /// The deployment's configuration.
    pub config: &'a Config,
    /// Who is calling.
    pub principal: &'a Principal,
    /// The origin the request came in on.
    pub origin: &'a RequestOrigin,
    /// The request time, read once.
    pub now: DateTime<Utc>,
    /// Random bytes for this request, read once.
    pub random: [u8; 16],
}

/// The body of `GET /v1/health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// The crate's version.
    pub version: &'static str,
}

/// The health answer.
pub fn health() -> Health {
    Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// Formats a time as RFC 3339 UTC with whole seconds (`2026-01-15T12:34:56Z`).
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_path_with_wrong_method_answers_405_with_allow() {
        let error = resolve("GET", "/v1/uploads").unwrap_err();
        assert_eq!(error.status(), 405);
        assert!(error.headers.contains(&("allow", "POST".to_owned())));
    }

    #[test]
    fn unknown_path_answers_404() {
        assert_eq!(resolve("GET", "/v1/nope").unwrap_err().status(), 404);
        assert_eq!(resolve("POST", "/v1/uploads/").unwrap_err().status(), 404);
    }

    #[test]
    fn head_is_answered_like_get() {
        assert_eq!(resolve("HEAD", "/v1/health"), Ok(Route::Health));
    }
}
