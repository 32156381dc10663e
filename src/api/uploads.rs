//! `POST /v1/uploads`: decide where an upload goes and sign exactly that.
//!
//! The profile decides the bucket, the key (from its template), the allowed types and
//! sizes, the expiry and the metadata. A single upload gets one presigned PUT whose
//! signature covers every header the client must send: `content-type`,
//! `content-length`, `x-amz-checksum-sha256` when the client gives a checksum, the
//! `x-amz-meta-*` headers, and `if-none-match: *` when the profile forbids overwriting.
//! A store refuses a body of another size, type or checksum, and (for `if-none-match`)
//! a key that already exists.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use base64ct::{Base64, Encoding};
use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::{ApiError, ErrorCode, RequestContext};
use crate::config::Bucket;
use crate::policy::Profile;
use crate::policy::key::{KeyError, KeyInputs};
use crate::presign::query::BatchSigner;
use crate::time::rfc3339;

/// The request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUploadRequest {
    /// The profile's name; `default` when absent.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// The file's name, as the user knows it.
    pub filename: String,
    /// The content type.
    pub content_type: String,
    /// The size in bytes.
    pub size: u64,
    /// Base64 of the SHA-256 of the body, for the store to check.
    pub checksum_sha256: Option<String>,
    /// User metadata to store with the object.
    #[serde(default, deserialize_with = "map_without_duplicates")]
    pub metadata: BTreeMap<String, String>,
    /// Ask for a multipart upload whatever the size.
    #[serde(default)]
    pub multipart: bool,
    /// The URL's validity in seconds, within the profile's bounds.
    pub expires_in: Option<serde_json::Value>,
}

fn default_profile() -> String {
    "default".to_owned()
}

/// Reads a JSON object of strings, refusing a name given twice: a map would keep the last
/// value silently, and the client may have meant the first.
pub(crate) fn map_without_duplicates<'de, D, V>(
    deserializer: D,
) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Entries<V>(std::marker::PhantomData<V>);

    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Entries<V> {
        type Value = BTreeMap<String, V>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("an object")
        }

        fn visit_map<A>(self, mut entries: A) -> Result<Self::Value, A::Error>
        where
            A: serde::de::MapAccess<'de>,
        {
            // Refused as soon as the name is read, so that the error's position (which
            // crate::json turns into its path) is at the name given twice.
            let mut map = BTreeMap::new();
            while let Some(name) = entries.next_key::<String>()? {
                if map.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate field `{name}`"
                    )));
                }
                let value = entries.next_value()?;
                map.insert(name, value);
            }
            Ok(map)
        }
    }

    deserializer.deserialize_map(Entries(std::marker::PhantomData))
}

/// The answer for an upload that fits in one request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SingleUpload {
    /// Always `single`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The bucket's name at the store.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// Always `PUT`.
    pub method: &'static str,
    /// The presigned URL.
    pub url: String,
    /// Headers the client must send exactly as given.
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: String,
}

/// A request checked against its profile, ready to be signed.
#[derive(Debug, Clone)]
pub struct PlannedUpload<'a> {
    /// The profile that allowed it.
    pub profile: &'a Profile,
    /// The bucket it goes to.
    pub bucket: &'a Bucket,
    /// The object's key.
    pub key: String,
    /// The content type to sign.
    pub content_type: String,
    /// The declared size.
    pub size: u64,
    /// The base64 SHA-256, if given.
    pub checksum_sha256: Option<String>,
    /// The metadata, profile's and client's.
    pub metadata: BTreeMap<String, String>,
    /// The URL's validity in seconds.
    pub expires_in: u32,
}

/// Finds the profile a request names and checks that the caller may use it.
pub fn profile_for<'a>(
    ctx: &RequestContext<'a>,
    name: &str,
) -> Result<(&'a Profile, &'a Bucket), ApiError> {
    let profile = ctx.config.profiles.get(name).ok_or_else(|| {
        let message = if name.len() <= 64 {
            format!("there is no profile `{name}`")
        } else {
            "there is no profile of that name".to_owned()
        };
        ApiError::new(ErrorCode::NotFound, message).with_field("profile")
    })?;
    if !ctx.principal.may_use_profile(name) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this credential may not use the profile `{name}`"),
        )
        .with_field("profile"));
    }
    let bucket = ctx.config.buckets.get(&profile.bucket).ok_or_else(|| {
        ApiError::from(crate::config::ConfigError::new(
            format!("PROFILES.{name}.bucket"),
            "names an unknown bucket",
        ))
    })?;
    Ok((profile, bucket))
}

