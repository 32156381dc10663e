//! Upload tokens sealed then opened (`multipart::token`): the fields come back the same,
//! for every token the signer can make.
//!
//! The fields are shaped as the signer makes them: the subject is an owner segment (from
//! `owner_segment`) of at most 1024 bytes, the key starts with it and passes
//! `validate_key` (so at most 1024 bytes), the upload id is at most 1024 bytes of text an
//! XML answer can hold (no control characters; S3's and R2's ids are a few hundred bytes
//! at most), bucket and profile names are at most 64 bytes, and the plan is one that
//! `PartPlan::new` made.
//!
//! Input: structured (`arbitrary`). Each of the subject, the key's file name part and the
//! upload id can be stretched to its longest (its text repeated up to 1024 bytes), which
//! libFuzzer's short inputs would seldom reach.

#![no_main]

use arbitrary::Arbitrary;
use edge_presigner::multipart::plan::PartPlan;
use edge_presigner::multipart::token::{TokenError, UploadToken};
use edge_presigner::policy::key::{owner_segment, validate_key};
use edge_presigner_fuzz::{fixture_config, now};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Fields {
    bucket: String,
    key: String,
    upload_id: String,
    subject: String,
    profile: String,
    plan: Option<(u64, u64)>,
    size: Option<u64>,
    expires_after: u32,
    stretch: [bool; 3],
}

/// `text` repeated up to `max` bytes, cut on a character boundary.
fn stretched(text: String, stretch: bool, max: usize) -> String {
    if !stretch || text.is_empty() {
        return text;
    }
    let mut long = text.repeat(max / text.len() + 1);
    let mut cut = max;
    while !long.is_char_boundary(cut) {
        cut -= 1;
    }
    long.truncate(cut);
    long
}

fuzz_target!(|fields: Fields| {
    let [long_key, long_subject, long_upload_id] = fields.stretch;
    let subject = stretched(owner_segment(None, &fields.subject), long_subject, 1024);
    let prefix = format!("users/{subject}/");
    let rest = stretched(
        fields.key,
        long_key,
        1024_usize.saturating_sub(prefix.len()),
    );
    let key = format!("{prefix}{rest}");
    let upload_id = stretched(fields.upload_id, long_upload_id, 1024);
    let within = |text: &str, max: usize| !text.is_empty() && text.len() <= max;
    if validate_key(&key).is_err()
        || !within(&upload_id, 1024)
        || upload_id.contains(char::is_control)
        || !within(&subject, 1024)
        || !within(&fields.bucket, 64)
        || !within(&fields.profile, 64)
    {
        return;
    }
    let plan = match fields.plan {
        Some((size, part_size)) => match PartPlan::new(size, part_size) {
            Ok(plan) => Some(plan),
            Err(_) => return,
        },
        None => None,
    };
    let token = UploadToken {
        v: 1,
        bucket: fields.bucket,
        key,
        upload_id,
        subject,
        profile: fields.profile,
        plan,
        size: fields.size,
        expires: now().timestamp() + i64::from(fields.expires_after),
    };

    let secret = fixture_config().token_secret.as_ref().expect("set");
    let sealed = token.seal(secret);
    assert!(
        sealed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "a token is URL- and path-safe"
    );
    assert_eq!(
        UploadToken::open(&sealed, secret, now()),
        Ok(token.clone()),
        "{} bytes",
        sealed.len()
    );

    let later = now() + chrono::Duration::seconds(i64::from(fields.expires_after) + 1);
    assert_eq!(
        UploadToken::open(&sealed, secret, later),
        Err(TokenError::Expired)
    );
});
