//! JSON Web Key Sets and their cache rules (`auth::jwks`).
//!
//! No key set makes the parser panic; a key found for an algorithm fits it, and the
//! members kept for WebCrypto are only public ones; a key set's lifetime is always 60 s
//! to a day, whatever `Cache-Control` says.
//!
//! Input: a `Cache-Control` value, a `\n`, then the key set document.

#![no_main]

use edge_presigner::auth::jwks::{KeySet, max_age};
use edge_presigner_fuzz::split_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cache_control, body) = split_line(data);
    if let Ok(value) = std::str::from_utf8(cache_control) {
        assert!((60..=86_400).contains(&max_age(Some(value))));
    }

    let Ok(set) = KeySet::parse(body) else {
        return;
    };
    for key in &set.keys {
        let members = key.public.as_object().expect("an object");
        assert!(
            members
                .keys()
                .all(|m| ["kty", "n", "e", "crv", "x", "y"].contains(&m.as_str()))
        );
        for alg in ["RS256", "ES256", "HS256", "none"] {
            let found = set.find(key.kid.as_deref(), alg);
            // Without a kid, the one key that fits is found, whatever its own kid.
            let same_kid =
                |k: &edge_presigner::auth::jwks::Jwk| key.kid.is_none() || k.kid == key.kid;
            assert!(found.is_none_or(|k| k.fits(alg) && same_kid(k)));
        }
    }
    for alg in ["RS256", "ES256"] {
        assert!(set.find(None, alg).is_none_or(|k| k.fits(alg)));
    }
    assert!(set.find(None, "HS256").is_none());
});
