//! The Worker glue: the only code that touches the Workers runtime.
//!
//! For each request it reads the clock and random bytes once, loads the configuration
//! from `Env`, authenticates, reads the body (at most the route's limit: 64 KiB, or about
//! 11 MiB for a complete call's part list), calls the pure handlers of [`crate::api`],
//! writes the JSON answer with CORS headers, and logs one audit line.
//! Everything it decides is decided by pure code; this module only carries values in and
//! out.

mod env;
mod keys;
mod reply;
mod routes;
mod store;

use std::cell::RefCell;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use worker::js_sys::{Object, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{self, Headers};
use worker::{Context, Env, Request, event};

use crate::api::{self, ApiError, ErrorCode, RequestContext, Route, json};
use crate::audit::Record;
use crate::auth;
use crate::config::{Config, RequestOrigin};
use env::EnvSource;
use reply::Reply;
use routes::Call;
use store::FetchStore;

/// What is known about the request being answered, for the reply and the audit line.
struct Exchange {
    now: DateTime<Utc>,
    random: [u8; 16],
    origin_header: Option<String>,
    allowed_origins: Vec<String>,
    /// Whether the path is under `/s3/`, whose errors also carry Uppy's top-level message.
    uppy_path: bool,
    record: Record,
}

impl Exchange {
    fn start(headers: &Headers) -> Self {
        let now = DateTime::from_timestamp_millis(
            i64::try_from(worker::Date::now().as_millis()).unwrap_or(0),
        )
        .unwrap_or_default();
        let mut random = [0u8; 16];
        // getrandom reads crypto.getRandomValues in the Worker; it does not fail there.
        let _ = getrandom::fill(&mut random);
        let request_id = header(headers, "cf-ray").unwrap_or_else(|| hex::encode(&random[..8]));
        Self {
            now,
            random,
            origin_header: header(headers, "origin"),
            allowed_origins: Vec::new(),
            uppy_path: false,
            record: Record {
                request_id,
                time: crate::time::rfc3339(now),
                ..Record::default()
            },
        }
    }
}

/// The Worker's entry point. It takes and gives the runtime's own `Request` and
/// `Response`: `worker::Request` would read the URL, the method and the `cf` object of
/// every request up front, and `worker::Response` copies its body once more, together a
/// tenth of the CPU of answering a signing request.
#[event(fetch)]
async fn fetch(
    req: web_sys::Request,
    env: Env,
    _ctx: Context,
) -> worker::Result<web_sys::Response> {
    let headers = req.headers();
    let mut exchange = Exchange::start(&headers);
    let reply = match handle(req, &headers, &env, &mut exchange).await {
        Ok(reply) => {
            exchange.record.decision = "allowed";
            exchange.record.status = reply.status;
            reply
        }
        Err(error) => {
            exchange.record.decision = if error.status() >= 500 {
                "error"
            } else {
                "refused"
            };
            exchange.record.status = error.status();
            exchange.record.reason = Some(error.code.as_str().to_owned());
            exchange.record.detail = error.log_detail.clone();
            Reply::error(&error, exchange.uppy_path)
        }
    };
    worker::console_log!("{}", exchange.record.to_line());
    reply
        .into_response(&exchange.origin_header, &exchange.allowed_origins)
        .map_err(worker::Error::from)
}

async fn handle(
    req: web_sys::Request,
    headers: &Headers,
    env: &Env,
    x: &mut Exchange,
) -> Result<Reply, ApiError> {
    // The method as sent: a method the API does not name (QUERY, say) answers 405.
    let method = req.method();
    // The URL as the runtime serialised it; parsed without the `url` crate, whose
    // international domain name tables would double the size of the Worker.
    let url = req.url();
    let path = path_of(&url);
    x.uppy_path = path.starts_with("/s3/");
    let config = config(env);
    if let Ok(config) = &config {
        x.allowed_origins.clone_from(&config.cors.allowed_origins);
    }
    if method == "OPTIONS" {
        x.record.route = "preflight".to_owned();
        return Ok(Reply::preflight());
    }

    let resolved = api::resolve(&method, path);
    x.record.route = match &resolved {
        Ok((route, _)) => route.name().to_owned(),
        Err(_) => "unknown".to_owned(),
    };
    let (route, params) = resolved?;
    if route == Route::Health {
        // A deployment whose configuration does not load is not healthy: every other
        // route would answer 500.
        config?;
        return Ok(Reply::json(200, &api::health()));
    }
    let config = config?;
    let origin = RequestOrigin::parse(&url)
        .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "the request URL is malformed"))?;
    let query: Vec<(String, String)> = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if route == Route::DevToken {
        let token = api::dev::issue(&config, &origin, x.now, x.random)?;
        x.record.subject = Some(token.subject.clone());
        return Ok(Reply::json(200, &token));
    }

    // Cloudflare Access's assertion counts only without an `Authorization` header.
    let authorization = header(headers, "authorization");
    let access_assertion = match authorization {
        Some(_) => None,
        None => header(headers, "cf-access-jwt-assertion"),
    };
    let principal = match auth::authenticate(
        authorization.as_deref(),
        access_assertion.as_deref(),
        &config.auth,
        x.now,
    )? {
        auth::jwt::Verified::Done(principal) => principal,
        auth::jwt::Verified::NeedsKey(pending) => keys::finish(&pending, x.now).await?,
    };
    x.record.subject = Some(principal.subject.clone());
    x.record.credential = Some(principal.credential.clone());
    if route.is_signing() {
        check_rate_limit(env, &principal).await?;
    }
    let body = if route.has_json_body() {
        json::check_content_type(header(headers, "content-type").as_deref())?;
        read_body(req, headers, route).await?
    } else {
        Vec::new()
    };

    let ctx = RequestContext {
        config: &config,
        principal: &principal,
        origin: &origin,
        now: x.now,
        random: x.random,
    };
    let call = Call {
        ctx: &ctx,
        store: &FetchStore {
            jitter: x.random[15],
        },
        params: &params,
        query: &query,
        body: &body,
    };
    routes::dispatch(route, &call, &mut x.record).await
}

