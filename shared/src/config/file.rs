//! The file-facing config tree: exactly the keys a TOML file or a
//! `SPLITGATE_` variable may set, all optional, unknown keys refused. These
//! structs are only ever deserialised and validated into [`super::Config`];
//! nothing else reads them.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub listen: RawListen,
    pub admin: RawAdmin,
    pub store: RawStore,
    pub gateway: RawGateway,
    pub issuer: RawIssuer,
    pub log: RawLog,
    pub tenants: BTreeMap<String, RawTenant>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawListen {
    pub public: Option<String>,
    pub admin: Option<String>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAdmin {
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    pub backend: Option<String>,
    pub data_dir: Option<String>,
    pub url: Option<String>,
    pub cluster: Option<Vec<String>>,
    pub encryption_key: Option<String>,
    pub timeout: Option<String>,
    pub ca: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawGateway {
    pub issuer_url: Option<String>,
    pub leeway: Option<String>,
    pub forward_authorization: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub request_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub upstream_connect_timeout: Option<String>,
    pub upstream_timeout: Option<String>,
    pub upstream_ca: Option<String>,
    pub max_header_bytes: Option<u64>,
    pub max_token_bytes: Option<u64>,
    pub max_concurrent_requests: Option<u64>,
    pub jwks_refresh: Option<String>,
    pub revocation_max_staleness: Option<String>,
    pub revocation_fail_open: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawIssuer {
    pub max_body_bytes: Option<u64>,
    pub password_hash_concurrency: Option<u64>,
    pub key_publish_delay: Option<String>,
    pub login_session_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub filter: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTenant {
    pub name: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub base_url: Option<String>,
    pub backend_prefix: Option<String>,
    pub upstream: Option<String>,
    pub signing_alg: Option<String>,
    pub access_token_ttl: Option<String>,
    pub refresh_token_ttl: Option<String>,
    pub auth_code_ttl: Option<String>,
    pub visitor_ttl: Option<String>,
    pub cors_origins: Option<Vec<String>>,
    pub tls: Option<RawTls>,
}

/// Every key each table accepts, for reporting all unknown keys at once
/// (serde stops at the first). A unit test keeps these equal to the structs.
pub(super) const SECTIONS: &[(&str, &[&str])] = &[
    ("listen", &["public", "admin", "tls"]),
    ("listen.tls", TLS_KEYS),
    ("admin", &["token"]),
    (
        "store",
        &[
            "backend",
            "data_dir",
            "url",
            "cluster",
            "encryption_key",
            "timeout",
            "ca",
        ],
    ),
    (
        "gateway",
        &[
            "issuer_url",
            "leeway",
            "forward_authorization",
            "trusted_proxies",
            "request_timeout",
            "header_read_timeout",
            "upstream_connect_timeout",
            "upstream_timeout",
            "upstream_ca",
            "max_header_bytes",
            "max_token_bytes",
            "max_concurrent_requests",
            "jwks_refresh",
            "revocation_max_staleness",
            "revocation_fail_open",
        ],
    ),
    (
        "issuer",
        &[
            "max_body_bytes",
            "password_hash_concurrency",
            "key_publish_delay",
            "login_session_ttl",
        ],
    ),
    ("log", &["filter", "format"]),
];

pub(super) const TOP_KEYS: &[&str] = &[
    "listen", "admin", "store", "gateway", "issuer", "log", "tenants",
];

pub(super) const TENANT_KEYS: &[&str] = &[
    "name",
    "hosts",
    "base_url",
    "backend_prefix",
    "upstream",
    "signing_alg",
    "access_token_ttl",
    "refresh_token_ttl",
    "auth_code_ttl",
    "visitor_ttl",
    "cors_origins",
    "tls",
];

pub(super) const TLS_KEYS: &[&str] = &["cert", "key"];
