//! The `/s3/` routes that Uppy's `@uppy/aws-s3` plugin calls on a "companion" server.
//!
//! An Uppy user points the plugin's `endpoint` at the signer and sends the credential in
//! its `headers` option; nothing else changes. The rules are those of `/v1/`, with two
//! differences that come from what Uppy sends:
//!
//! - Uppy does not send the file's size. The signer reads it from the file's metadata
//!   (`size`), which one line of Uppy configuration adds (see README), and refuses a
//!   request without it, since every profile limits size.
//! - Uppy cuts the parts itself and does not say their size, so part URLs cannot sign a
//!   `content-length`. Instead, at completion the signer reads the parts' total size from
//!   the store and aborts an upload over the profile's limit (413) or of another size than
//!   the declared one (413 when more, 400 when fewer bytes): the declared size binds, as
//!   the signed `content-length` of a `/v1/` part does, and no such object ever appears.
//!   Uppy declares the exact size: `file.size` is its `File`'s size, and its parts cover
//!   that `File` from its first byte to its last.
//!
//! The `uploadId` Uppy gets back is the signed upload token, so the key and the owner stay
//! bound to every later call. A profile other than `default` is chosen with the metadata
//! field `profile`. Other metadata fields are not stored with the object.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::multipart::{self, Opened};
use super::uploads::{self, CreateUploadRequest};
use super::{ApiError, ErrorCode, PathParams, RequestContext};
use crate::multipart::ClientPart;
use crate::multipart::plan::MAX_PARTS;
use crate::store::Store;

/// The answer to `GET /s3/params`.
#[derive(Debug, Serialize)]
pub struct Params {
    /// Always `PUT`.
    pub method: &'static str,
    /// The presigned URL.
    pub url: String,
    /// Only `key`, which Uppy reads as the object's key; this signer makes PUT URLs, not
    /// POST policies.
    pub fields: BTreeMap<String, String>,
    /// Headers to send (the browser sets `content-length` itself).
    pub headers: BTreeMap<String, String>,
}

/// The body of `POST /s3/multipart`.
#[derive(Debug, Deserialize)]
pub struct CreateBody {
    /// The file's name.
    pub filename: String,
    /// The content type.
    #[serde(rename = "type", default)]
    pub content_type: Option<String>,
    /// Uppy's file metadata.
    #[serde(default, deserialize_with = "super::uploads::map_without_duplicates")]
    pub metadata: BTreeMap<String, Value>,
}

/// The answer to `POST /s3/multipart`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    /// The upload token, which Uppy sends back in every path.
    pub upload_id: String,
    /// The object's key.
    pub key: String,
}

/// The answer to signing one part.
#[derive(Debug, Serialize)]
pub struct SignedPart {
    /// Always `PUT`.
    pub method: &'static str,
    /// The presigned URL.
    pub url: String,
    /// Headers to send (none).
    pub headers: BTreeMap<String, String>,
    /// Seconds until the URL expires.
    pub expires: u32,
}

/// The answer to signing a batch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedBatch {
    /// URLs by part number.
    pub presigned_urls: BTreeMap<String, String>,
}

/// A part as Uppy lists it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UppyPart {
    /// The part number.
    pub part_number: u32,
    /// The size (in the list answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The ETag.
    #[serde(rename = "ETag", default)]
    pub etag: Option<String>,
}

/// The body of the complete call.
#[derive(Debug, Deserialize)]
pub struct CompleteBody {
    /// The parts.
    pub parts: Vec<UppyPart>,
}

/// The answer to the complete call.
#[derive(Debug, Serialize)]
pub struct Completed {
    /// The object's URL (without signature).
    pub location: String,
    /// The bucket's name at the store.
    pub bucket: String,
    /// The object's key.
    pub key: String,
}

