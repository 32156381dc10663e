//! The multipart flows against a scripted store. The store here checks no signatures:
//! these tests are about the signer's decisions; the end-to-end tests prove the signatures
//! against real stores.

use std::cell::RefCell;
use std::collections::VecDeque;

use chrono::{DateTime, TimeZone, Utc};
use futures_executor::block_on;

use super::*;
use crate::api::uploads::{CreateUploadRequest, plan};
use crate::auth::Principal;
use crate::config::tests::fixture;
use crate::config::{Config, RequestOrigin};

/// Answers requests from a script, in order, and remembers what was asked.
#[derive(Default)]
struct ScriptedStore {
    answers: RefCell<VecDeque<Result<StoreResponse, Unreachable>>>,
    seen: RefCell<Vec<StoreRequest>>,
}

impl ScriptedStore {
    fn answering(answers: Vec<Result<StoreResponse, Unreachable>>) -> Self {
        Self {
            answers: RefCell::new(answers.into()),
            seen: RefCell::default(),
        }
    }

    fn methods(&self) -> Vec<&'static str> {
        self.seen.borrow().iter().map(|r| r.method).collect()
    }
}

impl Store for ScriptedStore {
    async fn send(&self, request: StoreRequest) -> Result<StoreResponse, Unreachable> {
        self.seen.borrow_mut().push(request);
        self.answers
            .borrow_mut()
            .pop_front()
            .expect("the store was asked more than the script says")
    }
}

fn xml(status: u16, body: &str) -> Result<StoreResponse, Unreachable> {
    Ok(StoreResponse {
        status,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    })
}

fn created() -> Result<StoreResponse, Unreachable> {
    xml(
        200,
        "<InitiateMultipartUploadResult><UploadId>up-1</UploadId></InitiateMultipartUploadResult>",
    )
}

fn parts_page(parts: &[(u32, &str, u64)]) -> Result<StoreResponse, Unreachable> {
    let mut body = String::from("<ListPartsResult><IsTruncated>false</IsTruncated>");
    for (n, etag, size) in parts {
        body.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>\"{etag}\"</ETag><Size>{size}</Size></Part>"
        ));
    }
    body.push_str("</ListPartsResult>");
    xml(200, &body)
}

fn no_such_upload() -> Result<StoreResponse, Unreachable> {
    xml(
        404,
        "<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>",
    )
}

const MIB: u64 = 1024 * 1024;

struct World {
    config: Config,
    origin: RequestOrigin,
}

impl World {
    fn new() -> Self {
        Self {
            config: Config::load(&fixture()).unwrap(),
            origin: RequestOrigin::parse("http://127.0.0.1:8787/").unwrap(),
        }
    }

    fn ctx<'a>(&'a self, principal: &'a Principal, now: DateTime<Utc>) -> RequestContext<'a> {
        RequestContext {
            config: &self.config,
            principal,
            origin: &self.origin,
            now,
            random: [9; 16],
        }
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0)
        .single()
        .unwrap()
}

fn alice() -> Principal {
    Principal {
        subject: "alice".into(),
        credential: "jwt:test".into(),
        profiles: None,
        namespace: None,
    }
}

fn request(size: u64) -> CreateUploadRequest {
    serde_json::from_value(serde_json::json!({
        "filename": "movie.pdf", "contentType": "application/pdf", "size": size, "multipart": true
    }))
    .unwrap()
}

/// Starts a 9 MiB upload (parts of 8 MiB and 1 MiB) and gives its token.
fn started(world: &World, principal: &Principal) -> MultipartUpload {
    let ctx = world.ctx(principal, now());
    let store = ScriptedStore::answering(vec![created()]);
    let planned = plan(&ctx, &request(9 * MIB)).unwrap();
    let upload = block_on(start(&ctx, &store, &planned)).unwrap();
    assert_eq!(store.methods(), ["POST"]);
    assert!(store.seen.borrow()[0].url.ends_with("?uploads="));
    upload
}

#[test]
fn start_creates_the_upload_and_plans_its_parts() {
    let world = World::new();
    let upload = started(&world, &alice());
    assert_eq!(upload.upload_id, "up-1");
    assert_eq!((upload.part_size, upload.part_count), (8 * MIB, 2));
    assert!(upload.key.starts_with("users/alice/"));
    assert_eq!(upload.expires_at, "2026-01-16T12:00:00Z");
}

