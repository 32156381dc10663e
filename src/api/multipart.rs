//! The multipart routes: create, sign parts, list parts, complete, abort.
//!
//! Each flow is an `async` function over a [`Store`], so the same code runs in the Worker
//! (where the store is reached with `fetch`) and in native tests. The upload token carries
//! everything that was decided at creation; a call with a token from another subject is
//! refused (403), a changed or expired token is a bad field (400 naming `token`): it is not
//! the caller's credential, so it is not a 401, which clients answer by renewing that.

#![forbid(unsafe_code)]

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::uploads::{PlannedUpload, profile_for};
use super::{ApiError, ErrorCode, RequestContext};
use crate::config::{Bucket, ConfigError};
use crate::multipart::plan::{MAX_PARTS, PartPlan, PlanError};
use crate::multipart::token::{TokenError, UploadToken};
use crate::multipart::{ClientPart, check_parts, multipart_etag};
use crate::policy::Profile;
use crate::presign::Target;
use crate::presign::query::BatchSigner;
use crate::secret::Secret;
use crate::store::s3::{self, Call, StoredPart};
use crate::store::{Store, StoreError, StoreRequest, StoreResponse, Unreachable};
use crate::time::rfc3339;

/// The answer to a multipart `POST /v1/uploads`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MultipartUpload {
    /// Always `multipart`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The bucket's name at the store.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// The store's upload id.
    pub upload_id: String,
    /// The token every later call carries.
    pub token: String,
    /// The size of every part but the last.
    pub part_size: u64,
    /// How many parts.
    pub part_count: u32,
    /// When the token expires.
    pub expires_at: String,
}

/// `POST /v1/multipart/parts`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignPartsRequest {
    /// The upload token.
    pub token: String,
    /// The parts to sign, 1 to 10,000 of them.
    pub part_numbers: Vec<u32>,
}

/// One signed part.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedPart {
    /// The part number.
    pub part_number: u32,
    /// The presigned UploadPart URL.
    pub url: String,
    /// Headers to send exactly as given.
    pub headers: std::collections::BTreeMap<String, String>,
}

/// The answer to `POST /v1/multipart/parts`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedParts {
    /// The signed parts, in the order asked.
    pub parts: Vec<SignedPart>,
    /// When the URLs expire.
    pub expires_at: String,
}

/// A part in the answer of `GET /v1/multipart/parts`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ListedPart {
    /// The part number.
    pub part_number: u32,
    /// Its ETag, quoted.
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The answer to `GET /v1/multipart/parts`.
#[derive(Debug, Serialize)]
pub struct ListedParts {
    /// Every part the store holds, in order.
    pub parts: Vec<ListedPart>,
}

/// `POST /v1/multipart/complete`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteRequest {
    /// The upload token.
    pub token: String,
    /// The parts, each with the ETag the store gave.
    pub parts: Vec<CompletePart>,
}

/// A part of [`CompleteRequest`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompletePart {
    /// The part number.
    pub part_number: u32,
    /// The ETag, quoted or not.
    pub etag: Option<String>,
}

impl From<CompletePart> for ClientPart {
    fn from(part: CompletePart) -> Self {
        Self {
            part_number: part.part_number,
            etag: part.etag,
        }
    }
}

/// The answer to `POST /v1/multipart/complete`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Completed {
    /// The bucket's name at the store.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// The object's ETag.
    pub etag: String,
    /// The object's size in bytes.
    pub size: u64,
}

/// `POST /v1/multipart/abort`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    /// The upload token.
    pub token: String,
}

/// An upload reopened from its token: the token and what it points at.
pub struct Opened<'a> {
    /// The token's content.
    pub token: UploadToken,
    /// The profile that allowed the upload.
    pub profile: &'a Profile,
    /// The bucket it lives in.
    pub bucket: &'a Bucket,
    /// The object's URL.
    pub target: Target,
}

impl Opened<'_> {
    fn call<'b>(&'b self, ctx: &RequestContext<'_>) -> Call<'b> {
        Call {
            target: &self.target,
            credentials: &self.bucket.credentials,
            now: ctx.now,
        }
    }

    /// The answer for this upload once the store holds the object.
    fn completed(&self, etag: String, size: u64) -> Completed {
        Completed {
            bucket: self.bucket.store_name.clone(),
            key: self.token.key.clone(),
            etag,
            size,
        }
    }

    /// Signs a request about this upload's object, made by `build`, and sends it.
    async fn ask(
        &self,
        ctx: &RequestContext<'_>,
        store: &impl Store,
        build: impl FnOnce(Call<'_>) -> StoreRequest,
    ) -> Result<StoreResponse, ApiError> {
        send(store, build(self.call(ctx))).await
    }
}

