//! The splitgate gateway (DESIGN §5): a tower stack that selects the tenant
//! by host, routes by the URL map of DESIGN §2, refuses bearer tokens of
//! another tenant or side, and streams what it accepts to the tenant's
//! JSON:API backend. The issuer's public endpoints are passed to an issuer
//! service: in-process in `serve` mode, [`issuer_proxy`] when the gateway
//! runs alone (then [`JwksFetcher`] keeps the keys).
//!
//! [`stack`] assembles the layers; each lives in its own module with its
//! reason for being. `docs/gateway.md` is the operator's view: routing
//! table, every error, TLS, CORS, running alone.

pub mod authn;
pub mod cors;
pub mod error;
mod gate;
pub mod identity;
pub mod jwks;
pub mod limits;
pub mod path;
pub mod proxy;
pub mod revoked;
pub mod route;
mod server;
pub mod tenant;

#[cfg(test)]
pub(crate) mod test_support;

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response, Uri, header};
use http_body_util::BodyExt;
use splitgate_shared::Tenants;
use splitgate_shared::config::GatewayConfig;
use splitgate_shared::http::{Body, BoxError, HttpService};
use splitgate_shared::keys::PublishedKeys;
use splitgate_shared::revocation::RevocationView;
use tower::util::{BoxCloneSyncService, Oneshot};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

pub use jwks::JwksFetcher;
pub use server::{public_tls, server_options};

use crate::authn::{AuthnLayer, Verifier};
use crate::cors::CorsLayer;
use crate::error::Reject;
use crate::identity::IdentityLayer;
use crate::limits::{HeaderLimitLayer, RescueLayer};
use crate::proxy::Proxy;
use crate::proxy::client::Versions;
use crate::revoked::RevocationLayer;
use crate::route::{Route, RouteLayer};
use crate::tenant::TenantLayer;

/// Everything the gateway is built from; the `src/` wiring fills it.
pub struct GatewayParts {
    /// All `gateway.*` keys, already validated.
    pub config: GatewayConfig,
    pub tenants: Tenants,
    /// Per-tenant key sets: in `serve` mode the issuer publishes them; alone,
    /// [`JwksFetcher`] fills them.
    pub keys: Arc<PublishedKeys>,
    /// Fed by `splitgate_shared::revocation::follow` (started by the wiring).
    pub revocations: Arc<RevocationView>,
    /// The issuer's public endpoints: the in-process issuer, or
    /// [`issuer_proxy`].
    pub issuer: HttpService,
    /// Gateway alone: asked for an immediate refresh on an unknown `kid`.
    pub jwks: Option<JwksFetcher>,
}

/// What can go wrong while building the gateway (start-up only).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("gateway.upstream_ca ({path}): {message}")]
    UpstreamCa { path: String, message: String },
    #[error("gateway.issuer_url `{0}` must be an absolute http or https URL")]
    IssuerUrl(String),
    #[error(transparent)]
    ServerTls(#[from] splitgate_shared::http::TlsError),
}

/// The whole gateway as one infallible service (DESIGN §5).
pub fn stack(parts: GatewayParts) -> Result<HttpService, GatewayError> {
    build(parts, Authentication::Required)
}

/// The stack without bearer authentication, revocation and identity
/// headers: **for the benchmarks only**, to measure what authentication
/// costs. Not reachable from config; compiled only with the `bench` feature.
#[cfg(feature = "bench")]
pub fn stack_without_authentication_for_benchmarks(
    parts: GatewayParts,
) -> Result<HttpService, GatewayError> {
    build(parts, Authentication::Off)
}

enum Authentication {
    Required,
    #[cfg_attr(not(feature = "bench"), allow(dead_code))]
    Off,
}

