//! CORS for the signer's API: which browser origins may call it.
//!
//! Only origins listed in `CORS.allowedOrigins` get CORS headers; any other origin gets
//! none, so its browser refuses to hand the answer to the page. The allowed origin is
//! echoed back, never `*`, because requests carry credentials in `Authorization`.
//! `Vary: Origin` keeps caches from serving one origin's answer to another.
//!
//! This is about the signer's own API. The bucket needs a CORS rule of its own so that a
//! browser may PUT to presigned URLs and read the `ETag` of each part (see README).

#![forbid(unsafe_code)]

/// The methods the API answers from a browser.
const ALLOWED_METHODS: &str = "GET, POST, DELETE, OPTIONS";
/// The request headers the browser client sends.
const ALLOWED_HEADERS: &str = "authorization, content-type";
/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE: &str = "600";

/// Response headers for a request from `origin`; empty when it is not allowed.
pub fn response_headers(origin: Option<&str>, allowed: &[String]) -> Vec<(&'static str, String)> {
    let mut headers = vec![("vary", "Origin".to_owned())];
    if let Some(origin) = origin.filter(|o| is_allowed(o, allowed)) {
        headers.push(("access-control-allow-origin", origin.to_owned()));
        headers.push(("access-control-expose-headers", "retry-after".to_owned()));
    }
    headers
}

/// Response headers for a preflight (`OPTIONS`) from `origin`; only `Vary` when the
/// origin is not allowed.
pub fn preflight_headers(origin: Option<&str>, allowed: &[String]) -> Vec<(&'static str, String)> {
    let mut headers = response_headers(origin, allowed);
    if origin.is_some_and(|o| is_allowed(o, allowed)) {
        headers.push(("access-control-allow-methods", ALLOWED_METHODS.to_owned()));
        headers.push(("access-control-allow-headers", ALLOWED_HEADERS.to_owned()));
        headers.push(("access-control-max-age", MAX_AGE.to_owned()));
    }
    headers
}

fn is_allowed(origin: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["https://app.example.com".to_owned()]
    }

    #[test]
    fn allowed_origin_is_echoed_never_wildcard() {
        let headers = response_headers(Some("https://app.example.com"), &allowed());
        assert!(headers.contains(&(
            "access-control-allow-origin",
            "https://app.example.com".to_owned()
        )));
        assert!(headers.iter().all(|(_, v)| v != "*"));
    }

    #[test]
    fn other_origins_get_no_cors_headers() {
        for origin in [Some("https://evil.example.com"), Some("null"), None] {
            let headers = preflight_headers(origin, &allowed());
            assert_eq!(headers, vec![("vary", "Origin".to_owned())], "{origin:?}");
        }
    }

    #[test]
    fn preflight_lists_methods_and_headers_the_client_uses() {
        let headers = preflight_headers(Some("https://app.example.com"), &allowed());
        let get = |name| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("access-control-allow-methods"),
            Some("GET, POST, DELETE, OPTIONS")
        );
        assert_eq!(
            get("access-control-allow-headers"),
            Some("authorization, content-type")
        );
    }
}