fn token_secret<'a>(ctx: &RequestContext<'a>) -> Result<&'a Secret, ApiError> {
    ctx.config.token_secret.as_ref().ok_or_else(|| {
        ApiError::from(ConfigError::new(
            "secret TOKEN_SECRET",
            "is not set; multipart uploads need it to sign their upload tokens",
        ))
    })
}

/// Creates a multipart upload in the store for a checked request.
///
/// `plan` is `None` when the client cuts the parts itself (the `/s3/` routes).
pub async fn create(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &PlannedUpload<'_>,
    plan: Option<PartPlan>,
) -> Result<(UploadToken, String), ApiError> {
    let secret = token_secret(ctx)?;
    let target = upload.bucket.target(&upload.key, ctx.origin)?;
    let call = Call {
        target: &target,
        credentials: &upload.bucket.credentials,
        now: ctx.now,
    };
    let metadata: Vec<(String, String)> = upload.metadata.clone().into_iter().collect();
    let request = s3::create_multipart(call, &upload.content_type, &metadata);
    let response = send(store, request).await?;
    let upload_id = s3::parse_create(&response).map_err(store_error)?;

    let token = UploadToken {
        v: 1,
        bucket: upload.bucket.name.clone(),
        key: upload.key.clone(),
        upload_id,
        subject: ctx.principal.owner(),
        profile: upload.profile.name.clone(),
        plan,
        size: (upload.size > 0).then_some(upload.size),
        expires: (ctx.now + Duration::seconds(upload.profile.multipart_expires_in.into()))
            .timestamp(),
    };
    let sealed = token.seal(secret);
    Ok((token, sealed))
}

/// `POST /v1/uploads` for an upload that goes in parts.
pub async fn start(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &PlannedUpload<'_>,
) -> Result<MultipartUpload, ApiError> {
    upload.profile.check_size(upload.size)?;
    let plan = PartPlan::new(upload.size, upload.profile.part_size).map_err(|e| match e {
        PlanError::Empty => ApiError::invalid_field(
            "size",
            "a multipart upload needs at least 1 byte; send an empty file as a single upload",
        ),
        PlanError::TooLarge { max } => ApiError::new(
            ErrorCode::TooLarge,
            format!("size is above the store's limit of {max} bytes"),
        )
        .with_field("size"),
    })?;
    let (token, sealed) = create(ctx, store, upload, Some(plan)).await?;
    Ok(MultipartUpload {
        kind: "multipart",
        bucket: upload.bucket.store_name.clone(),
        key: token.key,
        upload_id: token.upload_id,
        token: sealed,
        part_size: plan.part_size,
        part_count: plan.part_count,
        expires_at: rfc3339(timestamp(token.expires)),
    })
}

/// Checks a token and finds what it points at.
pub fn open<'a>(ctx: &RequestContext<'a>, token: &str) -> Result<Opened<'a>, ApiError> {
    let secret = token_secret(ctx)?;
    let token = UploadToken::open(token, secret, ctx.now).map_err(|e| {
        let message = match e {
            TokenError::Invalid => "the upload token is not valid; it may have been changed",
            TokenError::Expired => "the upload token has expired; start the upload again",
        };
        ApiError::invalid_field("token", message)
    })?;
    if token.subject != ctx.principal.owner() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this upload belongs to another subject",
        )
        .with_field("token"));
    }
    let (profile, bucket) = profile_for(ctx, &token.profile)?;
    if bucket.name != token.bucket {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the upload's profile now writes to another bucket; start the upload again",
        ));
    }
    let target = bucket.target(&token.key, ctx.origin)?;
    Ok(Opened {
        token,
        profile,
        bucket,
        target,
    })
}

/// Checks that the store still has the upload (it may have been aborted or completed).
async fn ensure_exists(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
) -> Result<(), ApiError> {
    let upload_id = &upload.token.upload_id;
    let response = upload
        .ask(ctx, store, |call| s3::list_parts(call, upload_id, 0, 1))
        .await?;
    match s3::parse_list_parts(&response) {
        Ok(_) => Ok(()),
        // A store that cannot list parts (the local R2 store of `wrangler dev`) cannot
        // say; the part URLs then fail at the store if the upload is gone.
        Err(e) if e.code == "NotImplemented" => Ok(()),
        Err(e) => Err(store_error(e)),
    }
}

