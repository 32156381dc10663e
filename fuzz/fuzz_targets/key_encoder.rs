//! The SigV4 path and query encoders (`presign::encode`) and the paths buckets build with
//! them: the output holds only unreserved characters, `/` (paths only) and `%XX` with
//! uppercase hex, and `percent-encoding`'s decoder gives back the input bytes.
//!
//! Input: any bytes; those that are not UTF-8 are skipped (keys are strings).

#![no_main]

use edge_presigner::presign::encode::{encode_key, encode_query_component};
use edge_presigner_fuzz::{fixture_config, origin};
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = std::str::from_utf8(data) else {
        return;
    };

    let path = encode_key(key);
    assert_only_encoded(&path, true);
    assert_eq!(
        percent_decode_str(&path).collect::<Vec<u8>>(),
        key.as_bytes()
    );

    let component = encode_query_component(key);
    assert_only_encoded(&component, false);
    assert_eq!(
        percent_decode_str(&component).collect::<Vec<u8>>(),
        key.as_bytes()
    );

    // Every bucket of the fixture puts the key, encoded once, at the end of its path.
    let origin = origin();
    for bucket in fixture_config().buckets.values() {
        let target = bucket
            .target(key, &origin)
            .expect("the fixture's buckets sign");
        assert!(target.path.ends_with(&path), "{}", target.path);
        let decoded = percent_decode_str(&target.path).collect::<Vec<u8>>();
        assert!(decoded.ends_with(key.as_bytes()));
    }
});

/// Only unreserved bytes, `/` when `slash` is allowed, and `%` with two uppercase hex
/// digits.
fn assert_only_encoded(encoded: &str, slash: bool) {
    let bytes = encoded.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let hex = &bytes[i + 1..i + 3];
            assert!(
                hex.iter()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)),
                "{encoded}"
            );
            i += 3;
            continue;
        }
        let unreserved = byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte);
        assert!(unreserved || (slash && byte == b'/'), "{encoded}");
        i += 1;
    }
}
