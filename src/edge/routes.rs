//! Calling the pure handler of each route with what the request carried.

use crate::api::{
    self, ApiError, ErrorCode, PathParams, RequestContext, Route, companion, downloads, json,
    multipart, uploads,
};
use crate::audit::Record;
use crate::multipart::ClientPart;

use super::reply::Reply;
use super::store::FetchStore;

/// What a handler may use.
pub struct Call<'a> {
    /// The request's context.
    pub ctx: &'a RequestContext<'a>,
    /// The object store.
    pub store: &'a FetchStore,
    /// The path's captured segments.
    pub params: &'a PathParams,
    /// The decoded query.
    pub query: &'a [(String, String)],
    /// The body (JSON routes only).
    pub body: &'a [u8],
}

fn note_upload(record: &mut Record, opened: &multipart::Opened<'_>) {
    record.profile = Some(opened.token.profile.clone());
    record.bucket = Some(opened.bucket.name.clone());
    record.key = Some(opened.token.key.clone());
    record.size = opened.token.size;
}

/// Runs the handler of `route`.
pub async fn dispatch(
    route: Route,
    call: &Call<'_>,
    record: &mut Record,
) -> Result<Reply, ApiError> {
    let ctx = call.ctx;
    let store = call.store;
    match route {
        Route::CreateUpload => {
            let request: uploads::CreateUploadRequest = json::parse(call.body)?;
            record.profile = Some(request.profile.clone());
            record.size = Some(request.size);
            let plan = uploads::plan(ctx, &request)?;
            record.bucket = Some(plan.bucket.name.clone());
            record.key = Some(plan.key.clone());
            if plan.profile.wants_multipart(plan.size, request.multipart) {
                Ok(Reply::json(
                    201,
                    &multipart::start(ctx, store, &plan).await?,
                ))
            } else {
                Ok(Reply::json(201, &uploads::sign_single(ctx, &plan)?))
            }
        }
        Route::Download => {
            let request: downloads::DownloadRequest = json::parse(call.body)?;
            record.profile = Some(request.profile.clone());
            record.key = Some(request.key.clone());
            Ok(Reply::json(200, &downloads::sign(ctx, &request)?))
        }
        Route::SignParts => {
            let request: multipart::SignPartsRequest = json::parse(call.body)?;
            let opened = multipart::open(ctx, &request.token)?;
            note_upload(record, &opened);
            let signed = multipart::sign_parts(ctx, store, &opened, &request.part_numbers).await?;
            Ok(Reply::json(200, &signed))
        }
        Route::ListParts => {
            let token = api::query_value(call.query, "token")?.ok_or_else(|| {
                ApiError::invalid_field("token", "the token query parameter is missing")
            })?;
            let opened = multipart::open(ctx, token)?;
            note_upload(record, &opened);
            let parts = multipart::list_parts(ctx, store, &opened).await?;
            Ok(Reply::json(200, &multipart::listed(parts)))
        }
        Route::Complete => {
            let request: multipart::CompleteRequest = json::parse(call.body)?;
            let opened = multipart::open(ctx, &request.token)?;
            note_upload(record, &opened);
            let parts: Vec<ClientPart> = request.parts.into_iter().map(Into::into).collect();
            Ok(Reply::json(
                200,
                &multipart::complete(ctx, store, &opened, &parts).await?,
            ))
        }
        Route::Abort => {
            let request: multipart::AbortRequest = json::parse(call.body)?;
            let opened = multipart::open(ctx, &request.token)?;
            note_upload(record, &opened);
            multipart::abort(ctx, store, &opened).await?;
            Ok(Reply::empty(204))
        }
        Route::CompanionParams => {
            let params = companion::params(ctx, call.query)?;
            Ok(Reply::json(200, &params))
        }
        Route::CompanionCreate => {
            let body: companion::CreateBody = json::parse(call.body)?;
            let created = companion::create(ctx, store, body).await?;
            record.key = Some(created.key.clone());
            Ok(Reply::json(200, &created))
        }
        Route::CompanionSignPart => {
            let opened = companion::open(ctx, call.params, call.query)?;
            note_upload(record, &opened);
            let number = call.params.part_number.as_deref().unwrap_or_default();
            Ok(Reply::json(
                200,
                &companion::sign_part(ctx, store, &opened, number).await?,
            ))
        }
        Route::CompanionSignBatch => {
            let opened = companion::open(ctx, call.params, call.query)?;
            note_upload(record, &opened);
            Ok(Reply::json(
                200,
                &companion::sign_batch(ctx, store, &opened, call.query).await?,
            ))
        }
        Route::CompanionListParts => {
            let opened = companion::open(ctx, call.params, call.query)?;
            note_upload(record, &opened);
            Ok(Reply::json(
                200,
                &companion::list_parts(ctx, store, &opened).await?,
            ))
        }
        Route::CompanionComplete => {
            let opened = companion::open(ctx, call.params, call.query)?;
            note_upload(record, &opened);
            let body: companion::CompleteBody = json::parse(call.body)?;
            Ok(Reply::json(
                200,
                &companion::complete(ctx, store, &opened, body).await?,
            ))
        }
        Route::CompanionAbort => {
            let opened = companion::open(ctx, call.params, call.query)?;
            note_upload(record, &opened);
            multipart::abort(ctx, store, &opened).await?;
            Ok(Reply::json(200, &serde_json::json!({})))
        }
        Route::Health | Route::DevToken => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no handler for {}", api::Route::name(route)),
        )),
    }
}
