//! Raw file values -> validated [`Config`], collecting every error with its
//! key. Defaults live here, next to the checks; `docs/configuration.md` lists
//! the same values.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::file::{RawConfig, RawTenant, RawTls};
use super::{
    AdminConfig, Config, GatewayConfig, IssuerConfig, ListenConfig, LogConfig, LogFormat,
    StoreBackend, StoreConfig, TlsFiles,
};
use crate::duration;
use crate::keys::SigningAlg;
use crate::secrets::Secret;
use crate::tenant::Tenant;

/// Collects `(key, message)` pairs while values are checked.
#[derive(Default)]
struct Check {
    errors: Vec<(String, String)>,
}

impl Check {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push((key.into(), message.into()));
    }

    fn duration(
        &mut self,
        key: &str,
        value: Option<&str>,
        default: &str,
        min: Duration,
    ) -> Duration {
        let text = value.unwrap_or(default);
        match duration::parse(text) {
            Ok(d) if d < min => {
                self.fail(key, format!("must be at least {}", duration::format(min)));
                min
            }
            Ok(d) => d,
            Err(e) => {
                self.fail(key, e.to_string());
                Duration::ZERO
            }
        }
    }

    fn addr(&mut self, key: &str, value: Option<&str>, default: &str) -> SocketAddr {
        let text = value.unwrap_or(default);
        text.parse().unwrap_or_else(|_| {
            self.fail(
                key,
                format!("`{text}` is not an address such as \"127.0.0.1:8080\""),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    fn size(
        &mut self,
        key: &str,
        value: Option<u64>,
        default: usize,
        range: (usize, usize),
    ) -> usize {
        let n = value.map_or(default, |v| usize::try_from(v).unwrap_or(usize::MAX));
        if n < range.0 || n > range.1 {
            self.fail(key, format!("must be between {} and {}", range.0, range.1));
        }
        n
    }

    fn tls(&mut self, key: &str, raw: Option<RawTls>) -> Option<TlsFiles> {
        let raw = raw?;
        match (raw.cert, raw.key) {
            (Some(cert), Some(key_path)) => Some(TlsFiles {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key_path),
            }),
            (None, _) => {
                self.fail(format!("{key}.cert"), "required when TLS is configured");
                None
            }
            (_, None) => {
                self.fail(format!("{key}.key"), "required when TLS is configured");
                None
            }
        }
    }

    fn uri(&mut self, key: &str, text: &str) -> Option<http::Uri> {
        match text.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some()
                    && uri.path() == "/"
                    && uri.query().is_none()
                    && !text.ends_with('/') =>
            {
                Some(uri)
            }
            _ => {
                self.fail(
                    key,
                    format!("`{text}` must be an http or https URL with a host and no path, e.g. \"http://127.0.0.1:9000\""),
                );
                None
            }
        }
    }
}

pub(super) fn validate(raw: RawConfig) -> Result<Config, Vec<(String, String)>> {
    let mut c = Check::default();
    let listen = ListenConfig {
        public: c.addr(
            "listen.public",
            raw.listen.public.as_deref(),
            "127.0.0.1:8080",
        ),
        admin: c.addr(
            "listen.admin",
            raw.listen.admin.as_deref(),
            "127.0.0.1:8081",
        ),
        tls: c.tls("listen.tls", raw.listen.tls),
    };
    let admin = AdminConfig {
        token: raw.admin.token.map(|t| {
            if t.len() < 32 {
                c.fail("admin.token", "must be at least 32 characters");
            }
            Secret::new(t)
        }),
    };
    let store = store(&mut c, raw.store);
    let gateway = gateway(&mut c, raw.gateway);
    let issuer = IssuerConfig {
        max_body_bytes: c.size(
            "issuer.max_body_bytes",
            raw.issuer.max_body_bytes,
            64 * 1024,
            (1024, 16 << 20),
        ),
        password_hash_concurrency: c.size(
            "issuer.password_hash_concurrency",
            raw.issuer.password_hash_concurrency,
            std::thread::available_parallelism().map_or(2, |n| n.get()),
            (1, 1024),
        ),
        key_publish_delay: c.duration(
            "issuer.key_publish_delay",
            raw.issuer.key_publish_delay.as_deref(),
            "10m",
            Duration::ZERO,
        ),
        login_session_ttl: c.duration(
            "issuer.login_session_ttl",
            raw.issuer.login_session_ttl.as_deref(),
            "8h",
            Duration::from_secs(60),
        ),
        verifier_leeway: gateway.leeway,
    };
    if issuer.key_publish_delay <= gateway.jwks_refresh && raw.issuer.key_publish_delay.is_some() {
        c.fail(
            "issuer.key_publish_delay",
            format!(
                "must be longer than gateway.jwks_refresh ({}), or gateways may see tokens signed by a key they have not fetched yet",
                duration::format(gateway.jwks_refresh)
            ),
        );
    }
    let log = LogConfig {
        filter: raw.log.filter.unwrap_or_else(|| "info".into()),
        format: match raw.log.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                c.fail("log.format", format!("`{other}` is not one of: text, json"));
                LogFormat::Text
            }
        },
    };
    let tenants = tenants(&mut c, raw.tenants);
    if c.errors.is_empty() {
        Ok(Config {
            listen,
            admin,
            store,
            gateway,
            issuer,
            log,
            tenants,
        })
    } else {
        Err(c.errors)
    }
}

