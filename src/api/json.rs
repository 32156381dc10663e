//! Reading JSON request bodies, with errors that name the field at fault.

#![forbid(unsafe_code)]

use serde::de::DeserializeOwned;

use super::{ApiError, ErrorCode};

/// Checks the declared media type of a request body: JSON only.
pub fn check_content_type(header: Option<&str>) -> Result<(), ApiError> {
    let essence = header
        .and_then(|h| h.split(';').next())
        .map(|h| h.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON, sent with Content-Type: application/json",
        )),
    }
}

/// Parses a request body into `T`. Unknown fields, duplicate fields, wrong types and
/// missing fields are 400s that name the field.
///
/// The body's size is the route's to limit ([`super::Route::check_body_length`]), before
/// the body is read.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the request body is empty; send a JSON object",
        ));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the request body must be a JSON object",
        ));
    }

    crate::json::from_slice(body).map_err(|e| match (e.syntax, e.path.as_str()) {
        (true, _) if e.message == "trailing characters" => ApiError::new(
            ErrorCode::InvalidRequest,
            "the request body has text after the JSON object",
        ),
        (true, _) => ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the request body is not valid JSON: {}", e.message),
        ),
        (false, ".") => ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the request body: {}", e.message),
        ),
        (false, field) => ApiError::invalid_field(field, format!("{field}: {}", e.message)),
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Request {
        name: String,
        size: u64,
    }

    #[test]
    fn wrong_type_names_the_field() {
        let error = parse::<Request>(br#"{"name": "a", "size": -5}"#).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.field.as_deref(), Some("size"));
    }

    #[test]
    fn missing_field_is_named() {
        let error = parse::<Request>(br#"{"name": "a"}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("size"));
        assert_eq!(error.message, "size: missing field `size`");
    }

    #[test]
    fn unknown_and_duplicate_fields_are_refused() {
        let unknown = parse::<Request>(br#"{"name": "a", "size": 1, "sise": 2}"#).unwrap_err();
        assert!(unknown.message.contains("sise"), "{}", unknown.message);
        let duplicate = parse::<Request>(br#"{"name": "a", "size": 1, "size": 2}"#).unwrap_err();
        assert!(
            duplicate.message.contains("duplicate"),
            "{}",
            duplicate.message
        );
        assert_eq!(duplicate.field.as_deref(), Some("size"));
    }

    #[test]
    fn malformed_json_and_empty_bodies_are_400() {
        for body in [
            &b"{"[..],
            b"",
            b"  ",
            b"nope",
            b"{\"name\": \"\xff\", \"size\": 1}",
        ] {
            assert_eq!(parse::<Request>(body).unwrap_err().status(), 400);
        }
    }

    #[test]
    fn arrays_and_other_values_are_not_objects() {
        for body in [&br#"["a", 1]"#[..], b"[]", b"null", b"1", br#""x""#] {
            let error = parse::<Request>(body).unwrap_err();
            assert_eq!(error.message, "the request body must be a JSON object");
        }
    }

    #[test]
    fn trailing_text_after_the_object_is_refused() {
        assert!(parse::<Request>(br#"{"name": "a", "size": 1} x"#).is_err());
    }

    #[test]
    fn only_json_content_types_are_accepted() {
        assert!(check_content_type(Some("application/json; charset=utf-8")).is_ok());
        for other in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            assert_eq!(check_content_type(other).unwrap_err().status(), 415);
        }
    }
}
