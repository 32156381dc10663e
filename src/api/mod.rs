//! The HTTP API of `API.md`, as pure functions: a route table, request bodies in, response
//! bodies or [`ApiError`]s out.
//!
//! Nothing here touches the Worker runtime. The edge (`crate::edge`) reads the request,
//! the clock and random bytes, calls these functions and writes the response, so every
//! rule of the API can be tested natively.

#![forbid(unsafe_code)]

pub mod companion;
pub mod dev;
pub mod downloads;
pub mod error;
pub mod json;
pub mod multipart;
pub mod uploads;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use error::{ApiError, ErrorCode};

use crate::auth::Principal;
use crate::config::{Config, RequestOrigin};
use crate::multipart::plan::MAX_PARTS;

/// The largest request body the API reads, in bytes, on every route but the two complete
/// routes (see [`MAX_COMPLETE_BODY_BYTES`]).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest ETag a part list may carry, in characters, as
/// [`crate::multipart::bare_etag`] accepts it.
const MAX_ETAG_CHARS: usize = 1024;

/// Room in a complete body for each part besides its ETag's characters, in bytes. The
/// longest entry Uppy could send, `{"PartNumber":10000,"ETag":"\"…\"","Size":5368709120},`,
/// takes 53 bytes, and pretty-printed JSON adds about 40 bytes of new lines and indents.
const PART_ENTRY_ROOM: usize = 128;

/// Room in a complete body for what is not a part: the braces, the field names and the
/// upload token (at most 4 KiB), in bytes.
const COMPLETE_ENVELOPE_ROOM: usize = 8 * 1024;

/// The largest body of a complete call (`POST /v1/multipart/complete` and Uppy's
/// `POST /s3/multipart/{uploadId}/complete`), in bytes: 11,528,192 (11 MiB).
///
/// A complete body lists every part with its ETag, so 64 KiB is not enough: the local R2
/// store of `wrangler dev` gives ETags of 173 characters, and 330 of its parts already make
/// 69 KB. The limit fits the longest list the signer accepts, so that no valid list is
/// refused for its size: S3's 10,000 parts ([`MAX_PARTS`]), each with an ETag of 1024
/// characters. Real lists are far shorter: 10,000 parts with S3's MD5 ETags take about
/// 0.5 MB, with the local R2 store's 2.2 MB. Only an authenticated caller gets this far, and
/// a Worker holds the body, its parts and the store's XML well within its 128 MB.
///
/// See <https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html> for S3's limits.
pub const MAX_COMPLETE_BODY_BYTES: usize =
    MAX_PARTS as usize * (MAX_ETAG_CHARS + PART_ENTRY_ROOM) + COMPLETE_ENVELOPE_ROOM;

/// What a request may do once routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/health`.
    Health,
    /// `POST /v1/uploads`.
    CreateUpload,
    /// `POST /v1/multipart/parts`.
    SignParts,
    /// `GET /v1/multipart/parts?token=`.
    ListParts,
    /// `POST /v1/multipart/complete`.
    Complete,
    /// `POST /v1/multipart/abort`.
    Abort,
    /// `POST /v1/downloads`.
    Download,
    /// `POST /v1/dev/token` (development login).
    DevToken,
    /// `GET /s3/params`: a single upload, for Uppy.
    CompanionParams,
    /// `POST /s3/multipart`: create, for Uppy.
    CompanionCreate,
    /// `GET /s3/multipart/{uploadId}/{partNumber}`: sign one part, for Uppy.
    CompanionSignPart,
    /// `GET /s3/multipart/{uploadId}/batch?partNumbers=`: sign parts, for Uppy.
    CompanionSignBatch,
    /// `GET /s3/multipart/{uploadId}`: list parts, for Uppy.
    CompanionListParts,
    /// `POST /s3/multipart/{uploadId}/complete`: complete, for Uppy.
    CompanionComplete,
    /// `DELETE /s3/multipart/{uploadId}`: abort, for Uppy.
    CompanionAbort,
}

impl Route {
    /// Whether the route needs a bearer credential.
    pub fn needs_auth(self) -> bool {
        !matches!(self, Self::Health | Self::DevToken)
    }

