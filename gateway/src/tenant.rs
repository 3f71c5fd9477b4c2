//! The tenant layer: which tenant a request is for, chosen by its host
//! (DESIGN §2), and the facts about the client that the proxy will pass on
//! as `X-Forwarded-*`.
//!
//! The host comes from the request target's authority (HTTP/2
//! `:authority`, or an HTTP/1.1 absolute-form target) or the `Host` header;
//! when both are present they must agree, so that no request is routed for
//! one host and understood by the backend as another. `X-Forwarded-Host`,
//! `-Proto` and `-For` are believed only from `gateway.trusted_proxies`.
//! Client-sent `X-Auth-*` and hop-by-hop headers are removed here, before
//! anything else can look at them or the gateway adds its own.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response, header};
use splitgate_shared::http::{Body, ConnInfo};
use splitgate_shared::{Tenant, Tenants};

use crate::error::Reject;
use crate::gate::{Gate, gate_layer};

/// What the proxy tells the upstream about the client (in extensions).
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// The host the client asked for, as sent (port included):
    /// `X-Forwarded-Host`, and `Host` towards the issuer.
    pub host: HeaderValue,
    /// `X-Forwarded-Proto`: the client's scheme.
    pub proto: HeaderValue,
    /// `X-Forwarded-For`: a trusted proxy's list followed by the peer.
    pub for_chain: Option<HeaderValue>,
}

#[derive(Clone)]
pub struct TenantLayer {
    tenants: Arc<Tenants>,
    trusted_proxies: Arc<[IpAddr]>,
}

impl TenantLayer {
    pub fn new(tenants: Tenants, trusted_proxies: &[IpAddr]) -> Self {
        TenantLayer {
            tenants: Arc::new(tenants),
            trusted_proxies: trusted_proxies.into(),
        }
    }
}

gate_layer!(TenantLayer);

impl Gate for TenantLayer {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        self.resolve(req).map_err(Reject::response)
    }
}

impl TenantLayer {
    fn resolve(&self, req: &mut Request<Body>) -> Result<(), Reject> {
        crate::proxy::headers::remove_hop_by_hop(req.headers_mut());
        strip_auth_headers(req.headers_mut());
        let conn = req.extensions().get::<ConnInfo>().copied();
        let trusted = conn.is_some_and(|c| self.trusted_proxies.contains(&c.peer.ip()));
        let host =
            if trusted && let Some(forwarded) = first_value(req.headers(), "x-forwarded-host") {
                forwarded
            } else {
                request_host(req)?
            };
        let name = host.to_str().map_err(|_| Reject::UnknownHost)?;
        let tenant: Arc<Tenant> = self
            .tenants
            .by_host(name)
            .cloned()
            .ok_or(Reject::UnknownHost)?;

        let proto = match trusted
            .then(|| first_value(req.headers(), "x-forwarded-proto"))
            .flatten()
        {
            Some(p) if p == "https" || p == "http" => p,
            _ if conn.is_some_and(|c| c.tls) => HeaderValue::from_static("https"),
            _ => HeaderValue::from_static("http"),
        };
        let for_chain = conn.map(|c| {
            let peer = c.peer.ip().to_string();
            let chain = match req.headers().get("x-forwarded-for") {
                Some(prior) if trusted => match prior.to_str() {
                    Ok(prior) => format!("{prior}, {peer}"),
                    Err(_) => peer,
                },
                _ => peer,
            };
            HeaderValue::from_str(&chain).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
        });
        req.extensions_mut().insert(Forwarding {
            host,
            proto,
            for_chain,
        });
        req.extensions_mut().insert(tenant);
        Ok(())
    }
}

/// The host of the request: the target's authority and the `Host` header
/// must agree when both are given.
fn request_host(req: &Request<Body>) -> Result<HeaderValue, Reject> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(Reject::InvalidHost(
            "the request has more than one Host header",
        ));
    }
    let authority = req.uri().authority();
    if authority.is_some_and(|a| a.as_str().contains('@')) {
        return Err(Reject::InvalidHost(
            "the request target must not carry user information",
        ));
    }
    match (authority, header) {
        (Some(a), Some(h)) if !a.as_str().as_bytes().eq_ignore_ascii_case(h.as_bytes()) => Err(
            Reject::InvalidHost("the Host header disagrees with the request target"),
        ),
        (_, Some(h)) => Ok(h.clone()),
        (Some(a), None) => {
            HeaderValue::from_str(a.as_str()).map_err(|_| Reject::InvalidHost("bad authority"))
        }
        (None, None) => Err(Reject::InvalidHost("the request has no Host")),
    }
}

