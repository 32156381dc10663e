//! Verifying RS256 and ES256 tokens: the issuers' key sets, fetched with `fetch` and kept
//! per isolate, and signatures checked with WebCrypto (`crypto.subtle`).
//!
//! When to fetch is decided by [`crate::auth::jwks`]: when no set is kept, when the kept
//! one is older than its `Cache-Control: max-age`, or when a token names an unknown key
//! (a rotation), but not twice within the issuer's minimum interval. A set that cannot be
//! fetched keeps the old one in use; with none at all, the request gets 503.

use std::cell::RefCell;
use std::time::Duration;

use futures_util::future::{Either, select};
use worker::js_sys::{self, Array, Function, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{AbortController, Delay, Fetch, Request, web_sys};

use crate::auth::jwks::{self, CacheState, KeySet};
use crate::auth::jwt::PendingToken;
use crate::auth::{AuthError, Principal};
use crate::config::IssuerKey;

/// How long a key set fetch may take.
const FETCH_TIMEOUT_MS: u64 = 5_000;

/// How often a request that finds a fetch under way looks again whether it has ended.
const WAIT_STEP_MS: u64 = 25;

#[derive(Default)]
struct Kept {
    set: Option<KeySet>,
    state: Option<CacheState>,
    /// When the fetch under way began (Unix milliseconds), if one is. Requests that come
    /// meanwhile wait for its result instead of fetching too, so a burst of tokens with an
    /// unknown `kid` makes one fetch. (A request cannot await another request's fetch in
    /// Workers, so they look again every few milliseconds.)
    fetching_since: Option<i64>,
}

/// Key sets by URL. There is one URL per configured issuer, a handful at most, so a list
/// searched in order does (a `HashMap` would add its hashing code to the Worker).
#[derive(Default)]
struct KeptSets(Vec<(String, Kept)>);

impl KeptSets {
    fn get(&self, url: &str) -> Option<&Kept> {
        self.0.iter().find(|(u, _)| u == url).map(|(_, kept)| kept)
    }

    fn entry(&mut self, url: &str) -> &mut Kept {
        let index = match self.0.iter().position(|(u, _)| u == url) {
            Some(index) => index,
            None => {
                self.0.push((url.to_owned(), Kept::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[index].1
    }
}

thread_local! {
    /// Key sets by URL, for the life of the isolate.
    static KEY_SETS: RefCell<KeptSets> = RefCell::new(KeptSets::default());
}

/// Verifies a pending token's signature with its issuer's published key, then its claims.
pub async fn finish(
    pending: &PendingToken<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Principal, AuthError> {
    let IssuerKey::Jwks {
        url,
        min_refetch_seconds,
    } = &pending.issuer.key
    else {
        return Err(AuthError::BadSignature);
    };
    let seconds = now.timestamp();
    let kid = pending.kid.as_deref();

    wait_for_fetch_under_way(url).await;
    let (known, state) = KEY_SETS.with_borrow(|sets| {
        let kept = sets.get(url);
        let known = kept
            .and_then(|k| k.set.as_ref())
            .is_some_and(|s| s.find(kid, &pending.alg).is_some());
        let state = kept.and_then(|k| k.state).unwrap_or(CacheState {
            fetched_at: None,
            max_age: jwks::DEFAULT_MAX_AGE,
            last_attempt: None,
        });
        (known, state)
    });
    if jwks::should_fetch(state, known, seconds, i64::from(*min_refetch_seconds)) {
        KEY_SETS.with_borrow_mut(|sets| {
            let kept = sets.entry(url);
            kept.fetching_since = Some(now.timestamp_millis());
            kept.state = Some(CacheState {
                last_attempt: Some(seconds),
                ..state
            });
        });
        let fetched = fetch_set(url).await;
        KEY_SETS.with_borrow_mut(|sets| {
            let kept = sets.entry(url);
            kept.fetching_since = None;
            if let (Ok((set, max_age)), Some(state)) = (fetched, kept.state.as_mut()) {
                kept.set = Some(set);
                state.fetched_at = Some(seconds);
                state.max_age = max_age;
            }
        });
    }

    let key = KEY_SETS.with_borrow(|sets| {
        let set = sets.get(url).and_then(|k| k.set.as_ref());
        match set {
            None => Err(AuthError::KeysUnavailable),
            Some(set) => set
                .find(kid, &pending.alg)
                .map(|k| k.public.to_string())
                .ok_or(AuthError::UnknownKeyId),
        }
    })?;
    let ok = verify_signature(&pending.alg, &key, pending).await?;
    pending.finish(ok, now)
}

/// Waits while another request fetches this key set, for as long as a fetch may take. A
/// fetch whose request went away without clearing its mark stops counting after that.
async fn wait_for_fetch_under_way(url: &str) {
    let started = KEY_SETS.with_borrow(|sets| sets.get(url).and_then(|k| k.fetching_since));
    let Some(started) = started else {
        return;
    };
    let give_up = started + i64::try_from(FETCH_TIMEOUT_MS).unwrap_or(5_000);
    loop {
        let still = KEY_SETS.with_borrow(|sets| sets.get(url).and_then(|k| k.fetching_since));
        let now = i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX);
        if still != Some(started) || now > give_up {
            return;
        }
        Delay::from(Duration::from_millis(WAIT_STEP_MS)).await;
    }
}

async fn fetch_set(url: &str) -> Result<(KeySet, u32), String> {
    let request = web_sys::Request::new_with_str(url)
        .map(Request::from)
        .map_err(|_| "is not a URL the runtime can fetch".to_owned())?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let sending = Box::pin(fetch.send_with_signal(&signal));
    let timeout = Box::pin(Delay::from(Duration::from_millis(FETCH_TIMEOUT_MS)));
    let mut response = match select(sending, timeout).await {
        Either::Left((result, _)) => result.map_err(|e| e.to_string())?,
        Either::Right(((), _)) => {
            controller.abort();
            return Err("timed out".to_owned());
        }
    };
    if response.status_code() != 200 {
        return Err(format!("answered {}", response.status_code()));
    }
    let cache_control = response.headers().get("cache-control").ok().flatten();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    let set = KeySet::parse(&body)?;
    Ok((set, jwks::max_age(cache_control.as_deref())))
}

/// `crypto.subtle.importKey("jwk", ...)` then `crypto.subtle.verify(...)`.
async fn verify_signature(
    alg: &str,
    jwk: &str,
    pending: &PendingToken<'_>,
) -> Result<bool, AuthError> {
    let (import, verify) = match alg {
        "RS256" => (
            r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#,
            r#"{"name":"RSASSA-PKCS1-v1_5"}"#,
        ),
        "ES256" => (
            r#"{"name":"ECDSA","namedCurve":"P-256"}"#,
            r#"{"name":"ECDSA","hash":"SHA-256"}"#,
        ),
        _ => return Err(AuthError::AlgorithmNotAllowed(alg.to_owned())),
    };
    let unusable = |_| AuthError::UnusableKey;
    let parse = |text: &str| js_sys::JSON::parse(text).map_err(unusable);
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).map_err(unusable)?;
    let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle")).map_err(unusable)?;
    let method = |name: &str| -> Result<Function, AuthError> {
        Reflect::get(&subtle, &JsValue::from_str(name))
            .map_err(unusable)?
            .dyn_into::<Function>()
            .map_err(unusable)
    };

    let usages = Array::of1(&JsValue::from_str("verify"));
    let args = Array::of5(
        &JsValue::from_str("jwk"),
        &parse(jwk)?,
        &parse(import)?,
        &JsValue::FALSE,
        &usages,
    );
    let key = call(&method("importKey")?, &subtle, &args)
        .await
        .map_err(|_| AuthError::UnusableKey)?;
    let args = Array::of4(
        &parse(verify)?,
        &key,
        &Uint8Array::from(pending.signature.as_slice()),
        &Uint8Array::from(pending.signing_input.as_bytes()),
    );
    // A signature of the wrong shape makes verify reject rather than answer false.
    let verdict = call(&method("verify")?, &subtle, &args).await;
    Ok(verdict.is_ok_and(|v| v.as_bool() == Some(true)))
}

async fn call(function: &Function, this: &JsValue, args: &Array) -> Result<JsValue, JsValue> {
    let promise: Promise = function.apply(this, args)?.dyn_into()?;
    JsFuture::from(promise).await
}