#[test]
fn each_part_url_signs_its_exact_length() {
    let world = World::new();
    let upload = started(&world, &alice());
    let me = alice();
    let ctx = world.ctx(&me, now());
    let opened = open(&ctx, &upload.token).unwrap();
    let store = ScriptedStore::answering(vec![parts_page(&[])]);
    let signed = block_on(sign_parts(&ctx, &store, &opened, &[2, 1])).unwrap();
    assert_eq!(signed.parts[0].headers["content-length"], (MIB).to_string());
    assert_eq!(
        signed.parts[1].headers["content-length"],
        (8 * MIB).to_string()
    );
    assert!(signed.parts[0].url.contains("partNumber=2&uploadId=up-1"));
    assert!(
        signed.parts[0]
            .url
            .contains("X-Amz-SignedHeaders=content-length%3Bhost")
    );
}

#[test]
fn part_numbers_outside_the_plan_twice_or_too_many_are_400() {
    let world = World::new();
    let upload = started(&world, &alice());
    let me = alice();
    let ctx = world.ctx(&me, now());
    let opened = open(&ctx, &upload.token).unwrap();
    let many: Vec<u32> = (1..=10_001).collect();
    for numbers in [vec![], vec![3], vec![0], vec![1, 1], many] {
        let store = ScriptedStore::default();
        let error = block_on(sign_parts(&ctx, &store, &opened, &numbers)).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.field.as_deref(), Some("partNumbers"));
        assert!(store.methods().is_empty(), "nothing reaches the store");
    }
}

#[test]
fn signing_parts_of_an_aborted_upload_is_409() {
    let world = World::new();
    let upload = started(&world, &alice());
    let me = alice();
    let ctx = world.ctx(&me, now());
    let opened = open(&ctx, &upload.token).unwrap();
    let store = ScriptedStore::answering(vec![no_such_upload()]);
    let error = block_on(sign_parts(&ctx, &store, &opened, &[1])).unwrap_err();
    assert_eq!(error.status(), 409);
}

#[test]
fn another_subjects_token_is_403_and_an_edited_one_400() {
    let world = World::new();
    let upload = started(&world, &alice());
    let bob = Principal {
        subject: "bob".into(),
        ..alice()
    };
    assert_eq!(
        open(&world.ctx(&bob, now()), &upload.token)
            .err()
            .unwrap()
            .status(),
        403
    );
    let mut edited = upload.token.clone().into_bytes();
    edited[5] = if edited[5] == b'x' { b'y' } else { b'x' };
    let edited = String::from_utf8(edited).unwrap();
    let me = alice();
    assert_eq!(
        open(&world.ctx(&me, now()), &edited)
            .err()
            .unwrap()
            .status(),
        400
    );
}

#[test]
fn an_expired_token_is_400_naming_the_token() {
    let world = World::new();
    let upload = started(&world, &alice());
    let later = now() + chrono::Duration::days(2);
    let me = alice();
    let error = open(&world.ctx(&me, later), &upload.token).err().unwrap();
    assert_eq!(error.status(), 400);
    assert_eq!(error.field.as_deref(), Some("token"));
    assert!(error.message.contains("expired"));
}

fn complete_with(
    world: &World,
    token: &str,
    parts: &[(u32, Option<&str>)],
    answers: Vec<Result<StoreResponse, Unreachable>>,
) -> (Result<Completed, ApiError>, Vec<&'static str>) {
    let me = alice();
    let ctx = world.ctx(&me, now());
    let opened = open(&ctx, token).unwrap();
    let store = ScriptedStore::answering(answers);
    let parts: Vec<ClientPart> = parts
        .iter()
        .map(|(n, e)| ClientPart {
            part_number: *n,
            etag: e.map(str::to_owned),
        })
        .collect();
    let result = block_on(complete(&ctx, &store, &opened, &parts));
    (result, store.methods())
}