/// Signs UploadPart URLs for the given part numbers. With a plan, each URL signs its
/// part's exact `content-length`.
pub async fn sign_parts(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
    part_numbers: &[u32],
) -> Result<SignedParts, ApiError> {
    check_part_numbers(part_numbers, upload.token.plan.as_ref())?;
    ensure_exists(ctx, store, upload).await?;

    let seconds_left = upload.token.expires - ctx.now.timestamp();
    let expires_in = i64::from(upload.profile.expires_in)
        .min(seconds_left)
        .max(1);
    let expires_in = u32::try_from(expires_in).unwrap_or(1);
    let signer = BatchSigner::new(
        &upload.bucket.credentials,
        &upload.target.region,
        ctx.now,
        expires_in,
    )
    .map_err(|e| sign_failure(upload.bucket, &e.to_string()))?;

    let plan = upload.token.plan;
    let part_signer = signer.parts(&upload.target, &upload.token.upload_id, plan.is_some());
    let mut parts = Vec::with_capacity(part_numbers.len());
    for &number in part_numbers {
        let length = plan.and_then(|p| p.part_length(number));
        let mut headers = std::collections::BTreeMap::new();
        if let Some(length) = length {
            headers.insert("content-length".to_owned(), length.to_string());
        }
        parts.push(SignedPart {
            part_number: number,
            url: part_signer.sign(number, length.unwrap_or(0)),
            headers,
        });
    }
    Ok(SignedParts {
        parts,
        expires_at: rfc3339(ctx.now + Duration::seconds(expires_in.into())),
    })
}

fn check_part_numbers(numbers: &[u32], plan: Option<&PartPlan>) -> Result<(), ApiError> {
    let field = "partNumbers";
    if numbers.is_empty() || numbers.len() > MAX_PARTS as usize {
        return Err(ApiError::invalid_field(
            field,
            format!("partNumbers must list 1 to {MAX_PARTS} part numbers"),
        ));
    }
    let last = plan.map_or(MAX_PARTS, |p| p.part_count);
    if let Some(bad) = numbers.iter().find(|n| **n == 0 || **n > last) {
        return Err(ApiError::invalid_field(
            field,
            format!("part {bad} is outside this upload's parts 1 to {last}"),
        ));
    }
    let mut listed = vec![false; last as usize + 1];
    if let Some(twice) = numbers
        .iter()
        .find(|n| std::mem::replace(&mut listed[**n as usize], true))
    {
        return Err(ApiError::invalid_field(
            field,
            format!("part {twice} is listed twice"),
        ));
    }
    Ok(())
}

/// Lists every part the store holds, following its pages.
pub async fn list_parts(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
) -> Result<Vec<StoredPart>, ApiError> {
    stored_parts(ctx, store, upload).await?.map_err(store_error)
}

/// Every part the store holds; the inner error is the store's own answer, so that a
/// caller can tell a store that cannot list parts from one that failed.
async fn stored_parts(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
) -> Result<Result<Vec<StoredPart>, StoreError>, ApiError> {
    let mut parts = Vec::new();
    let mut marker = 0;
    loop {
        let upload_id = &upload.token.upload_id;
        let response = upload
            .ask(ctx, store, |call| {
                s3::list_parts(call, upload_id, marker, 1000)
            })
            .await?;
        let page = match s3::parse_list_parts(&response) {
            Ok(page) => page,
            Err(e) => return Ok(Err(e)),
        };
        parts.extend(page.parts);
        match page.next_marker {
            Some(next) if next > marker => marker = next,
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::StorageError,
                    "the store's part list does not advance",
                ));
            }
            None => return Ok(Ok(parts)),
        }
    }
}

/// `GET /v1/multipart/parts`: the parts as the API shows them.
pub fn listed(parts: Vec<StoredPart>) -> ListedParts {
    ListedParts {
        parts: parts
            .into_iter()
            .map(|p| ListedPart {
                part_number: p.part_number,
                etag: p.etag,
                size: p.size,
            })
            .collect(),
    }
}