fn metadata_size(metadata: &BTreeMap<String, Value>) -> Result<u64, ApiError> {
    let missing = || {
        ApiError::invalid_field(
            "metadata.size",
            "the file's size is missing: add it to the file's metadata in Uppy \
             (uppy.on('file-added', f => uppy.setFileMeta(f.id, { size: f.size })))",
        )
    };
    let invalid = || {
        ApiError::invalid_field(
            "metadata.size",
            "the file's size in metadata must be a whole number of bytes",
        )
    };
    match metadata.get("size") {
        None | Some(Value::Null) => Err(missing()),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(invalid),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// A part number as a path or query gives it: decimal digits without a sign, spaces or
/// leading zeros, from 1 to [`MAX_PARTS`].
fn part_number(text: &str) -> Option<u32> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || text.starts_with('0') || text.len() > 5 {
        return None;
    }
    text.parse().ok().filter(|n| (1..=MAX_PARTS).contains(n))
}

/// An error about an Uppy request, naming the field as Uppy sends it.
fn in_uppy_terms(error: ApiError) -> ApiError {
    let uppy_field = match error.field.as_deref() {
        Some("size") => "metadata.size",
        Some("profile") => "metadata.profile",
        Some("contentType") => "type",
        // The upload token is Uppy's `uploadId`.
        Some("token") => "uploadId",
        _ => return error,
    };
    error.with_field(uppy_field)
}

fn profile_name(metadata: &BTreeMap<String, Value>) -> Result<String, ApiError> {
    match metadata.get("profile") {
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        None | Some(Value::Null | Value::String(_)) => Ok("default".to_owned()),
        Some(_) => Err(ApiError::invalid_field(
            "metadata.profile",
            "the profile in metadata must be a profile's name, a string",
        )),
    }
}

fn upload_request(
    filename: String,
    content_type: Option<String>,
    metadata: &BTreeMap<String, Value>,
) -> Result<CreateUploadRequest, ApiError> {
    Ok(CreateUploadRequest {
        profile: profile_name(metadata)?,
        filename,
        // Uppy sends an empty type for files the browser cannot name.
        content_type: content_type
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "application/octet-stream".to_owned()),
        size: metadata_size(metadata)?,
        checksum_sha256: None,
        metadata: BTreeMap::new(),
        multipart: false,
        expires_in: None,
    })
}

/// The most parameters `GET /s3/params` reads.
const MAX_QUERY_PARAMETERS: usize = 100;

/// `GET /s3/params?filename=&type=&metadata[size]=`: one presigned PUT.
pub fn params(ctx: &RequestContext<'_>, query: &[(String, String)]) -> Result<Params, ApiError> {
    // Uppy sends a file name, a type and a file's metadata: a few dozen parameters at
    // most, so a longer query is refused before any of it is read.
    if query.len() > MAX_QUERY_PARAMETERS {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "the query has {} parameters; at most {MAX_QUERY_PARAMETERS} are accepted",
                query.len()
            ),
        ));
    }
    // Filled one entry at a time: collecting into a map sorts first, a sort more in the
    // Worker for one map. A name given twice, like any parameter read below, is refused:
    // the signer would have to pick one of two values.
    let mut metadata = BTreeMap::new();
    for (name, value) in query {
        if let Some(field) = name
            .strip_prefix("metadata[")
            .and_then(|f| f.strip_suffix(']'))
            && metadata
                .insert(field.to_owned(), Value::String(value.clone()))
                .is_some()
        {
            return Err(ApiError::invalid_field(
                name.clone(),
                format!("the query gives `{name}` twice"),
            ));
        }
    }
    let filename = super::query_value(query, "filename")?
        .ok_or_else(|| ApiError::invalid_field("filename", "filename is missing"))?;
    let file_type = super::query_value(query, "type")?;
    let request = upload_request(filename.to_owned(), file_type.map(str::to_owned), &metadata)?;
    let plan = uploads::plan(ctx, &request).map_err(in_uppy_terms)?;
    let single = uploads::sign_single(ctx, &plan).map_err(in_uppy_terms)?;
    let mut headers = single.headers;
    headers.remove("content-length");
    let mut fields = BTreeMap::new();
    fields.insert("key".to_owned(), single.key);
    Ok(Params {
        method: "PUT",
        url: single.url,
        fields,
        headers,
    })
}

