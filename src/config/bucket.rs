//! Buckets and how their URLs are built: R2, AWS S3, other S3-compatible stores, and the
//! local R2 store of `wrangler dev`.
//!
//! - R2 is reached only at `https://<account>.r2.cloudflarestorage.com` (or a jurisdiction
//!   endpoint such as `<account>.eu.r2.cloudflarestorage.com`), path-style, region `auto`.
//!   A custom domain does not accept presigned URLs, so it is refused here.
//!   <https://developers.cloudflare.com/r2/api/s3/presigned-urls/>
//! - AWS S3 uses virtual-hosted URLs (`https://<bucket>.s3.<region>.amazonaws.com`), except
//!   for bucket names with dots, whose virtual host would not match the wildcard TLS
//!   certificate, and when `pathStyle` is set.
//!   <https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html>
//! - Any other store: its endpoint, its region (default `us-east-1`), path-style unless
//!   told otherwise.
//! - `local-r2`: the bucket that `wrangler dev` serves at
//!   `<the Worker's own origin>/cdn-cgi/local/r2/s3`. It only works on a loopback host.

use std::net::Ipv4Addr;

use http::Uri;

use super::settings::BucketSettings;
use super::{ConfigError, Source, required_secret};
use crate::presign::{Credentials, Target, encode};

/// The path under which `wrangler dev` serves its local R2 buckets over the S3 API.
const LOCAL_R2_PATH: &str = "/cdn-cgi/local/r2/s3";

/// What kind of store a bucket lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Cloudflare R2.
    R2,
    /// AWS S3.
    S3,
    /// Another store that speaks the S3 API.
    S3Compatible,
    /// The local R2 store of `wrangler dev`.
    LocalR2,
}

/// A store's base URL: scheme, host with a non-default port, and a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// The host, with `:port` only when the port is not the scheme's default.
    pub authority: String,
    /// A path prefix without trailing slash, often empty.
    pub base_path: String,
}

impl Endpoint {
    /// Parses `scheme://host[:port][/path]`. Only `http` and `https`; no user, query or
    /// fragment.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: Uri = text
            .parse()
            .map_err(|_| "is not a URL such as https://host:port".to_owned())?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => return Err("must start with http:// or https://".to_owned()),
        };
        let authority = uri.authority().ok_or("has no host")?;
        if authority.as_str().contains('@') {
            return Err("must not contain a user name or password".to_owned());
        }
        if uri.query().is_some() || text.contains('#') {
            return Err("must not contain a query or fragment".to_owned());
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        let authority = match authority.port_u16() {
            Some(port) if port != default_port => format!("{}:{port}", authority.host()),
            _ => authority.host().to_owned(),
        };
        Ok(Self {
            scheme,
            authority: authority.to_ascii_lowercase(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The host name without port; an IPv6 address keeps its brackets.
    fn host(&self) -> &str {
        if let Some(end) = self.authority.find(']') {
            return &self.authority[..=end];
        }
        self.authority.split(':').next().unwrap_or(&self.authority)
    }
}

/// The origin a request came in on, for `local-r2` buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The request's endpoint (scheme and authority, no path).
    pub endpoint: Endpoint,
}

impl RequestOrigin {
    /// Parses the origin of a request URL (its path and query are ignored).
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|_| "is not a URL".to_owned())?;
        let scheme = uri.scheme_str().ok_or("has no scheme")?;
        let authority = uri.authority().ok_or("has no host")?;
        let endpoint = Endpoint::parse(&format!("{scheme}://{authority}"))?;
        Ok(Self { endpoint })
    }

    /// Whether the host is `localhost` or a loopback address (`127.0.0.0/8`, `[::1]`).
    /// A name that merely starts with `127.` (`127.0.0.1.example.com`) is not.
    pub fn is_loopback(&self) -> bool {
        let host = self.endpoint.host();
        host == "localhost"
            || host == "[::1]"
            || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The host, as the request named it.
    pub fn host(&self) -> &str {
        self.endpoint.host()
    }
}

/// A `local-r2` bucket asked for by a request that did not come to a loopback host: that
/// store exists only under `wrangler dev`, at the Worker's own loopback origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLoopback {
    /// The bucket's name in the configuration.
    pub bucket: String,
    /// The host the request came to.
    pub host: String,
}

/// A bucket the signer writes to.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Its name in the configuration.
    pub name: String,
    /// Its name at the store.
    pub store_name: String,
    /// The kind of store.
    pub provider: Provider,
    /// The store's endpoint; `None` for `local-r2`, whose endpoint is the request's origin.
    pub endpoint: Option<Endpoint>,
    /// The signing region.
    pub region: String,
    /// Whether the bucket goes in the path.
    pub path_style: bool,
    /// The credentials that sign its URLs.
    pub credentials: Credentials,
}

