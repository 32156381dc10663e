//! The store reached with the Worker's `fetch`, with the retries of
//! [`crate::store::retry`] and a time limit on each attempt.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{Either, select};
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;
use worker::{AbortController, Delay, Fetch, Request, Response, web_sys};

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
                Err(failure) => failure.kind,
            };
            if !should_retry(attempt, request.idempotent, seen) {
                return outcome.map_err(|failure| failure.unreachable);
            }
            Delay::from(Duration::from_millis(backoff_ms(attempt, self.jitter))).await;
            attempt += 1;
        }
    }
}

/// An attempt without a whole answer: why, and the detail for the log.
struct Failure {
    kind: Attempt,
    unreachable: Unreachable,
}

fn no_answer(error: worker::Error) -> Failure {
    Failure {
        kind: Attempt::NoAnswer,
        unreachable: Unreachable(error.to_string()),
    }
}

fn timed_out(controller: AbortController, what: &str) -> Failure {
    controller.abort();
    Failure {
        kind: Attempt::TimedOut,
        unreachable: Unreachable(format!("{what} within {ATTEMPT_TIMEOUT_MS} ms")),
    }
}

/// The runtime refused to make the request (a header or URL it does not accept).
fn unsendable(error: JsValue) -> Failure {
    Failure {
        kind: Attempt::NoAnswer,
        unreachable: Unreachable(
            error
                .as_string()
                .unwrap_or_else(|| "the request could not be made".to_owned()),
        ),
    }
}

/// The request as a runtime `Request`. Built with `web_sys` rather than
/// `worker::RequestInit`, whose conversion carries Cloudflare's `cf` options (image
/// resizing, caching, ...), none of which these requests use: 2 KB of the wasm.
fn runtime_request(request: &StoreRequest) -> Result<Request, Failure> {
    let headers = web_sys::Headers::new().map_err(unsendable)?;
    for (name, value) in &request.headers {
        headers.set(name, value).map_err(unsendable)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(request.method);
    init.set_headers(&headers);
    if !request.body.is_empty() {
        init.set_body(&Uint8Array::from(request.body.as_slice()));
    }
    web_sys::Request::new_with_str_and_init(&request.url, &init)
        .map(Request::from)
        .map_err(unsendable)
}

async fn attempt_once(request: &StoreRequest) -> Result<StoreResponse, Failure> {
    let fetch = Fetch::Request(runtime_request(request)?);

    let controller = AbortController::default();
    let signal = controller.signal();
    let Some(sent) = within_time_limit(fetch.send_with_signal(&signal)).await else {
        return Err(timed_out(controller, "no answer"));
    };
    let mut response = sent.map_err(no_answer)?;

    let status = response.status_code();
    let headers = response
        .headers()
        .entries()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let body = if request.method == "HEAD" {
        Vec::new()
    } else {
        read_body(&mut response, controller).await?
    };
    Ok(StoreResponse {
        status,
        headers,
        body,
    })
}

/// Reads the whole body, each piece within the time limit: a store that stops sending
/// midway would otherwise hold the request until the client gives up.
async fn read_body(
    response: &mut Response,
    controller: AbortController,
) -> Result<Vec<u8>, Failure> {
    let Ok(mut stream) = response.stream() else {
        // No stream to read: the body is empty or already whole.
        return response.bytes().await.map_err(no_answer);
    };
    let mut body = Vec::new();
    loop {
        match within_time_limit(stream.next()).await {
            Some(Some(piece)) => body.extend(piece.map_err(no_answer)?),
            Some(None) => return Ok(body),
            None => return Err(timed_out(controller, "the answer's body stopped coming")),
        }
    }
}

/// `work`'s output, or `None` when it takes longer than [`ATTEMPT_TIMEOUT_MS`].
async fn within_time_limit<T>(work: impl Future<Output = T>) -> Option<T> {
    let timeout = Delay::from(Duration::from_millis(ATTEMPT_TIMEOUT_MS));
    match select(pin!(work), pin!(timeout)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}