/// `POST /s3/multipart`: creates the upload; its token is Uppy's `uploadId`.
pub async fn create(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    body: CreateBody,
) -> Result<Created, ApiError> {
    let request = upload_request(body.filename, body.content_type, &body.metadata)?;
    if request.size == 0 {
        return Err(ApiError::invalid_field(
            "metadata.size",
            "a multipart upload needs at least 1 byte; send an empty file with GET /s3/params",
        ));
    }
    let plan = uploads::plan(ctx, &request).map_err(in_uppy_terms)?;
    plan.profile
        .check_size(plan.size)
        .map_err(|e| in_uppy_terms(e.into()))?;
    let (token, sealed) = multipart::create(ctx, store, &plan, None).await?;
    Ok(Created {
        upload_id: sealed,
        key: token.key,
    })
}

/// Opens the token in the path, and checks the `key` query parameter against it.
pub fn open<'a>(
    ctx: &RequestContext<'a>,
    params: &PathParams,
    query: &[(String, String)],
) -> Result<Opened<'a>, ApiError> {
    let token = params.upload_id.as_deref().unwrap_or_default();
    let opened = multipart::open(ctx, token).map_err(in_uppy_terms)?;
    let key = super::query_value(query, "key")?;
    if key.is_some_and(|k| k != opened.token.key) {
        return Err(ApiError::new(
            super::ErrorCode::Forbidden,
            "the key does not belong to this upload",
        )
        .with_field("key"));
    }
    Ok(opened)
}

/// `GET /s3/multipart/{uploadId}/{partNumber}`.
pub async fn sign_part(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
    number_text: &str,
) -> Result<SignedPart, ApiError> {
    let out_of_range = || {
        ApiError::invalid_field(
            "partNumber",
            format!("the part number must be 1 to {MAX_PARTS}"),
        )
    };
    let number = part_number(number_text).ok_or_else(out_of_range)?;
    let signed = multipart::sign_parts(ctx, store, upload, &[number]).await?;
    let part = signed.parts.into_iter().next().ok_or_else(out_of_range)?;
    Ok(SignedPart {
        method: "PUT",
        url: part.url,
        headers: part.headers,
        expires: upload.profile.expires_in,
    })
}

