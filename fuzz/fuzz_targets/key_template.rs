//! Key templates, file names and owner segments (`policy::key`).
//!
//! For any template that parses, any subject, namespace, file name, random bytes and
//! date: a rendered key is at most 1024 bytes, passes `validate_key` and starts with the
//! owner's prefix. A sanitised file name is one safe segment without spaces or dots at its
//! ends. A subject's segment decodes back to the subject, and an owner segment says which
//! namespace it belongs to, so two sources of subjects never share a prefix.
//!
//! Input: structured (`arbitrary`), with the file name last so that it takes the rest.

#![no_main]

use arbitrary::Arbitrary;
use chrono::DateTime;
use edge_presigner::config::check_namespace;
use edge_presigner::policy::key::{
    KeyError, KeyInputs, KeyTemplate, MAX_KEY_BYTES, owner_segment, sanitize_filename,
    subject_segment, validate_key,
};
use edge_presigner_fuzz::unescape_segment;
use libfuzzer_sys::fuzz_target;

/// Templates from the fixture, the README and the unit tests.
const KNOWN_TEMPLATES: &[&str] = &[
    "users/{subject}/{uuid}/{filename}",
    "reports/{subject}/{date}/{filename}",
    "u/{subject}/{year}/{month}/{day}/{date}/{uuid}.{ext}/{filename}",
    "{subject}/{filename}",
];

#[derive(Debug, Arbitrary)]
enum Template<'a> {
    Known(u8),
    Custom(&'a str),
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    template: Template<'a>,
    namespace: Option<&'a str>,
    subject: &'a str,
    random: [u8; 16],
    seconds: u32,
    filename: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    check_subject_segment(input.subject);
    check_filename(input.filename);

    let namespace = input
        .namespace
        .filter(|ns| check_namespace("namespace", Some((*ns).to_owned())).is_ok());
    let owner = owner_segment(namespace, input.subject);
    assert_eq!(
        split_owner(&owner),
        Some((namespace, input.subject.as_bytes().to_vec())),
        "owner segment {owner:?}"
    );

    let text = match input.template {
        Template::Known(i) => KNOWN_TEMPLATES[usize::from(i) % KNOWN_TEMPLATES.len()],
        Template::Custom(text) => text,
    };
    let Ok(template) = KeyTemplate::parse(text) else {
        return;
    };
    let inputs = KeyInputs {
        owner: &owner,
        filename: input.filename,
        random: input.random,
        now: DateTime::from_timestamp(i64::from(input.seconds), 0).expect("in range"),
    };
    match template.render(&inputs) {
        Ok(key) => {
            assert!(key.len() <= MAX_KEY_BYTES, "{} bytes", key.len());
            assert_eq!(validate_key(&key), Ok(()), "{key:?}");
            assert!(key.starts_with(&template.owner_prefix(&owner)), "{key:?}");
        }
        Err(KeyError::TooLong | KeyError::Invalid(_)) => {}
    }
});

/// A subject's segment is one segment, not `.` or `..`, of the documented characters,
/// and decodes back to the subject.
fn check_subject_segment(subject: &str) {
    let segment = subject_segment(subject);
    assert!(
        segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@+=~".contains(&b)),
        "{segment:?}"
    );
    assert!(segment != "." && segment != "..");
    assert_eq!(
        unescape_segment(&segment).as_deref(),
        Some(subject.as_bytes())
    );
}

/// A sanitised file name is one segment a key may hold, at most 255 bytes, and neither
/// starts nor ends with a space or a dot.
fn check_filename(name: &str) {
    let clean = sanitize_filename(name);
    assert!(clean.len() <= 255, "{} bytes", clean.len());
    assert!(!clean.contains(['/', '\\']), "{clean:?}");
    assert_eq!(validate_key(&clean), Ok(()), "{clean:?}");
    let edge = |c: char| c == '.' || c.is_whitespace();
    assert!(
        !clean.starts_with(edge) && !clean.ends_with(edge),
        "{clean:?}"
    );
}

/// Reads an owner segment as the docs of `owner_segment` describe it: an escaped subject
/// never has a `~` that is not followed by two uppercase hex digits, so a segment that
/// starts with any other `~` is `~<namespace>-<escaped subject>`.
fn split_owner(owner: &str) -> Option<(Option<&str>, Vec<u8>)> {
    if let Some(rest) = owner.strip_prefix('~') {
        let escape = rest
            .bytes()
            .take(2)
            .filter(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
            .count()
            == 2;
        if !escape {
            let (namespace, subject) = rest.split_once('-')?;
            return Some((Some(namespace), unescape_segment(subject)?));
        }
    }
    Some((None, unescape_segment(owner)?))
}