/// The path of a URL as the runtime serialised it (`https://host/a%20b?q` gives
/// `/a%20b`): a special scheme's URL always has one, and its `?` and `#` are encoded.
fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(start) => {
            let path = &after_scheme[start..];
            &path[..path.find(['?', '#']).unwrap_or(path.len())]
        }
        None => "/",
    }
}

thread_local! {
    /// The configuration, checked once per isolate: variables and secrets cannot change
    /// while an isolate lives (a new deployment or secret starts new isolates).
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

/// The isolate's configuration, loaded on first use. A configuration that fails to load is
/// not kept, so every request reports what is wrong with it.
fn config(env: &Env) -> Result<Rc<Config>, ApiError> {
    if let Some(config) = CONFIG.with_borrow(Clone::clone) {
        return Ok(config);
    }
    let config = Rc::new(Config::load(&EnvSource(env))?);
    CONFIG.set(Some(Rc::clone(&config)));
    Ok(config)
}

/// The name of the rate-limiting binding in `wrangler.toml`.
const RATE_LIMITER: &str = "RATE_LIMITER";
/// The binding's period, which is how long a refused caller should wait.
const RATE_LIMIT_PERIOD_SECONDS: u32 = 60;

/// Counts a signing request against its caller's limit, when the deployment has a
/// rate-limiting binding. The key is the credential and the subject, so that an API key
/// and a JWT subject of the same name do not share a budget.
///
/// The binding is called as the runtime defines it, `limit({key})` answering
/// `{success}`: `worker::RateLimiter` converts both objects with `serde-wasm-bindgen`,
/// which this Worker would carry for this one call.
async fn check_rate_limit(env: &Env, principal: &auth::Principal) -> Result<(), ApiError> {
    let Some(binding) = env::binding(env, RATE_LIMITER) else {
        return Ok(());
    };
    // Not checked with `instanceof`: the runtime's class is not a global. Anything else
    // under that name throws on `limit`, which counts as a limiter that cannot answer.
    let limiter: worker::worker_sys::RateLimiter = binding.unchecked_into();
    let key = format!("{}|{}", principal.credential, principal.subject);
    let options = Object::new();
    let _ = Reflect::set(
        &options,
        &JsValue::from_str("key"),
        &JsValue::from_str(&key),
    );
    let success = match limiter.limit(options) {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|outcome| Reflect::get(&outcome, &JsValue::from_str("success")).ok())
            .and_then(|success| success.as_bool()),
        Err(_) => None,
    };
    match success {
        Some(false) => Err(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "too many signing requests for this caller; retry after \
                 {RATE_LIMIT_PERIOD_SECONDS} s"
            ),
        )
        .with_header("retry-after", RATE_LIMIT_PERIOD_SECONDS.to_string())),
        // A limiter that cannot answer does not stop uploads.
        _ => Ok(()),
    }
}

/// Reads a request body, refusing one over the route's limit
/// ([`Route::max_body_bytes`]) without reading it all: at once when its declared length is
/// over, or as soon as the chunks of a body without one add up to more.
async fn read_body(
    req: web_sys::Request,
    headers: &Headers,
    route: Route,
) -> Result<Vec<u8>, ApiError> {
    let unreadable = || {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "the request body could not be read",
        )
    };
    let declared = header(headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared {
        route.check_body_length(length)?;
        // The runtime holds the body to its declared length: one read is enough.
        let buffer = JsFuture::from(req.array_buffer().map_err(|_| unreadable())?)
            .await
            .map_err(|_| unreadable())?;
        return Ok(Uint8Array::new(&buffer).to_vec());
    }

    let Ok(mut stream) = Request::from(req).stream() else {
        return Ok(Vec::new());
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        route.check_body_length((body.len() + chunk.len()) as u64)?;
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request header's value, if it was sent.
fn header(headers: &Headers, name: &str) -> Option<String> {
    headers.get(name).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn the_path_is_the_url_between_its_host_and_its_query() {
        assert_eq!(path_of("https://a.example/v1/uploads?x=1#y"), "/v1/uploads");
        assert_eq!(path_of("http://127.0.0.1:8787/s3/a%3Fb/c"), "/s3/a%3Fb/c");
        assert_eq!(path_of("https://a.example"), "/");
        assert_eq!(path_of("https://a.example?q"), "/");
    }
}
