//! Content types: checking what a client declares, and matching it against a profile.
//!
//! A content type is `type/subtype` with optional parameters (`text/plain; charset=utf-8`),
//! in the token syntax of RFC 9110 section 8.3.1. Matching uses the lowercased
//! `type/subtype` only; the value signed into the URL is the one the client gave, because
//! the browser sends that exact string.

#![forbid(unsafe_code)]

/// One allowed content type of a profile: exact, by top-level type, or anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentTypeRule {
    /// `*/*`: any type.
    Any,
    /// `image/*`: any subtype of a top-level type.
    TopLevel(String),
    /// `image/png`: one type.
    Exact(String),
}

impl ContentTypeRule {
    /// Parses a rule as written in a profile.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        if lower == "*/*" {
            return Ok(Self::Any);
        }
        let (top, sub) = lower
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not of the form type/subtype or type/*"))?;
        let stray_star = top.contains('*') || (sub != "*" && sub.contains('*'));
        if stray_star || !is_token(top) || !(sub == "*" || is_token(sub)) {
            return Err(format!(
                "`{text}` is not of the form type/subtype or type/*"
            ));
        }
        Ok(if sub == "*" {
            Self::TopLevel(top.to_owned())
        } else {
            Self::Exact(lower)
        })
    }

    /// Whether a checked essence (`type/subtype`, lowercase) is allowed by this rule.
    pub fn allows(&self, essence: &str) -> bool {
        match self {
            Self::Any => true,
            Self::TopLevel(top) => essence
                .split_once('/')
                .is_some_and(|(t, _)| t == top.as_str()),
            Self::Exact(exact) => essence == exact,
        }
    }
}

/// Checks a declared content type and gives its essence, lowercased `type/subtype`.
///
/// Parameters after `;` must each be `name=value`, the value a token or a quoted string
/// (RFC 9110 section 5.6.6); they are kept in the signed value but do not take part in
/// matching. A comma is refused anywhere: the store sends the value back as it was
/// signed, and a browser reads `image/png; a=b, text/html` as a list whose last type,
/// `text/html`, wins, which would let a page through a profile that allows only images.
pub fn essence(declared: &str) -> Result<String, String> {
    if declared.len() > 255 {
        return Err("is longer than 255 characters".to_owned());
    }
    if !declared.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return Err("may only contain printable ASCII characters".to_owned());
    }
    if declared.contains(',') {
        return Err(
            "must not contain a comma: browsers read a comma-separated content type as a \
             list of types"
                .to_owned(),
        );
    }
    let mut pieces = declared.split(';');
    let media_type = pieces.next().unwrap_or_default().trim();
    if let Some(bad) = pieces
        .map(str::trim)
        .find(|p| !p.is_empty() && !is_parameter(p))
    {
        return Err(format!(
            "has a parameter `{bad}` that is not of the form name=value"
        ));
    }
    let (top, sub) = media_type
        .split_once('/')
        .ok_or_else(|| "is not of the form type/subtype".to_owned())?;
    if !is_token(top) || !is_token(sub) {
        return Err("is not of the form type/subtype".to_owned());
    }
    if top.contains('*') || sub.contains('*') {
        return Err("must name one type, not a pattern with `*`".to_owned());
    }
    Ok(media_type.to_ascii_lowercase())
}

/// RFC 9110 `parameter`: a token name, `=`, and a token or a quoted string (printable
/// ASCII without escapes).
fn is_parameter(text: &str) -> bool {
    let Some((name, value)) = text.split_once('=') else {
        return false;
    };
    let quoted = value.len() >= 2
        && value.starts_with('"')
        && value.ends_with('"')
        && !value[1..value.len() - 1].contains(['"', '\\']);
    is_token(name) && (is_token(value) || quoted)
}

/// RFC 9110 `token`: one or more of `!#$%&'*+-.^_`|~`, digits and letters.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_rule_allows_every_subtype_of_that_type_only() {
        let rule = ContentTypeRule::parse("image/*").unwrap();
        assert!(rule.allows("image/png"));
        assert!(rule.allows("image/svg+xml"));
        assert!(!rule.allows("imagex/png"));
        assert!(!rule.allows("application/image"));
    }

    #[test]
    fn exact_rule_is_case_insensitive() {
        let rule = ContentTypeRule::parse("Application/PDF").unwrap();
        assert!(rule.allows(&essence("application/pdf").unwrap()));
        assert!(rule.allows(&essence("APPLICATION/pdf; x=y").unwrap()));
    }

    #[test]
    fn essence_drops_parameters_and_lowercases() {
        assert_eq!(essence("Text/Plain; charset=utf-8").unwrap(), "text/plain");
    }

    #[test]
    fn malformed_content_types_are_refused() {
        for bad in [
            "",
            "image",
            "image/*",
            "*/*",
            "image/",
            "/png",
            "im age/png",
            "image/png\r\nx: y",
            "é/x",
        ] {
            assert!(essence(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_comma_cannot_smuggle_a_second_type_past_the_profile() {
        for smuggled in [
            "image/png; a=b, text/html",
            "text/plain; charset=utf-8, text/html",
            "image/png,text/html",
            "image/png; a=\"b, text/html\"",
        ] {
            let message = essence(smuggled).unwrap_err();
            assert!(message.contains("comma"), "{smuggled:?}: {message}");
        }
    }

    #[test]
    fn parameters_must_be_name_equals_token_or_quoted_string() {
        for good in [
            "text/plain; charset=utf-8",
            "text/plain;charset=UTF-8",
            "text/plain; charset=\"utf-8\"",
            "multipart/mixed; boundary=\"a b:c\"",
            "text/plain;",
        ] {
            assert_eq!(
                essence(good).unwrap(),
                good.split(';').next().unwrap().to_ascii_lowercase()
            );
        }
        for bad in [
            "text/plain; charset",
            "text/plain; =utf-8",
            "text/plain; charset=utf 8",
            "text/plain; a=\"b\"c\"",
            "text/plain; a=\"b\\\"",
        ] {
            assert!(essence(bad).unwrap_err().contains("parameter"), "{bad:?}");
        }
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in ["", "*", "image", "*/png", "image/**"] {
            assert!(ContentTypeRule::parse(bad).is_err(), "{bad:?}");
        }
    }
}