    /// A stable name for logs (paths may carry tokens; names never do).
    pub fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::CreateUpload => "create-upload",
            Self::SignParts => "sign-parts",
            Self::ListParts => "list-parts",
            Self::Complete => "complete",
            Self::Abort => "abort",
            Self::Download => "download",
            Self::DevToken => "dev-token",
            Self::CompanionParams => "s3-params",
            Self::CompanionCreate => "s3-create",
            Self::CompanionSignPart => "s3-sign-part",
            Self::CompanionSignBatch => "s3-sign-batch",
            Self::CompanionListParts => "s3-list-parts",
            Self::CompanionComplete => "s3-complete",
            Self::CompanionAbort => "s3-abort",
        }
    }

    /// Whether the route is one of Uppy's companion routes (`/s3/`).
    pub fn is_companion(self) -> bool {
        matches!(
            self,
            Self::CompanionParams
                | Self::CompanionCreate
                | Self::CompanionSignPart
                | Self::CompanionSignBatch
                | Self::CompanionListParts
                | Self::CompanionComplete
                | Self::CompanionAbort
        )
    }

    /// Whether the route signs URLs or creates uploads, and so counts against the
    /// caller's rate limit.
    pub fn is_signing(self) -> bool {
        matches!(
            self,
            Self::CreateUpload
                | Self::SignParts
                | Self::Download
                | Self::CompanionParams
                | Self::CompanionCreate
                | Self::CompanionSignPart
                | Self::CompanionSignBatch
        )
    }

    /// The largest body the route reads, in bytes: [`MAX_COMPLETE_BODY_BYTES`] for the
    /// complete routes, whose bodies list every part, and [`MAX_BODY_BYTES`] for the others.
    pub fn max_body_bytes(self) -> usize {
        match self {
            Self::Complete | Self::CompanionComplete => MAX_COMPLETE_BODY_BYTES,
            _ => MAX_BODY_BYTES,
        }
    }

    /// Checks a body's length, declared or read so far, against the route's limit: 413
    /// naming the limit when it is over.
    pub fn check_body_length(self, length: u64) -> Result<(), ApiError> {
        let limit = self.max_body_bytes();
        if length > limit as u64 {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!("the request body is larger than {limit} bytes"),
            ));
        }
        Ok(())
    }

    /// Whether the route reads a JSON body.
    pub fn has_json_body(self) -> bool {
        matches!(
            self,
            Self::CreateUpload
                | Self::Download
                | Self::SignParts
                | Self::Complete
                | Self::Abort
                | Self::CompanionCreate
                | Self::CompanionComplete
        )
    }
}

/// The route table: each path pattern with the methods it answers. `:name` matches one
/// path segment. Patterns are tried in order and the first that matches the path decides.
const ROUTES: &[(&str, &[(&str, Route)])] = &[
    ("/v1/health", &[("GET", Route::Health)]),
    ("/v1/uploads", &[("POST", Route::CreateUpload)]),
    (
        "/v1/multipart/parts",
        &[("POST", Route::SignParts), ("GET", Route::ListParts)],
    ),
    ("/v1/multipart/complete", &[("POST", Route::Complete)]),
    ("/v1/multipart/abort", &[("POST", Route::Abort)]),
    ("/v1/downloads", &[("POST", Route::Download)]),
    ("/v1/dev/token", &[("POST", Route::DevToken)]),
    ("/s3/params", &[("GET", Route::CompanionParams)]),
    ("/s3/multipart", &[("POST", Route::CompanionCreate)]),
    (
        "/s3/multipart/:uploadId",
        &[
            ("GET", Route::CompanionListParts),
            ("DELETE", Route::CompanionAbort),
        ],
    ),
    (
        "/s3/multipart/:uploadId/batch",
        &[("GET", Route::CompanionSignBatch)],
    ),
    (
        "/s3/multipart/:uploadId/complete",
        &[("POST", Route::CompanionComplete)],
    ),
    (
        "/s3/multipart/:uploadId/:partNumber",
        &[("GET", Route::CompanionSignPart)],
    ),
];

/// The segments a route pattern captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams {
    /// `:uploadId`.
    pub upload_id: Option<String>,
    /// `:partNumber`.
    pub part_number: Option<String>,
}

/// Every route pattern with its methods, for the API document's consistency test.
pub fn route_table() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES
        .iter()
        .flat_map(|(pattern, methods)| methods.iter().map(move |(m, _)| (*pattern, *m)))
}

fn match_pattern(pattern: &str, path: &str) -> Option<PathParams> {
    let mut params = PathParams::default();
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(":uploadId"), Some(value)) if !value.is_empty() => {
                params.upload_id = Some(value.to_owned());
            }
            (Some(":partNumber"), Some(value)) if !value.is_empty() => {
                params.part_number = Some(value.to_owned());
            }
            (Some(literal), Some(value)) if literal == value => {}
            _ => return None,
        }
    }
}

