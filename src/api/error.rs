//! The API's errors: one place where every failure gets its HTTP status, its stable
//! `code` and the sentence a client reads.
//!
//! 4xx answers say exactly what was wrong with the request and, where one field is at
//! fault, name it. 5xx answers say little; the detail goes to the log through
//! [`ApiError::log_detail`], never to the client.

#![forbid(unsafe_code)]

use serde::Serialize;

use crate::auth::AuthError;
use crate::config::{ConfigError, NotLoopback};
use crate::policy::PolicyError;

/// The kinds of error of `API.md`, each with one status and one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: malformed JSON, a missing or malformed field, a value out of range.
    InvalidRequest,
    /// 401: no or bad credentials.
    Unauthorized,
    /// 403: authenticated, not allowed.
    Forbidden,
    /// 404: unknown route or profile.
    NotFound,
    /// 405: known route, wrong method.
    MethodNotAllowed,
    /// 409: the multipart upload no longer exists, or was completed differently.
    Conflict,
    /// 413: a size above a limit, or a request body too large.
    TooLarge,
    /// 415: a content type the profile does not allow, or a body that is not JSON.
    UnsupportedMediaType,
    /// 429: too many requests.
    RateLimited,
    /// 500: the deployment's configuration is missing or invalid.
    ConfigInvalid,
    /// 502: the store answered with an unexpected error.
    StorageError,
    /// 503: the store could not be reached.
    StorageUnavailable,
    /// 503: an identity provider's published keys could not be fetched.
    AuthUnavailable,
}

impl ErrorCode {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::TooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited => 429,
            Self::ConfigInvalid => 500,
            Self::StorageError => 502,
            Self::StorageUnavailable | Self::AuthUnavailable => 503,
        }
    }

    /// The stable code clients switch on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::ConfigInvalid => "config_invalid",
            Self::StorageError => "storage_error",
            Self::StorageUnavailable => "storage_unavailable",
            Self::AuthUnavailable => "auth_unavailable",
        }
    }
}

/// An error answer. It is one pointer wide, so that the many `Result`s that carry it
/// stay small: moving a five-field error through every `?` of the request's path made
/// a measurable part of the Worker's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(Box<ErrorDetail>);

/// What an [`ApiError`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Its kind.
    pub code: ErrorCode,
    /// One sentence for a human.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
    /// Extra response headers (`Allow`, `Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
    /// What the operator's log gets beyond the message (never sent to the client).
    pub log_detail: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct CompanionBody<'a> {
    error: Inner<'a>,
    message: &'a str,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error of a kind, with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let headers = match code {
            ErrorCode::Unauthorized => vec![("www-authenticate", "Bearer".to_owned())],
            _ => Vec::new(),
        };
        Self(Box::new(ErrorDetail {
            code,
            message: message.into(),
            field: None,
            headers,
            log_detail: None,
        }))
    }

    /// A 400 about one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message).with_field(field)
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.0.headers.push((name, value.into()));
        self
    }

    /// Adds detail for the log only.
    pub fn with_log_detail(mut self, detail: impl Into<String>) -> Self {
        self.0.log_detail = Some(detail.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The body for Uppy's companion routes: the same, plus the message at the top level,
    /// which is where `@uppy/aws-s3` looks for it to show it to the user.
    pub fn companion_body(&self) -> String {
        let body = CompanionBody {
            error: Inner {
                code: self.code.as_str(),
                message: &self.message,
                field: self.field.as_deref(),
            },
            message: &self.message,
        };
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// The JSON body of `API.md`.
    pub fn body(&self) -> String {
        let body = Body {
            error: Inner {
                code: self.code.as_str(),
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl std::ops::Deref for ApiError {
    type Target = ErrorDetail;

    fn deref(&self) -> &ErrorDetail {
        &self.0
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            // Not the client's fault: a good token cannot be checked just now.
            AuthError::KeysUnavailable => Self::new(ErrorCode::AuthUnavailable, error.to_string())
                .with_header("retry-after", "30"),
            _ => Self::new(ErrorCode::Unauthorized, error.to_string()),
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(error: ConfigError) -> Self {
        Self::new(
            ErrorCode::ConfigInvalid,
            format!(
                "the signer's configuration is invalid at `{}`; the operator must fix it",
                error.setting
            ),
        )
        .with_log_detail(error.to_string())
    }
}

impl From<NotLoopback> for ApiError {
    fn from(error: NotLoopback) -> Self {
        Self::new(
            ErrorCode::InvalidRequest,
            format!(
                "bucket `{}` is the local R2 store of `wrangler dev`, reachable only when the \
                 signer is called on a loopback host (localhost, 127.0.0.1, [::1]); this \
                 request came to `{}`",
                error.bucket, error.host
            ),
        )
    }
}

impl From<PolicyError> for ApiError {
    fn from(error: PolicyError) -> Self {
        match error {
            PolicyError::MalformedContentType(problem) => {
                Self::invalid_field("contentType", format!("contentType {problem}"))
            }
            PolicyError::ContentTypeNotAllowed { essence } => Self::new(
                ErrorCode::UnsupportedMediaType,
                format!("the profile does not allow the content type {essence}"),
            )
            .with_field("contentType"),
            PolicyError::TooLarge { max } => Self::new(
                ErrorCode::TooLarge,
                format!("size is above the limit of {max} bytes"),
            )
            .with_field("size"),
            PolicyError::MetadataTooLarge { max } => Self::invalid_field(
                "metadata",
                format!("metadata is larger than {max} bytes in all, names and values"),
            ),
            PolicyError::Metadata { name, problem } => Self::invalid_field(
                format!("metadata.{name}"),
                format!("metadata {name}: {problem}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_code_message_and_field() {
        let error = ApiError::invalid_field("size", "size must be a whole number");
        assert_eq!(
            error.body(),
            r#"{"error":{"code":"invalid_request","message":"size must be a whole number","field":"size"}}"#
        );
    }

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let error = ApiError::from(AuthError::Missing);
        assert_eq!(error.status(), 401);
        assert!(
            error
                .headers
                .contains(&("www-authenticate", "Bearer".to_owned()))
        );
    }

    #[test]
    fn config_errors_name_the_setting_and_keep_detail_for_the_log() {
        let error = ApiError::from(ConfigError::new("secret API_KEY", "is not set"));
        assert_eq!(error.status(), 500);
        assert!(error.message.contains("secret API_KEY"));
        assert!(error.log_detail.as_deref().unwrap().contains("is not set"));
    }
}
