//! Presigning many URLs in one request without repeating work.
//!
//! [`super::presign`] runs the whole of `aws-sigv4` for each URL: it parses the URL,
//! derives the signing key (four HMACs), builds header maps and sorts the query. For a
//! batch of part URLs all of that is the same from one URL to the next except the part
//! number and the length. A [`BatchSigner`] does the shared work once (the signing key
//! from `aws-sigv4`, the credential scope, the date) and then, per URL, writes the
//! canonical request of SigV4 directly (the steps of "Create a canonical request",
//! "Create a string to sign" and "Calculate the signature" of the SigV4 spec).
//!
//! Every URL it makes is identical to what [`super::presign`] makes for the same input; a
//! property test in `tests.rs` checks that over random keys, part numbers and headers.
//!
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>

use std::fmt::Write as _;

use aws_sigv4::sign::v4::generate_signing_key;
use chrono::{DateTime, Datelike, Timelike, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::encode::encode_query_component;
use super::{Credentials, MAX_EXPIRES_IN, PresignError, Target, system_time};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Signs any number of URLs for one bucket, one time and one expiry.
pub struct BatchSigner {
    /// HMAC with the signing key, with the string to sign's fixed start already fed in:
    /// the algorithm, the time (`20260115T123456Z`) and the scope
    /// (`<date>/<region>/s3/aws4_request`), each on its own line.
    keyed: Hmac<Sha256>,
    /// The signing parameters that are the same in every URL, encoded and sorted.
    auth_params: Vec<(String, String)>,
}

impl BatchSigner {
    /// Prepares a signer: derives the signing key once.
    pub fn new(
        credentials: &Credentials,
        region: &str,
        now: DateTime<Utc>,
        expires_in: u32,
    ) -> Result<Self, PresignError> {
        if expires_in == 0 || expires_in > MAX_EXPIRES_IN {
            return Err(PresignError(format!(
                "expiry of {expires_in} s is outside 1 to {MAX_EXPIRES_IN} s"
            )));
        }
        let date = format!("{:04}{:02}{:02}", now.year(), now.month(), now.day());
        let amz_date = format!(
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let scope = format!("{date}/{region}/s3/aws4_request");
        let signing_key = generate_signing_key(
            credentials.secret_access_key.expose(),
            system_time(now),
            region,
            "s3",
        );

        let mut keyed = Hmac::<Sha256>::new_from_slice(signing_key.as_ref())
            .map_err(|_| PresignError("the signing key is empty".to_owned()))?;
        keyed.update(format!("{ALGORITHM}\n{amz_date}\n{scope}\n").as_bytes());
        let credential = format!("{}/{scope}", credentials.access_key_id);
        let mut auth_params = vec![
            ("X-Amz-Algorithm", ALGORITHM.to_owned()),
            ("X-Amz-Credential", credential),
            ("X-Amz-Date", amz_date.clone()),
            ("X-Amz-Expires", expires_in.to_string()),
        ];
        if let Some(token) = &credentials.session_token {
            auth_params.push(("X-Amz-Security-Token", token.expose().to_owned()));
        }
        let auth_params = auth_params
            .into_iter()
            .map(|(n, v)| (n.to_owned(), encode_query_component(&v)))
            .collect();
        Ok(Self { keyed, auth_params })
    }

    /// Signs one request. `query` holds the operation's parameters, raw; `headers` the
    /// headers the client must send, names lowercase.
    pub fn sign(
        &self,
        method: &str,
        target: &Target,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> String {
        // Canonical headers: host and the given ones, sorted by name, values trimmed.
        let host = target
            .origin
            .split_once("://")
            .map_or(target.origin.as_str(), |(_, h)| h);
        let mut canonical_headers: Vec<(&str, String)> = headers
            .iter()
            .map(|(n, v)| (*n, trim_all(v)))
            .chain(std::iter::once(("host", host.to_owned())))
            .collect();
        canonical_headers.sort_by(|a, b| a.0.cmp(b.0));
        let signed_headers = canonical_headers
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(";");

        // Canonical query: every parameter but the signature, encoded, sorted by bytes.
        let mut params: Vec<(String, String)> = query
            .iter()
            .map(|(n, v)| (encode_query_component(n), encode_query_component(v)))
            .chain(self.auth_params.iter().cloned())
            .chain(std::iter::once((
                "X-Amz-SignedHeaders".to_owned(),
                encode_query_component(&signed_headers),
            )))
            .collect();
        params.sort();
        let mut canonical_query = String::with_capacity(512);
        for (i, (name, value)) in params.iter().enumerate() {
            if i > 0 {
                canonical_query.push('&');
            }
            canonical_query.push_str(name);
            canonical_query.push('=');
            canonical_query.push_str(value);
        }

        // The canonical request, then the string to sign, then the signature.
        let mut request = String::with_capacity(1024);
        let _ = write!(request, "{method}\n{}\n{canonical_query}\n", target.path);
        for (name, value) in &canonical_headers {
            let _ = writeln!(request, "{name}:{value}");
        }
        let _ = write!(request, "\n{signed_headers}\nUNSIGNED-PAYLOAD");
        let request_hash = hex_digest(&Sha256::digest(request.as_bytes()));
        let mut mac = self.keyed.clone();
        mac.update(&request_hash);
        let signature = hex_digest(&mac.finalize().into_bytes());

        // The URL: the canonical query is a valid query, so it is reused as is.
        let mut url = String::with_capacity(
            target.origin.len() + target.path.len() + canonical_query.len() + 90,
        );
        url.push_str(&target.origin);
        url.push_str(&target.path);
        url.push('?');
        url.push_str(&canonical_query);
        url.push_str("&X-Amz-Signature=");
        url.push_str(std::str::from_utf8(&signature).unwrap_or_default());
        url
    }
}

impl BatchSigner {
    /// Prepares the signing of UploadPart URLs of one upload. With `with_length`, each URL
    /// signs its part's `content-length`.
    pub fn parts<'a>(
        &'a self,
        target: &'a Target,
        upload_id: &str,
        with_length: bool,
    ) -> PartSigner<'a> {
        let host = target
            .origin
            .split_once("://")
            .map_or(target.origin.as_str(), |(_, h)| h)
            .to_owned();
        let signed_headers = if with_length {
            "content-length;host"
        } else {
            "host"
        };

        // The canonical query sorts by bytes: every X-Amz-* parameter (uppercase X) comes
        // before partNumber, which comes before uploadId. So everything up to the part
        // number is the same for every part.
        let mut common_query = String::with_capacity(512);
        for (name, value) in &self.auth_params {
            common_query.push_str(name);
            common_query.push('=');
            common_query.push_str(value);
            common_query.push('&');
        }
        common_query.push_str("X-Amz-SignedHeaders=");
        common_query.push_str(&encode_query_component(signed_headers));
        common_query.push_str("&partNumber=");

        let mut prefix = Sha256::new();
        prefix.update(format!("PUT\n{}\n{common_query}", target.path).as_bytes());
        PartSigner {
            signer: self,
            prefix,
            url_prefix: format!("{}{}?{common_query}", target.origin, target.path),
            upload_id: encode_query_component(upload_id),
            host,
            signed_headers,
            with_length,
        }
    }
}

/// Signs the UploadPart URLs of one upload. The part of the canonical request that every
/// part shares is hashed once; each URL then hashes only its own end and signs it with
/// the HMAC state that already holds the signing key and the string to sign's start.
pub struct PartSigner<'a> {
    signer: &'a BatchSigner,
    prefix: Sha256,
    url_prefix: String,
    upload_id: String,
    host: String,
    signed_headers: &'static str,
    with_length: bool,
}

