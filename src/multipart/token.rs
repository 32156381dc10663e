//! Upload tokens: what ties the calls of one multipart upload together.
//!
//! When the signer creates a multipart upload it gives the client a token that binds the
//! bucket, the key, the store's upload id, the subject, the profile, the part plan and an
//! expiry, signed with HMAC-SHA256 under the deployment's `TOKEN_SECRET`. Every later call
//! (sign parts, list parts, complete, abort) carries the token instead of a bucket and a
//! key, so a client cannot point a call at another key or at another user's upload.
//!
//! The format is `base64url(JSON) "." base64url(HMAC-SHA256(secret, base64url(JSON)))`.
//! It is opaque to clients, URL- and path-safe (the `/s3/` routes put it in the path), and
//! not encrypted: it holds nothing secret.

use base64ct::{Base64UrlUnpadded, Encoding};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::plan::PartPlan;
use crate::secret::Secret;

/// The longest token accepted, in bytes. The longest the signer makes is under 7 KiB: a
/// 1024-byte key and the owner segment within it (together at most 2048 bytes of JSON,
/// the key's `"` and `\\` escaped), an upload id of at most
/// [`MAX_UPLOAD_ID_BYTES`](crate::store::s3::MAX_UPLOAD_ID_BYTES) (2048 of JSON), names,
/// plan and field names (under 1 KiB), all in base64 (4/3), then the tag. A shorter limit
/// refused tokens the signer had handed out.
const MAX_TOKEN_BYTES: usize = 12 * 1024;

/// What a token binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadToken {
    /// Format version.
    pub v: u8,
    /// The bucket's name in the configuration.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// The store's upload id.
    pub upload_id: String,
    /// The owner segment of the caller that created the upload.
    pub subject: String,
    /// The profile that allowed it.
    pub profile: String,
    /// The part plan; `None` when the client cuts the parts itself (the `/s3/` routes).
    pub plan: Option<PartPlan>,
    /// The size the client declared, when it declared one.
    pub size: Option<u64>,
    /// Unix time after which the token is refused.
    pub expires: i64,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token, or its signature does not match: changed or made elsewhere.
    Invalid,
    /// Past its expiry.
    Expired,
}

impl UploadToken {
    /// Signs the token.
    pub fn seal(&self, secret: &Secret) -> String {
        let payload =
            Base64UrlUnpadded::encode_string(&serde_json::to_vec(self).unwrap_or_default());
        let tag = Base64UrlUnpadded::encode_string(
            &mac(secret, payload.as_bytes()).finalize().into_bytes(),
        );
        format!("{payload}.{tag}")
    }

    /// Checks a token's signature and expiry and reads it.
    pub fn open(token: &str, secret: &Secret, now: DateTime<Utc>) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let (payload, tag) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let tag = Base64UrlUnpadded::decode_vec(tag).map_err(|_| TokenError::Invalid)?;
        mac(secret, payload.as_bytes())
            .verify_slice(&tag)
            .map_err(|_| TokenError::Invalid)?;

        let json = Base64UrlUnpadded::decode_vec(payload).map_err(|_| TokenError::Invalid)?;
        let token: Self = serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
        if token.v != 1 {
            return Err(TokenError::Invalid);
        }
        if now.timestamp() > token.expires {
            return Err(TokenError::Expired);
        }
        Ok(token)
    }
}

fn mac(secret: &Secret, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(payload);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> UploadToken {
        UploadToken {
            v: 1,
            bucket: "dev".into(),
            key: "users/alice/x/movie.mp4".into(),
            upload_id: "upload-123".into(),
            subject: "alice".into(),
            profile: "default".into(),
            plan: Some(PartPlan::new(64 << 20, 8 << 20).unwrap()),
            size: Some(64 << 20),
            expires: 2_000_000_000,
        }
    }

    fn secret() -> Secret {
        Secret::new("token-secret-0123456789abcdef0123456789abcdef")
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000, 0).unwrap()
    }

    #[test]
    fn sealed_token_opens_to_the_same_fields() {
        let sealed = token().seal(&secret());
        assert_eq!(UploadToken::open(&sealed, &secret(), now()), Ok(token()));
        assert!(
            sealed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
    }

    #[test]
    fn a_token_edited_by_one_character_is_invalid() {
        let sealed = token().seal(&secret());
        for i in 0..sealed.len() {
            let mut bytes = sealed.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(bytes).unwrap();
            if edited != sealed {
                assert_eq!(
                    UploadToken::open(&edited, &secret(), now()),
                    Err(TokenError::Invalid),
                    "position {i}"
                );
            }
        }
    }

    #[test]
    fn a_token_sealed_with_another_secret_is_invalid() {
        let sealed = token().seal(&Secret::new("another"));
        assert_eq!(
            UploadToken::open(&sealed, &secret(), now()),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let sealed = token().seal(&secret());
        let later = DateTime::from_timestamp(2_000_000_001, 0).unwrap();
        assert_eq!(
            UploadToken::open(&sealed, &secret(), later),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn the_longest_token_the_signer_makes_opens() {
        let owner = "~22".repeat(300);
        let filename = "\"".repeat(1024 - owner.len() - "users//".len());
        let long = UploadToken {
            key: format!("users/{owner}/{filename}"),
            upload_id: "\\".repeat(crate::store::s3::MAX_UPLOAD_ID_BYTES),
            subject: owner,
            bucket: "\u{1}".repeat(64),
            profile: "\u{1}".repeat(64),
            ..token()
        };
        assert_eq!(long.key.len(), 1024);
        let sealed = long.seal(&secret());
        assert!(sealed.len() > 6000, "{}", sealed.len());
        assert_eq!(UploadToken::open(&sealed, &secret(), now()), Ok(long));
    }

    #[test]
    fn garbage_is_invalid() {
        for bad in ["", ".", "abc", "a.b.c", "!!!.???", &"x".repeat(13_000)] {
            assert_eq!(
                UploadToken::open(bad, &secret(), now()),
                Err(TokenError::Invalid)
            );
        }
    }
}
