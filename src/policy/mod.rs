//! Upload policy: what a profile lets a caller upload, where, how big, of which type and
//! for how long.
//!
//! A profile is a named set of rules in the configuration. This module checks a request
//! against those rules and says, in words a client can act on, what was refused. It
//! knows nothing of HTTP; the API layer maps its errors to statuses.

#![forbid(unsafe_code)]

pub mod content_type;
pub mod key;

use std::collections::BTreeMap;

use content_type::ContentTypeRule;
use key::KeyTemplate;

use crate::config::{Bucket, ConfigError};
use crate::multipart::plan::{MAX_PART_SIZE, MIN_PART_SIZE};
use crate::presign::MAX_EXPIRES_IN;

/// The largest object a single PUT may create on S3: 5 GiB.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/upload-objects.html>
pub const MAX_SINGLE_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// The largest total size of user metadata S3 accepts, in bytes.
const MAX_METADATA_BYTES: usize = 2048;

/// A checked upload profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// The bucket, by its name in the configuration.
    pub bucket: String,
    /// Where keys go.
    pub key_template: KeyTemplate,
    /// Allowed content types.
    pub content_types: Vec<ContentTypeRule>,
    /// The largest object, in bytes.
    pub max_size: u64,
    /// The expiry used when a request gives none, in seconds.
    pub expires_in: u32,
    /// The longest expiry a request may ask for, in seconds.
    pub max_expires_in: u32,
    /// Whether an upload may replace an existing object.
    pub overwrite: bool,
    /// Metadata attached to every object, names lowercase without `x-amz-meta-`.
    pub metadata: BTreeMap<String, String>,
    /// Sizes from this many bytes on are uploaded in parts.
    pub multipart_threshold: u64,
    /// The preferred part size, in bytes.
    pub part_size: u64,
    /// The life of a multipart upload's token, in seconds.
    pub multipart_expires_in: u32,
}

