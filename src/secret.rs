//! Secret values: storage credentials, API keys, signing keys.
//!
//! A [`Secret`] never prints its value (`Debug` and `Display` show `[redacted]`), and is
//! compared with other values in constant time so that a caller who guesses an API key
//! learns nothing from how long the comparison took.

#![forbid(unsafe_code)]

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret string read from a Worker secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for signing. Never log or return what this gives.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with a candidate in time that does not depend on where they differ.
    ///
    /// The length of the secret can still be inferred; the content cannot.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(format!("{secret}"), "[redacted]");
    }

    #[test]
    fn matches_only_the_exact_value() {
        let secret = Secret::new("abc123");
        assert!(secret.matches("abc123"));
        assert!(!secret.matches("abc124"));
        assert!(!secret.matches("abc12"));
        assert!(!secret.matches(""));
    }
}
