use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;

/// A configuration source backed by maps, as the tests' fixture describes it.
pub(crate) struct MapSource {
    pub vars: BTreeMap<String, Value>,
    pub secrets: BTreeMap<String, String>,
}

impl Source for MapSource {
    fn var_json(&self, name: &str) -> Option<String> {
        self.vars.get(name).map(Value::to_string)
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }
}

/// The configuration of `tests/fixtures/config.json`.
pub(crate) fn fixture() -> MapSource {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config.json");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let to_map = |v: &Value| -> BTreeMap<String, Value> {
        v.as_object().unwrap().clone().into_iter().collect()
    };
    MapSource {
        vars: to_map(&file["vars"]),
        secrets: to_map(&file["secrets"])
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
            .collect(),
    }
}

fn load_err(source: &MapSource) -> ConfigError {
    Config::load(source).unwrap_err()
}

#[test]
fn fixture_loads() {
    let config = Config::load(&fixture()).unwrap();
    assert_eq!(config.profiles.len(), 2);
    assert_eq!(config.auth.api_keys.len(), 2);
    assert!(config.token_secret.is_some());
}

#[test]
fn a_variable_may_be_a_string_holding_json() {
    let mut source = fixture();
    let cors = source.vars["CORS"].to_string();
    source.vars.insert("CORS".into(), Value::String(cors));
    let config = Config::load(&source).unwrap();
    assert_eq!(config.cors.allowed_origins, ["https://app.example.com"]);
}

#[test]
fn missing_variable_is_named() {
    let mut source = fixture();
    source.vars.remove("PROFILES");
    assert_eq!(load_err(&source).setting, "PROFILES");
}

#[test]
fn missing_secret_is_named_without_any_value() {
    let mut source = fixture();
    source.secrets.remove("AWS_SECRET_ACCESS_KEY");
    let error = load_err(&source);
    assert_eq!(error.setting, "secret AWS_SECRET_ACCESS_KEY");
    let text = error.to_string();
    for value in source.secrets.values() {
        assert!(!text.contains(value.as_str()), "{text}");
    }
}

#[test]
fn malformed_setting_is_named_by_its_path() {
    let mut source = fixture();
    source.vars.get_mut("PROFILES").unwrap()["default"]["maxSize"] = json!("ten");
    assert_eq!(load_err(&source).setting, "PROFILES.default.maxSize");
}

#[test]
fn an_audience_is_a_string_or_a_list_of_strings_and_anything_else_is_named() {
    let mut source = fixture();
    source.vars.get_mut("AUTH").unwrap()["jwt"][0]["audience"] = json!(["a", "b"]);
    let config = Config::load(&source).unwrap();
    assert_eq!(
        config.auth.jwt_issuers[0].audience,
        Some(vec!["a".to_owned(), "b".to_owned()])
    );

    source.vars.get_mut("AUTH").unwrap()["jwt"][0]["audience"] = json!(["a", 7]);
    assert_eq!(load_err(&source).setting, "AUTH.jwt[0].audience[1]");
    source.vars.get_mut("AUTH").unwrap()["jwt"][0]["audience"] = json!({"a": 1});
    let error = load_err(&source);
    assert_eq!(error.setting, "AUTH.jwt[0].audience");
    assert!(
        error.to_string().contains("a string or a list of strings"),
        "{error}"
    );
}

#[test]
fn misspelt_setting_is_refused() {
    let mut source = fixture();
    source.vars.get_mut("PROFILES").unwrap()["default"]["maxsize"] = json!(1);
    assert!(load_err(&source).to_string().contains("maxsize"));
}

#[test]
fn profile_naming_an_unknown_bucket_is_refused() {
    let mut source = fixture();
    source.vars.get_mut("PROFILES").unwrap()["default"]["bucket"] = json!("nope");
    assert_eq!(load_err(&source).setting, "PROFILES.default.bucket");
}