/// The first comma-separated item of a header, trimmed.
fn first_value(headers: &HeaderMap, name: &str) -> Option<HeaderValue> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty())
        .then(|| HeaderValue::from_str(first).ok())
        .flatten()
}

/// Removes every `X-Auth-*` header: only the gateway sets those.
pub(crate) fn strip_auth_headers(headers: &mut HeaderMap) {
    let spoofed: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-auth-"))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{body_string, tenant};
    use tower::{Layer, Service, ServiceExt};

    fn layer() -> TenantLayer {
        TenantLayer::new(
            Tenants::new(vec![
                tenant("acme", "acme.test"),
                tenant("other", "other.test"),
            ]),
            &["10.0.0.1".parse().unwrap()],
        )
    }

    fn echo() -> impl Service<
        Request<Body>,
        Response = Response<Body>,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone {
        tower::service_fn(|req: Request<Body>| async move {
            let t = req.extensions().get::<Arc<Tenant>>().unwrap();
            let f = req.extensions().get::<Forwarding>().unwrap();
            let auth: Vec<_> = req
                .headers()
                .keys()
                .filter(|k| k.as_str().starts_with("x-auth"))
                .collect();
            let text = format!(
                "{} {:?} {:?} {:?} {}",
                t.id,
                f.host,
                f.proto,
                f.for_chain,
                auth.len()
            );
            Ok(Response::new(splitgate_shared::http::full(text)))
        })
    }

    fn request(uri: &str, headers: &[(&str, &str)], peer: &str) -> Request<Body> {
        let mut builder = Request::builder().uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let mut req = builder.body(splitgate_shared::http::empty()).unwrap();
        req.extensions_mut().insert(ConnInfo {
            peer: format!("{peer}:5000").parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            tls: false,
        });
        req
    }

    async fn call(req: Request<Body>) -> (u16, String) {
        let response = layer().layer(echo()).oneshot(req).await.unwrap();
        (response.status().as_u16(), body_string(response).await)
    }

    #[tokio::test]
    async fn selects_by_host_and_strips_spoofed_identity() {
        let (status, body) = call(request(
            "/api/x",
            &[
                ("host", "ACME.test:8080"),
                ("x-auth-subject", "root"),
                ("X-Auth-Side", "backoffice"),
            ],
            "192.0.2.7",
        ))
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            "acme \"ACME.test:8080\" \"http\" Some(\"192.0.2.7\") 0"
        );
    }

    #[tokio::test]
    async fn unknown_missing_and_conflicting_hosts() {
        let (status, body) = call(request("/", &[("host", "evil.test")], "192.0.2.7")).await;
        assert_eq!(status, 421);
        assert!(body.contains("unknown_host"), "{body}");
        let (status, body) = call(request("/", &[], "192.0.2.7")).await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            r#"{"errors":[{"status":"400","code":"invalid_host","title":"Bad Request","detail":"the request has no Host"}]}"#
        );
        let (status, body) = call(request(
            "http://other.test/api/x",
            &[("host", "acme.test")],
            "192.0.2.7",
        ))
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            r#"{"errors":[{"status":"400","code":"invalid_host","title":"Bad Request","detail":"the Host header disagrees with the request target"}]}"#
        );
        let (status, _) = call(request(
            "http://other.test/api/x",
            &[("host", "other.test")],
            "192.0.2.7",
        ))
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn forwarded_headers_only_from_trusted_proxies() {
        let headers = [
            ("host", "acme.test"),
            ("x-forwarded-host", "other.test"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "198.51.100.1"),
        ];
        let (_, body) = call(request("/", &headers, "192.0.2.7")).await;
        assert_eq!(body, "acme \"acme.test\" \"http\" Some(\"192.0.2.7\") 0");
        let (_, body) = call(request("/", &headers, "10.0.0.1")).await;
        assert_eq!(
            body,
            "other \"other.test\" \"https\" Some(\"198.51.100.1, 10.0.0.1\") 0"
        );
    }
}
