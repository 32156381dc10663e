//! SigV4 signing of S3 requests: presigned URLs for clients, and the signed requests the
//! signer itself sends to the store.
//!
//! A presigned URL carries its signature in the query (`X-Amz-Signature` and friends), so
//! whoever holds the URL can make exactly the signed request until it expires, without
//! ever seeing the credentials. The signature covers the method, the path, every query
//! parameter, the host and every header named in `X-Amz-SignedHeaders`: a client that
//! sends another `content-type` or `content-length` than the one signed is refused by
//! the store with `SignatureDoesNotMatch`. The payload of a presigned URL is
//! `UNSIGNED-PAYLOAD`: the body is not known when the URL is made. Its integrity comes
//! from the signed `content-length` and, when the caller gives one, the signed
//! `x-amz-checksum-sha256`, which the store checks against the bytes it receives.
//!
//! The signing key and each signature are computed by `aws-sigv4`
//! ([`aws_sigv4::sign::v4`]). The canonical requests are written here, directly, for the
//! shapes the signer makes ([`query`] for URLs, [`headers`] for its own calls): a batch
//! of 10,000 part URLs then derives one key and hashes only what differs from one URL to
//! the next. `aws-sigv4`'s general request signer is the reference: property tests
//! check that every URL and every header set made here is the one it makes for the same
//! input (`tests.rs`), and the signing vectors of the AWS documentation and botocore
//! are reproduced. The general signer is not in the Worker itself: it is about 38 KB of
//! its compressed size, a fifth of the whole.
//!
//! This module does no I/O and reads no clock: the time is an argument, so a signature
//! made twice from the same input is the same.
//!
//! - <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>
//! - <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>

#![forbid(unsafe_code)]

pub mod encode;
pub mod headers;
pub mod query;
#[cfg(test)]
mod reference;

use std::cell::{Ref, RefCell};
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_sigv4::sign::v4::generate_signing_key;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;
use crate::time;

/// The longest validity SigV4 allows for a presigned URL: seven days.
pub const MAX_EXPIRES_IN: u32 = 604_800;

/// The name of the signing algorithm, in the string to sign and in every signature.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An access key pair, with the session token of temporary credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The access key id; it appears in every URL, so it is not secret.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary (STS) credentials, signed into the URL.
    pub session_token: Option<Secret>,
    /// The last signing key derived from this pair, kept for the rest of its day.
    signing_key: SigningKeyCache,
}

impl Credentials {
    /// An access key pair; `session_token` for temporary credentials.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token,
            signing_key: SigningKeyCache::default(),
        }
    }

    /// The signing key of `now`'s day for `region`, as an HMAC ready to sign with it,
    /// with that day's scope.
    ///
    /// A signing key depends only on the secret, the day, the region and the service, so
    /// the Worker, whose configuration lives as long as its isolate, derives it once a
    /// day per region instead of once per request: four HMACs, a tenth of the work of a
    /// presigned PUT. Only the last day and region are kept.
    fn day_key(&self, region: &str, now: DateTime<Utc>) -> Ref<'_, DayKey> {
        let date = time::basic_date(now);
        {
            let mut cached = self.signing_key.0.borrow_mut();
            let fresh = cached
                .as_ref()
                .is_some_and(|day| day.date == date && day.region == region);
            if !fresh {
                // "Derive a signing key".
                let signing_key = generate_signing_key(
                    self.secret_access_key.expose(),
                    system_time(now),
                    region,
                    "s3",
                );
                let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(signing_key.as_ref())
                    .expect("HMAC takes a key of any length");
                let scope = format!("{date}/{region}/s3/aws4_request");
                *cached = Some(DayKey {
                    keyed,
                    credential: format!("{}/{scope}", self.access_key_id),
                    scope,
                    region: region.to_owned(),
                    date,
                });
            }
        }
        Ref::map(self.signing_key.0.borrow(), |day| {
            day.as_ref().expect("the day's key was just kept")
        })
    }
}

/// A day's signing key for one region, with what else depends only on the day.
struct DayKey {
    /// `20260115`.
    date: String,
    region: String,
    /// HMAC-SHA256 keyed with the signing key, nothing fed yet.
    keyed: Hmac<Sha256>,
    /// `<date>/<region>/s3/aws4_request`.
    scope: String,
    /// `<access key id>/<scope>`.
    credential: String,
}

