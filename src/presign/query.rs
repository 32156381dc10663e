//! Presigned URLs: SigV4 in the query string, many URLs per request without repeating
//! work.
//!
//! For a batch of part URLs everything is the same from one URL to the next except the
//! part number and the length. A [`BatchSigner`] does the shared work once (the signing
//! key, the credential scope, the date) and then, per URL, writes the canonical request
//! of SigV4 directly (the steps "Create a canonical request", "Create a string to sign"
//! and "Calculate the signature" of the SigV4 spec). A [`PartSigner`] goes further for
//! UploadPart: the start of the canonical request, up to the part number, is hashed once
//! for the whole batch.
//!
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::encode::encode_query_component;
use super::{
    ALGORITHM, Credentials, MAX_EXPIRES_IN, PresignError, Scope, Target, canonical_headers,
    canonical_query, hex_digest, hex_str,
};

/// Signs any number of URLs for one bucket, one time and one expiry.
pub struct BatchSigner {
    scope: Scope,
    /// The signing parameters that are the same in every URL, encoded and sorted.
    auth_params: Vec<(String, String)>,
}

impl BatchSigner {
    /// Prepares a signer: derives the signing key once. The expiry must be 1 to
    /// [`MAX_EXPIRES_IN`] seconds.
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
        let scope = Scope::new(credentials, region, now);

        let mut auth_params = vec![
            ("X-Amz-Algorithm", ALGORITHM.to_owned()),
            ("X-Amz-Credential", scope.credential.clone()),
            ("X-Amz-Date", scope.amz_date.clone()),
            ("X-Amz-Expires", expires_in.to_string()),
        ];
        if let Some(token) = &credentials.session_token {
            auth_params.push(("X-Amz-Security-Token", token.expose().to_owned()));
        }
        let auth_params = auth_params
            .into_iter()
            .map(|(n, v)| (n.to_owned(), encode_query_component(&v)))
            .collect();
        Ok(Self { scope, auth_params })
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
        // Canonical headers: host and the given ones.
        let (canonical_headers, signed_headers) = canonical_headers(
            headers
                .iter()
                .copied()
                .chain(std::iter::once(("host", target.host()))),
        );

        // Canonical query: every parameter but the signature.
        let params: Vec<(String, String)> = query
            .iter()
            .map(|(n, v)| (encode_query_component(n), encode_query_component(v)))
            .chain(self.auth_params.iter().cloned())
            .chain(std::iter::once((
                "X-Amz-SignedHeaders".to_owned(),
                encode_query_component(&signed_headers),
            )))
            .collect();
        let canonical_query = canonical_query(params);

        // The canonical request, then the string to sign, then the signature.
        let mut request = String::with_capacity(1024);
        let _ = write!(request, "{method}\n{}\n{canonical_query}\n", target.path);
        for (name, value) in &canonical_headers {
            let _ = writeln!(request, "{name}:{value}");
        }
        let _ = write!(request, "\n{signed_headers}\nUNSIGNED-PAYLOAD");
        let request_hash = hex_digest(&Sha256::digest(request.as_bytes()));
        let signature = self.scope.signature(&request_hash);

        // The URL: the canonical query is a valid query, so it is reused as is.
        let mut url = String::with_capacity(
            target.origin.len() + target.path.len() + canonical_query.len() + 90,
        );
        url.push_str(&target.origin);
        url.push_str(&target.path);
        url.push('?');
        url.push_str(&canonical_query);
        url.push_str("&X-Amz-Signature=");
        url.push_str(hex_str(&signature));
        url
    }

    /// Prepares the signing of UploadPart URLs of one upload. With `with_length`, each URL
    /// signs its part's `content-length`.
    pub fn parts<'a>(
        &'a self,
        target: &'a Target,
        upload_id: &str,
        with_length: bool,
    ) -> PartSigner<'a> {
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
            host: target.host().to_owned(),
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
        let signature = self.signer.scope.signature(&request_hash);

        let mut url = String::with_capacity(self.url_prefix.len() + self.upload_id.len() + 100);
        url.push_str(&self.url_prefix);
        url.push_str(&number);
        url.push_str("&uploadId=");
        url.push_str(&self.upload_id);
        url.push_str("&X-Amz-Signature=");
        url.push_str(hex_str(&signature));
        url
    }
}
