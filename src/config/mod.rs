//! The deployment's configuration: buckets, upload profiles, authentication and CORS.
//!
//! Settings that are not secret come from Worker variables (`[vars]` in `wrangler.toml`),
//! each a JSON object: `BUCKETS`, `PROFILES`, `AUTH` and the optional `CORS`. A variable
//! may also be a string that holds the same JSON, which is what `wrangler dev --var` and
//! `.dev.vars` produce. Credentials come only from Worker secrets, which the settings
//! name (`"credentials": "UPLOADS"` reads `UPLOADS_ACCESS_KEY_ID` and so on).
//!
//! Loading checks everything once: a bucket a profile names must exist, a key template
//! must be well formed, every named secret must be set. A [`ConfigError`] names the
//! setting at fault and never its value.

#![forbid(unsafe_code)]

mod bucket;
pub(crate) mod settings;

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;

pub use bucket::{Bucket, Endpoint, NotLoopback, Provider, RequestOrigin};
pub use settings::{ApiKeySettings, CorsSettings, JwtIssuerSettings};

use crate::policy::Profile;
use crate::secret::Secret;

/// Where the configuration is read from: the Worker's environment, or a map in tests.
pub trait Source {
    /// The JSON text of a variable, or `None` when it is not set.
    fn var_json(&self, name: &str) -> Option<String>;
    /// A secret's value, or `None` when it is not set.
    fn secret(&self, name: &str) -> Option<String>;
}

/// A missing or invalid setting. Its text names the setting and what is wrong with it in
/// general terms, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's path, such as `PROFILES.default.maxSize` or `secret API_KEY_DEMO`.
    pub setting: String,
    /// What is wrong, for the operator's log.
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting `{}`: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// An API key a server presents as its bearer credential.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The key's name, which is also the subject of the requests made with it.
    pub name: String,
    /// The key itself.
    pub key: Secret,
    /// The profiles this key may use; `None` means all.
    pub profiles: Option<Vec<String>>,
}

/// A JWT issuer whose tokens the signer accepts.
#[derive(Debug, Clone)]
pub struct JwtIssuer {
    /// The expected `iss` claim, if checked.
    pub issuer: Option<String>,
    /// The accepted audiences (`aud` must contain one), if checked.
    pub audience: Option<Vec<String>>,
    /// How its tokens are verified.
    pub key: IssuerKey,
    /// The accepted algorithms.
    pub algorithms: Vec<String>,
    /// Whether its tokens come in Cloudflare Access's `Cf-Access-Jwt-Assertion` header.
    pub access: bool,
    /// The claim that holds the subject, `sub` by default.
    pub subject_claim: String,
    /// The claim that lists the profiles the token may use, if any.
    pub profiles_claim: Option<String>,
    /// Tolerated clock difference for `exp` and `nbf`, in seconds.
    pub leeway_seconds: u32,
    /// Keeps this issuer's subjects apart from other issuers' (see `Principal::owner`).
    pub namespace: Option<String>,
}

/// How an issuer's tokens are verified.
#[derive(Debug, Clone)]
pub enum IssuerKey {
    /// HS256 with a shared secret.
    Hmac(Secret),
    /// RS256 or ES256 with the keys published at a JWKS URL.
    Jwks {
        /// The key set's URL.
        url: String,
        /// The shortest time between two fetches, in seconds.
        min_refetch_seconds: u32,
    },
}

/// Who may call the signer.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// API keys for servers.
    pub api_keys: Vec<ApiKey>,
    /// JWT issuers for browsers.
    pub jwt_issuers: Vec<JwtIssuer>,
}

/// The whole, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Buckets by their name in the configuration.
    pub buckets: BTreeMap<String, Bucket>,
    /// Upload profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Credentials the signer accepts.
    pub auth: AuthConfig,
    /// Origins allowed to call the API from a browser.
    pub cors: CorsSettings,
    /// The secret of the signer's own upload tokens, when set.
    pub token_secret: Option<Secret>,
    /// Whether `/v1/dev/token` may hand out development JWTs (loopback hosts only).
    pub dev_login: bool,
}