#[test]
fn broken_part_lists_never_reach_the_store() {
    let world = World::new();
    let upload = started(&world, &alice());
    for parts in [
        vec![],
        vec![(1, Some("a"))],
        vec![(1, Some("a")), (1, Some("a")), (2, Some("b"))],
        vec![(1, Some("a")), (2, None)],
        vec![(1, Some("a")), (3, Some("c"))],
    ] {
        let (result, methods) = complete_with(&world, &upload.token, &parts, vec![]);
        let error = result.unwrap_err();
        assert_eq!(
            (error.status(), error.field.as_deref()),
            (400, Some("parts"))
        );
        assert!(methods.is_empty());
    }
}

#[test]
fn a_wrong_etag_refused_by_the_store_is_400_not_500() {
    let world = World::new();
    let upload = started(&world, &alice());
    let refused = xml(
        400,
        "<Error><Code>InvalidPart</Code><Message>bad etag</Message></Error>",
    );
    let parts = [(1, Some("a")), (2, Some("b"))];
    let (result, _) = complete_with(&world, &upload.token, &parts, vec![refused]);
    let error = result.unwrap_err();
    assert_eq!(error.status(), 400);
    assert!(error.message.contains("InvalidPart"));
}

#[test]
fn completing_again_with_the_same_parts_gives_the_same_answer() {
    let world = World::new();
    let upload = started(&world, &alice());
    let parts = [
        (1, Some("0cc175b9c0f1b6a831c399e269772661")),
        (2, Some("92eb5ffee6ae2fec3ad71c777531578f")),
    ];
    let checked: Vec<(u32, String)> = parts
        .iter()
        .map(|(n, e)| (*n, format!("\"{}\"", e.unwrap())))
        .collect();
    let etag = format!(
        "\"{}\"",
        crate::multipart::multipart_etag(&checked).unwrap()
    );
    let head = |etag: &str| {
        Ok(StoreResponse {
            status: 200,
            headers: vec![
                ("etag".into(), etag.to_owned()),
                ("content-length".into(), (9 * MIB).to_string()),
            ],
            body: Vec::new(),
        })
    };
    let (again, methods) = complete_with(
        &world,
        &upload.token,
        &parts,
        vec![no_such_upload(), head(&etag)],
    );
    assert_eq!(methods, ["POST", "HEAD"]);
    assert_eq!(again.unwrap().etag, etag);

    let (other, _) = complete_with(
        &world,
        &upload.token,
        &parts,
        vec![
            no_such_upload(),
            head("\"ffffffffffffffffffffffffffffffff-2\""),
        ],
    );
    assert_eq!(other.unwrap_err().status(), 409);
}

#[test]
fn an_unreachable_store_is_503() {
    let world = World::new();
    let me = alice();
    let ctx = world.ctx(&me, now());
    let store = ScriptedStore::answering(vec![Err(Unreachable("refused".into()))]);
    let planned = plan(&ctx, &request(9 * MIB)).unwrap();
    let error = block_on(start(&ctx, &store, &planned)).unwrap_err();
    assert_eq!(
        (error.status(), error.code.as_str()),
        (503, "storage_unavailable")
    );
}

#[test]
fn other_store_errors_are_502_with_the_stores_code() {
    let world = World::new();
    let me = alice();
    let ctx = world.ctx(&me, now());
    let denied = xml(
        403,
        "<Error><Code>AccessDenied</Code><Message>no</Message></Error>",
    );
    let store = ScriptedStore::answering(vec![denied]);
    let planned = plan(&ctx, &request(9 * MIB)).unwrap();
    let error = block_on(start(&ctx, &store, &planned)).unwrap_err();
    assert_eq!(error.status(), 502);
    assert!(error.message.contains("AccessDenied"));
}

#[test]
fn multipart_of_zero_bytes_is_400() {
    let world = World::new();
    let me = alice();
    let ctx = world.ctx(&me, now());
    let planned = plan(&ctx, &request(0)).unwrap();
    let error = block_on(start(&ctx, &ScriptedStore::default(), &planned)).unwrap_err();
    assert_eq!(
        (error.status(), error.field.as_deref()),
        (400, Some("size"))
    );
}

/// Creates an upload whose parts the client cuts itself (the `/s3/` routes), declared at
/// `size` bytes; its token.
fn client_cut_upload(world: &World, size: u64) -> String {
    let me = alice();
    let ctx = world.ctx(&me, now());
    let store = ScriptedStore::answering(vec![created()]);
    let planned = plan(&ctx, &request(size)).unwrap();
    block_on(create(&ctx, &store, &planned, None)).unwrap().1
}

