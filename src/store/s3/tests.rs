use std::path::PathBuf;

use chrono::TimeZone;

use super::*;
use crate::secret::Secret;

fn answer(status: u16, file: &str) -> StoreResponse {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/store")
        .join(file);
    StoreResponse {
        status,
        headers: Vec::new(),
        body: std::fs::read(path).unwrap(),
    }
}

fn call_parts() -> (Target, Credentials) {
    (
        Target {
            origin: "http://127.0.0.1:8333".into(),
            path: "/bucket/a%20b.bin".into(),
            region: "us-east-1".into(),
        },
        Credentials::new("AKID", Secret::new("secret"), Some(Secret::new("token"))),
    )
}

#[test]
fn create_answer_gives_the_upload_id() {
    assert_eq!(
        parse_create(&answer(200, "create.xml")).unwrap(),
        "VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
    );
}

#[test]
fn list_parts_follows_the_next_marker_only_when_truncated() {
    let first = parse_list_parts(&answer(200, "list-parts-truncated.xml")).unwrap();
    assert_eq!(first.parts.len(), 2);
    assert_eq!(first.parts[1].etag, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"");
    assert_eq!(first.parts[0].size, 8_388_608);
    assert_eq!(first.next_marker, Some(2));
    let last = parse_list_parts(&answer(200, "list-parts-last.xml")).unwrap();
    assert_eq!(last.next_marker, None);
    assert_eq!(last.parts[0].part_number, 3);
}

#[test]
fn complete_answer_gives_the_etag() {
    assert_eq!(
        parse_complete(&answer(200, "complete.xml")).unwrap(),
        "\"3858f62230ac3c915f300c664312c11f-9\""
    );
}

#[test]
fn an_error_inside_a_200_answer_is_an_error() {
    let error = parse_complete(&answer(200, "error-in-200.xml")).unwrap_err();
    assert_eq!(error.code, "InternalError");
}

#[test]
fn error_answers_carry_the_stores_code() {
    let error = parse_list_parts(&answer(404, "no-such-upload.xml")).unwrap_err();
    assert_eq!((error.status, error.code.as_str()), (404, "NoSuchUpload"));
}

#[test]
fn an_upload_id_over_1024_bytes_is_a_malformed_answer() {
    let with_id = |id: &str| {
        StoreResponse {
        status: 200,
        headers: Vec::new(),
        body: format!("<InitiateMultipartUploadResult><UploadId>{id}</UploadId></InitiateMultipartUploadResult>")
            .into_bytes(),
    }
    };
    let longest = "u".repeat(MAX_UPLOAD_ID_BYTES);
    assert_eq!(parse_create(&with_id(&longest)).unwrap(), longest);
    let error = parse_create(&with_id(&format!("{longest}u"))).unwrap_err();
    assert_eq!(error.code, "MalformedAnswer");
}

#[test]
fn non_xml_answers_are_reported_as_malformed() {
    let response = StoreResponse {
        status: 200,
        headers: Vec::new(),
        body: b"<html>proxy</html".to_vec(),
    };
    assert_eq!(parse_create(&response).unwrap_err().code, "MalformedAnswer");
    let gateway = StoreResponse {
        status: 502,
        headers: Vec::new(),
        body: b"Bad Gateway".to_vec(),
    };
    assert_eq!(parse_create(&gateway).unwrap_err().code, "HTTP 502");
}

fn call_at_noon<'a>(target: &'a Target, credentials: &'a Credentials) -> Call<'a> {
    Call {
        target,
        credentials,
        now: Utc
            .with_ymd_and_hms(2026, 1, 15, 12, 0, 0)
            .single()
            .unwrap(),
    }
}

#[test]
fn requests_are_signed_in_the_header_with_the_body_hash() {
    let (target, credentials) = call_parts();
    let call = call_at_noon(&target, &credentials);
    let request = complete(call, "up/1", &[(1, "\"e1\"".into()), (2, "\"e2\"".into())]);
    assert_eq!(
        request.url,
        "http://127.0.0.1:8333/bucket/a%20b.bin?uploadId=up%2F1"
    );
    let body = String::from_utf8(request.body.clone()).unwrap();
    assert!(body.contains("<Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part>"));
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let authorization = header("authorization").unwrap();
    assert!(
        authorization
            .starts_with("AWS4-HMAC-SHA256 Credential=AKID/20260115/us-east-1/s3/aws4_request")
    );
    assert!(authorization.contains("x-amz-content-sha256"));
    assert_eq!(header("x-amz-security-token").as_deref(), Some("token"));
    assert_eq!(header("x-amz-date").as_deref(), Some("20260115T120000Z"));
}

#[test]
fn head_answers_say_whether_the_object_exists() {
    let found = StoreResponse {
        status: 200,
        headers: vec![
            ("etag".into(), "\"abc-2\"".into()),
            ("content-length".into(), "42".into()),
        ],
        body: Vec::new(),
    };
    assert_eq!(parse_head(&found).unwrap(), Some(("\"abc-2\"".into(), 42)));
    let missing = StoreResponse {
        status: 404,
        ..StoreResponse::default()
    };
    assert_eq!(parse_head(&missing).unwrap(), None);
}

#[test]
fn every_call_of_the_signer_may_be_sent_again_after_a_network_error_or_a_500() {
    let (target, credentials) = call_parts();
    let call = call_at_noon(&target, &credentials);
    let requests = [
        create_multipart(call, "image/png", &[]),
        list_parts(call, "up", 0, 1000),
        complete(call, "up", &[(1, "\"e1\"".into())]),
        abort(call, "up"),
        head(call),
        delete(call),
    ];
    for request in requests {
        assert!(request.idempotent, "{} {}", request.method, request.url);
    }
}
