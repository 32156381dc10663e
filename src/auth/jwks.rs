//! JSON Web Key Sets: the public keys an identity provider publishes for RS256 and ES256
//! tokens, and the rules for fetching them again.
//!
//! This module only reads key sets and decides; the Worker fetches them and verifies
//! signatures with WebCrypto. A key is used only for the algorithm its type allows
//! (RS256 needs an RSA key, ES256 an EC key on P-256), so a token cannot pick a key of
//! another kind, and HS256 is never verified with a published key.
//!
//! See RFC 7517 (JWK) and RFC 7518 section 3 (the algorithms).

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// How long a key set is kept when its answer has no usable `Cache-Control`, in seconds.
pub const DEFAULT_MAX_AGE: u32 = 600;
/// The shortest `max-age` a key set is kept for, in seconds.
pub const MIN_REFETCH_INTERVAL: i64 = 60;
/// The longest a key set is kept, in seconds, whatever its `Cache-Control` says.
const MAX_MAX_AGE: u32 = 86_400;

/// One public key.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwk {
    /// Its id, matched against a token's `kid`.
    pub kid: Option<String>,
    /// The members WebCrypto needs to import it (`kty` and `n`, `e` or `crv`, `x`, `y`).
    pub public: Value,
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    usage: Option<String>,
}

/// A parsed key set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeySet {
    /// The keys this signer can use; others (symmetric, encryption, unknown types) are
    /// left out.
    pub keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<Map<String, Value>>,
}

impl KeySet {
    /// Parses a key set document, keeping the RSA and P-256 signature keys.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let raw: RawSet =
            serde_json::from_slice(body).map_err(|e| format!("not a JSON key set: {e}"))?;
        let keys = raw.keys.iter().filter_map(usable_key).collect();
        Ok(Self { keys })
    }

    /// The key for a token's `kid` and algorithm. Without `kid`, the only key that fits the
    /// algorithm, if there is exactly one.
    pub fn find(&self, kid: Option<&str>, alg: &str) -> Option<&Jwk> {
        let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
        match kid {
            Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let first = fitting.next();
                if fitting.next().is_some() {
                    None
                } else {
                    first
                }
            }
        }
    }
}

impl Jwk {
    /// Whether this key may verify a token signed with `alg`.
    pub fn fits(&self, alg: &str) -> bool {
        let kind_ok = match alg {
            "RS256" => self.kty == "RSA",
            "ES256" => self.kty == "EC" && self.crv.as_deref() == Some("P-256"),
            _ => false,
        };
        kind_ok
            && self.alg.as_deref().is_none_or(|a| a == alg)
            && self.usage.as_deref().is_none_or(|u| u == "sig")
    }
}

fn usable_key(raw: &Map<String, Value>) -> Option<Jwk> {
    let text = |name: &str| raw.get(name).and_then(Value::as_str).map(str::to_owned);
    let kty = text("kty")?;
    let public = match kty.as_str() {
        "RSA" => json!({"kty": "RSA", "n": text("n")?, "e": text("e")?}),
        "EC" => json!({"kty": "EC", "crv": text("crv")?, "x": text("x")?, "y": text("y")?}),
        _ => return None,
    };
    Some(Jwk {
        kid: text("kid"),
        public,
        crv: text("crv"),
        alg: text("alg"),
        usage: text("use"),
        kty,
    })
}

/// How long to keep a key set, from its answer's `Cache-Control`: `max-age`, within 60 s
/// to a day; `no-store`/`no-cache` mean the shortest; otherwise [`DEFAULT_MAX_AGE`].
pub fn max_age(cache_control: Option<&str>) -> u32 {
    let Some(value) = cache_control else {
        return DEFAULT_MAX_AGE;
    };
    let mut age = DEFAULT_MAX_AGE;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_REFETCH_INTERVAL as u32;
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            age = seconds.trim().parse().unwrap_or(DEFAULT_MAX_AGE);
        }
    }
    age.clamp(MIN_REFETCH_INTERVAL as u32, MAX_MAX_AGE)
}

/// What the Worker knows of one key set, to decide whether to fetch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheState {
    /// When the key set was last fetched successfully, if ever (Unix seconds).
    pub fetched_at: Option<i64>,
    /// How long that answer may be kept.
    pub max_age: u32,
    /// When a fetch was last tried, successful or not.
    pub last_attempt: Option<i64>,
}