fn completed_answer() -> Result<StoreResponse, Unreachable> {
    xml(
        200,
        "<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag></CompleteMultipartUploadResult>",
    )
}

fn head(size: u64) -> Result<StoreResponse, Unreachable> {
    Ok(StoreResponse {
        status: 200,
        headers: vec![
            ("etag".into(), "\"x-2\"".into()),
            ("content-length".into(), size.to_string()),
        ],
        body: Vec::new(),
    })
}

fn not_implemented() -> Result<StoreResponse, Unreachable> {
    xml(501, "<Error><Code>NotImplemented</Code></Error>")
}

#[test]
fn client_cut_upload_over_the_limit_is_aborted_at_completion() {
    let world = World::new();
    let token = client_cut_upload(&world, 9 * MIB);
    // The profile allows 10 MiB; the parts hold 12 MiB.
    let answers = vec![
        parts_page(&[(1, "a", 6 * MIB), (2, "b", 6 * MIB)]),
        xml(204, ""),
    ];
    let (result, methods) =
        complete_with(&world, &token, &[(1, Some("a")), (2, Some("b"))], answers);
    assert_eq!(result.unwrap_err().status(), 413);
    assert_eq!(methods, ["GET", "DELETE"]);
}

#[test]
fn client_cut_upload_of_its_declared_size_completes() {
    let world = World::new();
    let token = client_cut_upload(&world, 6 * MIB + 1000);
    let answers = vec![
        parts_page(&[(1, "a", 6 * MIB), (2, "b", 1000)]),
        completed_answer(),
    ];
    let (result, methods) =
        complete_with(&world, &token, &[(1, Some("a")), (2, Some("b"))], answers);
    assert_eq!(result.unwrap().size, 6 * MIB + 1000);
    assert_eq!(methods, ["GET", "POST"]);
}

#[test]
fn client_cut_upload_of_more_than_declared_is_aborted_naming_both_sizes() {
    let world = World::new();
    // Declared 6,000,000 bytes; the parts hold 7 MiB.
    let token = client_cut_upload(&world, 6_000_000);
    let answers = vec![
        parts_page(&[(1, "a", 6 * MIB), (2, "b", MIB)]),
        xml(204, ""),
    ];
    let (result, methods) =
        complete_with(&world, &token, &[(1, Some("a")), (2, Some("b"))], answers);
    let error = result.unwrap_err();
    assert_eq!((error.status(), error.code.as_str()), (413, "too_large"));
    assert!(
        error
            .message
            .contains("7340032 bytes, more than the 6000000"),
        "{}",
        error.message
    );
    assert_eq!(error.field.as_deref(), Some("parts"));
    assert_eq!(methods, ["GET", "DELETE"], "aborted, never completed");
}

#[test]
fn client_cut_upload_listing_fewer_bytes_than_declared_is_400_and_stays_open() {
    let world = World::new();
    let token = client_cut_upload(&world, 6 * MIB);
    // The store holds parts 1 to 3; the list leaves out part 2.
    let answers = vec![parts_page(&[
        (1, "a", 5 * MIB),
        (2, "b", MIB / 2),
        (3, "c", MIB / 2),
    ])];
    let (result, methods) =
        complete_with(&world, &token, &[(1, Some("a")), (3, Some("c"))], answers);
    let error = result.unwrap_err();
    assert_eq!(
        (error.status(), error.field.as_deref()),
        (400, Some("parts"))
    );
    assert!(
        error.message.contains("fewer than the 6291456"),
        "{}",
        error.message
    );
    assert!(error.message.contains("still open"), "{}", error.message);
    assert_eq!(methods, ["GET"], "neither completed nor aborted");
}