/// Completes an upload. With no plan (the client cut the parts, on the `/s3/` routes),
/// the parts' total size is read from the store first, and an upload above the profile's
/// limit or the size the client declared at creation is aborted (413): the declared size
/// binds, as a planned size does. A list whose parts hold fewer bytes than declared, or
/// whose ETags are not the store's, is refused (400) and the upload stays open.
///
/// Completing again with the same list gives the same answer: when the store no longer
/// has the upload, the object is looked up and accepted if it is the one these parts make.
pub async fn complete(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
    parts: &[ClientPart],
) -> Result<Completed, ApiError> {
    let plan = upload.token.plan;
    let checked = check_parts(parts, plan.as_ref())
        .map_err(|e| ApiError::invalid_field("parts", format!("cannot complete: {e}")))?;

    // The size the object must have: planned, or declared when the upload was created.
    // Without a plan, the parts' total is read from the store before anything is
    // completed; a store that cannot list parts gets the size checked on the object.
    let size = expected_size(upload);
    let measured_before = match plan {
        Some(_) => true,
        None => match stored_parts(ctx, store, upload).await? {
            Ok(stored) => {
                let total = listed_total(&checked, &stored)?;
                if total < size {
                    // A part left out of the list, most likely: the upload stays open.
                    return Err(ApiError::invalid_field(
                        "parts",
                        format!(
                            "the listed parts hold {total} bytes, fewer than the {size} bytes \
                             declared as the file's size: is a part missing from the list? \
                             The upload is still open"
                        ),
                    ));
                }
                if let Err(error) = check_measured_size(upload, total) {
                    abort(ctx, store, upload).await?;
                    return Err(error);
                }
                true
            }
            Err(e) if e.code == "NotImplemented" => false,
            Err(e) if e.code == "NoSuchUpload" => {
                return completed_before(ctx, store, upload, &checked, size).await;
            }
            Err(e) => return Err(store_error(e)),
        },
    };

    let upload_id = &upload.token.upload_id;
    let response = upload
        .ask(ctx, store, |call| s3::complete(call, upload_id, &checked))
        .await?;
    let etag = match s3::parse_complete(&response) {
        Ok(etag) => etag,
        Err(e) if e.code == "NoSuchUpload" => {
            return completed_before(ctx, store, upload, &checked, size).await;
        }
        Err(e) => return Err(store_error(e)),
    };
    if !measured_before {
        check_completed_size(ctx, store, upload).await?;
    }
    Ok(upload.completed(etag, size))
}

/// The size of the listed parts as the store holds them. Each must be in the store with
/// the ETag the list gives: the store then completes exactly the parts that were measured,
/// and a part sent again after the listing (its ETag changes) makes the store refuse the
/// complete instead of taking bytes that were never counted.
fn listed_total(checked: &[(u32, String)], stored: &[StoredPart]) -> Result<u64, ApiError> {
    // Each stored part in the slot of its number (at most MAX_PARTS), so that the order
    // the store lists them in does not matter and no search is needed.
    let mut slots: Vec<Option<&StoredPart>> = vec![None; MAX_PARTS as usize + 1];
    for part in stored {
        if let Some(slot) = slots.get_mut(part.part_number as usize) {
            *slot = Some(part);
        }
    }
    let mut total = 0u64;
    for (number, etag) in checked {
        let part = slots
            .get(*number as usize)
            .copied()
            .flatten()
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "parts",
                    format!("part {number} is not in the store: upload it before completing"),
                )
            })?;
        if part.etag.trim().trim_matches('"') != etag.trim_matches('"') {
            return Err(ApiError::invalid_field(
                "parts",
                format!(
                    "part {number}'s ETag is not the one the store holds for that part; \
                     nothing was completed"
                ),
            ));
        }
        total = total.saturating_add(part.size);
    }
    Ok(total)
}

/// The size an upload's object must have: its plan's, or the size the client declared at
/// creation. Uploads without a plan come from the `/s3/` routes, which require a declared
/// size; a token holds no size for a declared 0.
fn expected_size(upload: &Opened<'_>) -> u64 {
    match upload.token.plan {
        Some(plan) => plan.size,
        None => upload.token.size.unwrap_or(0),
    }
}

/// Checks the measured size of an upload without a plan: within the profile's limit, and
/// the size the client declared.
fn check_measured_size(upload: &Opened<'_>, measured: u64) -> Result<(), ApiError> {
    upload.profile.check_size(measured)?;
    let declared = expected_size(upload);
    let (code, comparison) = match measured.cmp(&declared) {
        std::cmp::Ordering::Equal => return Ok(()),
        std::cmp::Ordering::Greater => (ErrorCode::TooLarge, "more"),
        std::cmp::Ordering::Less => (ErrorCode::InvalidRequest, "fewer"),
    };
    Err(ApiError::new(
        code,
        format!(
            "the parts hold {measured} bytes, {comparison} than the {declared} bytes declared \
             as the file's size; nothing was stored"
        ),
    )
    .with_field("parts"))
}