fn store(c: &mut Check, raw: super::file::RawStore) -> StoreConfig {
    let backend = match raw.backend.as_deref() {
        None | Some("embedded") => StoreBackend::Embedded,
        Some("memory") => StoreBackend::Memory,
        Some("redis") => StoreBackend::Redis,
        Some(other) => {
            c.fail(
                "store.backend",
                format!("`{other}` is not one of: embedded, memory, redis"),
            );
            StoreBackend::Embedded
        }
    };
    let cluster = raw.cluster.unwrap_or_default();
    if backend == StoreBackend::Redis && raw.url.is_none() && cluster.is_empty() {
        c.fail(
            "store.url",
            "backend = \"redis\" needs store.url or store.cluster",
        );
    }
    if raw.url.is_some() && !cluster.is_empty() {
        c.fail("store.cluster", "set store.url or store.cluster, not both");
    }
    for (i, node) in raw.url.iter().chain(cluster.iter()).enumerate() {
        if !(node.starts_with("redis://") || node.starts_with("rediss://")) {
            let key = if raw.url.is_some() && i == 0 {
                "store.url".to_owned()
            } else {
                "store.cluster".to_owned()
            };
            c.fail(
                key,
                format!("`{}` is not a redis:// or rediss:// URL", redact_url(node)),
            );
        }
    }
    let encryption_key = raw.encryption_key.map(|k| {
        if crate::keys::kek::Kek::from_base64(&k).is_err() {
            c.fail(
                "store.encryption_key",
                "must be 32 random bytes, base64 (e.g. `openssl rand -base64 32`)",
            );
        }
        Secret::new(k)
    });
    StoreConfig {
        backend,
        data_dir: PathBuf::from(raw.data_dir.unwrap_or_else(|| "./splitgate-data".into())),
        url: raw.url,
        cluster,
        encryption_key,
        timeout: c.duration(
            "store.timeout",
            raw.timeout.as_deref(),
            "2s",
            Duration::from_millis(10),
        ),
        ca: raw.ca.map(PathBuf::from),
    }
}

/// Hides a password in a Redis URL before it goes into an error message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn gateway(c: &mut Check, raw: super::file::RawGateway) -> GatewayConfig {
    let issuer_url = raw
        .issuer_url
        .as_deref()
        .and_then(|u| c.uri("gateway.issuer_url", u));
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            p.parse::<IpAddr>()
                .map_err(|_| {
                    c.fail(
                        "gateway.trusted_proxies",
                        format!("`{p}` is not an IP address"),
                    )
                })
                .ok()
        })
        .collect();
    GatewayConfig {
        issuer_url,
        leeway: c.duration(
            "gateway.leeway",
            raw.leeway.as_deref(),
            "30s",
            Duration::ZERO,
        ),
        forward_authorization: raw.forward_authorization.unwrap_or(true),
        trusted_proxies,
        request_timeout: c.duration(
            "gateway.request_timeout",
            raw.request_timeout.as_deref(),
            "60s",
            Duration::from_millis(100),
        ),
        header_read_timeout: c.duration(
            "gateway.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            "10s",
            Duration::from_millis(100),
        ),
        upstream_connect_timeout: c.duration(
            "gateway.upstream_connect_timeout",
            raw.upstream_connect_timeout.as_deref(),
            "5s",
            Duration::from_millis(10),
        ),
        upstream_timeout: c.duration(
            "gateway.upstream_timeout",
            raw.upstream_timeout.as_deref(),
            "30s",
            Duration::from_millis(10),
        ),
        upstream_ca: raw.upstream_ca.map(PathBuf::from),
        max_header_bytes: c.size(
            "gateway.max_header_bytes",
            raw.max_header_bytes,
            16 * 1024,
            (1024, 1 << 20),
        ),
        max_token_bytes: c.size(
            "gateway.max_token_bytes",
            raw.max_token_bytes,
            4096,
            (256, 64 * 1024),
        ),
        max_concurrent_requests: c.size(
            "gateway.max_concurrent_requests",
            raw.max_concurrent_requests,
            10_000,
            (1, 1 << 20),
        ),
        jwks_refresh: c.duration(
            "gateway.jwks_refresh",
            raw.jwks_refresh.as_deref(),
            "5m",
            Duration::from_secs(1),
        ),
        revocation_max_staleness: c.duration(
            "gateway.revocation_max_staleness",
            raw.revocation_max_staleness.as_deref(),
            "30s",
            Duration::from_secs(1),
        ),
        revocation_fail_open: raw.revocation_fail_open.unwrap_or(false),
    }
}

