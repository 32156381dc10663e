//! The settings as they are written in `wrangler.toml`, before they are checked.
//!
//! Field names are camelCase, like the API. Unknown fields are refused so that a typo
//! (`maxsize`) is reported instead of silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One entry of `BUCKETS`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSettings {
    /// `r2`, `s3`, `s3-compatible` or `local-r2`.
    pub provider: String,
    /// The bucket's name at the store.
    pub bucket: String,
    /// The Cloudflare account id (R2).
    pub account_id: Option<String>,
    /// The signing region (S3 and S3-compatible stores).
    pub region: Option<String>,
    /// The store's URL: scheme, host, optional port and path.
    pub endpoint: Option<String>,
    /// Put the bucket in the path instead of the host name.
    pub path_style: Option<bool>,
    /// The prefix of the secrets that hold this bucket's credentials.
    pub credentials: String,
}

/// One entry of `PROFILES`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileSettings {
    /// The name of an entry of `BUCKETS`.
    pub bucket: String,
    /// The key template, such as `users/{subject}/{uuid}/{filename}`.
    pub key_template: String,
    /// Allowed content types, exact (`image/png`) or by top-level type (`image/*`).
    pub content_types: Vec<String>,
    /// The largest object, in bytes.
    pub max_size: u64,
    /// The expiry of URLs when the request gives none, in seconds.
    #[serde(default = "default_expires_in")]
    pub expires_in: u32,
    /// The longest expiry a request may ask for, in seconds.
    pub max_expires_in: Option<u32>,
    /// Whether an upload may replace an existing object.
    #[serde(default)]
    pub overwrite: bool,
    /// Metadata attached to every object (`x-amz-meta-*`).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Sizes from this many bytes on are uploaded in parts.
    #[serde(default = "default_multipart_threshold")]
    pub multipart_threshold: u64,
    /// The preferred part size of multipart uploads, in bytes.
    #[serde(default = "default_part_size")]
    pub part_size: u64,
    /// How long a multipart upload may take, in seconds: the life of its upload token.
    #[serde(default = "default_multipart_expires_in")]
    pub multipart_expires_in: u32,
}

fn default_multipart_threshold() -> u64 {
    100 * 1024 * 1024
}

fn default_part_size() -> u64 {
    8 * 1024 * 1024
}

fn default_multipart_expires_in() -> u32 {
    86_400
}

fn default_expires_in() -> u32 {
    900
}

/// `AUTH`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthSettings {
    /// API keys for servers.
    #[serde(default)]
    pub api_keys: Vec<ApiKeySettings>,
    /// JWT issuers for browsers.
    #[serde(default)]
    pub jwt: Vec<JwtIssuerSettings>,
    /// Cloudflare Access.
    pub access: Option<AccessSettings>,
}

/// One entry of `AUTH.apiKeys`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeySettings {
    /// The key's name and subject.
    pub name: String,
    /// The name of the secret that holds the key.
    pub secret: String,
    /// The profiles the key may use (all when absent).
    pub profiles: Option<Vec<String>>,
}

/// One entry of `AUTH.jwt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtIssuerSettings {
    /// The name of the secret that holds the HS256 key (HS256 issuers).
    pub secret: Option<String>,
    /// The URL of the issuer's JSON Web Key Set (RS256 and ES256 issuers).
    pub jwks_url: Option<String>,
    /// Accepted algorithms: `HS256` with `secret`; `RS256`, `ES256` with `jwksUrl`.
    pub algorithms: Option<Vec<String>>,
    /// The shortest time between two fetches of the key set, in seconds (default 60).
    pub jwks_min_refetch_seconds: Option<u32>,
    /// The expected `iss`.
    pub issuer: Option<String>,
    /// The accepted audience or audiences.
    pub audience: Option<OneOrMany>,
    /// The claim holding the subject.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// The claim listing the profiles the token may use.
    pub profiles_claim: Option<String>,
    /// Tolerated clock difference, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u32,
    /// A namespace for this issuer's subjects, when several issuers could use the same.
    pub namespace: Option<String>,
}

fn default_subject_claim() -> String {
    "sub".to_owned()
}

fn default_leeway() -> u32 {
    30
}

/// `AUTH.access`: Cloudflare Access in front of the signer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessSettings {
    /// The team domain, such as `myteam.cloudflareaccess.com`.
    pub team_domain: String,
    /// The Application Audience (AUD) tag of the Access application.
    pub audience: String,
    /// The claim holding the subject (`sub`, or `email`).
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Where the team's keys are; by default `https://<teamDomain>/cdn-cgi/access/certs`.
    pub certs_url: Option<String>,
    /// A namespace for Access subjects (default `access`).
    pub namespace: Option<String>,
}

/// A string, or a list of them.
#[derive(Debug, Clone)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

/// Read by kind of value rather than as an untagged enum, which would buffer the value and
/// report "did not match any variant" where the whole object ends, not at the member.
impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Kind;

        impl<'de> serde::de::Visitor<'de> for Kind {
            type Value = OneOrMany;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a string or a list of strings")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(value.to_owned()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut items: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut many = Vec::new();
                while let Some(item) = items.next_element()? {
                    many.push(item);
                }
                Ok(OneOrMany::Many(many))
            }
        }

        deserializer.deserialize_any(Kind)
    }
}

impl OneOrMany {
    /// The values as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

/// `CORS`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsSettings {
    /// Exact origins (`https://app.example.com`) allowed to call the API from a browser.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}