/// The last [`DayKey`] of a credential pair. A copy of the credentials starts without.
#[derive(Default)]
struct SigningKeyCache(RefCell<Option<DayKey>>);

impl Clone for SigningKeyCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKeyCache([redacted])")
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

impl Target {
    /// The `host` header's value: the origin without its scheme.
    fn host(&self) -> &str {
        self.origin
            .split_once("://")
            .map_or(self.origin.as_str(), |(_, host)| host)
    }
}

/// Why a request could not be signed. It says what is wrong, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignError(String);

impl fmt::Display for PresignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot presign: {}", self.0)
    }
}

impl std::error::Error for PresignError {}

/// What every signature of one request shares: who signs, for which day, region and
/// service ("the credential scope"), at which second.
struct Scope {
    /// HMAC with the day's signing key, with the string to sign's fixed start already fed
    /// in: the algorithm, the time (`20260115T123456Z`) and the scope
    /// (`<date>/<region>/s3/aws4_request`), each on its own line. What remains to feed
    /// is the hex SHA-256 of the canonical request.
    keyed: Hmac<Sha256>,
    /// `X-Amz-Date`: the signing time, `20260115T123456Z`.
    amz_date: String,
    /// `<access key id>/<date>/<region>/s3/aws4_request`.
    credential: String,
}

impl Scope {
    /// Takes the signing key (four HMACs, by `aws-sigv4`) for `region` on `now`'s day.
    fn new(credentials: &Credentials, region: &str, now: DateTime<Utc>) -> Self {
        let day = credentials.day_key(region, now);
        let amz_date = time::basic_date_time(now);
        // "Create a string to sign": its first three lines, fed to the HMAC keyed with
        // the signing key.
        let mut keyed = day.keyed.clone();
        for line in [ALGORITHM, &amz_date, &day.scope] {
            keyed.update(line.as_bytes());
            keyed.update(b"\n");
        }
        Self {
            keyed,
            credential: day.credential.clone(),
            amz_date,
        }
    }

    /// "Calculate the signature": the HMAC of the string to sign, whose last line is the
    /// canonical request's hash (lowercase hex), as lowercase hex.
    fn signature(&self, canonical_request_hash: &[u8; 64]) -> [u8; 64] {
        let mut mac = self.keyed.clone();
        mac.update(canonical_request_hash);
        hex_digest(&mac.finalize().into_bytes())
    }
}

/// The lowercase hex of a 32-byte digest, written on the stack: a part URL needs two, and
/// building them as `String`s one `char` at a time cost more than a tenth of a batch.
fn hex_digest(digest: &[u8]) -> [u8; 64] {
    let mut out = [0; 64];
    // Cannot fail: 32 bytes are exactly 64 hex digits.
    let _ = hex::encode_to_slice(digest, &mut out);
    out
}

/// The text of [`hex_digest`]'s output, which is always ASCII.
fn hex_str(hex: &[u8; 64]) -> &str {
    std::str::from_utf8(hex).unwrap_or_default()
}

/// "Create a canonical request", its headers: each name (lowercase) with its value
/// trimmed, sorted by name; and the `SignedHeaders` list of the names.
///
/// Names are unique (they come from maps), so sorting the pairs sorts by name. Pairs of
/// strings are what [`canonical_query`] sorts too: the Worker then holds one copy of the
/// sort, about 3 KB of code per element type.
fn canonical_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> (Vec<(String, String)>, String) {
    let mut canonical: Vec<(String, String)> =
        headers.map(|(n, v)| (n.to_owned(), trim_all(v))).collect();
    canonical.sort();
    let signed = canonical
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (canonical, signed)
}

/// "Create a canonical request", its query: the parameters, names and values already
/// encoded, sorted by name and then value (byte order), joined by `&`.
fn canonical_query(mut params: Vec<(String, String)>) -> String {
    params.sort();
    let mut query = String::with_capacity(512);
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            query.push('&');
        }
        query.push_str(name);
        query.push('=');
        query.push_str(value);
    }
    query
}

/// SigV4's header value rule: trim spaces at both ends and fold runs of spaces into one.
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Converts the request time for aws-sigv4. Building a `SystemTime` from the epoch is
/// safe on wasm32; only `SystemTime::now()` is not.
fn system_time(now: DateTime<Utc>) -> SystemTime {
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests;