impl Config {
    /// Reads and checks every setting.
    pub fn load(source: &impl Source) -> Result<Self, ConfigError> {
        let bucket_settings: BTreeMap<String, settings::BucketSettings> =
            required_var(source, "BUCKETS")?;
        let mut buckets = BTreeMap::new();
        for (name, raw) in bucket_settings {
            let bucket = Bucket::from_settings(&name, raw, source)?;
            buckets.insert(name, bucket);
        }

        let profile_settings: BTreeMap<String, settings::ProfileSettings> =
            required_var(source, "PROFILES")?;
        let mut profiles = BTreeMap::new();
        for (name, raw) in profile_settings {
            let profile = Profile::from_settings(&name, raw, &buckets)?;
            profiles.insert(name, profile);
        }

        let auth_settings: settings::AuthSettings = required_var(source, "AUTH")?;
        let auth = load_auth(auth_settings, source, &profiles)?;
        let cors = optional_var(source, "CORS")?.unwrap_or_default();
        let token_secret = source.secret("TOKEN_SECRET").map(Secret::new);
        let dev_login = source
            .var_json("DEV_LOGIN")
            .or_else(|| source.secret("DEV_LOGIN").map(|v| format!("{v:?}")))
            .is_some_and(|v| v.trim_matches('"').eq_ignore_ascii_case("on"));

        Ok(Self {
            buckets,
            profiles,
            auth,
            cors,
            token_secret,
            dev_login,
        })
    }
}

fn load_auth(
    raw: settings::AuthSettings,
    source: &impl Source,
    profiles: &BTreeMap<String, Profile>,
) -> Result<AuthConfig, ConfigError> {
    let mut api_keys = Vec::new();
    for (i, key) in raw.api_keys.into_iter().enumerate() {
        let setting = format!("AUTH.apiKeys[{i}]");
        if key.name.trim().is_empty() {
            return Err(ConfigError::new(format!("{setting}.name"), "is empty"));
        }
        if let Some(scopes) = &key.profiles {
            check_profile_names(&format!("{setting}.profiles"), scopes, profiles)?;
        }
        api_keys.push(ApiKey {
            key: required_secret(source, &key.secret)?,
            name: key.name,
            profiles: key.profiles,
        });
    }

    let mut jwt_issuers = Vec::new();
    for (i, issuer) in raw.jwt.into_iter().enumerate() {
        jwt_issuers.push(load_issuer(&format!("AUTH.jwt[{i}]"), issuer, source)?);
    }
    if let Some(access) = raw.access {
        jwt_issuers.push(load_access(access)?);
    }
    if api_keys.is_empty() && jwt_issuers.is_empty() {
        return Err(ConfigError::new(
            "AUTH",
            "neither an API key nor a JWT issuer is configured, so nobody could sign in",
        ));
    }

    Ok(AuthConfig {
        api_keys,
        jwt_issuers,
    })
}

fn load_issuer(
    setting: &str,
    raw: settings::JwtIssuerSettings,
    source: &impl Source,
) -> Result<JwtIssuer, ConfigError> {
    let field = |name: &str| format!("{setting}.{name}");
    let (key, algorithms) = match (&raw.secret, &raw.jwks_url) {
        (Some(secret), None) => {
            let hmac_secret = required_secret(source, secret)?;
            if hmac_secret.expose().len() < 32 {
                return Err(ConfigError::new(
                    format!("secret {secret}"),
                    "an HS256 secret must be at least 32 bytes long",
                ));
            }
            let algorithms = raw.algorithms.unwrap_or_else(|| vec!["HS256".to_owned()]);
            if algorithms.iter().any(|a| a != "HS256") {
                return Err(ConfigError::new(
                    field("algorithms"),
                    "an issuer with a secret accepts HS256 only",
                ));
            }
            (IssuerKey::Hmac(hmac_secret), algorithms)
        }
        (None, Some(url)) => {
            Endpoint::parse(url).map_err(|p| ConfigError::new(field("jwksUrl"), p))?;
            if raw.issuer.is_none() {
                return Err(ConfigError::new(
                    field("issuer"),
                    "is required with jwksUrl, so that tokens are matched to their keys",
                ));
            }
            let algorithms = raw
                .algorithms
                .unwrap_or_else(|| vec!["RS256".to_owned(), "ES256".to_owned()]);
            if algorithms.is_empty() || algorithms.iter().any(|a| a != "RS256" && a != "ES256") {
                return Err(ConfigError::new(
                    field("algorithms"),
                    "an issuer with jwksUrl accepts RS256 and ES256 only",
                ));
            }
            let min_refetch_seconds = raw.jwks_min_refetch_seconds.unwrap_or(60);
            if !(1..=3600).contains(&min_refetch_seconds) {
                return Err(ConfigError::new(
                    field("jwksMinRefetchSeconds"),
                    "must be 1 to 3600 seconds",
                ));
            }
            let key = IssuerKey::Jwks {
                url: url.clone(),
                min_refetch_seconds,
            };
            (key, algorithms)
        }
        _ => {
            return Err(ConfigError::new(
                setting,
                "needs exactly one of `secret` (HS256) and `jwksUrl` (RS256, ES256)",
            ));
        }
    };
    Ok(JwtIssuer {
        issuer: raw.issuer,
        audience: raw.audience.map(settings::OneOrMany::into_vec),
        key,
        algorithms,
        access: false,
        subject_claim: raw.subject_claim,
        profiles_claim: raw.profiles_claim,
        leeway_seconds: raw.leeway_seconds,
        namespace: check_namespace(&field("namespace"), raw.namespace)?,
    })
}