/// For a store that cannot list parts: reads the completed object's size, and deletes an
/// object above the profile's limit or of another size than declared at once.
async fn check_completed_size(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
) -> Result<(), ApiError> {
    let response = upload.ask(ctx, store, s3::head).await?;
    let (_, size) = s3::parse_head(&response)
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::StorageError,
                "the store completed the upload but does not show the object",
            )
        })?;
    if let Err(error) = check_measured_size(upload, size) {
        let response = upload.ask(ctx, store, s3::delete).await?;
        s3::parse_abort(&response).map_err(store_error)?;
        return Err(error);
    }
    Ok(())
}

/// The store has no such upload: it was completed (perhaps by an earlier try of this very
/// call) or aborted. The object decides which: it must have the upload's size and the
/// ETag the listed parts make (S3's MD5 of the parts' MD5s, then `-` and the part count).
/// When the part ETags are not MD5s, only the count at the end of the object's ETag is
/// compared, so a list with as many parts but other ETags is not told apart there.
async fn completed_before(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
    parts: &[(u32, String)],
    size: u64,
) -> Result<Completed, ApiError> {
    let response = upload.ask(ctx, store, s3::head).await?;
    let gone = || {
        ApiError::new(
            ErrorCode::Conflict,
            "the multipart upload no longer exists: it was aborted, or completed with other parts",
        )
    };
    let (etag, stored_size) = s3::parse_head(&response)
        .map_err(store_error)?
        .ok_or_else(gone)?;
    let stored_etag = etag.trim_matches('"');
    let same_etag = match multipart_etag(parts) {
        Some(expected) => stored_etag == expected,
        // Part ETags that are not MD5s (R2 makes its own) cannot give the object's ETag;
        // its `-N` ending still says how many parts made it.
        None => stored_etag
            .rsplit_once('-')
            .and_then(|(_, count)| count.parse::<usize>().ok())
            .is_none_or(|count| count == parts.len()),
    };
    if !same_etag || stored_size != size {
        return Err(gone());
    }
    Ok(upload.completed(etag, stored_size))
}

/// Aborts an upload. An upload the store no longer has counts as aborted.
pub async fn abort(
    ctx: &RequestContext<'_>,
    store: &impl Store,
    upload: &Opened<'_>,
) -> Result<(), ApiError> {
    let upload_id = &upload.token.upload_id;
    let response = upload
        .ask(ctx, store, |call| s3::abort(call, upload_id))
        .await?;
    match s3::parse_abort(&response) {
        Ok(()) => Ok(()),
        Err(e) if e.code == "NoSuchUpload" => Ok(()),
        Err(e) => Err(store_error(e)),
    }
}

async fn send(store: &impl Store, request: StoreRequest) -> Result<StoreResponse, ApiError> {
    store.send(request).await.map_err(|Unreachable(detail)| {
        ApiError::new(
            ErrorCode::StorageUnavailable,
            "the object store could not be reached; try again shortly",
        )
        .with_header("retry-after", "5")
        .with_log_detail(detail)
    })
}

/// Maps the store's error answers: only the ones caused by the client's input are 4xx.
pub fn store_error(error: StoreError) -> ApiError {
    let detail = error.to_string();
    let api = match error.code.as_str() {
        "NoSuchUpload" => ApiError::new(
            ErrorCode::Conflict,
            "the multipart upload no longer exists: it was completed or aborted",
        ),
        "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "BadDigest" => {
            ApiError::invalid_field(
                "parts",
                format!(
                    "the store refused the part list ({}): {}",
                    error.code, error.message
                ),
            )
        }
        "EntityTooLarge" => ApiError::new(ErrorCode::TooLarge, "the store refused the size"),
        "NotImplemented" => ApiError::new(
            ErrorCode::StorageError,
            "the object store does not implement this operation (the local R2 store of \
             wrangler dev cannot list the parts of an upload)",
        ),
        "SlowDown" | "ServiceUnavailable" => ApiError::new(
            ErrorCode::StorageUnavailable,
            "the object store is busy; try again shortly",
        )
        .with_header("retry-after", "5"),
        _ if error.status == 503 => ApiError::new(
            ErrorCode::StorageUnavailable,
            "the object store is busy; try again shortly",
        )
        .with_header("retry-after", "5"),
        code => ApiError::new(
            ErrorCode::StorageError,
            format!("the object store answered with an error ({code})"),
        ),
    };
    api.with_log_detail(detail)
}

fn sign_failure(bucket: &Bucket, detail: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ConfigInvalid,
        format!(
            "a request to the store could not be signed with the settings of bucket `{}`",
            bucket.name
        ),
    )
    .with_log_detail(detail.to_owned())
}

fn timestamp(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests;