/// Finds the route of a request: 404 for an unknown path, 405 (with `Allow`) for a known
/// path and another method.
pub fn resolve(method: &str, path: &str) -> Result<(Route, PathParams), ApiError> {
    let (methods, params) = ROUTES
        .iter()
        .find_map(|(pattern, methods)| {
            match_pattern(pattern, path).map(|params| (*methods, params))
        })
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no route {path}")))?;
    let method = if method == "HEAD" { "GET" } else { method };
    let route = methods
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, route)| *route)
        .ok_or_else(|| {
            let allow: Vec<&str> = methods.iter().map(|(m, _)| *m).collect();
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{path} answers {} only", allow.join(", ")),
            )
            .with_header("allow", allow.join(", "))
        })?;
    Ok((route, params))
}

/// Everything a handler knows about one authenticated request.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    /// The deployment's configuration.
    pub config: &'a Config,
    /// Who is calling.
    pub principal: &'a Principal,
    /// The origin the request came in on.
    pub origin: &'a RequestOrigin,
    /// The request time, read once.
    pub now: DateTime<Utc>,
    /// Random bytes for this request, read once.
    pub random: [u8; 16],
}

/// The value of query parameter `name`, if given; a name given twice is refused, as it
/// would leave the signer to pick one of two values.
pub fn query_value<'a>(
    query: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    let mut values = query.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::invalid_field(
            name,
            format!("the query gives `{name}` twice"),
        ));
    }
    Ok(first.map(String::as_str))
}

/// The body of `GET /v1/health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// The crate's version.
    pub version: &'static str,
}

