//! Opening upload tokens (`multipart::token`) from any text, as a client may send it.
//!
//! No text makes `UploadToken::open` panic; a token opens only if its signature is the
//! fixture's `TOKEN_SECRET`'s, its version is 1 and it has not expired; and any change to
//! a token that opens makes it invalid.
//!
//! Input: the token text (the seeds hold tokens sealed with the fixture's secret).

#![no_main]

use edge_presigner::multipart::token::{TokenError, UploadToken};
use edge_presigner::secret::Secret;
use edge_presigner_fuzz::{fixture_config, now};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let secret = fixture_config().token_secret.as_ref().expect("set");
    let Ok(token) = UploadToken::open(text, secret, now()) else {
        return;
    };
    assert_eq!(token.v, 1);
    assert!(token.expires >= now().timestamp());

    // Another secret, or one more byte, and the same text no longer opens.
    let other = Secret::new("another-secret-0123456789abcdef0123456789");
    assert_eq!(
        UploadToken::open(text, &other, now()),
        Err(TokenError::Invalid)
    );
    for extra in ["A", "="] {
        let longer = format!("{text}{extra}");
        assert!(UploadToken::open(&longer, secret, now()).is_err());
    }
});