#[test]
fn client_cut_upload_with_an_etag_the_store_does_not_hold_is_400_before_completing() {
    // A part sent again after it was listed would change its ETag; the store must not
    // complete bytes the signer never counted.
    let world = World::new();
    let token = client_cut_upload(&world, 6 * MIB);
    for (parts, words) in [
        ([(1, Some("a")), (2, Some("other"))], "part 2's ETag"),
        (
            [(1, Some("a")), (3, Some("c"))],
            "part 3 is not in the store",
        ),
    ] {
        let answers = vec![parts_page(&[(1, "a", 5 * MIB), (2, "b", MIB)])];
        let (result, methods) = complete_with(&world, &token, &parts, answers);
        let error = result.unwrap_err();
        assert_eq!(
            (error.status(), error.field.as_deref()),
            (400, Some("parts"))
        );
        assert!(error.message.contains(words), "{}", error.message);
        assert_eq!(methods, ["GET"], "neither completed nor aborted");
    }
}

#[test]
fn client_cut_upload_counts_only_the_listed_parts() {
    let world = World::new();
    let token = client_cut_upload(&world, 6 * MIB);
    // The store also holds a part 3 that the list leaves out.
    let answers = vec![
        parts_page(&[(1, "a", 5 * MIB), (2, "b", MIB), (3, "c", MIB)]),
        completed_answer(),
    ];
    let (result, _) = complete_with(&world, &token, &[(1, Some("a")), (2, Some("b"))], answers);
    assert_eq!(result.unwrap().size, 6 * MIB);
}

#[test]
fn client_cut_upload_on_a_store_without_list_parts_is_checked_on_the_object() {
    let world = World::new();
    let token = client_cut_upload(&world, 6 * MIB);
    let parts = [(1, Some("a")), (2, Some("b"))];

    let (ok, methods) = complete_with(
        &world,
        &token,
        &parts,
        vec![not_implemented(), completed_answer(), head(6 * MIB)],
    );
    assert_eq!(ok.unwrap().size, 6 * MIB);
    assert_eq!(methods, ["GET", "POST", "HEAD"]);

    for (size, status) in [(12 * MIB, 413), (7 * MIB, 413), (5 * MIB, 400)] {
        let (refused, methods) = complete_with(
            &world,
            &token,
            &parts,
            vec![
                not_implemented(),
                completed_answer(),
                head(size),
                xml(204, ""),
            ],
        );
        assert_eq!(refused.unwrap_err().status(), status, "{size} bytes");
        assert_eq!(
            methods,
            ["GET", "POST", "HEAD", "DELETE"],
            "deleted at once"
        );
    }
}

#[test]
fn client_cut_upload_completed_before_is_accepted_only_at_its_declared_size() {
    let world = World::new();
    let token = client_cut_upload(&world, 6 * MIB);
    let parts = [(1, Some("a")), (2, Some("b"))];

    // The first try completed, its answer was lost: the store no longer has the upload.
    let (again, methods) = complete_with(
        &world,
        &token,
        &parts,
        vec![no_such_upload(), head(6 * MIB)],
    );
    assert_eq!(again.unwrap().size, 6 * MIB);
    assert_eq!(methods, ["GET", "HEAD"]);

    let (other, _) = complete_with(
        &world,
        &token,
        &parts,
        vec![no_such_upload(), head(7 * MIB)],
    );
    assert_eq!(other.unwrap_err().status(), 409);
}

#[test]
fn completing_again_with_opaque_part_etags_checks_the_part_count() {
    // R2's part ETags are not MD5s; its object's ETag still ends in the part count.
    let world = World::new();
    let token = client_cut_upload(&world, 6 * MIB);
    let two = [(1, Some("opaque-1")), (2, Some("opaque-2"))];
    let (again, _) = complete_with(&world, &token, &two, vec![no_such_upload(), head(6 * MIB)]);
    assert_eq!(again.unwrap().size, 6 * MIB, "the object's ETag is \"x-2\"");

    let one = [(2, Some("opaque-2"))];
    let (other, _) = complete_with(&world, &token, &one, vec![no_such_upload(), head(6 * MIB)]);
    assert_eq!(other.unwrap_err().status(), 409);
}

#[test]
fn signing_parts_on_a_store_without_list_parts_skips_the_existence_check() {
    let world = World::new();
    let upload = started(&world, &alice());
    let me = alice();
    let ctx = world.ctx(&me, now());
    let opened = open(&ctx, &upload.token).unwrap();
    let store =
        ScriptedStore::answering(vec![xml(501, "<Error><Code>NotImplemented</Code></Error>")]);
    assert!(block_on(sign_parts(&ctx, &store, &opened, &[1])).is_ok());
}
