//! Loading the configuration (`config::Config::load`) from any variables.
//!
//! No setting makes loading panic; a refusal never quotes the value of one of the
//! fixture's secrets (unless a variable holds it too); a configuration that loads has a
//! bucket for every profile, and every profile's key template renders for an ordinary
//! owner and file name, under that owner's prefix.
//!
//! Input: one byte that picks what to replace in the fixture (modulo 5: `BUCKETS`,
//! `PROFILES`, `AUTH`, `CORS`, or the whole document `{"vars": ..., "secrets": ...}`),
//! then its JSON text.

#![no_main]

use edge_presigner::config::Config;
use edge_presigner::policy::key::{KeyInputs, validate_key};
use edge_presigner_fuzz::{MapSource, fixture, now, selector};
use libfuzzer_sys::fuzz_target;

const VARS: [&str; 4] = ["BUCKETS", "PROFILES", "AUTH", "CORS"];

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = selector(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let source = match VARS.get(usize::from(which % 5)) {
        Some(name) => {
            let mut source = fixture();
            source.vars.insert((*name).to_owned(), text.to_owned());
            source
        }
        None => match MapSource::from_document(text) {
            Some(source) => source,
            None => return,
        },
    };

    let config = match Config::load(&source) {
        Ok(config) => config,
        Err(error) => {
            // The fixture's secrets only: a fuzzed one may be any text, `is not set` too.
            // A secret's value may also be written in a variable, which may be quoted.
            let message = error.to_string();
            let in_vars = |secret: &str| source.vars.values().any(|v| v.contains(secret));
            for secret in fixture().secrets.values() {
                let used = source.secrets.values().any(|s| s == secret);
                if used && secret.len() >= 8 && !in_vars(secret) {
                    assert!(!message.contains(secret.as_str()), "{message}");
                }
            }
            return;
        }
    };
    for profile in config.profiles.values() {
        assert!(config.buckets.contains_key(&profile.bucket));
        let inputs = KeyInputs {
            owner: "alice",
            filename: "photo.png",
            random: [1; 16],
            now: now(),
        };
        if let Ok(key) = profile.key_template.render(&inputs) {
            assert_eq!(validate_key(&key), Ok(()));
            assert!(key.starts_with(&profile.key_template.owner_prefix("alice")));
        }
    }
});