/// The health answer.
pub fn health() -> Health {
    Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_parameter_given_twice_is_refused_and_named() {
        let query = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        let once = query(&[("token", "t"), ("key", "k")]);
        assert_eq!(query_value(&once, "token").unwrap(), Some("t"));
        assert_eq!(query_value(&once, "other").unwrap(), None);

        let twice = query(&[("token", "t"), ("token", "t")]);
        let error = query_value(&twice, "token").unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.field.as_deref(), Some("token"));
        assert!(error.message.contains("twice"), "{}", error.message);
    }

    #[test]
    fn known_path_with_wrong_method_answers_405_with_allow() {
        let error = resolve("GET", "/v1/uploads").unwrap_err();
        assert_eq!(error.status(), 405);
        assert!(error.headers.contains(&("allow", "POST".to_owned())));
    }

    #[test]
    fn method_without_a_route_answers_405_even_where_get_is_served() {
        for method in ["QUERY", "PROPFIND", "get"] {
            let error = resolve(method, "/v1/health").unwrap_err();
            assert_eq!(error.status(), 405, "{method}");
            assert!(error.headers.contains(&("allow", "GET".to_owned())));
        }
    }

    /// `openapi.yaml` and the route table list the same routes with the same methods.
    #[test]
    fn openapi_document_and_route_table_agree() {
        use std::collections::BTreeSet;
        use yaml_rust2::YamlLoader;

        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_hash().unwrap() {
            let pattern = path
                .as_str()
                .unwrap()
                .replace("{uploadId}", ":uploadId")
                .replace("{partNumber}", ":partNumber");
            for (method, _) in item.as_hash().unwrap() {
                let method = method.as_str().unwrap().to_ascii_uppercase();
                if method != "PARAMETERS" {
                    documented.insert((pattern.clone(), method));
                }
            }
        }
        let served: BTreeSet<(String, String)> = route_table()
            .map(|(p, m)| (p.to_owned(), m.to_owned()))
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn complete_routes_read_larger_bodies_than_the_others() {
        for (method, path) in [
            ("POST", "/v1/multipart/complete"),
            ("POST", "/s3/multipart/t/complete"),
        ] {
            let route = resolve(method, path).unwrap().0;
            assert_eq!(route.max_body_bytes(), MAX_COMPLETE_BODY_BYTES, "{path}");
        }
        for (method, path) in [
            ("POST", "/v1/uploads"),
            ("POST", "/v1/multipart/parts"),
            ("POST", "/v1/multipart/abort"),
            ("POST", "/v1/downloads"),
            ("POST", "/s3/multipart"),
        ] {
            let route = resolve(method, path).unwrap().0;
            assert_eq!(route.max_body_bytes(), MAX_BODY_BYTES, "{path}");
        }
    }

    #[test]
    fn a_body_over_the_routes_limit_is_413_naming_the_limit() {
        let cases = [
            (Route::CreateUpload, MAX_BODY_BYTES),
            (Route::Complete, MAX_COMPLETE_BODY_BYTES),
            (Route::CompanionComplete, MAX_COMPLETE_BODY_BYTES),
        ];
        for (route, limit) in cases {
            assert!(route.check_body_length(limit as u64).is_ok());
            let error = route.check_body_length(limit as u64 + 1).unwrap_err();
            assert_eq!((error.status(), error.code.as_str()), (413, "too_large"));
            let expected = format!("the request body is larger than {limit} bytes");
            assert_eq!(error.message, expected);
        }
        let over_64_kib = (MAX_BODY_BYTES + 1) as u64;
        assert!(Route::Complete.check_body_length(over_64_kib).is_ok());
        assert!(Route::SignParts.check_body_length(over_64_kib).is_err());
    }

    #[test]
    fn the_complete_limit_assumes_the_longest_etag_the_part_check_accepts() {
        let longest = "e".repeat(MAX_ETAG_CHARS);
        assert!(crate::multipart::bare_etag(&longest).is_some());
        assert!(crate::multipart::bare_etag(&format!("{longest}e")).is_none());
    }

    /// The longest part list the signer accepts, sent by Uppy with sizes and pretty-printed,
    /// or by a `/v1/` client with the longest token, fits the complete limit and is read.
    #[test]
    fn the_longest_acceptable_part_lists_fit_the_complete_limit() {
        let etag = format!("\"{}\"", "e".repeat(MAX_ETAG_CHARS));
        let uppy_parts: Vec<serde_json::Value> = (1..=MAX_PARTS)
            .map(|n| serde_json::json!({"PartNumber": n, "ETag": etag, "Size": 5u64 << 30}))
            .collect();
        let uppy = serde_json::to_vec_pretty(&serde_json::json!({ "parts": uppy_parts })).unwrap();
        let v1_parts: Vec<serde_json::Value> = (1..=MAX_PARTS)
            .map(|n| serde_json::json!({"partNumber": n, "etag": etag}))
            .collect();
        let token = "t".repeat(4096);
        let v1 = serde_json::to_vec_pretty(&serde_json::json!({"token": token, "parts": v1_parts}))
            .unwrap();

        for body in [&uppy, &v1] {
            assert!(body.len() > 100 * MAX_BODY_BYTES, "{} bytes", body.len());
            assert!(
                body.len() <= MAX_COMPLETE_BODY_BYTES,
                "{} bytes",
                body.len()
            );
        }
        let read: companion::CompleteBody = json::parse(&uppy).unwrap();
        assert_eq!(read.parts.len(), MAX_PARTS as usize);
        let read: multipart::CompleteRequest = json::parse(&v1).unwrap();
        assert_eq!(read.parts.len(), MAX_PARTS as usize);
    }

    #[test]
    fn unknown_path_answers_404() {
        assert_eq!(resolve("GET", "/v1/nope").unwrap_err().status(), 404);
        assert_eq!(resolve("POST", "/v1/uploads/").unwrap_err().status(), 404);
    }

    #[test]
    fn head_is_answered_like_get() {
        assert_eq!(resolve("HEAD", "/v1/health").unwrap().0, Route::Health);
    }

    #[test]
    fn companion_paths_capture_the_upload_id_and_part_number() {
        let (route, params) = resolve("GET", "/s3/multipart/tok.en/7").unwrap();
        assert_eq!(route, Route::CompanionSignPart);
        assert_eq!(params.upload_id.as_deref(), Some("tok.en"));
        assert_eq!(params.part_number.as_deref(), Some("7"));
        assert_eq!(
            resolve("GET", "/s3/multipart/t/batch").unwrap().0,
            Route::CompanionSignBatch
        );
        assert_eq!(
            resolve("POST", "/s3/multipart/t/complete").unwrap().0,
            Route::CompanionComplete
        );
        assert_eq!(
            resolve("DELETE", "/s3/multipart/t").unwrap().0,
            Route::CompanionAbort
        );
        assert_eq!(
            resolve("GET", "/s3/multipart//7").unwrap_err().status(),
            404
        );
        let wrong = resolve("PUT", "/s3/multipart/t").unwrap_err();
        assert!(wrong.headers.contains(&("allow", "GET, DELETE".to_owned())));
    }
}
