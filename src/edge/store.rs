//! The store reached with the Worker's `fetch`, with the retries of
//! [`crate::store::retry`] and a time limit on each attempt.

use std::time::Duration;

use futures_util::future::{Either, select};
use worker::js_sys::Uint8Array;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use crate::store::retry::{ATTEMPT_TIMEOUT_MS, Attempt, backoff_ms, should_retry};
use crate::store::{Store, StoreRequest, StoreResponse, Unreachable};

/// Sends store requests with `fetch`.
pub struct FetchStore {
    /// A random byte for the jitter of the backoff.
    pub jitter: u8,
}

impl Store for FetchStore {
    async fn send(&self, request: StoreRequest) -> Result<StoreResponse, Unreachable> {
        let mut attempt = 1;
        loop {
            let outcome = attempt_once(&request).await;
            let seen = match &outcome {
                Ok(response) => Attempt::Answered(response.status),
                Err(_) => Attempt::NoAnswer,
            };
            if !should_retry(attempt, request.idempotent, seen) {
                return outcome;
            }
            Delay::from(Duration::from_millis(backoff_ms(attempt, self.jitter))).await;
            attempt += 1;
        }
    }
}

async fn attempt_once(request: &StoreRequest) -> Result<StoreResponse, Unreachable> {
    let unreachable = |e: worker::Error| Unreachable(e.to_string());
    let headers = Headers::new();
    for (name, value) in &request.headers {
        headers.set(name, value).map_err(unreachable)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(request.method.to_owned()))
        .with_headers(headers);
    if !request.body.is_empty() {
        init.with_body(Some(Uint8Array::from(request.body.as_slice()).into()));
    }
    let fetch = Fetch::Request(Request::new_with_init(&request.url, &init).map_err(unreachable)?);

    let controller = AbortController::default();
    let signal = controller.signal();
    let sending = Box::pin(fetch.send_with_signal(&signal));
    let timeout = Box::pin(Delay::from(Duration::from_millis(ATTEMPT_TIMEOUT_MS)));
    let mut response = match select(sending, timeout).await {
        Either::Left((result, _)) => result.map_err(unreachable)?,
        Either::Right(((), _)) => {
            controller.abort();
            return Err(Unreachable(format!(
                "no answer within {ATTEMPT_TIMEOUT_MS} ms"
            )));
        }
    };

    let status = response.status_code();
    let headers = response
        .headers()
        .entries()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let body = if request.method == "HEAD" {
        Vec::new()
    } else {
        response.bytes().await.map_err(unreachable)?
    };
    Ok(StoreResponse {
        status,
        headers,
        body,
    })
}