/// A request that breaks a profile's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The content type is malformed.
    MalformedContentType(String),
    /// The content type is not among the profile's.
    ContentTypeNotAllowed {
        /// The refused type's essence.
        essence: String,
    },
    /// The size is above the profile's or the store's limit.
    TooLarge {
        /// The limit, in bytes.
        max: u64,
    },
    /// The metadata, the profile's and the client's, is larger than S3 allows.
    MetadataTooLarge {
        /// The limit, in bytes.
        max: usize,
    },
    /// A metadata entry is malformed or reserved.
    Metadata {
        /// The entry's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

impl Profile {
    /// Checks one entry of `PROFILES`.
    pub(crate) fn from_settings(
        name: &str,
        raw: crate::config::settings::ProfileSettings,
        buckets: &BTreeMap<String, Bucket>,
    ) -> Result<Self, ConfigError> {
        let setting = |field: &str| format!("PROFILES.{name}.{field}");
        if !buckets.contains_key(&raw.bucket) {
            return Err(ConfigError::new(
                setting("bucket"),
                format!(
                    "names the bucket `{}`, which BUCKETS does not define",
                    raw.bucket
                ),
            ));
        }
        let key_template = KeyTemplate::parse(&raw.key_template)
            .map_err(|p| ConfigError::new(setting("keyTemplate"), p))?;
        let content_types = raw
            .content_types
            .iter()
            .map(|t| ContentTypeRule::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|p| ConfigError::new(setting("contentTypes"), p))?;
        if content_types.is_empty() {
            return Err(ConfigError::new(
                setting("contentTypes"),
                "is empty; use [\"*/*\"] to allow every type",
            ));
        }
        if raw.max_size == 0 {
            return Err(ConfigError::new(setting("maxSize"), "must be above 0"));
        }
        let max_expires_in = raw.max_expires_in.unwrap_or(raw.expires_in);
        if !(1..=MAX_EXPIRES_IN).contains(&max_expires_in) {
            return Err(ConfigError::new(
                setting("maxExpiresIn"),
                format!("must be 1 to {MAX_EXPIRES_IN} seconds"),
            ));
        }
        if !(1..=max_expires_in).contains(&raw.expires_in) {
            return Err(ConfigError::new(
                setting("expiresIn"),
                "must be 1 second to maxExpiresIn",
            ));
        }
        if !(1..=MAX_EXPIRES_IN).contains(&raw.multipart_expires_in) {
            return Err(ConfigError::new(
                setting("multipartExpiresIn"),
                format!("must be 1 to {MAX_EXPIRES_IN} seconds"),
            ));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&raw.part_size) {
            return Err(ConfigError::new(
                setting("partSize"),
                "must be 5 MiB (5242880) to 5 GiB (5368709120)",
            ));
        }
        for (key, value) in &raw.metadata {
            check_metadata_entry(key, value)
                .map_err(|p| ConfigError::new(setting(&format!("metadata.{key}")), p))?;
        }

        Ok(Self {
            name: name.to_owned(),
            bucket: raw.bucket,
            key_template,
            content_types,
            max_size: raw.max_size,
            expires_in: raw.expires_in,
            max_expires_in,
            overwrite: raw.overwrite,
            metadata: raw.metadata,
            multipart_threshold: raw.multipart_threshold,
            part_size: raw.part_size,
            multipart_expires_in: raw.multipart_expires_in,
        })
    }

    /// Checks a declared content type; gives the value to sign.
    pub fn check_content_type(&self, declared: &str) -> Result<String, PolicyError> {
        let essence = content_type::essence(declared).map_err(PolicyError::MalformedContentType)?;
        if self.content_types.iter().any(|rule| rule.allows(&essence)) {
            Ok(declared.trim().to_owned())
        } else {
            Err(PolicyError::ContentTypeNotAllowed { essence })
        }
    }

    /// Checks a declared size against the profile alone.
    pub fn check_size(&self, size: u64) -> Result<(), PolicyError> {
        if size > self.max_size {
            Err(PolicyError::TooLarge { max: self.max_size })
        } else {
            Ok(())
        }
    }

    /// Whether an upload of this size goes in parts.
    pub fn wants_multipart(&self, size: u64, asked: bool) -> bool {
        asked || size >= self.multipart_threshold
    }

    /// Checks a declared size against the profile and a single PUT's limit.
    pub fn check_single_size(&self, size: u64) -> Result<(), PolicyError> {
        let max = self.max_size.min(MAX_SINGLE_PUT_SIZE);
        if size > max {
            Err(PolicyError::TooLarge { max })
        } else {
            Ok(())
        }
    }

    /// Merges a request's metadata with the profile's, checking S3's limits. The profile's
    /// entries cannot be replaced by a client.
    pub fn metadata_for(
        &self,
        requested: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, PolicyError> {
        let mut merged = self.metadata.clone();
        for (name, value) in requested {
            let lower = name.to_ascii_lowercase();
            check_metadata_entry(&lower, value).map_err(|problem| PolicyError::Metadata {
                name: name.clone(),
                problem,
            })?;
            if self.metadata.contains_key(&lower) {
                return Err(PolicyError::Metadata {
                    name: name.clone(),
                    problem: "is set by the profile and cannot be changed".to_owned(),
                });
            }
            // Names are stored lowercase, so `A` and `a` would be one header and one of
            // the two values would be lost.
            if merged.insert(lower, value.clone()).is_some() {
                return Err(PolicyError::Metadata {
                    name: name.clone(),
                    problem: "is given twice: names are case-insensitive".to_owned(),
                });
            }
        }
        let total: usize = merged.iter().map(|(k, v)| k.len() + v.len()).sum();
        if total > MAX_METADATA_BYTES {
            return Err(PolicyError::MetadataTooLarge {
                max: MAX_METADATA_BYTES,
            });
        }
        Ok(merged)
    }
}

/// A metadata name (lowercased) is letters, digits, `-` and `_`; a value is printable
/// ASCII (S3 stores other characters in ways that differ between stores).
fn check_metadata_entry(name: &str, value: &str) -> Result<(), String> {
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err("names must be 1 to 128 letters, digits, `-` or `_`".to_owned());
    }
    if !value.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return Err("values may only contain printable ASCII characters".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
