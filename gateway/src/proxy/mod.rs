//! The reverse proxy at the bottom of the stack: sends the (routed,
//! authenticated, annotated) request to the tenant's backend, or in
//! gateway-alone mode to the issuer, and streams the answer back.
//!
//! Bodies are never collected: the request body is handed to the client as
//! it arrives and the response body is handed back the same way, so memory
//! per request does not grow with body size. The upstream has
//! `gateway.upstream_timeout` to send its response head (504 past it); a
//! connection refused, reset, or not made within
//! `gateway.upstream_connect_timeout` is 502.

pub mod client;
pub mod headers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Parts, PathAndQuery};
use http::{Request, Response, Uri, Version, header};
use http_body_util::BodyExt;
use splitgate_shared::Tenant;
use splitgate_shared::http::{Body, BoxError};
use tower::Service;

use self::client::UpstreamClient;
use crate::error::Reject;
use crate::tenant::Forwarding;

/// Where requests go.
#[derive(Clone)]
enum Target {
    /// The tenant's `upstream` (from the request's extensions).
    Tenant,
    /// A fixed upstream that selects the tenant by the client's `Host`
    /// (the issuer, when the gateway runs alone).
    KeepHost(Uri),
}

#[derive(Clone)]
pub struct Proxy {
    client: UpstreamClient,
    timeout: Duration,
    target: Target,
}

impl Proxy {
    /// Proxies to each request's tenant's backend.
    pub fn to_tenant_upstream(client: UpstreamClient, timeout: Duration) -> Self {
        Proxy {
            client,
            timeout,
            target: Target::Tenant,
        }
    }

    /// Proxies to `base`, passing the client's `Host` on.
    pub fn keeping_host(client: UpstreamClient, timeout: Duration, base: Uri) -> Self {
        Proxy {
            client,
            timeout,
            target: Target::KeepHost(base),
        }
    }
}

type ProxyFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send>>;

impl Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = ProxyFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            Ok(this
                .forward(req)
                .await
                .unwrap_or_else(|reject| reject.response()))
        })
    }
}

impl Proxy {
    async fn forward(self, mut req: Request<Body>) -> Result<Response<Body>, Reject> {
        let keep_host = matches!(self.target, Target::KeepHost(_));
        let base = match self.target {
            Target::KeepHost(base) => base,
            Target::Tenant => req
                .extensions()
                .get::<Arc<Tenant>>()
                .ok_or(Reject::Internal)?
                .upstream
                .clone(),
        };
        let uri = upstream_uri(&base, req.uri()).ok_or(Reject::Internal)?;
        let forwarding = req.extensions().get::<Forwarding>().cloned();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        headers::remove_hop_by_hop(headers);
        if let Some(forwarding) = &forwarding {
            headers::set_forwarded(headers, forwarding);
            if keep_host {
                headers.insert(header::HOST, forwarding.host.clone());
            }
        }
        if !keep_host {
            // The client sets it from the upstream URI.
            headers.remove(header::HOST);
        }

        let response = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => {
                tracing::warn!(upstream = %base, "upstream did not answer in time");
                return Err(Reject::UpstreamTimeout);
            }
            Ok(Err(e)) => {
                // Refused, reset, or not connected within the connect
                // timeout: the upstream is unreachable.
                tracing::warn!(upstream = %base, cause = %error_chain(&e), "upstream request failed");
                return Err(Reject::UpstreamUnreachable);
            }
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        let body: Body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed();
        Ok(Response::from_parts(parts, body))
    }
}

/// `base` (scheme, authority and an optional path prefix) joined with the
/// request's path and query.
fn upstream_uri(base: &Uri, request: &Uri) -> Option<Uri> {
    let prefix = base.path().trim_end_matches('/');
    let path_and_query = request.path_and_query().map_or("/", PathAndQuery::as_str);
    let mut parts = Parts::default();
    parts.scheme = Some(base.scheme()?.clone());
    parts.authority = Some(base.authority()?.clone());
    parts.path_and_query = Some(format!("{prefix}{path_and_query}").parse().ok()?);
    Uri::from_parts(parts).ok()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        out.push_str(": ");
        out.push_str(&err.to_string());
        source = err.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_base_and_request() {
        let join = |base: &str, req: &str| {
            upstream_uri(&base.parse().unwrap(), &req.parse().unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(
            join("http://127.0.0.1:9000", "/api/users?x=1"),
            "http://127.0.0.1:9000/api/users?x=1"
        );
        assert_eq!(
            join("https://backend.internal/v1/", "/admin/api/users"),
            "https://backend.internal/v1/admin/api/users"
        );
    }
}