#[test]
fn expiry_above_seven_days_is_refused() {
    let mut source = fixture();
    source.vars.get_mut("PROFILES").unwrap()["default"]["maxExpiresIn"] = json!(604_801);
    assert_eq!(load_err(&source).setting, "PROFILES.default.maxExpiresIn");
}

#[test]
fn r2_on_a_custom_domain_is_refused_with_the_reason() {
    let mut source = fixture();
    source.vars.get_mut("BUCKETS").unwrap()["r2"]["endpoint"] = json!("https://files.example.com");
    let error = load_err(&source);
    assert_eq!(error.setting, "BUCKETS.r2.endpoint");
    assert!(error.problem.contains("r2.cloudflarestorage.com"));
}

#[test]
fn api_key_scoped_to_an_unknown_profile_is_refused() {
    let mut source = fixture();
    source.vars.get_mut("AUTH").unwrap()["apiKeys"][1]["profiles"] = json!(["nope"]);
    assert_eq!(load_err(&source).setting, "AUTH.apiKeys[1].profiles");
}

#[test]
fn short_hs256_secret_is_refused() {
    let mut source = fixture();
    source.secrets.insert("JWT_SECRET".into(), "short".into());
    assert_eq!(load_err(&source).setting, "secret JWT_SECRET");
}

#[test]
fn bucket_urls_follow_each_providers_addressing() {
    let config = Config::load(&fixture()).unwrap();
    let local = RequestOrigin::parse("http://127.0.0.1:8787/v1/uploads").unwrap();
    let url = |bucket: &str| {
        let target = config.buckets[bucket].target("a b/c.txt", &local).unwrap();
        format!("{}{} ({})", target.origin, target.path, target.region)
    };
    assert_eq!(
        url("dev"),
        "http://127.0.0.1:8787/cdn-cgi/local/r2/s3/edge-presigner-dev/a%20b/c.txt (auto)"
    );
    assert_eq!(
        url("s3"),
        "https://photos.s3.eu-west-1.amazonaws.com/a%20b/c.txt (eu-west-1)"
    );
    assert_eq!(
        url("dotted"),
        "https://s3.us-east-1.amazonaws.com/my.photos/a%20b/c.txt (us-east-1)"
    );
    assert_eq!(
        url("r2"),
        "https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com/uploads/a%20b/c.txt (auto)"
    );
    assert_eq!(
        url("minio"),
        "http://localhost:9000/test/a%20b/c.txt (us-east-1)"
    );
}

#[test]
fn local_r2_refuses_a_public_host_and_names_it() {
    let config = Config::load(&fixture()).unwrap();
    let public = RequestOrigin::parse("https://signer.example.com/v1/uploads").unwrap();
    let error = config.buckets["dev"].target("k", &public).unwrap_err();
    assert_eq!(
        error,
        NotLoopback {
            bucket: "dev".to_owned(),
            host: "signer.example.com".to_owned()
        }
    );
}

