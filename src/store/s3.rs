//! The S3 operations of a multipart upload, as signed requests and parsed answers.
//!
//! | operation | request |
//! |---|---|
//! | CreateMultipartUpload | `POST /<key>?uploads` |
//! | ListParts | `GET /<key>?uploadId=&part-number-marker=` |
//! | CompleteMultipartUpload | `POST /<key>?uploadId=` with the part list in XML |
//! | AbortMultipartUpload | `DELETE /<key>?uploadId=` |
//! | HeadObject | `HEAD /<key>` |

use chrono::{DateTime, Utc};

use super::xml::{Answer, child_text, escape};
use super::{StoreError, StoreRequest, StoreResponse};
use crate::presign::headers::{self, HeaderRequest};
use crate::presign::{Credentials, Target, encode};

/// What a request is about: where, with which credentials, at what time.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The object's URL.
    pub target: &'a Target,
    /// The bucket's credentials.
    pub credentials: &'a Credentials,
    /// The signing time.
    pub now: DateTime<Utc>,
}

/// A part the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// Its number.
    pub part_number: u32,
    /// Its ETag, quoted as the store gives it.
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One page of ListParts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsPage {
    /// The parts on this page.
    pub parts: Vec<StoredPart>,
    /// The marker of the next page, when there is one.
    pub next_marker: Option<u32>,
}

/// Signs a request in the `Authorization` header, with the body's SHA-256 in
/// `x-amz-content-sha256` as S3 requires.
fn signed(
    call: Call<'_>,
    method: &'static str,
    query: &[(&str, &str)],
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    idempotent: bool,
) -> StoreRequest {
    let mut url = format!("{}{}", call.target.origin, call.target.path);
    let mut query_text = String::new();
    for (name, value) in query {
        encode::push_query_pair(&mut query_text, name, value);
    }
    if !query_text.is_empty() {
        url.push('?');
        url.push_str(&query_text);
    }

    let own: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let signature = headers::sign(&HeaderRequest {
        method,
        target: call.target,
        query,
        headers: &own,
        body: &body,
        credentials: call.credentials,
        now: call.now,
    });
    let mut all_headers = headers;
    all_headers.extend(signature);
    StoreRequest {
        method,
        url,
        headers: all_headers,
        body,
        idempotent,
    }
}

/// CreateMultipartUpload, with the object's content type and metadata.
///
/// It is retried after a network error or a 5xx like the requests that are safe to
/// repeat. When the store did act on a try whose answer was lost, the store keeps an
/// upload with no parts that nothing refers to: the client's own retry of
/// `POST /v1/uploads` would leave the same, and a lifecycle rule (or R2's default of
/// seven days) removes it. Not retrying would only turn one lost answer into an error.
pub fn create_multipart(
    call: Call<'_>,
    content_type: &str,
    metadata: &[(String, String)],
) -> StoreRequest {
    let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
    for (name, value) in metadata {
        headers.push((format!("x-amz-meta-{name}"), value.clone()));
    }
    signed(call, "POST", &[("uploads", "")], headers, Vec::new(), true)
}

/// The longest upload id taken from a store, in bytes. S3's and R2's are a few hundred;
/// the upload token carries the id, and its length limit counts on this one.
pub const MAX_UPLOAD_ID_BYTES: usize = 1024;

/// Reads the upload id from CreateMultipartUpload's answer.
pub fn parse_create(response: &StoreResponse) -> Result<String, StoreError> {
    let answer = success(response)?;
    let id = answer
        .text("UploadId")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| malformed(response, "no UploadId"))?;
    if id.len() > MAX_UPLOAD_ID_BYTES {
        return Err(malformed(response, "an UploadId over 1024 bytes"));
    }
    Ok(id)
}

/// One page of ListParts, at most `max_parts` long, after part `marker`.
pub fn list_parts(call: Call<'_>, upload_id: &str, marker: u32, max_parts: u32) -> StoreRequest {
    let marker = marker.to_string();
    let max_parts = max_parts.to_string();
    let query = [
        ("max-parts", max_parts.as_str()),
        ("part-number-marker", marker.as_str()),
        ("uploadId", upload_id),
    ];
    signed(call, "GET", &query, Vec::new(), Vec::new(), true)
}

