//! SigV4 in the `Authorization` header, for the requests the signer itself sends to the
//! store (create, list, complete and abort a multipart upload; head and delete an object).
//!
//! The body is known when these requests are made, so S3 wants its SHA-256 in
//! `x-amz-content-sha256`, signed like the time (`x-amz-date`) and, with temporary
//! credentials, the session token (`x-amz-security-token`).
//!
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::encode::encode_query_component;
use super::{
    ALGORITHM, Credentials, Scope, Target, canonical_headers, canonical_query, hex_digest, hex_str,
};

/// A request to sign in its headers.
#[derive(Debug, Clone, Copy)]
pub struct HeaderRequest<'a> {
    /// The HTTP method, uppercase.
    pub method: &'a str,
    /// Where it goes.
    pub target: &'a Target,
    /// Its query parameters, raw (`uploads` with an empty value for `?uploads`).
    pub query: &'a [(&'a str, &'a str)],
    /// The headers it sends, names lowercase. All are signed.
    pub headers: &'a [(&'a str, &'a str)],
    /// Its body.
    pub body: &'a [u8],
    /// The signing credentials.
    pub credentials: &'a Credentials,
    /// The signing time.
    pub now: DateTime<Utc>,
}

/// The headers that sign `request`, to send beside its own: `x-amz-date`,
/// `x-amz-content-sha256`, `x-amz-security-token` with temporary credentials, and
/// `authorization`.
pub fn sign(request: &HeaderRequest<'_>) -> Vec<(String, String)> {
    let scope = Scope::new(request.credentials, &request.target.region, request.now);
    let payload_hash = hex_digest(&Sha256::digest(request.body));

    // The headers S3 wants signed beside the request's own.
    let mut added = vec![
        ("x-amz-date".to_owned(), scope.amz_date.clone()),
        (
            "x-amz-content-sha256".to_owned(),
            hex_str(&payload_hash).to_owned(),
        ),
    ];
    if let Some(token) = &request.credentials.session_token {
        added.push(("x-amz-security-token".to_owned(), token.expose().to_owned()));
    }

    // Canonical headers: all of them and host.
    let (canonical_headers, signed_headers) = canonical_headers(
        request
            .headers
            .iter()
            .copied()
            .chain(added.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .chain(std::iter::once(("host", request.target.host()))),
    );

    // Canonical query: every parameter.
    let canonical_query = canonical_query(
        request
            .query
            .iter()
            .map(|(n, v)| (encode_query_component(n), encode_query_component(v)))
            .collect(),
    );

    // The canonical request, then the string to sign, then the signature.
    let mut canonical = String::with_capacity(512);
    let _ = write!(
        canonical,
        "{}\n{}\n{canonical_query}\n",
        request.method, request.target.path
    );
    for (name, value) in &canonical_headers {
        let _ = writeln!(canonical, "{name}:{value}");
    }
    let _ = write!(canonical, "\n{signed_headers}\n{}", hex_str(&payload_hash));
    let signature = scope.signature(&hex_digest(&Sha256::digest(canonical.as_bytes())));

    added.push((
        "authorization".to_owned(),
        format!(
            "{ALGORITHM} Credential={}, SignedHeaders={signed_headers}, Signature={}",
            scope.credential,
            hex_str(&signature)
        ),
    ));
    added
}
