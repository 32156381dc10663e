//! The reference signer of the tests: `aws-sigv4`'s general request signer, which parses
//! the URL, builds header maps and writes the canonical request its own way. The signer's
//! canonical requests ([`super::query`], [`super::headers`]) must give exactly what it
//! gives for the same input.

use std::time::Duration;

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4::SigningParams;
use chrono::{DateTime, Utc};

use super::{Credentials, Target, encode, system_time};

/// A request to sign, in the query or in the headers.
pub struct Input<'a> {
    /// The HTTP method, uppercase.
    pub method: &'a str,
    /// The URL the request goes to, without query.
    pub target: &'a Target,
    /// Query parameters of the operation, raw.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers, names lowercase. All are signed.
    pub headers: &'a [(&'a str, &'a str)],
    /// The signing credentials.
    pub credentials: &'a Credentials,
    /// The signing time.
    pub now: DateTime<Utc>,
}

/// A presigned URL for `input`, valid `expires_in` seconds, with `UNSIGNED-PAYLOAD`.
pub fn presign(input: &Input<'_>, expires_in: u32) -> Result<String, String> {
    let mut settings = s3_settings();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(u64::from(expires_in)));
    let (url, query) = url_and_query(input);
    let request = SignableRequest::new(
        input.method,
        url.as_str(),
        input.headers.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign_with(input, settings, request)?;

    let mut query = query;
    for (name, value) in instructions.params() {
        encode::push_query_pair(&mut query, name, value);
    }
    let base = url.split('?').next().unwrap_or_default();
    Ok(format!("{base}?{query}"))
}

/// The headers that sign `input` with `body`, as `aws-sigv4` adds them.
pub fn sign_headers(input: &Input<'_>, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut settings = s3_settings();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let (url, _) = url_and_query(input);
    let request = SignableRequest::new(
        input.method,
        url.as_str(),
        input.headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign_with(input, settings, request)?;
    Ok(instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect())
}

/// S3's rules: the path is encoded once by the caller and never normalised.
fn s3_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings
}

/// The URL with the operation's query, and that query alone.
fn url_and_query(input: &Input<'_>) -> (String, String) {
    let mut query = String::new();
    for (name, value) in input.query {
        encode::push_query_pair(&mut query, name, value);
    }
    let base = format!("{}{}", input.target.origin, input.target.path);
    let url = if query.is_empty() {
        base
    } else {
        format!("{base}?{query}")
    };
    (url, query)
}

fn sign_with(
    input: &Input<'_>,
    settings: SigningSettings,
    request: SignableRequest<'_>,
) -> Result<(aws_sigv4::http_request::SigningInstructions, String), String> {
    let credentials = AwsCredentials::new(
        input.credentials.access_key_id.as_str(),
        input.credentials.secret_access_key.expose(),
        input
            .credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_owned()),
        None,
        "edge-presigner-tests",
    );
    let identity = credentials.into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&input.target.region)
        .name("s3")
        .time(system_time(input.now))
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    Ok(sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts())
}
