//! `POST /v1/downloads`: a presigned GET for an object the caller may read.
//!
//! A caller may read the keys under its own prefix in a profile's bucket (the prefix the
//! profile's key template gives its subject). Any other key is refused with 403 whether or
//! not it exists: the signer never looks at the store here, so the answer says nothing
//! about other users' objects.
//!
//! With `filename`, the URL asks the store to answer with a `Content-Disposition` that
//! carries it: an ASCII fallback in `filename` and the exact name in `filename*` (RFC 6266
//! and RFC 5987), so every browser saves the file under a sensible name.

#![forbid(unsafe_code)]

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::uploads::profile_for;
use super::{ApiError, ErrorCode, RequestContext};
use crate::policy::key::{KeyError, MAX_KEY_BYTES, validate_key};
use crate::presign::query::BatchSigner;
use crate::presign::{MAX_EXPIRES_IN, encode};
use crate::time::rfc3339;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DownloadRequest {
    /// The object's key.
    pub key: String,
    /// The profile whose bucket holds it; `default` when absent.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// The name the browser should save the file under.
    pub filename: Option<String>,
    /// `attachment` (save) or `inline` (show); `attachment` when a filename is given.
    pub disposition: Option<String>,
    /// The URL's validity in seconds.
    pub expires_in: Option<Value>,
}

fn default_profile() -> String {
    "default".to_owned()
}

/// The answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Download {
    /// The presigned GET URL.
    pub url: String,
    /// When it stops working.
    pub expires_at: String,
}

/// Reads an expiry given as a JSON number: a whole number of seconds from 1 to `max`.
pub fn expiry_seconds(value: Option<&Value>, default: u32, max: u32) -> Result<u32, ApiError> {
    let out_of_range = || {
        ApiError::invalid_field(
            "expiresIn",
            format!("expiresIn must be a whole number of seconds from 1 to {max}"),
        )
    };
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|s| u32::try_from(s).ok())
            .filter(|s| (1..=max).contains(s))
            .ok_or_else(out_of_range),
        Some(_) => Err(out_of_range()),
    }
}

/// Signs the GET.
pub fn sign(ctx: &RequestContext<'_>, request: &DownloadRequest) -> Result<Download, ApiError> {
    let (profile, bucket) = profile_for(ctx, &request.profile)?;
    validate_key(&request.key).map_err(|e| {
        let reason = match e {
            KeyError::TooLong => format!("it is longer than {MAX_KEY_BYTES} bytes"),
            KeyError::Invalid(reason) => reason,
        };
        ApiError::invalid_field("key", format!("key is not a valid object key: {reason}"))
    })?;
    let prefix = profile.key_template.owner_prefix(&ctx.principal.owner());
    if !request.key.starts_with(&prefix) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this credential may not read that key",
        )
        .with_field("key"));
    }
    let max = profile.max_expires_in.min(MAX_EXPIRES_IN);
    let expires_in = expiry_seconds(
        request.expires_in.as_ref(),
        profile.expires_in.min(max),
        max,
    )?;

    let disposition = content_disposition(request)?;
    let query: Vec<(&str, &str)> = disposition
        .as_deref()
        .map(|d| ("response-content-disposition", d))
        .into_iter()
        .collect();
    let target = bucket.target(&request.key, ctx.origin)?;
    let url = BatchSigner::new(&bucket.credentials, &target.region, ctx.now, expires_in)
        .map_err(|e| {
            ApiError::new(
                ErrorCode::ConfigInvalid,
                format!(
                    "the download could not be signed with bucket `{}`",
                    bucket.name
                ),
            )
            .with_log_detail(e.to_string())
        })?
        .sign("GET", &target, &query, &[]);
    Ok(Download {
        url,
        expires_at: rfc3339(ctx.now + Duration::seconds(expires_in.into())),
    })
}

