//! Signing checked against references nobody on this project wrote: the example of the
//! AWS documentation, and URLs made by botocore (`tests/vectors/generate_presign_vectors.py`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::encode::encode_key;
use super::query::BatchSigner;
use super::reference::{self, Input};
use super::{Credentials, Target, headers};
use crate::secret::Secret;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn read_json<T: for<'de> Deserialize<'de>>(relative: &str) -> T {
    let path = vectors_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    key: String,
    method: String,
    origin: String,
    #[serde(default)]
    path_prefix: String,
    region: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    expires_in: u32,
    #[serde(default)]
    session_token: Option<String>,
    #[serde(default)]
    url: String,
    #[serde(default)]
    signature: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BotocoreFile {
    time: DateTime<Utc>,
    access_key_id: String,
    secret_access_key: String,
    cases: Vec<Case>,
}

fn sign_case(case: &Case, time: DateTime<Utc>, key_id: &str, secret: &str) -> String {
    let credentials = Credentials::new(
        key_id.to_owned(),
        Secret::new(secret),
        case.session_token.as_deref().map(Secret::new),
    );
    let target = Target {
        origin: case.origin.clone(),
        path: format!("{}/{}", case.path_prefix, encode_key(&case.key)),
        region: case.region.clone(),
    };
    let headers: Vec<(&str, &str)> = case
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let query: Vec<(&str, &str)> = case
        .query
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    BatchSigner::new(&credentials, &target.region, time, case.expires_in)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
        .sign(&case.method, &target, &query, &headers)
}

/// Splits a URL into the part before `?` and its decoded query pairs.
fn split_url(url: &str) -> (&str, BTreeSet<(String, String)>) {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect();
    (base, pairs)
}

fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn query_value<'a>(pairs: &'a BTreeSet<(String, String)>, name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in the URL"))
}

#[test]
fn aws_documentation_presigned_get_reproduces_its_signature() {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct DocCase {
        #[serde(flatten)]
        case: Case,
        time: DateTime<Utc>,
        access_key_id: String,
        secret_access_key: String,
        expected_signature: String,
        expected_signed_headers: String,
    }
    let doc: DocCase = read_json("presign/aws-docs-get-object.json");
    let url = sign_case(
        &doc.case,
        doc.time,
        &doc.access_key_id,
        &doc.secret_access_key,
    );
    let (base, pairs) = split_url(&url);
    assert_eq!(base, "https://examplebucket.s3.amazonaws.com/test.txt");
    assert_eq!(
        query_value(&pairs, "X-Amz-Signature"),
        doc.expected_signature
    );
    assert_eq!(
        query_value(&pairs, "X-Amz-SignedHeaders"),
        doc.expected_signed_headers
    );
    assert_eq!(
        query_value(&pairs, "X-Amz-Credential"),
        "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
    );
}

