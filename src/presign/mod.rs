//! Query-string SigV4 presigning of S3 requests, made with `aws-sigv4`.
//!
//! A presigned URL carries its signature in the query (`X-Amz-Signature` and friends), so
//! whoever holds the URL can make exactly the signed request until it expires, without
//! ever seeing the credentials. The signature covers the method, the path, every query
//! parameter, the host and every header named in `X-Amz-SignedHeaders`: a client that
//! sends another `content-type` or `content-length` than the one signed is refused by
//! the store with `SignatureDoesNotMatch`.
//!
//! The payload is `UNSIGNED-PAYLOAD`: the body is not known when the URL is made. Its
//! integrity comes from the signed `content-length` and, when the caller gives one, the
//! signed `x-amz-checksum-sha256`, which the store checks against the bytes it receives.
//!
//! This module does no I/O and reads no clock: the time is an argument, so a signature
//! made twice from the same input is the same.
//!
//! See <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>.

#![forbid(unsafe_code)]

pub mod encode;
pub mod fast;

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4::SigningParams;
use chrono::{DateTime, Utc};

use crate::secret::Secret;

/// The longest validity SigV4 allows for a presigned URL: seven days.
pub const MAX_EXPIRES_IN: u32 = 604_800;

/// An access key pair, with the session token of temporary credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The access key id; it appears in every URL, so it is not secret.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary (STS) credentials, signed into the URL.
    pub session_token: Option<Secret>,
}

impl Credentials {
    /// The same credentials in the type `aws-sigv4` signs with.
    pub(crate) fn for_aws_sigv4(&self) -> AwsCredentials {
        AwsCredentials::new(
            self.access_key_id.as_str(),
            self.secret_access_key.expose(),
            self.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "edge-presigner",
        )
    }
}

/// Where a request goes: scheme and authority, and the path already encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `scheme://host[:port]`, with no default port and no trailing slash.
    pub origin: String,
    /// The encoded path, starting with `/`.
    pub path: String,
    /// The signing region (`auto` for R2).
    pub region: String,
}

/// What to presign.
#[derive(Clone, Debug)]
pub struct PresignInput<'a> {
    /// The HTTP method, uppercase.
    pub method: &'a str,
    /// The URL the request goes to, without query.
    pub target: &'a Target,
    /// Query parameters of the operation (`partNumber`, `uploadId`, `response-*`), raw.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers the client must send, names lowercase, values as sent. All are signed.
    pub headers: &'a [(&'a str, &'a str)],
    /// The signing credentials.
    pub credentials: &'a Credentials,
    /// The signing time.
    pub now: DateTime<Utc>,
    /// How long the URL is valid, 1 to [`MAX_EXPIRES_IN`] seconds.
    pub expires_in: u32,
}

/// Why a URL could not be signed. It says what is wrong, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignError(String);

impl fmt::Display for PresignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot presign: {}", self.0)
    }
}

impl std::error::Error for PresignError {}

/// Makes a presigned URL for `input`.
pub fn presign(input: &PresignInput<'_>) -> Result<String, PresignError> {
    if input.expires_in == 0 || input.expires_in > MAX_EXPIRES_IN {
        return Err(PresignError(format!(
            "expiry of {} s is outside 1 to {MAX_EXPIRES_IN} s",
            input.expires_in
        )));
    }

    // The operation's own query, encoded once; aws-sigv4 sorts it with its own parameters.
    let mut query = String::new();
    for (name, value) in input.query {
        encode::push_query_pair(&mut query, name, value);
    }
    let mut url = format!("{}{}", input.target.origin, input.target.path);
    let unsigned_url = if query.is_empty() {
        url.clone()
    } else {
        format!("{url}?{query}")
    };

    // Canonical request, string to sign and signature, by aws-sigv4.
    let identity = input.credentials.for_aws_sigv4().into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&input.target.region)
        .name("s3")
        .time(system_time(input.now))
        .settings(s3_presign_settings(input.expires_in))
        .build()
        .map_err(|e| PresignError(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        input.method,
        unsigned_url.as_str(),
        input.headers.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| PresignError(e.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| PresignError(e.to_string()))?
        .into_parts();

    // The URL: the operation's query, then the signing parameters.
    for (name, value) in instructions.params() {
        encode::push_query_pair(&mut query, name, value);
    }
    url.push('?');
    url.push_str(&query);
    Ok(url)
}

/// Settings for S3: the path is encoded once and never normalised, and the signature goes
/// in the query.
fn s3_presign_settings(expires_in: u32) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(u64::from(expires_in)));
    settings
}

/// Converts the request time for aws-sigv4. Building a `SystemTime` from the epoch is
/// safe on wasm32; only `SystemTime::now()` is not.
pub(crate) fn system_time(now: DateTime<Utc>) -> SystemTime {
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests;