/// Checks a request against its profile and decides the key.
pub fn plan<'a>(
    ctx: &RequestContext<'a>,
    request: &CreateUploadRequest,
) -> Result<PlannedUpload<'a>, ApiError> {
    let (profile, bucket) = profile_for(ctx, &request.profile)?;

    if request.filename.trim().is_empty() || request.filename.len() > 1024 {
        return Err(ApiError::invalid_field(
            "filename",
            "filename must be 1 to 1024 bytes and not only spaces",
        ));
    }
    let content_type = profile.check_content_type(&request.content_type)?;
    if let Some(checksum) = &request.checksum_sha256 {
        check_sha256(checksum)?;
    }
    let metadata = profile.metadata_for(&request.metadata)?;
    let expires_in = super::downloads::expiry_seconds(
        request.expires_in.as_ref(),
        profile.expires_in,
        profile.max_expires_in,
    )?;

    let key = profile
        .key_template
        .render(&KeyInputs {
            owner: &ctx.principal.owner(),
            filename: &request.filename,
            random: ctx.random,
            now: ctx.now,
        })
        .map_err(|e| match e {
            KeyError::TooLong => ApiError::invalid_field(
                "filename",
                "the object key made from this filename is longer than 1024 bytes; \
                 use a shorter filename",
            ),
            KeyError::Invalid(why) => ApiError::invalid_field("filename", why),
        })?;

    Ok(PlannedUpload {
        profile,
        bucket,
        key,
        content_type,
        size: request.size,
        checksum_sha256: request.checksum_sha256.clone(),
        metadata,
        expires_in,
    })
}

/// Signs a single PUT for a planned upload.
pub fn sign_single(
    ctx: &RequestContext<'_>,
    plan: &PlannedUpload<'_>,
) -> Result<SingleUpload, ApiError> {
    plan.profile.check_single_size(plan.size)?;

    let mut headers = BTreeMap::new();
    headers.insert("content-type".to_owned(), plan.content_type.clone());
    headers.insert("content-length".to_owned(), plan.size.to_string());
    if let Some(checksum) = &plan.checksum_sha256 {
        headers.insert("x-amz-checksum-sha256".to_owned(), checksum.clone());
    }
    if !plan.profile.overwrite {
        headers.insert("if-none-match".to_owned(), "*".to_owned());
    }
    for (name, value) in &plan.metadata {
        headers.insert(format!("x-amz-meta-{name}"), value.clone());
    }

    let target = plan.bucket.target(&plan.key, ctx.origin)?;
    let signed: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let url = BatchSigner::new(
        &plan.bucket.credentials,
        &target.region,
        ctx.now,
        plan.expires_in,
    )
    .map_err(|e| {
        ApiError::new(
            ErrorCode::ConfigInvalid,
            format!(
                "the upload could not be signed with the settings of bucket `{}`",
                plan.bucket.name
            ),
        )
        .with_log_detail(e.to_string())
    })?
    .sign("PUT", &target, &[], &signed);

    Ok(SingleUpload {
        kind: "single",
        bucket: plan.bucket.store_name.clone(),
        key: plan.key.clone(),
        method: "PUT",
        url,
        headers,
        expires_at: rfc3339(ctx.now + Duration::seconds(plan.expires_in.into())),
    })
}

/// A checksum must be the standard base64 of 32 bytes.
fn check_sha256(checksum: &str) -> Result<(), ApiError> {
    match Base64::decode_vec(checksum) {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err(ApiError::invalid_field(
            "checksumSha256",
            "checksumSha256 must be the base64 of a 32-byte SHA-256 digest",
        )),
    }
}

#[cfg(test)]
mod tests;