fn tenants(c: &mut Check, raw: std::collections::BTreeMap<String, RawTenant>) -> Vec<Tenant> {
    // Which tenant claimed each host first: a host selects one tenant.
    let mut owners: HashMap<String, String> = HashMap::new();
    raw.into_iter()
        .map(|(id, t)| tenant(c, &mut owners, id, t))
        .collect()
}

fn tenant(c: &mut Check, owners: &mut HashMap<String, String>, id: String, t: RawTenant) -> Tenant {
    let key = |field: &str| format!("tenants.{id}.{field}");
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        c.fail(
            format!("tenants.{id}"),
            "a tenant id is 1-64 of a-z, 0-9, - and _",
        );
    }
    let hosts = hosts(c, owners, &id, t.hosts);
    let base_url = match t.base_url.as_deref() {
        Some(b) => match c.uri(&key("base_url"), b) {
            Some(_) => b.to_owned(),
            None => String::new(),
        },
        None => match hosts.first() {
            Some(h) => format!("http://{h}"),
            None => String::new(),
        },
    };
    let backend_prefix = t.backend_prefix.unwrap_or_else(|| "/admin".into());
    if !valid_prefix(&backend_prefix) {
        c.fail(
            key("backend_prefix"),
            format!("`{backend_prefix}` must start with `/`, not end with `/`, use only a-z, A-Z, 0-9, -, _ and /, and not be /api, /oauth2-token or /.well-known"),
        );
    }
    let upstream = match t.upstream.as_deref() {
        Some(u) => c.uri(&key("upstream"), u),
        None => {
            c.fail(
                key("upstream"),
                "required: the URL of this tenant's JSON:API backend",
            );
            None
        }
    };
    let signing_alg = match t.signing_alg.as_deref() {
        None => SigningAlg::Rs256,
        Some(s) => s.parse().unwrap_or_else(|_| {
            c.fail(
                key("signing_alg"),
                format!("`{s}` is not one of: RS256, ES256, EdDSA"),
            );
            SigningAlg::Rs256
        }),
    };
    let cors_origins = t.cors_origins.unwrap_or_default();
    for origin in &cors_origins {
        if !valid_origin(origin) {
            c.fail(
                key("cors_origins"),
                format!("`{origin}` is not an origin such as \"https://shop.example.com\""),
            );
        }
    }
    Tenant {
        name: t.name.unwrap_or_else(|| id.clone()),
        hosts,
        base_url,
        backend_prefix,
        upstream: upstream.unwrap_or_default(),
        signing_alg,
        access_token_ttl: c.duration(
            &key("access_token_ttl"),
            t.access_token_ttl.as_deref(),
            "1h",
            Duration::from_secs(1),
        ),
        refresh_token_ttl: c.duration(
            &key("refresh_token_ttl"),
            t.refresh_token_ttl.as_deref(),
            "30d",
            Duration::from_secs(1),
        ),
        auth_code_ttl: c.duration(
            &key("auth_code_ttl"),
            t.auth_code_ttl.as_deref(),
            "10m",
            Duration::from_secs(1),
        ),
        visitor_ttl: c.duration(
            &key("visitor_ttl"),
            t.visitor_ttl.as_deref(),
            "30d",
            Duration::from_secs(1),
        ),
        cors_origins,
        tls: c.tls(&key("tls"), t.tls),
        id,
    }
}