/// `GET /s3/multipart/{uploadId}/batch?partNumbers=1,2,3`.
pub async fn sign_batch(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
    query: &[(String, String)],
) -> Result<SignedBatch, ApiError> {
    let list = super::query_value(query, "partNumbers")?.ok_or_else(|| {
        ApiError::invalid_field("partNumbers", "the partNumbers query parameter is missing")
    })?;
    let numbers = list
        .split(',')
        .map(|text| {
            part_number(text).ok_or_else(|| {
                let shown: String = text.chars().take(24).collect();
                ApiError::invalid_field(
                    "partNumbers",
                    format!(
                        "partNumbers must be part numbers from 1 to {MAX_PARTS} separated by \
                         commas; `{shown}` is not one"
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signed = multipart::sign_parts(ctx, store, upload, &numbers).await?;
    let mut presigned_urls = BTreeMap::new();
    for part in signed.parts {
        presigned_urls.insert(part.part_number.to_string(), part.url);
    }
    Ok(SignedBatch { presigned_urls })
}

/// `GET /s3/multipart/{uploadId}`.
pub async fn list_parts(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
) -> Result<Vec<UppyPart>, ApiError> {
    let parts = multipart::list_parts(ctx, store, upload).await?;
    Ok(parts
        .into_iter()
        .map(|p| UppyPart {
            part_number: p.part_number,
            size: Some(p.size),
            etag: Some(p.etag),
        })
        .collect())
}

/// `POST /s3/multipart/{uploadId}/complete`.
pub async fn complete(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
    body: CompleteBody,
) -> Result<Completed, ApiError> {
    let parts: Vec<ClientPart> = body
        .parts
        .into_iter()
        .map(|p| ClientPart {
            part_number: p.part_number,
            etag: p.etag,
        })
        .collect();
    let done = multipart::complete(ctx, store, upload, &parts).await?;
    Ok(Completed {
        location: format!("{}{}", upload.target.origin, upload.target.path),
        bucket: done.bucket,
        key: done.key,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::auth::Principal;
    use crate::config::tests::fixture;
    use crate::config::{Config, RequestOrigin};

    #[test]
    fn a_query_name_given_twice_is_refused_and_named() {
        let (config, origin, principal) = context_parts();
        let ctx = context(&config, &origin, &principal);
        let query: Vec<(String, String)> = [
            ("filename", "a.png"),
            ("type", "image/png"),
            ("metadata[size]", "4"),
            ("metadata[size]", "5000"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();

        let error = params(&ctx, &query).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.field.as_deref(), Some("metadata[size]"));
    }

    #[test]
    fn a_query_of_more_than_100_parameters_is_refused_with_its_count() {
        let (config, origin, principal) = context_parts();
        let ctx = context(&config, &origin, &principal);
        let mut query: Vec<(String, String)> = vec![
            ("filename".into(), "a.png".into()),
            ("type".into(), "image/png".into()),
            ("metadata[size]".into(), "4".into()),
        ];
        query.extend((0..98).map(|i| (format!("metadata[m{i}]"), "x".to_owned())));

        let error = params(&ctx, &query).unwrap_err();
        assert_eq!(error.status(), 400);
        assert!(
            error.message.contains("101 parameters"),
            "{}",
            error.message
        );
        query.pop();
        assert!(params(&ctx, &query).is_ok());
    }

    #[test]
    fn part_numbers_are_plain_digits_from_1_to_10000() {
        for good in ["1", "9", "10", "9999", "10000"] {
            assert_eq!(part_number(good), good.parse().ok(), "{good}");
        }
        for bad in [
            "",
            "0",
            "01",
            "+1",
            "-1",
            " 2",
            "2 ",
            "1e3",
            "10001",
            "99999999999",
            "1.0",
        ] {
            assert_eq!(part_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn errors_about_the_file_name_the_fields_uppy_sent() {
        let (config, origin, principal) = context_parts();
        let ctx = context(&config, &origin, &principal);
        let query = |file_type: &str, size: &str| -> Vec<(String, String)> {
            vec![
                ("filename".into(), "a.png".into()),
                ("type".into(), file_type.into()),
                ("metadata[size]".into(), size.into()),
            ]
        };
        let refused_type = params(&ctx, &query("application/x-msdownload", "4")).unwrap_err();
        assert_eq!(
            (refused_type.status(), refused_type.field.as_deref()),
            (415, Some("type"))
        );
        let too_large = params(&ctx, &query("image/png", "99999999999999")).unwrap_err();
        assert_eq!(
            (too_large.status(), too_large.field.as_deref()),
            (413, Some("metadata.size"))
        );
    }

    #[test]
    fn a_profile_in_metadata_that_is_not_a_string_is_refused_and_named() {
        let metadata = |profile: Value| -> BTreeMap<String, Value> {
            [
                ("size".to_owned(), Value::from(4)),
                ("profile".to_owned(), profile),
            ]
            .into()
        };
        for bad in [Value::from(7), Value::from(true), serde_json::json!(["a"])] {
            let error = upload_request("a.png".into(), None, &metadata(bad)).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("metadata.profile"));
        }
        for (given, chosen) in [
            (Value::Null, "default"),
            (Value::from("reports"), "reports"),
        ] {
            let request = upload_request("a.png".into(), None, &metadata(given)).unwrap();
            assert_eq!(request.profile, chosen);
        }
    }

    fn context_parts() -> (Config, RequestOrigin, Principal) {
        let config = Config::load(&fixture()).unwrap();
        let origin = RequestOrigin::parse("http://127.0.0.1:8787/s3/params").unwrap();
        let principal = Principal {
            subject: "demo".into(),
            credential: "api-key:demo".into(),
            profiles: None,
            namespace: None,
        };
        (config, origin, principal)
    }

    fn context<'a>(
        config: &'a Config,
        origin: &'a RequestOrigin,
        principal: &'a Principal,
    ) -> RequestContext<'a> {
        RequestContext {
            config,
            principal,
            origin,
            now: Utc
                .with_ymd_and_hms(2026, 1, 15, 12, 0, 0)
                .single()
                .unwrap(),
            random: [7; 16],
        }
    }

    #[test]
    fn uppy_metadata_with_a_name_given_twice_is_refused_and_named() {
        let body = br#"{"filename": "a.png", "type": "image/png",
                        "metadata": {"size": 4, "profile": "x", "profile": "default"}}"#;
        let error = crate::api::json::parse::<CreateBody>(body).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.field.as_deref(), Some("metadata.profile"));
    }
}