impl Bucket {
    /// Checks one entry of `BUCKETS` and reads its credentials.
    pub(super) fn from_settings(
        name: &str,
        raw: BucketSettings,
        source: &impl Source,
    ) -> Result<Self, ConfigError> {
        let setting = |field: &str| format!("BUCKETS.{name}.{field}");
        check_bucket_name(&raw.bucket).map_err(|p| ConfigError::new(setting("bucket"), p))?;
        let provider = match raw.provider.as_str() {
            "r2" => Provider::R2,
            "s3" => Provider::S3,
            "s3-compatible" => Provider::S3Compatible,
            "local-r2" => Provider::LocalR2,
            _ => {
                return Err(ConfigError::new(
                    setting("provider"),
                    "must be one of r2, s3, s3-compatible, local-r2",
                ));
            }
        };
        let parse_endpoint = |text: &str| {
            Endpoint::parse(text).map_err(|p| ConfigError::new(setting("endpoint"), p))
        };

        let (endpoint, region, path_style) = match provider {
            Provider::R2 => {
                let endpoint = match (&raw.endpoint, &raw.account_id) {
                    (Some(text), _) => parse_endpoint(text)?,
                    (None, Some(account)) => {
                        parse_endpoint(&format!("https://{account}.r2.cloudflarestorage.com"))?
                    }
                    (None, None) => {
                        return Err(ConfigError::new(
                            setting("accountId"),
                            "is required for an R2 bucket",
                        ));
                    }
                };
                if !endpoint.host().ends_with(".r2.cloudflarestorage.com")
                    || endpoint.scheme != "https"
                {
                    return Err(ConfigError::new(
                        setting("endpoint"),
                        "R2 accepts presigned URLs only at \
                         https://<account>.r2.cloudflarestorage.com, not at a custom domain",
                    ));
                }
                (Some(endpoint), "auto".to_owned(), true)
            }
            Provider::S3 => {
                let region = raw.region.clone().ok_or_else(|| {
                    ConfigError::new(setting("region"), "is required for an S3 bucket")
                })?;
                let endpoint = match &raw.endpoint {
                    Some(text) => parse_endpoint(text)?,
                    None => parse_endpoint(&format!("https://s3.{region}.amazonaws.com"))?,
                };
                let path_style = raw.path_style.unwrap_or(false) || raw.bucket.contains('.');
                (Some(endpoint), region, path_style)
            }
            Provider::S3Compatible => {
                let text = raw.endpoint.as_deref().ok_or_else(|| {
                    ConfigError::new(setting("endpoint"), "is required for this provider")
                })?;
                let region = raw.region.clone().unwrap_or_else(|| "us-east-1".to_owned());
                (
                    Some(parse_endpoint(text)?),
                    region,
                    raw.path_style.unwrap_or(true),
                )
            }
            Provider::LocalR2 => (None, "auto".to_owned(), true),
        };

        Ok(Self {
            name: name.to_owned(),
            store_name: raw.bucket,
            provider,
            endpoint,
            region,
            path_style,
            credentials: load_credentials(&raw.credentials, source)?,
        })
    }

    /// The URL of an object, with the key encoded once.
    pub fn target(&self, key: &str, origin: &RequestOrigin) -> Result<Target, NotLoopback> {
        let local;
        let endpoint = match &self.endpoint {
            Some(endpoint) => endpoint,
            None if origin.is_loopback() => {
                local = Endpoint {
                    base_path: LOCAL_R2_PATH.to_owned(),
                    ..origin.endpoint.clone()
                };
                &local
            }
            None => {
                return Err(NotLoopback {
                    bucket: self.name.clone(),
                    host: origin.host().to_owned(),
                });
            }
        };

        // Built with push_str rather than format!: this runs for every presigned URL.
        let mut origin = String::with_capacity(80);
        origin.push_str(&endpoint.scheme);
        origin.push_str("://");
        let mut path = String::with_capacity(endpoint.base_path.len() + key.len() + 70);
        path.push_str(&endpoint.base_path);
        path.push('/');
        if self.path_style {
            origin.push_str(&endpoint.authority);
            path.push_str(&encode::encode_query_component(&self.store_name));
            path.push('/');
        } else {
            origin.push_str(&self.store_name);
            origin.push('.');
            origin.push_str(&endpoint.authority);
        }
        path.push_str(&encode::encode_key(key));
        Ok(Target {
            origin,
            path,
            region: self.region.clone(),
        })
    }
}

/// S3's rules for bucket names: 3 to 63 lowercase letters, digits, dots and hyphens.
fn check_bucket_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let edges_ok = name
        .bytes()
        .next()
        .zip(name.bytes().last())
        .is_some_and(|(first, last)| first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric());
    if (3..=63).contains(&name.len()) && valid_chars && edges_ok {
        Ok(())
    } else {
        Err("must be 3 to 63 lowercase letters, digits, dots or hyphens".to_owned())
    }
}

fn load_credentials(prefix: &str, source: &impl Source) -> Result<Credentials, ConfigError> {
    let access_key_id = required_secret(source, &format!("{prefix}_ACCESS_KEY_ID"))?;
    let secret_access_key = required_secret(source, &format!("{prefix}_SECRET_ACCESS_KEY"))?;
    let session_token = source
        .secret(&format!("{prefix}_SESSION_TOKEN"))
        .filter(|t| !t.is_empty())
        .map(crate::secret::Secret::new);
    Ok(Credentials::new(
        access_key_id.expose(),
        secret_access_key,
        session_token,
    ))
}