/// Whether to fetch the key set now: when none is kept, when it is older than its
/// `max-age`, or when a token names a key it does not hold (a rotation) — but never twice
/// within `min_interval` seconds (the issuer's setting, 60 by default).
pub fn should_fetch(state: CacheState, key_known: bool, now: i64, min_interval: i64) -> bool {
    let recently_tried = state.last_attempt.is_some_and(|t| now - t < min_interval);
    match state.fetched_at {
        None => !recently_tried,
        Some(fetched) => {
            let stale = now - fetched >= i64::from(state.max_age);
            (stale || !key_known) && !recently_tried
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = r#"{"keys": [
        {"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": "AQAB-n", "e": "AQAB", "x5c": ["..."]},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": "xx", "y": "yy"},
        {"kty": "EC", "kid": "e2", "crv": "P-384", "x": "xx", "y": "yy"},
        {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "n", "e": "e"}
    ]}"#;

    #[test]
    fn keys_are_found_by_kid_and_only_for_their_algorithm() {
        let set = KeySet::parse(SET.as_bytes()).unwrap();
        assert_eq!(
            set.find(Some("r1"), "RS256").unwrap().kid.as_deref(),
            Some("r1")
        );
        assert_eq!(
            set.find(Some("e1"), "ES256").unwrap().kid.as_deref(),
            Some("e1")
        );
        assert!(set.find(Some("r1"), "ES256").is_none());
        assert!(set.find(Some("e1"), "RS256").is_none());
        assert!(
            set.find(Some("e2"), "ES256").is_none(),
            "P-384 is not ES256"
        );
        assert!(set.find(Some("h1"), "HS256").is_none(), "no symmetric keys");
        assert!(
            set.find(Some("enc"), "RS256").is_none(),
            "no encryption keys"
        );
        assert!(set.find(Some("nope"), "RS256").is_none());
    }

    #[test]
    fn only_the_public_members_are_kept_for_import() {
        let set = KeySet::parse(SET.as_bytes()).unwrap();
        let key = set.find(Some("r1"), "RS256").unwrap();
        assert_eq!(
            key.public,
            json!({"kty": "RSA", "n": "AQAB-n", "e": "AQAB"})
        );
    }

    #[test]
    fn without_kid_only_a_single_fitting_key_is_used() {
        let set = KeySet::parse(SET.as_bytes()).unwrap();
        assert!(set.find(None, "ES256").is_some());
        let two = KeySet::parse(
            br#"{"keys": [{"kty": "RSA", "n": "a", "e": "b"}, {"kty": "RSA", "n": "c", "e": "d"}]}"#,
        )
        .unwrap();
        assert!(two.find(None, "RS256").is_none());
    }

    #[test]
    fn malformed_key_sets_are_refused_and_malformed_keys_skipped() {
        assert!(KeySet::parse(b"not json").is_err());
        assert!(KeySet::parse(br#"{"nokeys": []}"#).is_err());
        let set = KeySet::parse(br#"{"keys": [{"kty": "RSA", "n": "a"}, {"kty": 3}]}"#).unwrap();
        assert!(set.keys.is_empty());
    }

    #[test]
    fn cache_control_sets_the_age_within_bounds() {
        assert_eq!(max_age(None), DEFAULT_MAX_AGE);
        assert_eq!(max_age(Some("public, max-age=3600")), 3600);
        assert_eq!(max_age(Some("max-age=5")), 60);
        assert_eq!(max_age(Some("max-age=99999999")), 86_400);
        assert_eq!(max_age(Some("no-store")), 60);
        assert_eq!(max_age(Some("max-age=abc")), DEFAULT_MAX_AGE);
    }

    #[test]
    fn key_sets_are_fetched_when_missing_stale_or_rotated_but_at_most_once_a_minute() {
        let fresh = CacheState {
            fetched_at: Some(1000),
            max_age: 600,
            last_attempt: Some(1000),
        };
        assert!(!should_fetch(fresh, true, 1100, 60));
        assert!(should_fetch(fresh, true, 1600, 60), "stale");
        assert!(
            !should_fetch(fresh, false, 1030, 60),
            "rotation within a minute of a fetch"
        );
        assert!(
            should_fetch(fresh, false, 1061, 60),
            "rotation after a minute"
        );
        let never = CacheState {
            fetched_at: None,
            max_age: 600,
            last_attempt: None,
        };
        assert!(should_fetch(never, false, 0, 60));
        let failed = CacheState {
            last_attempt: Some(1000),
            ..never
        };
        assert!(
            !should_fetch(failed, false, 1010, 60),
            "a failed fetch is not retried at once"
        );
    }
}
