use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::auth::Principal;
use crate::config::tests::fixture;
use crate::config::{Config, RequestOrigin};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 34, 56)
        .single()
        .unwrap()
}

fn principal(subject: &str, profiles: Option<Vec<String>>) -> Principal {
    Principal {
        subject: subject.into(),
        credential: format!("api-key:{subject}"),
        profiles,
        namespace: None,
    }
}

fn request(body: serde_json::Value) -> CreateUploadRequest {
    serde_json::from_value(body).unwrap()
}

fn run(principal: &Principal, body: serde_json::Value) -> Result<SingleUpload, ApiError> {
    let config = Config::load(&fixture()).unwrap();
    let origin = RequestOrigin::parse("http://127.0.0.1:8787/v1/uploads").unwrap();
    let ctx = RequestContext {
        config: &config,
        principal,
        origin: &origin,
        now: now(),
        random: [7; 16],
    };
    let planned = plan(&ctx, &request(body))?;
    sign_single(&ctx, &planned)
}

fn png(size: u64) -> serde_json::Value {
    serde_json::json!({"filename": "photo.png", "contentType": "image/png", "size": size})
}

#[test]
fn single_upload_signs_every_header_the_client_must_send() {
    let upload = run(&principal("backend", None), png(123_456)).unwrap();
    assert_eq!(upload.kind, "single");
    assert_eq!(upload.bucket, "edge-presigner-dev");
    assert_eq!(upload.method, "PUT");
    assert!(upload.key.starts_with("users/backend/"), "{}", upload.key);
    assert!(upload.key.ends_with("/photo.png"));
    assert_eq!(upload.expires_at, "2026-01-15T12:49:56Z");
    let expected_headers = [
        ("content-length", "123456"),
        ("content-type", "image/png"),
        ("if-none-match", "*"),
        ("x-amz-meta-uploader", "edge-presigner"),
    ];
    for (name, value) in expected_headers {
        assert_eq!(
            upload.headers.get(name).map(String::as_str),
            Some(value),
            "{name}"
        );
    }
    assert!(upload.url.starts_with(
        "http://127.0.0.1:8787/cdn-cgi/local/r2/s3/edge-presigner-dev/users/backend/"
    ));
    assert!(upload.url.contains(
        "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bif-none-match%3Bx-amz-meta-uploader"
    ));
    assert!(upload.url.contains("X-Amz-Expires=900"));
}

#[test]
fn checksum_is_signed_when_given() {
    let mut body = png(5);
    body["checksumSha256"] = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=".into();
    let upload = run(&principal("backend", None), body).unwrap();
    assert!(upload.headers.contains_key("x-amz-checksum-sha256"));
    assert!(upload.url.contains("x-amz-checksum-sha256"));
}

#[test]
fn malformed_checksum_is_refused() {
    for bad in ["abc", "not base64!", "AAAA"] {
        let mut body = png(5);
        body["checksumSha256"] = bad.into();
        let error = run(&principal("backend", None), body).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("checksumSha256"), "{bad}");
    }
}

#[test]
fn overwrite_profile_does_not_sign_if_none_match() {
    let mut body = png(10);
    body["profile"] = "reports".into();
    let upload = run(&principal("backend", None), body).unwrap();
    assert!(!upload.headers.contains_key("if-none-match"));
    assert!(upload.key.starts_with("reports/backend/2026-01-15/"));
    assert!(
        upload
            .url
            .starts_with("https://photos.s3.eu-west-1.amazonaws.com/")
    );
    assert!(
        upload
            .url
            .contains("X-Amz-Security-Token=session-token-value")
    );
}

#[test]
fn type_outside_the_profile_is_415() {
    let mut body = png(10);
    body["contentType"] = "application/x-msdownload".into();
    let error = run(&principal("backend", None), body).unwrap_err();
    assert_eq!(
        (error.status(), error.code.as_str()),
        (415, "unsupported_media_type")
    );
    assert_eq!(error.field.as_deref(), Some("contentType"));
}

#[test]
fn size_over_the_profile_is_413_naming_the_limit() {
    let error = run(&principal("backend", None), png(10_485_761)).unwrap_err();
    assert_eq!((error.status(), error.code.as_str()), (413, "too_large"));
    assert!(error.message.contains("10485760"));
}

#[test]
fn unknown_profile_is_404_and_unscoped_profile_is_403() {
    let mut body = png(10);
    body["profile"] = "nope".into();
    assert_eq!(
        run(&principal("backend", None), body).unwrap_err().status(),
        404
    );
    let scoped = principal("cron", Some(vec!["reports".into()]));
    assert_eq!(run(&scoped, png(10)).unwrap_err().status(), 403);
}

#[test]
fn expiry_outside_the_profile_is_400_naming_the_range() {
    for bad in [0, 3601] {
        let mut body = png(10);
        body["expiresIn"] = bad.into();
        let error = run(&principal("backend", None), body).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("expiresIn"));
        assert!(error.message.contains("1 to 3600"), "{}", error.message);
    }
}

#[test]
fn traversal_in_filename_stays_under_the_subject_prefix() {
    for name in [
        "../../etc/passwd",
        "a/../../b",
        "/root/x.png",
        "..\\..\\y.png",
    ] {
        let mut body = png(10);
        body["filename"] = name.into();
        let upload = run(&principal("backend", None), body).unwrap();
        assert!(
            upload.key.starts_with("users/backend/"),
            "{name} -> {}",
            upload.key
        );
        assert!(!upload.key.contains(".."), "{}", upload.key);
    }
}

#[test]
fn empty_filename_is_refused() {
    let mut body = png(10);
    body["filename"] = "   ".into();
    let error = run(&principal("backend", None), body).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("filename"));
}

#[test]
fn content_type_is_required() {
    let body = br#"{"filename": "x.bin", "size": 1}"#;
    let error = crate::api::json::parse::<CreateUploadRequest>(body).unwrap_err();
    assert_eq!(
        (error.status(), error.field.as_deref()),
        (400, Some("contentType"))
    );
}

#[test]
fn a_metadata_name_given_twice_is_refused_and_named() {
    let body = br#"{"filename": "a.png", "contentType": "image/png", "size": 1,
                    "metadata": {"caption": "one", "caption": "two"}}"#;
    let error = crate::api::json::parse::<CreateUploadRequest>(body).unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(error.field.as_deref(), Some("metadata.caption"));
    assert!(error.message.contains("duplicate"), "{}", error.message);
}