fn build(parts: GatewayParts, authentication: Authentication) -> Result<HttpService, GatewayError> {
    let config = &parts.config;
    let api = api_branch(&parts, authentication)?;
    let app = ServiceBuilder::new()
        // Outermost: every log line and every response, errors included,
        // carries the request id (the client's, or a new UUID).
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        // Before tracing, so no log can ever show a token or a cookie.
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        // The trace layer wraps response bodies; back to the one body type.
        .map_response(box_body)
        // Wraps everything below, so the span covers rejections as well.
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Timeout and load-shed errors become 408/503 here: nothing reaches hyper.
        .layer(RescueLayer)
        // Bounds the whole request up to its response head.
        .layer(tower::timeout::TimeoutLayer::new(config.request_timeout))
        // Refuses at once rather than queueing when the gateway is full.
        .layer(tower::load_shed::LoadShedLayer::new())
        // The bound load shedding enforces: max_concurrent_requests in flight.
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            config.max_concurrent_requests,
        ))
        // Cheap size check before any header is parsed for meaning.
        .layer(HeaderLimitLayer::new(config.max_header_bytes))
        // Who the request is for (421 otherwise); strips spoofed X-Auth-*.
        .layer(TenantLayer::new(parts.tenants, &config.trusted_proxies))
        // The URL map on the canonical path: 400/404 and metadata end here.
        .layer(RouteLayer)
        // After routing (the policy depends on the route), before authn so
        // preflights (which carry no token) are answered and 401s are readable.
        .layer(CorsLayer)
        .service(Dispatch {
            api,
            issuer: parts.issuer,
        });
    Ok(BoxCloneSyncService::new(app))
}

/// What API requests go through after the fork: authentication,
/// revocation and identity headers, then the proxy to the tenant's backend.
fn api_branch(
    parts: &GatewayParts,
    authentication: Authentication,
) -> Result<HttpService, GatewayError> {
    let config = &parts.config;
    let client = proxy::client::build(config, Versions::Any)?;
    let backend = Proxy::to_tenant_upstream(client, config.upstream_timeout);
    if matches!(authentication, Authentication::Off) {
        return Ok(BoxCloneSyncService::new(backend));
    }
    let verifier = Arc::new(Verifier::new(
        parts.keys.clone(),
        config.leeway.as_secs(),
        parts.jwks.clone(),
    ));
    Ok(BoxCloneSyncService::new(
        ServiceBuilder::new()
            // First on the API branch: nothing reaches the backend without a
            // token verified for this tenant and the route's side.
            .layer(AuthnLayer::new(verifier, config.max_token_bytes))
            // Needs the verified jti/sid/sub; must refuse before anything is sent.
            .layer(RevocationLayer::new(
                parts.revocations.clone(),
                config.revocation_max_staleness,
                config.revocation_fail_open,
            ))
            // Last before the proxy, so the backend's idea of the caller comes
            // from verified claims and nothing else.
            .layer(IdentityLayer::new(config.forward_authorization))
            .service(backend),
    ))
}

/// Forwards the issuer's public endpoints to a separate issuer at
/// `issuer_url`, keeping the client's `Host` so that the issuer selects the
/// same tenant (the `splitgate gateway` run mode).
pub fn issuer_proxy(issuer_url: Uri, config: &GatewayConfig) -> Result<HttpService, GatewayError> {
    if !matches!(issuer_url.scheme_str(), Some("http" | "https"))
        || issuer_url.authority().is_none()
    {
        return Err(GatewayError::IssuerUrl(issuer_url.to_string()));
    }
    let client = proxy::client::build(config, Versions::Http1)?;
    Ok(BoxCloneSyncService::new(Proxy::keeping_host(
        client,
        config.upstream_timeout,
        issuer_url,
    )))
}

fn request_span(req: &Request<Body>) -> tracing::Span {
    // The path only: a query string could carry a (refused) token.
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        version = ?req.version(),
        request_id = ?req.headers().get("x-request-id"),
    )
}

fn box_body<B>(response: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    response.map(|body| body.map_err(Into::into).boxed())
}

/// The fork after CORS: API requests go through authentication to the
/// backend, issuer requests to the issuer service. A request without a
/// route is a bug and is refused (default deny).
#[derive(Clone)]
struct Dispatch {
    api: HttpService,
    issuer: HttpService,
}

type Answer = Ready<Result<Response<Body>, std::convert::Infallible>>;

impl Service<Request<Body>> for Dispatch {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Either<Answer, Oneshot<HttpService, Request<Body>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        match req.extensions().get::<Route>() {
            Some(Route::Api(_)) => Either::Right(self.api.clone().oneshot(req)),
            Some(Route::Issuer) => Either::Right(self.issuer.clone().oneshot(req)),
            None => Either::Left(ready(Ok(Reject::Internal.response()))),
        }
    }
}