impl PartSigner<'_> {
    /// The URL of part `number`, whose body is `length` bytes.
    pub fn sign(&self, number: u32, length: u64) -> String {
        let mut digest = self.prefix.clone();
        let number = number.to_string();
        digest.update(number.as_bytes());
        digest.update(b"&uploadId=");
        digest.update(self.upload_id.as_bytes());
        digest.update(b"\n");
        if self.with_length {
            digest.update(b"content-length:");
            digest.update(length.to_string().as_bytes());
            digest.update(b"\n");
        }
        digest.update(b"host:");
        digest.update(self.host.as_bytes());
        digest.update(b"\n\n");
        digest.update(self.signed_headers.as_bytes());
        digest.update(b"\nUNSIGNED-PAYLOAD");
        let request_hash = hex_digest(&digest.finalize());

        let mut mac = self.signer.keyed.clone();
        mac.update(&request_hash);
        let signature = hex_digest(&mac.finalize().into_bytes());

        let mut url = String::with_capacity(self.url_prefix.len() + self.upload_id.len() + 100);
        url.push_str(&self.url_prefix);
        url.push_str(&number);
        url.push_str("&uploadId=");
        url.push_str(&self.upload_id);
        url.push_str("&X-Amz-Signature=");
        url.push_str(std::str::from_utf8(&signature).unwrap_or_default());
        url
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