#[test]
fn every_botocore_reference_url_is_reproduced() {
    let file: BotocoreFile = read_json("presign/botocore-cases.json");
    assert!(
        file.cases.len() >= 40,
        "the table should hold at least 40 cases"
    );
    let mut failures = Vec::new();
    for case in &file.cases {
        let ours = sign_case(
            case,
            file.time,
            &file.access_key_id,
            &file.secret_access_key,
        );
        let (our_base, our_pairs) = split_url(&ours);
        let (their_base, their_pairs) = split_url(&case.url);
        if our_base != their_base {
            failures.push(format!("{}: path {our_base} != {their_base}", case.name));
        } else if our_pairs != their_pairs {
            failures.push(format!(
                "{}: query {our_pairs:?} != {their_pairs:?}",
                case.name
            ));
        } else if query_value(&our_pairs, "X-Amz-Signature") != case.signature {
            failures.push(format!("{}: signature differs", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn canonical_uris_encode_each_segment_once() {
    #[derive(Deserialize)]
    struct UriCase {
        key: String,
        path: String,
    }
    let cases: Vec<UriCase> = read_json("canonical-uris.json");
    for case in cases {
        assert_eq!(
            format!("/{}", encode_key(&case.key)),
            case.path,
            "{}",
            case.key
        );
    }
}

#[test]
fn content_type_is_a_signed_header_and_never_a_query_parameter() {
    let file: BotocoreFile = read_json("presign/botocore-cases.json");
    let case = file
        .cases
        .iter()
        .find(|c| c.name == "put-content-type")
        .unwrap();
    let url = sign_case(
        case,
        file.time,
        &file.access_key_id,
        &file.secret_access_key,
    );
    let (_, pairs) = split_url(&url);
    assert_eq!(
        query_value(&pairs, "X-Amz-SignedHeaders"),
        "content-type;host"
    );
    assert!(
        pairs
            .iter()
            .all(|(n, _)| !n.eq_ignore_ascii_case("content-type"))
    );
}

#[test]
fn a_custom_port_is_signed_and_a_default_port_signs_as_none() {
    let file: BotocoreFile = read_json("presign/botocore-cases.json");
    let mut case = file
        .cases
        .into_iter()
        .find(|c| c.name == "custom-endpoint-with-port")
        .unwrap();
    let with_port = sign_case(&case, file.time, "AKID", "secret");
    case.origin = "http://localhost".into();
    let no_port = sign_case(&case, file.time, "AKID", "secret");
    let signature = |url: &str| query_value(&split_url(url).1, "X-Amz-Signature").to_owned();
    assert_ne!(signature(&with_port), signature(&no_port));

    // A target's origin never holds a default port (the configuration drops it), which is
    // what SigV4 wants: the reference signs `:80` as no port at all.
    let target = Target {
        origin: "http://localhost:80".into(),
        path: format!("{}/{}", case.path_prefix, encode_key(&case.key)),
        region: case.region.clone(),
    };
    let credentials = Credentials::new("AKID", Secret::new("secret"), None);
    let headers: Vec<(&str, &str)> = case
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let query: Vec<(&str, &str)> = case
        .query
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let input = Input {
        method: &case.method,
        target: &target,
        query: &query,
        headers: &headers,
        credentials: &credentials,
        now: file.time,
    };
    let default_port = reference::presign(&input, case.expires_in).unwrap();
    assert_eq!(signature(&default_port), signature(&no_port));
}

#[test]
fn expiry_outside_one_second_to_seven_days_is_refused() {
    let credentials = Credentials::new("AKID", Secret::new("secret"), None);
    for expires_in in [0, 604_801] {
        let signer = BatchSigner::new(&credentials, "auto", DateTime::UNIX_EPOCH, expires_in);
        assert!(signer.is_err(), "{expires_in}");
    }
}

#[test]
fn header_signing_reproduces_the_aws_documentation_example() {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct HeaderDocCase {
        origin: String,
        key: String,
        method: String,
        region: String,
        access_key_id: String,
        secret_access_key: String,
        time: DateTime<Utc>,
        headers: Vec<(String, String)>,
        expected_credential: String,
        expected_signed_headers: String,
        expected_signature: String,
        expected_content_sha256: String,
    }
    let doc: HeaderDocCase = read_json("presign/aws-docs-header-get-object.json");
    let target = Target {
        origin: doc.origin.clone(),
        path: format!("/{}", encode_key(&doc.key)),
        region: doc.region.clone(),
    };
    let credentials = Credentials::new(
        doc.access_key_id.clone(),
        Secret::new(doc.secret_access_key.as_str()),
        None,
    );
    let request_headers: Vec<(&str, &str)> = doc
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let added = headers::sign(&headers::HeaderRequest {
        method: &doc.method,
        target: &target,
        query: &[],
        headers: &request_headers,
        body: b"",
        credentials: &credentials,
        now: doc.time,
    });
    let added = |name: &str| {
        added
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} header"))
    };

    assert_eq!(added("x-amz-date"), "20130524T000000Z");
    assert_eq!(added("x-amz-content-sha256"), doc.expected_content_sha256);
    assert_eq!(
        added("authorization"),
        format!(
            "AWS4-HMAC-SHA256 Credential={}, SignedHeaders={}, Signature={}",
            doc.expected_credential, doc.expected_signed_headers, doc.expected_signature
        )
    );
}

/// Credentials with and without a session token, for the property tests.
fn test_credentials(session_token: Option<String>) -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token.map(Secret::new),
    )
}

proptest::proptest! {
    /// The signer makes exactly the URL that the reference makes, for the three shapes
    /// it produces (PUT, UploadPart, GET) with any headers and queries.
    #[test]
    fn batch_signer_urls_equal_aws_sigv4_urls(
        key in "[ -~é😀/]{1,60}",
        method in "(PUT|GET)",
        query in proptest::collection::btree_map(
            "(partNumber|uploadId|response-content-disposition|response-content-type|x-id)",
            "[ -~é]{0,30}",
            0..4,
        ),
        headers in proptest::collection::btree_map(
            "(content-length|content-type|if-none-match|x-amz-checksum-sha256|x-amz-meta-[a-z]{1,8})",
            "[!-~]([ -~]{0,20}[!-~])?",
            0..6,
        ),
        session_token in proptest::option::of("[ -~]{1,40}"),
        expires_in in 1u32..=604_800,
        seconds in 0i64..4_000_000_000,
        region in "(auto|us-east-1|eu-central-1)",
        origin in proptest::sample::select(vec![
            "http://127.0.0.1:8787",
            "https://b.s3.us-east-1.amazonaws.com",
            "http://localhost:9000",
        ]),
    ) {
        let credentials = test_credentials(session_token);
        let target = Target {
            origin: origin.to_owned(),
            path: format!("/bucket/{}", encode_key(&key)),
            region,
        };
        let now = DateTime::from_timestamp(seconds, 0).unwrap();
        let query: Vec<(&str, &str)> = query.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let headers: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let input = Input {
            method: &method,
            target: &target,
            query: &query,
            headers: &headers,
            credentials: &credentials,
            now,
        };
        let general = reference::presign(&input, expires_in).unwrap();
        let fast = BatchSigner::new(&credentials, &target.region, now, expires_in)
            .unwrap()
            .sign(&method, &target, &query, &headers);
        let (general_base, general_query) = split_url(&general);
        let (fast_base, fast_query) = split_url(&fast);
        proptest::prop_assert_eq!(general_base, fast_base);
        proptest::prop_assert_eq!(general_query, fast_query);
    }
}

proptest::proptest! {
    /// Part URLs from the shared-prefix path equal the reference's, with and without a
    /// signed length.
    #[test]
    fn part_signer_urls_equal_aws_sigv4_urls(
        key in "[ -~é😀/]{1,60}",
        upload_id in "[ -~é]{1,200}",
        part_number in 1u32..=10_000,
        length in proptest::option::of(0u64..=5_368_709_120),
        session_token in proptest::option::of("[ -~]{1,40}"),
        expires_in in 1u32..=604_800,
        seconds in 0i64..4_000_000_000,
    ) {
        let credentials = test_credentials(session_token);
        let target = Target {
            origin: "http://127.0.0.1:8787".into(),
            path: format!("/cdn-cgi/local/r2/s3/b/{}", encode_key(&key)),
            region: "auto".into(),
        };
        let now = DateTime::from_timestamp(seconds, 0).unwrap();
        let number = part_number.to_string();
        let length_text = length.map(|l| l.to_string());
        let query = [("partNumber", number.as_str()), ("uploadId", upload_id.as_str())];
        let headers: Vec<(&str, &str)> =
            length_text.iter().map(|l| ("content-length", l.as_str())).collect();
        let input = Input {
            method: "PUT",
            target: &target,
            query: &query,
            headers: &headers,
            credentials: &credentials,
            now,
        };
        let general = reference::presign(&input, expires_in).unwrap();
        let signer = BatchSigner::new(&credentials, "auto", now, expires_in).unwrap();
        let fast = signer
            .parts(&target, &upload_id, length.is_some())
            .sign(part_number, length.unwrap_or(0));
        let (general_base, general_query) = split_url(&general);
        let (fast_base, fast_query) = split_url(&fast);
        proptest::prop_assert_eq!(general_base, fast_base);
        proptest::prop_assert_eq!(general_query, fast_query);
    }
}

proptest::proptest! {
    /// The signer's own calls to the store (create, list, complete, abort, head, delete)
    /// carry exactly the headers the reference signs them with.
    #[test]
    fn header_signatures_equal_aws_sigv4_signatures(
        key in "[ -~é😀/]{1,60}",
        method in "(GET|POST|DELETE|HEAD)",
        query in proptest::collection::btree_map(
            "(uploads|uploadId|max-parts|part-number-marker)",
            "[ -~é]{0,30}",
            0..4,
        ),
        headers in proptest::collection::btree_map(
            "(content-type|x-amz-meta-[a-z]{1,8})",
            "[!-~]([ -~]{0,20}[!-~])?",
            0..4,
        ),
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        session_token in proptest::option::of("[!-~]{1,40}"),
        seconds in 0i64..4_000_000_000,
        region in "(auto|us-east-1|eu-central-1)",
        origin in proptest::sample::select(vec![
            "http://127.0.0.1:8333",
            "https://b.s3.us-east-1.amazonaws.com",
            "https://account.r2.cloudflarestorage.com",
        ]),
    ) {
        let credentials = test_credentials(session_token);
        let target = Target {
            origin: origin.to_owned(),
            path: format!("/bucket/{}", encode_key(&key)),
            region,
        };
        let now = DateTime::from_timestamp(seconds, 0).unwrap();
        let query: Vec<(&str, &str)> = query.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let headers: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let input = Input {
            method: &method,
            target: &target,
            query: &query,
            headers: &headers,
            credentials: &credentials,
            now,
        };
        let mut general = reference::sign_headers(&input, &body).unwrap();
        let mut ours = headers::sign(&headers::HeaderRequest {
            method: &method,
            target: &target,
            query: &query,
            headers: &headers,
            body: &body,
            credentials: &credentials,
            now,
        });
        general.sort();
        ours.sort();
        proptest::prop_assert_eq!(general, ours);
    }
}

proptest::proptest! {
    /// The signing key a pair of credentials keeps for its day and region is never used
    /// for another: one pair signing in turn at times around midnight and in several
    /// regions makes, each time, the URL that the reference makes from scratch.
    #[test]
    fn a_kept_signing_key_serves_only_its_own_day_and_region(
        signings in proptest::collection::vec(
            (-2i64 * 86_400..2 * 86_400, "(auto|us-east-1|eu-central-1)"),
            1..8,
        ),
    ) {
        let credentials = test_credentials(None);
        let midnight = 1_780_000_000 / 86_400 * 86_400;
        for (offset, region) in signings {
            let target = Target {
                origin: "http://127.0.0.1:8787".to_owned(),
                path: "/bucket/photo.png".to_owned(),
                region,
            };
            let now = DateTime::from_timestamp(midnight + offset, 0).unwrap();
            let headers = [("content-type", "image/png")];
            let input = Input {
                method: "PUT",
                target: &target,
                query: &[],
                headers: &headers,
                credentials: &credentials,
                now,
            };
            let general = reference::presign(&input, 900).unwrap();
            let fast = BatchSigner::new(&credentials, &target.region, now, 900)
                .unwrap()
                .sign("PUT", &target, &[], &headers);
            proptest::prop_assert_eq!(split_url(&general), split_url(&fast));
        }
    }
}
