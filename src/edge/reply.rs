//! Turning answers into Workers `Response`s.

use serde::Serialize;
use worker::wasm_bindgen::JsValue;
use worker::web_sys::{self, Headers, ResponseInit};

use crate::api::ApiError;
use crate::cors;

/// An answer before it becomes a `Response`.
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
    preflight: bool,
}

impl Reply {
    /// A JSON answer.
    pub fn json<T: Serialize>(status: u16, body: &T) -> Self {
        Self {
            status,
            body: Some(serde_json::to_string(body).unwrap_or_default()),
            headers: Vec::new(),
            preflight: false,
        }
    }

    /// An error answer, with its headers (`Allow`, `WWW-Authenticate`, ...); shaped for
    /// Uppy on its companion routes.
    pub fn error(error: &ApiError, for_uppy: bool) -> Self {
        let body = if for_uppy {
            error.companion_body()
        } else {
            error.body()
        };
        Self {
            status: error.status(),
            body: Some(body),
            headers: error.headers.clone(),
            preflight: false,
        }
    }

    /// An answer without body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            body: None,
            headers: Vec::new(),
            preflight: false,
        }
    }

    /// The answer to a CORS preflight.
    pub fn preflight() -> Self {
        Self {
            status: 204,
            body: None,
            headers: Vec::new(),
            preflight: true,
        }
    }

    /// The `Response`, with CORS headers for `origin` when it is allowed.
    pub fn into_response(
        self,
        origin: &Option<String>,
        allowed_origins: &[String],
    ) -> Result<web_sys::Response, JsValue> {
        let cors_headers = if self.preflight {
            cors::preflight_headers(origin.as_deref(), allowed_origins)
        } else {
            cors::response_headers(origin.as_deref(), allowed_origins)
        };
        let headers = Headers::new()?;
        if self.body.is_some() {
            headers.set("content-type", "application/json")?;
        }
        headers.set("cache-control", "no-store")?;
        for (name, value) in self.headers.iter().chain(cors_headers.iter()) {
            headers.set(name, value)?;
        }
        let init = ResponseInit::new();
        init.set_status(self.status);
        init.set_headers_headers(&headers);
        web_sys::Response::new_with_opt_str_and_init(self.body.as_deref(), &init)
    }
}
