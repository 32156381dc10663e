//! The store's answers (`store::s3::parse_*`, read with `roxmltree`), and the XML body of
//! CompleteMultipartUpload that the signer writes.
//!
//! No answer makes a parser panic; a non-2xx answer is always an error; an upload id is 1
//! to 1024 bytes; a truncated part list always says where the next page starts. A part
//! list that `check_parts` accepts is written as XML that lists the same parts and ETags.
//!
//! Input: one byte that picks the HTTP status (modulo 8, from 200, 204, 206, 400, 403,
//! 404, 500, 503; at 128 and above, the rest is a part list to complete instead), then
//! the body. A part list is one part a line: its number, a space, its ETag.

#![no_main]

use edge_presigner::multipart::{ClientPart, check_parts};
use edge_presigner::presign::{Credentials, Target};
use edge_presigner::secret::Secret;
use edge_presigner::store::StoreResponse;
use edge_presigner::store::s3::{self, Call, MAX_UPLOAD_ID_BYTES};
use edge_presigner_fuzz::{now, selector};
use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 8] = [200, 204, 206, 400, 403, 404, 500, 503];

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = selector(data) else {
        return;
    };
    if first >= 128 {
        return complete_body(body);
    }
    let status = STATUSES[usize::from(first) % STATUSES.len()];
    let response = StoreResponse {
        status,
        headers: vec![
            ("etag".to_owned(), "\"abc\"".to_owned()),
            ("content-length".to_owned(), "5".to_owned()),
        ],
        body: body.to_vec(),
    };
    let success = (200..300).contains(&status);

    let create = s3::parse_create(&response);
    assert!(success || create.is_err());
    if let Ok(id) = create {
        assert!((1..=MAX_UPLOAD_ID_BYTES).contains(&id.len()));
    }
    let list = s3::parse_list_parts(&response);
    assert!(success || list.is_err());
    let complete = s3::parse_complete(&response);
    assert!(success || complete.is_err());
    let abort = s3::parse_abort(&response);
    assert!(success || abort.is_err());
    let _ = s3::parse_head(&response);
});

/// Writes CompleteMultipartUpload for the parts `check_parts` accepts and reads them back.
fn complete_body(list: &[u8]) {
    let Ok(text) = std::str::from_utf8(list) else {
        return;
    };
    let parts: Vec<ClientPart> = text
        .lines()
        .filter_map(|line| {
            let (number, etag) = line.split_once(' ')?;
            Some(ClientPart {
                part_number: number.parse().ok()?,
                etag: Some(etag.to_owned()),
            })
        })
        .collect();
    let Ok(checked) = check_parts(&parts, None) else {
        return;
    };

    let target = Target {
        origin: "http://127.0.0.1:8333".to_owned(),
        path: "/bucket/key".to_owned(),
        region: "us-east-1".to_owned(),
    };
    let credentials = Credentials::new("AKID", Secret::new("secret"), None);
    let call = Call {
        target: &target,
        credentials: &credentials,
        now: now(),
    };
    let request = s3::complete(call, "upload-id", &checked);

    let xml = std::str::from_utf8(&request.body).expect("UTF-8");
    let doc = roxmltree::Document::parse(xml).expect("the body is XML");
    let read: Vec<(u32, String)> = doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("Part"))
        .map(|part| {
            let text = |name: &str| {
                part.children()
                    .find(|n| n.has_tag_name(name))
                    .and_then(|n| n.text())
                    .unwrap_or_default()
                    .to_owned()
            };
            (text("PartNumber").parse().expect("a number"), text("ETag"))
        })
        .collect();
    assert_eq!(read, checked);
}