/// Cloudflare Access: RS256 tokens from the team's certificate set, with the application's
/// audience tag. <https://developers.cloudflare.com/cloudflare-one/identity/authorization-cookie/validating-json/>
fn load_access(raw: settings::AccessSettings) -> Result<JwtIssuer, ConfigError> {
    let team = raw.team_domain.trim_end_matches('/').to_owned();
    if team.is_empty() || team.contains('/') {
        return Err(ConfigError::new(
            "AUTH.access.teamDomain",
            "must be a host name such as myteam.cloudflareaccess.com",
        ));
    }
    let url = raw
        .certs_url
        .unwrap_or_else(|| format!("https://{team}/cdn-cgi/access/certs"));
    Endpoint::parse(&url).map_err(|p| ConfigError::new("AUTH.access.certsUrl", p))?;
    let namespace = raw.namespace.or_else(|| Some("access".to_owned()));
    Ok(JwtIssuer {
        issuer: Some(format!("https://{team}")),
        audience: Some(vec![raw.audience]),
        key: IssuerKey::Jwks {
            url,
            min_refetch_seconds: 60,
        },
        algorithms: vec!["RS256".to_owned()],
        access: true,
        subject_claim: raw.subject_claim,
        profiles_claim: None,
        leeway_seconds: 30,
        namespace: check_namespace("AUTH.access.namespace", namespace)?,
    })
}

/// Checks a credential namespace (see `Principal::owner`): 1 to 16 lowercase letters
/// and digits, starting with a letter, and not `key` (the API keys'). `setting` names it
/// in the error.
///
/// The first letter keeps owner segments apart: `~` and two uppercase hex digits is an
/// escaped byte of a subject without namespace, so a namespace such as `22` would give
/// its subject `x` the segment `~22-x`, which is also the segment of the subject `"-x`.
pub fn check_namespace(
    setting: &str,
    namespace: Option<String>,
) -> Result<Option<String>, ConfigError> {
    match namespace {
        Some(ns)
            if ns == "key"
                || ns.len() > 16
                || !ns.starts_with(|c: char| c.is_ascii_lowercase())
                || !ns
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            Err(ConfigError::new(
                setting,
                "must be 1 to 16 lowercase letters and digits, start with a letter, \
                 and not be `key`",
            ))
        }
        other => Ok(other),
    }
}

fn check_profile_names(
    setting: &str,
    names: &[String],
    profiles: &BTreeMap<String, Profile>,
) -> Result<(), ConfigError> {
    match names.iter().find(|n| !profiles.contains_key(n.as_str())) {
        Some(unknown) => Err(ConfigError::new(
            setting,
            format!("names the profile `{unknown}`, which PROFILES does not define"),
        )),
        None => Ok(()),
    }
}

/// Reads a secret that must be set.
pub(crate) fn required_secret(source: &impl Source, name: &str) -> Result<Secret, ConfigError> {
    match source.secret(name) {
        Some(value) if !value.is_empty() => Ok(Secret::new(value)),
        Some(_) => Err(ConfigError::new(format!("secret {name}"), "is empty")),
        None => Err(ConfigError::new(
            format!("secret {name}"),
            "is not set (use `wrangler secret put`, or .dev.vars locally)",
        )),
    }
}

fn required_var<T: DeserializeOwned>(source: &impl Source, name: &str) -> Result<T, ConfigError> {
    optional_var(source, name)?.ok_or_else(|| ConfigError::new(name, "is not set"))
}

fn optional_var<T: DeserializeOwned>(
    source: &impl Source,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    let Some(text) = source.var_json(name) else {
        return Ok(None);
    };
    // A string variable holding JSON, as `--var` and .dev.vars give, is read from the
    // string; an object variable from its own text.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| ConfigError::new(name, "is not valid JSON"))?;
    let document = match value {
        serde_json::Value::String(inner) => {
            serde_json::from_str::<serde_json::Value>(&inner)
                .map_err(|_| ConfigError::new(name, "is a string that is not valid JSON"))?;
            inner
        }
        _ => text,
    };
    crate::json::from_slice(document.as_bytes())
        .map(Some)
        .map_err(|e| {
            let setting = if e.path == "." {
                name.to_owned()
            } else {
                format!("{name}.{}", e.path)
            };
            ConfigError::new(setting, e.message)
        })
}

#[cfg(test)]
pub(crate) mod tests;
