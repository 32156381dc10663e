use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use super::*;

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().unwrap()
}

fn inputs<'a>(owner: &'a str, filename: &'a str) -> KeyInputs<'a> {
    KeyInputs {
        owner,
        filename,
        random: [0xAB; 16],
        now: at(2026, 3, 7),
    }
}

#[test]
fn filenames_are_sanitized_as_the_vectors_say() {
    #[derive(Deserialize)]
    struct Case {
        input: String,
        sanitized: String,
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/filenames.json");
    let cases: Vec<Case> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for case in cases {
        assert_eq!(
            sanitize_filename(&case.input),
            case.sanitized,
            "{:?}",
            case.input
        );
    }
}

#[test]
fn template_fills_every_placeholder() {
    let template =
        KeyTemplate::parse("u/{subject}/{year}/{month}/{day}/{date}/{uuid}.{ext}/{filename}")
            .unwrap();
    let key = template.render(&inputs("alice", "Photo.PNG")).unwrap();
    assert_eq!(
        key,
        "u/alice/2026/03/07/2026-03-07/abababab-abab-4bab-abab-abababababab.png/Photo.PNG"
    );
}

#[test]
fn path_traversal_in_filename_stays_under_the_subject_prefix() {
    let template = KeyTemplate::parse("users/{subject}/{uuid}/{filename}").unwrap();
    for name in ["../../etc/passwd", "a/../../b", "..", "/abs", "..\\..\\x"] {
        let key = template.render(&inputs("bob", name)).unwrap();
        assert!(key.starts_with(&template.owner_prefix("bob")), "{key}");
        assert!(validate_key(&key).is_ok());
    }
}

#[test]
fn subjects_are_escaped_into_one_reversible_segment() {
    assert_eq!(subject_segment("alice@example.com"), "alice@example.com");
    assert_eq!(subject_segment("a/b"), "a~2Fb");
    assert_eq!(subject_segment("a~2Fb"), "a~7E2Fb");
    assert_eq!(subject_segment(".."), "~2E~2E");
    assert_eq!(subject_segment("auth0|123"), "auth0~7C123");
    assert_ne!(subject_segment("a/b"), subject_segment("a_b"));
}

#[test]
fn templates_without_an_owned_prefix_are_refused() {
    for bad in [
        "{uuid}/{filename}",
        "{date}/{subject}/{filename}",
        "users/{subject}{filename}",
        "users{subject}/{filename}",
        "users/{subject}/{nope}",
        "users/{subject}/{filename",
        "users/{subject}/../{filename}",
        "users//{subject}/{filename}",
        "users/{subject}/",
    ] {
        assert!(KeyTemplate::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn owner_prefix_is_the_literal_and_the_owner_segment() {
    let template = KeyTemplate::parse("users/{subject}/{filename}").unwrap();
    assert_eq!(
        template.owner_prefix(&owner_segment(None, "a/b")),
        "users/a~2Fb/"
    );
    let bare = KeyTemplate::parse("{subject}/{filename}").unwrap();
    assert_eq!(bare.owner_prefix("carol"), "carol/");
}

#[test]
fn an_api_key_and_a_jwt_subject_of_the_same_name_own_different_segments() {
    let key = owner_segment(Some("key"), "backend");
    assert_eq!(key, "~key-backend");
    for jwt_subject in ["backend", "~key-backend", "~7Ekey-backend"] {
        assert_ne!(owner_segment(None, jwt_subject), key, "{jwt_subject}");
    }
}

#[test]
fn keys_over_1024_bytes_are_refused() {
    let template = KeyTemplate::parse("users/{subject}/{filename}").unwrap();
    let subject = "s".repeat(900);
    let result = template.render(&inputs(&subject, &"f".repeat(200)));
    assert_eq!(result, Err(KeyError::TooLong));
}

#[test]
fn long_filenames_are_cut_to_255_bytes_keeping_the_extension() {
    let long = format!("{}.jpeg", "é".repeat(300));
    let cut = sanitize_filename(&long);
    assert!(cut.len() <= 255);
    assert!(cut.ends_with(".jpeg"));
}

#[test]
fn a_long_filename_cut_short_does_not_end_in_a_space_or_a_dot() {
    for filler in [" ", ".", " . "] {
        // No extension is kept (it would be longer than 15 bytes), so the cut at 255 bytes
        // falls inside the filler.
        let long = format!("{}{}{}", "a".repeat(250), filler.repeat(10), "b".repeat(40));
        let cut = sanitize_filename(&long);
        assert_eq!(cut, "a".repeat(250), "{filler:?}");
    }
}

#[test]
fn keys_with_unsafe_segments_or_characters_are_invalid() {
    for bad in [
        "",
        "/a",
        "a//b",
        "a/./b",
        "a/../b",
        "a/",
        "a\u{0}b",
        "a\u{202E}b",
    ] {
        assert!(validate_key(bad).is_err(), "{bad:?}");
    }
    assert!(validate_key("a/b c/d+e.txt").is_ok());
}
