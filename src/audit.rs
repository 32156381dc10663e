//! The audit log: one JSON line per decision the signer makes.
//!
//! Each line says who asked (subject and which credential proved it), for what (profile,
//! bucket, key, size) and what was decided and why. Workers Logs and Logpush collect the
//! lines from the Worker's console. A line never holds a secret, a token, an
//! `Authorization` header, a signature or a presigned URL: the record has no field that
//! could carry one.

#![forbid(unsafe_code)]

use serde::Serialize;

/// One decision.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The request's id (`cf-ray` on Cloudflare, random otherwise).
    pub request_id: String,
    /// When, RFC 3339.
    pub time: String,
    /// The method and path (no query string: it could hold a token).
    pub route: String,
    /// `allowed` or `refused`, or `error` for a failure on the signer's side.
    pub decision: &'static str,
    /// The HTTP status answered.
    pub status: u16,
    /// The error code or the reason of a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The authenticated subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `api-key:<name>` or `jwt:<issuer>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The profile used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The bucket written to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The object key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The declared size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Detail for operators of a failure on the signer's or the store's side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Record {
    /// The record as one line of JSON.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