/// Reads one page of ListParts.
pub fn parse_list_parts(response: &StoreResponse) -> Result<PartsPage, StoreError> {
    let answer = success(response)?;
    let mut parts = Vec::new();
    for node in answer.children("Part") {
        let number = child_text(node, "PartNumber").and_then(|t| t.trim().parse().ok());
        let size = child_text(node, "Size").and_then(|t| t.trim().parse().ok());
        let etag = child_text(node, "ETag");
        match (number, size, etag) {
            (Some(part_number), Some(size), Some(etag)) => parts.push(StoredPart {
                part_number,
                etag,
                size,
            }),
            _ => return Err(malformed(response, "a Part without number, size or ETag")),
        }
    }
    let truncated = answer
        .text("IsTruncated")
        .is_some_and(|t| t.trim() == "true");
    let next_marker = answer
        .text("NextPartNumberMarker")
        .and_then(|t| t.trim().parse().ok())
        .filter(|_| truncated);
    if truncated && next_marker.is_none() {
        return Err(malformed(
            response,
            "a truncated list without NextPartNumberMarker",
        ));
    }
    Ok(PartsPage { parts, next_marker })
}

/// CompleteMultipartUpload with `(part number, ETag)` pairs, sorted, ETags quoted.
pub fn complete(call: Call<'_>, upload_id: &str, parts: &[(u32, String)]) -> StoreRequest {
    let mut body = String::from("<CompleteMultipartUpload>");
    for (number, etag) in parts {
        body.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
            escape(etag)
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    let headers = vec![("content-type".to_owned(), "application/xml".to_owned())];
    signed(
        call,
        "POST",
        &[("uploadId", upload_id)],
        headers,
        body.into_bytes(),
        true,
    )
}

/// Reads CompleteMultipartUpload's answer: the object's ETag. S3 may answer 200 with an
/// `<Error>` body when the completion failed after it began, so the body is checked too.
pub fn parse_complete(response: &StoreResponse) -> Result<String, StoreError> {
    let answer = success(response)?;
    answer
        .text("ETag")
        .ok_or_else(|| malformed(response, "no ETag"))
}

/// AbortMultipartUpload.
pub fn abort(call: Call<'_>, upload_id: &str) -> StoreRequest {
    signed(
        call,
        "DELETE",
        &[("uploadId", upload_id)],
        Vec::new(),
        Vec::new(),
        true,
    )
}

/// Reads AbortMultipartUpload's answer.
pub fn parse_abort(response: &StoreResponse) -> Result<(), StoreError> {
    success(response).map(|_| ())
}

/// DeleteObject.
pub fn delete(call: Call<'_>) -> StoreRequest {
    signed(call, "DELETE", &[], Vec::new(), Vec::new(), true)
}

/// HeadObject.
pub fn head(call: Call<'_>) -> StoreRequest {
    signed(call, "HEAD", &[], Vec::new(), Vec::new(), true)
}

/// The ETag and size of an object, or `None` when it does not exist.
pub fn parse_head(response: &StoreResponse) -> Result<Option<(String, u64)>, StoreError> {
    match response.status {
        200 => {
            let etag = response.header("etag").unwrap_or_default().to_owned();
            let size = response
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            Ok(Some((etag, size)))
        }
        404 => Ok(None),
        status => Err(StoreError {
            status,
            code: format!("HTTP {status}"),
            message: String::new(),
        }),
    }
}

/// The parsed body of a successful answer, or the store's error.
fn success(response: &StoreResponse) -> Result<Answer, StoreError> {
    let text = std::str::from_utf8(&response.body).unwrap_or_default();
    let answer = Answer::parse(text);
    let error = |answer: Option<&Answer>| StoreError {
        status: response.status,
        code: answer
            .and_then(|a| a.text("Code"))
            .unwrap_or_else(|| format!("HTTP {}", response.status)),
        message: answer.and_then(|a| a.text("Message")).unwrap_or_default(),
    };
    if !(200..300).contains(&response.status) {
        return Err(error(answer.as_ref()));
    }
    if text.trim().is_empty() {
        // Abort answers 204 with no body; an empty answer has nothing more to say.
        return Answer::parse("<Empty/>").ok_or_else(|| error(None));
    }
    match answer {
        Some(a) if a.root_name() == "Error" => Err(error(Some(&a))),
        Some(a) => Ok(a),
        None => Err(malformed(response, "the body is not XML")),
    }
}

fn malformed(response: &StoreResponse, what: &str) -> StoreError {
    StoreError {
        status: response.status,
        code: "MalformedAnswer".to_owned(),
        message: format!("the store's answer has {what}"),
    }
}

#[cfg(test)]
mod tests;
