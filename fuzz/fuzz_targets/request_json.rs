//! Request bodies (`api::json::parse` into each request type of the API), and for uploads
//! and downloads the rules and signing that follow, against the fixture's configuration.
//!
//! No input makes the signer panic or answer 5xx (the configuration is valid, so every
//! failure is the client's); every planned key lies under the caller's prefix and passes
//! `validate_key`; a signed URL points at the planned key; a download is signed only for
//! a key under the caller's prefix.
//!
//! Input: one byte that picks the request type (`0` upload, `1` download, `2` sign parts,
//! `3` complete, `4` abort, `5` Uppy create, `6` Uppy complete; modulo 7), then the body.

#![no_main]

use edge_presigner::api::downloads::{self, DownloadRequest};
use edge_presigner::api::multipart::{self as api_multipart, AbortRequest};
use edge_presigner::api::multipart::{CompleteRequest, SignPartsRequest};
use edge_presigner::api::uploads::{self, CreateUploadRequest};
use edge_presigner::api::{ApiError, RequestContext, companion, json};
use edge_presigner::multipart::{ClientPart, check_parts};
use edge_presigner::policy::key::{MAX_KEY_BYTES, validate_key};
use edge_presigner::presign::encode::encode_key;
use edge_presigner_fuzz::{api_key_principal, fixture_config, now, origin, selector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((kind, body)) = selector(data) else {
        return;
    };
    let principal = api_key_principal();
    let origin = origin();
    let ctx = RequestContext {
        config: fixture_config(),
        principal: &principal,
        origin: &origin,
        now: now(),
        random: [7; 16],
    };

    match kind % 7 {
        0 => {
            if let Some(request) = parsed::<CreateUploadRequest>(body) {
                upload(&ctx, &request);
            }
        }
        1 => {
            if let Some(request) = parsed::<DownloadRequest>(body) {
                download(&ctx, &request);
            }
        }
        2 => {
            if let Some(request) = parsed::<SignPartsRequest>(body) {
                client_error(api_multipart::open(&ctx, &request.token).err());
            }
        }
        3 => {
            if let Some(request) = parsed::<CompleteRequest>(body) {
                client_error(api_multipart::open(&ctx, &request.token).err());
                let parts: Vec<ClientPart> = request.parts.into_iter().map(Into::into).collect();
                if let Ok(checked) = check_parts(&parts, None) {
                    assert!(checked.windows(2).all(|w| w[0].0 < w[1].0));
                }
            }
        }
        4 => {
            if let Some(request) = parsed::<AbortRequest>(body) {
                client_error(api_multipart::open(&ctx, &request.token).err());
            }
        }
        5 => {
            parsed::<companion::CreateBody>(body);
        }
        _ => {
            parsed::<companion::CompleteBody>(body);
        }
    }
});

/// Parses a body; a refusal must be a 4xx.
fn parsed<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    json::parse(body).map_err(|e| client_error(Some(e))).ok()
}

fn client_error(error: Option<ApiError>) {
    if let Some(error) = error {
        assert!(
            (400..500).contains(&error.status()),
            "{} {}",
            error.status(),
            error.message
        );
    }
}

fn upload(ctx: &RequestContext<'_>, request: &CreateUploadRequest) {
    let planned = match uploads::plan(ctx, request) {
        Ok(planned) => planned,
        Err(e) => return client_error(Some(e)),
    };
    let prefix = planned
        .profile
        .key_template
        .owner_prefix(&ctx.principal.owner());
    assert!(planned.key.starts_with(&prefix), "{:?}", planned.key);
    assert!(planned.key.len() <= MAX_KEY_BYTES);
    assert_eq!(validate_key(&planned.key), Ok(()));

    match uploads::sign_single(ctx, &planned) {
        Ok(signed) => {
            assert_eq!(signed.key, planned.key);
            let path = format!("/{}?", encode_key(&planned.key));
            assert!(signed.url.contains(&path), "{}", signed.url);
        }
        Err(e) => client_error(Some(e)),
    }
}

fn download(ctx: &RequestContext<'_>, request: &DownloadRequest) {
    match downloads::sign(ctx, request) {
        Ok(signed) => {
            let profile = &ctx.config.profiles[&request.profile];
            let prefix = profile.key_template.owner_prefix(&ctx.principal.owner());
            assert!(request.key.starts_with(&prefix), "{:?}", request.key);
            let path = format!("/{}?", encode_key(&request.key));
            assert!(signed.url.contains(&path), "{}", signed.url);
        }
        Err(e) => client_error(Some(e)),
    }
}