/// A tenant's host names, lowercased; each may belong to one tenant only.
fn hosts(
    c: &mut Check,
    owners: &mut HashMap<String, String>,
    id: &str,
    raw: Option<Vec<String>>,
) -> Vec<String> {
    let key = format!("tenants.{id}.hosts");
    let hosts: Vec<String> = raw
        .unwrap_or_default()
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if hosts.is_empty() {
        c.fail(
            key.clone(),
            "list at least one host name that selects this tenant",
        );
    }
    for host in &hosts {
        if host.is_empty()
            || host.contains(['/', ' ', '@', '?', '#'])
            || (host.contains(':') && !host.starts_with('['))
        {
            c.fail(
                key.clone(),
                format!("`{host}` must be a bare host name without scheme or port"),
            );
        } else if let Some(other) = owners.insert(host.clone(), id.to_owned()) {
            c.fail(
                key.clone(),
                format!("`{host}` is already a host of tenant `{other}`"),
            );
        }
    }
    hosts
}

fn valid_prefix(p: &str) -> bool {
    p.len() > 1
        && p.starts_with('/')
        && !p.ends_with('/')
        && !p.contains("//")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'))
        && !["/api", "/oauth2-token", "/.well-known", "/oauth2-server"]
            .iter()
            .any(|reserved| p == *reserved || p.starts_with(&format!("{reserved}/")))
}

fn valid_origin(o: &str) -> bool {
    match o.parse::<http::Uri>() {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some()
                && !o.ends_with('/')
                && uri.path() == "/"
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::*;

    const GOOD: &str = r#"
[tenants.acme]
hosts = ["acme.localhost", "localhost"]
base_url = "http://acme.localhost:8080"
upstream = "http://127.0.0.1:9000"
"#;

    #[test]
    fn defaults_follow_the_design() {
        let cfg = load_str(GOOD).unwrap();
        assert_eq!(cfg.listen.public.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.listen.admin.to_string(), "127.0.0.1:8081");
        assert_eq!(cfg.store.backend, StoreBackend::Embedded);
        let t = &cfg.tenants[0];
        assert_eq!(t.id, "acme");
        assert_eq!(t.backend_prefix, "/admin");
        assert_eq!(t.signing_alg, SigningAlg::Rs256);
        assert_eq!(t.access_token_ttl, Duration::from_secs(3600));
        assert_eq!(t.refresh_token_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(t.auth_code_ttl, Duration::from_secs(600));
        assert!(t.cors_origins.is_empty());
        assert_eq!(cfg.gateway.leeway, Duration::from_secs(30));
    }

    #[test]
    fn collects_every_invalid_value() {
        let (_dir, path) = super::super::load::tests::temp_file(
            r#"
[store]
backend = "postgres"
[tenants.acme]
hosts = ["acme:80"]
base_url = "acme.localhost"
access_token_ttl = "1x"
signing_alg = "HS256"
backend_prefix = "/api"
cors_origins = ["*"]
[tenants.b]
hosts = ["localhost"]
upstream = "http://127.0.0.1:1"
refresh_token_ttl = "0"
"#,
        );
        let errors = super::super::load_file_only(&path).unwrap_err();
        let keys: Vec<_> = errors.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "store.backend",
                "tenants.acme.hosts",
                "tenants.acme.base_url",
                "tenants.acme.backend_prefix",
                "tenants.acme.upstream",
                "tenants.acme.signing_alg",
                "tenants.acme.cors_origins",
                "tenants.acme.access_token_ttl",
                "tenants.b.refresh_token_ttl",
            ],
            "{errors}"
        );
        assert!(
            errors
                .0
                .iter()
                .all(|e| e.source == path.display().to_string()),
            "{errors}"
        );
    }

    #[test]
    fn a_host_belongs_to_one_tenant() {
        let errors = load_str(&format!(
            "{GOOD}\n[tenants.other]\nhosts=[\"LOCALHOST\"]\nupstream=\"http://127.0.0.1:1\"\n"
        ))
        .unwrap_err();
        assert_eq!(errors.0[0].key, "tenants.other.hosts");
        assert!(
            errors.0[0]
                .message
                .contains("already a host of tenant `acme`")
        );
    }

    #[test]
    fn redis_password_is_not_echoed() {
        assert_eq!(
            redact_url("redis://:hunter2@host:6379"),
            "redis://***@host:6379"
        );
    }
}
