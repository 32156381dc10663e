//! What the fuzz targets share: the native tests' configuration, a fixed clock, and the
//! way a target's input is cut into a selector byte and the rest.
//!
//! The targets call the crate's pure core only; nothing here does I/O, reads the clock or
//! draws random bytes, so a crash found once happens again on the same input.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use edge_presigner::auth::Principal;
use edge_presigner::config::{Config, RequestOrigin, Source};
use serde_json::Value;

/// `tests/fixtures/config.json`: the configuration of the native tests.
const FIXTURE: &str = include_str!("../../tests/fixtures/config.json");

/// A configuration source: each variable as JSON text, each secret as its value.
#[derive(Debug, Clone, Default)]
pub struct MapSource {
    /// Variables by name, as the JSON text the Worker would read.
    pub vars: BTreeMap<String, String>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, String>,
}

impl Source for MapSource {
    fn var_json(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }
}

impl MapSource {
    /// Reads a document shaped like the fixture: `{"vars": {...}, "secrets": {...}}`.
    /// `None` unless both members are objects and every secret is a string.
    pub fn from_document(text: &str) -> Option<Self> {
        let document: Value = serde_json::from_str(text).ok()?;
        let vars = document.get("vars")?.as_object()?;
        let secrets = document.get("secrets")?.as_object()?;
        Some(Self {
            vars: vars
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            secrets: secrets
                .iter()
                .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect::<Option<_>>()?,
        })
    }
}

/// The fixture as a configuration source.
pub fn fixture() -> MapSource {
    MapSource::from_document(FIXTURE).expect("tests/fixtures/config.json is a fixture document")
}

/// The fixture, loaded once per thread (a configuration keeps its signing keys in a
/// `RefCell`, as the Worker's single thread does, so it is not shared between threads).
pub fn fixture_config() -> &'static Config {
    thread_local! {
        static CONFIG: &'static Config =
            Box::leak(Box::new(Config::load(&fixture()).expect("the fixture loads")));
    }
    CONFIG.with(|config| *config)
}

/// The request time of every target: 2026-01-15T12:34:56Z.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 34, 56)
        .single()
        .expect("a valid time")
}

/// The origin the fixture's local R2 bucket is served on.
pub fn origin() -> RequestOrigin {
    RequestOrigin::parse("http://127.0.0.1:8787/v1/uploads").expect("a valid origin")
}

/// The API key `backend` of the fixture, as authentication makes it.
pub fn api_key_principal() -> Principal {
    Principal {
        subject: "backend".to_owned(),
        credential: "api-key:backend".to_owned(),
        profiles: None,
        namespace: Some("key".to_owned()),
    }
}

/// Cuts an input into its first byte, which picks what the target does, and the rest.
pub fn selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(first, rest)| (*first, rest))
}

/// Cuts bytes at the first `\n`: the part before it and the part after (empty when
/// there is none).
pub fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// Reverses the `~XX` escape of `policy::key::subject_segment`; `None` when the text holds
/// a `~` that is not followed by two uppercase hex digits.
pub fn unescape_segment(segment: &str) -> Option<Vec<u8>> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex
                .iter()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
            {
                return None;
            }
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}
