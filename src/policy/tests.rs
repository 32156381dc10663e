use std::collections::BTreeMap;

use super::*;

fn profile() -> Profile {
    Profile {
        name: "default".into(),
        bucket: "dev".into(),
        key_template: KeyTemplate::parse("users/{subject}/{filename}").unwrap(),
        content_types: vec![
            ContentTypeRule::parse("image/*").unwrap(),
            ContentTypeRule::parse("application/pdf").unwrap(),
        ],
        max_size: 10 * 1024 * 1024,
        expires_in: 900,
        max_expires_in: 3600,
        overwrite: false,
        metadata: BTreeMap::from([("uploader".to_owned(), "edge-presigner".to_owned())]),
        multipart_threshold: 100 << 20,
        part_size: 8 << 20,
        multipart_expires_in: 86_400,
    }
}

#[test]
fn allowed_content_type_is_signed_as_declared() {
    assert_eq!(
        profile().check_content_type("image/PNG").unwrap(),
        "image/PNG"
    );
}

#[test]
fn content_type_outside_the_profile_is_refused() {
    assert_eq!(
        profile().check_content_type("application/x-msdownload"),
        Err(PolicyError::ContentTypeNotAllowed {
            essence: "application/x-msdownload".into()
        })
    );
}

#[test]
fn size_over_the_profile_is_refused_with_the_limit() {
    let p = profile();
    assert!(p.check_single_size(p.max_size).is_ok());
    assert_eq!(
        p.check_single_size(p.max_size + 1),
        Err(PolicyError::TooLarge { max: p.max_size })
    );
}

#[test]
fn single_put_is_capped_at_five_gib_even_if_the_profile_allows_more() {
    let mut p = profile();
    p.max_size = u64::MAX;
    assert_eq!(
        p.check_single_size(MAX_SINGLE_PUT_SIZE + 1),
        Err(PolicyError::TooLarge {
            max: MAX_SINGLE_PUT_SIZE
        })
    );
}

#[test]
fn client_metadata_is_merged_and_cannot_replace_the_profiles() {
    let p = profile();
    let merged = p
        .metadata_for(&BTreeMap::from([("Caption".to_owned(), "hi".to_owned())]))
        .unwrap();
    assert_eq!(merged.get("caption").map(String::as_str), Some("hi"));
    assert_eq!(
        merged.get("uploader").map(String::as_str),
        Some("edge-presigner")
    );
    let clash = p.metadata_for(&BTreeMap::from([("uploader".to_owned(), "me".to_owned())]));
    assert!(matches!(clash, Err(PolicyError::Metadata { .. })));
}

#[test]
fn metadata_names_that_differ_only_in_case_are_refused_not_merged() {
    let p = profile();
    let request = BTreeMap::from([
        ("A".to_owned(), "1".to_owned()),
        ("a".to_owned(), "2".to_owned()),
    ]);
    let error = p.metadata_for(&request).unwrap_err();
    assert!(
        matches!(&error, PolicyError::Metadata { problem, .. } if problem.contains("twice")),
        "{error:?}"
    );
}

#[test]
fn malformed_or_oversized_metadata_is_refused() {
    let p = profile();
    for (name, value) in [("bad name", "x"), ("ok", "é"), ("ok", "a\nb"), ("", "x")] {
        let request = BTreeMap::from([(name.to_owned(), value.to_owned())]);
        assert!(p.metadata_for(&request).is_err(), "{name:?}={value:?}");
    }
    let big = BTreeMap::from([("big".to_owned(), "x".repeat(3000))]);
    assert!(p.metadata_for(&big).is_err());
}
