//! Tenants: who a request is for (selected by `Host`), and the URL map of
//! DESIGN §2 that every issuer identifier, audience and metadata path is
//! derived from.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::TlsFiles;
use crate::keys::SigningAlg;
use crate::side::Side;

/// One tenant, validated. Cheap to share: held in an [`Arc`] by [`Tenants`].
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The config table name (`[tenants.<id>]`): stable, used in store keys
    /// and `X-Auth-Tenant`.
    pub id: String,
    /// Shown on the login and consent pages.
    pub name: String,
    /// Lowercase host names without port that select this tenant.
    pub hosts: Vec<String>,
    /// `B`: scheme and authority, no trailing slash.
    pub base_url: String,
    /// `P`: starts with `/`, no trailing slash (default `/admin`).
    pub backend_prefix: String,
    /// The JSON:API backend both sides are proxied to.
    pub upstream: http::Uri,
    pub signing_alg: SigningAlg,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub auth_code_ttl: Duration,
    pub visitor_ttl: Duration,
    /// Origins allowed by CORS on the storefront API and the token endpoint;
    /// empty means none.
    pub cors_origins: Vec<String>,
    /// The tenant's own certificate for the public listener, chosen by SNI.
    pub tls: Option<TlsFiles>,
}

impl Tenant {
    /// The `iss` of tokens for `side`: `B/oauth2-server` or `B/P/oauth2-server`.
    pub fn issuer(&self, side: Side) -> String {
        format!("{}{}/oauth2-server", self.base_url, self.side_prefix(side))
    }

    /// The `aud` of tokens for `side`: `B/api` or `B/P/api`.
    pub fn audience(&self, side: Side) -> String {
        format!("{}{}", self.base_url, self.api_path(side))
    }

    /// The path prefix a side's URLs start with: empty for the storefront,
    /// `P` for the back office.
    pub fn side_prefix(&self, side: Side) -> &str {
        match side {
            Side::Storefront => "",
            Side::Backoffice => &self.backend_prefix,
        }
    }

    /// The proxied API root of a side: `/api` or `P/api`.
    pub fn api_path(&self, side: Side) -> String {
        format!("{}/api", self.side_prefix(side))
    }

    /// The authorize endpoint path of a side.
    pub fn authorize_path(&self, side: Side) -> String {
        format!("{}/oauth2-token/authorize", self.side_prefix(side))
    }

    /// RFC 8414 metadata path of a side's issuer.
    pub fn metadata_path(&self, side: Side) -> String {
        format!(
            "/.well-known/oauth-authorization-server{}/oauth2-server",
            self.side_prefix(side)
        )
    }

    /// RFC 9728 protected-resource metadata path of a side's API.
    pub fn resource_metadata_path(&self, side: Side) -> String {
        format!(
            "/.well-known/oauth-protected-resource{}",
            self.api_path(side)
        )
    }

    /// Whether `origin` may make CORS requests to this tenant.
    pub fn cors_allows(&self, origin: &[u8]) -> bool {
        self.cors_origins.iter().any(|o| o.as_bytes() == origin)
    }

    /// Whether the base URL is https (cookies get `Secure`).
    pub fn is_https(&self) -> bool {
        self.base_url.starts_with("https://")
    }
}

/// All tenants, looked up by host. Immutable after start-up.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    by_host: HashMap<String, Arc<Tenant>>,
    by_id: HashMap<String, Arc<Tenant>>,
    ordered: Vec<Arc<Tenant>>,
}

impl Tenants {
    /// Builds the lookup tables. Config validation has already refused a host
    /// claimed by two tenants.
    pub fn new(tenants: Vec<Tenant>) -> Self {
        let mut out = Tenants::default();
        for tenant in tenants {
            let tenant = Arc::new(tenant);
            for host in &tenant.hosts {
                out.by_host.insert(host.clone(), tenant.clone());
            }
            out.by_id.insert(tenant.id.clone(), tenant.clone());
            out.ordered.push(tenant);
        }
        out
    }

    /// The tenant for a `Host` header or `:authority` value: port ignored,
    /// case-insensitive, a trailing dot tolerated. `None` means 421.
    pub fn by_host(&self, host: &str) -> Option<&Arc<Tenant>> {
        let name = strip_port(host);
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&name.to_ascii_lowercase())
        } else {
            self.by_host.get(name)
        }
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.ordered.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }
}

/// `example.com:8080` -> `example.com`, `[::1]:80` -> `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
pub(crate) fn test_tenant(id: &str, host: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: id.into(),
        hosts: vec![host.into()],
        base_url: format!("http://{host}"),
        backend_prefix: "/admin".into(),
        upstream: http::Uri::from_static("http://127.0.0.1:9"),
        signing_alg: SigningAlg::Rs256,
        access_token_ttl: Duration::from_secs(3600),
        refresh_token_ttl: Duration::from_secs(30 * 86_400),
        auth_code_ttl: Duration::from_secs(600),
        visitor_ttl: Duration::from_secs(30 * 86_400),
        cors_origins: vec![],
        tls: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_map_matches_design() {
        let t = test_tenant("acme", "shop.example.com");
        assert_eq!(
            t.issuer(Side::Storefront),
            "http://shop.example.com/oauth2-server"
        );
        assert_eq!(
            t.issuer(Side::Backoffice),
            "http://shop.example.com/admin/oauth2-server"
        );
        assert_eq!(t.audience(Side::Storefront), "http://shop.example.com/api");
        assert_eq!(
            t.audience(Side::Backoffice),
            "http://shop.example.com/admin/api"
        );
        assert_eq!(
            t.metadata_path(Side::Backoffice),
            "/.well-known/oauth-authorization-server/admin/oauth2-server"
        );
        assert_eq!(
            t.resource_metadata_path(Side::Storefront),
            "/.well-known/oauth-protected-resource/api"
        );
        assert_eq!(
            t.authorize_path(Side::Backoffice),
            "/admin/oauth2-token/authorize"
        );
    }

    #[test]
    fn host_lookup_ignores_port_case_and_trailing_dot() {
        let tenants = Tenants::new(vec![test_tenant("acme", "acme.test")]);
        for host in [
            "acme.test",
            "ACME.test:8080",
            "acme.test.",
            "acme.test.:443",
        ] {
            assert_eq!(
                tenants.by_host(host).map(|t| t.id.as_str()),
                Some("acme"),
                "{host}"
            );
        }
        assert!(tenants.by_host("other.test").is_none());
        assert!(tenants.by_host("acme.test.evil").is_none());
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }
}