/// `attachment; filename="resume.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`.
fn content_disposition(request: &DownloadRequest) -> Result<Option<String>, ApiError> {
    let kind = match request.disposition.as_deref() {
        None | Some("attachment") => "attachment",
        Some("inline") => "inline",
        Some(_) => {
            return Err(ApiError::invalid_field(
                "disposition",
                "disposition must be `attachment` or `inline`",
            ));
        }
    };
    let Some(name) = &request.filename else {
        return Ok(request.disposition.as_ref().map(|_| kind.to_owned()));
    };
    let name = crate::policy::key::sanitize_filename(name);
    let fallback: String = name
        .chars()
        .map(|c| {
            // `%XX` would be decoded by some browsers, so it goes to `filename*` too.
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if fallback == name {
        return Ok(Some(format!("{kind}; filename=\"{name}\"")));
    }
    Ok(Some(format!(
        "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{}",
        encode::encode_query_component(&name)
    )))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::auth::Principal;
    use crate::config::tests::fixture;
    use crate::config::{Config, RequestOrigin};

    fn run(body: Value) -> Result<Download, ApiError> {
        let config = Config::load(&fixture()).unwrap();
        let origin = RequestOrigin::parse("http://127.0.0.1:8787/").unwrap();
        let principal = Principal {
            subject: "alice".into(),
            credential: "jwt:test".into(),
            profiles: None,
            namespace: None,
        };
        let ctx = RequestContext {
            config: &config,
            principal: &principal,
            origin: &origin,
            now: chrono::Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap(),
            random: [0; 16],
        };
        sign(&ctx, &serde_json::from_value(body).unwrap())
    }

    fn query_of(url: &str) -> String {
        url.split_once('?').unwrap().1.to_owned()
    }

    #[test]
    fn own_key_gets_a_get_url_with_the_disposition() {
        let download = run(json!({
            "key": "users/alice/1/r.pdf", "filename": "résumé \"v2\".pdf", "expiresIn": 60
        }))
        .unwrap();
        let query = query_of(&download.url);
        assert!(query.contains(
            "response-content-disposition=attachment%3B%20filename%3D%22r_sum_%20_v2_.pdf%22%3B%20filename%2A%3DUTF-8%27%27r%25C3%25A9sum%25C3%25A9%2520%2522v2%2522.pdf"
        ), "{query}");
        assert!(query.contains("X-Amz-Expires=60"));
        assert_eq!(download.expires_at, "2026-01-01T00:01:00Z");
    }

    #[test]
    fn ascii_names_need_no_extended_parameter() {
        let download = run(json!({
            "key": "users/alice/1/r.pdf", "filename": "report.pdf", "disposition": "inline"
        }))
        .unwrap();
        assert!(
            download
                .url
                .contains("response-content-disposition=inline%3B%20filename%3D%22report.pdf%22&")
        );
    }

    #[test]
    fn names_with_percent_signs_get_the_extended_parameter() {
        let download = run(json!({"key": "users/alice/1/r.pdf", "filename": "a%2Fb.txt"})).unwrap();
        assert!(
            download
                .url
                .contains("filename%3D%22a_2Fb.txt%22%3B%20filename%2A%3DUTF-8%27%27a%25252Fb.txt"),
            "{}",
            download.url
        );
    }

    #[test]
    fn another_subjects_key_is_403() {
        for key in [
            "users/bob/1/r.pdf",
            "users/alice",
            "users/alicex/1/r.pdf",
            "other/alice/x",
        ] {
            assert_eq!(run(json!({"key": key})).unwrap_err().status(), 403, "{key}");
        }
    }

    #[test]
    fn traversal_keys_are_refused_before_the_prefix_check() {
        let error = run(json!({"key": "users/alice/../bob/r.pdf"})).unwrap_err();
        assert_eq!((error.status(), error.field.as_deref()), (400, Some("key")));
    }

    #[test]
    fn an_invalid_key_is_400_saying_what_is_wrong_with_it() {
        let long = format!("users/alice/{}", "a".repeat(2000));
        for (key, reason) in [
            (long.as_str(), "longer than 1024 bytes"),
            ("users/alice//r.pdf", "empty"),
            ("users/alice/r\u{0}.pdf", "control"),
        ] {
            let error = run(json!({ "key": key })).unwrap_err();
            assert_eq!((error.status(), error.field.as_deref()), (400, Some("key")));
            assert!(error.message.contains(reason), "{}", error.message);
        }
    }

    #[test]
    fn expiry_outside_the_range_or_fractional_is_400_naming_the_range() {
        for bad in [json!(0), json!(3601), json!(1.5), json!("60"), json!(-1)] {
            let error = run(json!({"key": "users/alice/1/r.pdf", "expiresIn": bad})).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("expiresIn"));
            assert!(error.message.contains("1 to 3600"), "{}", error.message);
        }
    }

    #[test]
    fn unknown_disposition_is_400() {
        let error =
            run(json!({"key": "users/alice/1/r.pdf", "disposition": "download"})).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("disposition"));
    }
}