#[test]
fn endpoints_drop_default_ports_and_keep_custom_ones() {
    assert_eq!(
        Endpoint::parse("https://h.example.com:443")
            .unwrap()
            .authority,
        "h.example.com"
    );
    assert_eq!(Endpoint::parse("http://h:80/").unwrap().authority, "h");
    assert_eq!(
        Endpoint::parse("http://localhost:9000").unwrap().authority,
        "localhost:9000"
    );
    let with_path = Endpoint::parse("http://h:8787/base/").unwrap();
    assert_eq!(with_path.base_path, "/base");
    for bad in [
        "ftp://h",
        "h:9000",
        "http://u:p@h",
        "http://h/?q=1",
        "http://h/#f",
        "",
    ] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn request_origin_ignores_path_and_query() {
    let origin =
        RequestOrigin::parse("http://127.0.0.1:8787/v1/multipart/parts?token=a.b").unwrap();
    assert_eq!(origin.endpoint.authority, "127.0.0.1:8787");
    assert_eq!(origin.endpoint.base_path, "");
}

#[test]
fn loopback_origins_are_recognised_and_names_that_start_with_127_are_not() {
    for url in [
        "http://localhost:8787/",
        "http://127.0.0.1:1/",
        "http://127.1.2.3/",
        "http://[::1]:8787/",
    ] {
        assert!(RequestOrigin::parse(url).unwrap().is_loopback(), "{url}");
    }
    for url in [
        "https://example.com/",
        "http://localhost.evil.com/",
        "http://10.0.0.1/",
        "http://127.0.0.1.nip.io/",
        "http://127.evil.com/",
        "http://127.0.0.1.example.com:8787/",
    ] {
        assert!(!RequestOrigin::parse(url).unwrap().is_loopback(), "{url}");
    }
}

#[test]
fn jwks_issuers_need_an_issuer_and_public_key_algorithms_only() {
    let cases = [
        (
            json!({"jwksUrl": "https://idp.example.com/jwks"}),
            "AUTH.jwt[1].issuer",
        ),
        (
            json!({"jwksUrl": "https://idp.example.com/jwks", "issuer": "https://idp", "algorithms": ["HS256"]}),
            "AUTH.jwt[1].algorithms",
        ),
        (
            json!({"jwksUrl": "https://idp.example.com/jwks", "secret": "JWT_SECRET", "issuer": "x"}),
            "AUTH.jwt[1]",
        ),
        (
            json!({"jwksUrl": "not a url", "issuer": "x"}),
            "AUTH.jwt[1].jwksUrl",
        ),
        (
            json!({"secret": "JWT_SECRET", "algorithms": ["RS256"]}),
            "AUTH.jwt[1].algorithms",
        ),
    ];
    for (issuer, setting) in cases {
        let mut source = fixture();
        source.vars.get_mut("AUTH").unwrap()["jwt"]
            .as_array_mut()
            .unwrap()
            .push(issuer.clone());
        assert_eq!(load_err(&source).setting, setting, "{issuer}");
    }
}

#[test]
fn access_becomes_an_rs256_issuer_of_the_team_domain() {
    let mut source = fixture();
    source.vars.get_mut("AUTH").unwrap()["access"] =
        json!({"teamDomain": "team.cloudflareaccess.com", "audience": "aud-tag"});
    let config = Config::load(&source).unwrap();
    let access = config.auth.jwt_issuers.last().unwrap();
    assert!(access.access);
    assert_eq!(
        access.issuer.as_deref(),
        Some("https://team.cloudflareaccess.com")
    );
    assert_eq!(access.algorithms, ["RS256"]);
    assert_eq!(access.namespace.as_deref(), Some("access"));
    match &access.key {
        IssuerKey::Jwks { url, .. } => {
            assert_eq!(
                url,
                "https://team.cloudflareaccess.com/cdn-cgi/access/certs"
            );
        }
        IssuerKey::Hmac(_) => panic!("Access uses published keys"),
    }
}

#[test]
fn a_namespace_that_starts_with_a_digit_is_refused() {
    // With the namespace `22`, the subject `x` would own `~22-x`, the segment of the
    // subject `"-x` of an issuer without namespace.
    use crate::policy::key::owner_segment;
    assert_eq!(owner_segment(Some("22"), "x"), owner_segment(None, "\"-x"));

    for (namespace, ok) in [("22", false), ("9a", false), ("a9", true), ("auth0", true)] {
        let mut source = fixture();
        source.vars.get_mut("AUTH").unwrap()["jwt"][0]["namespace"] = json!(namespace);
        match Config::load(&source) {
            Ok(_) => assert!(ok, "{namespace} was accepted"),
            Err(e) => {
                assert!(!ok, "{namespace}: {e}");
                assert_eq!(e.setting, "AUTH.jwt[0].namespace");
            }
        }
    }
}
