//! CORS for the storefront API and the token endpoint (DESIGN §4, §5):
//! per tenant allowed origins (`cors_origins`), nothing by default.
//!
//! Preflights are answered here and never forwarded: 204 with the allowed
//! methods and headers for an allowed origin on a CORS route, 403 for
//! anything else. Actual requests from an allowed origin get
//! `Access-Control-Allow-Origin` naming it (never `*`, never credentials:
//! bearer tokens are sent by script, not by the browser). The backend does
//! not decide CORS: its `Access-Control-*` headers are dropped.
//!
//! The back-office API has no CORS at all: back-office browser apps are
//! served from the tenant's own origin.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_util::future::{Either, Ready};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use splitgate_shared::Tenant;
use splitgate_shared::http::{Body, empty};
use splitgate_shared::side::Side;
use tower::{Layer, Service};

use crate::error::Reject;
use crate::route::Route;

const API_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
const TOKEN_METHODS: &str = "POST";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, X-Request-Id";
const EXPOSE_HEADERS: &str = "WWW-Authenticate, Location, X-Request-Id";
const MAX_AGE: &str = "600";

/// The issuer endpoints a storefront app calls from the browser.
const TOKEN_PATHS: [&str; 2] = ["/oauth2-token", "/oauth2-token/revoke"];

/// Which CORS policy a routed request falls under.
fn policy(route: Route, path: &str) -> Option<&'static str> {
    match route {
        Route::Api(Side::Storefront) => Some(API_METHODS),
        Route::Api(Side::Backoffice) => None,
        Route::Issuer => TOKEN_PATHS.contains(&path).then_some(TOKEN_METHODS),
    }
}

#[derive(Clone, Copy, Default)]
pub struct CorsLayer;

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cors { inner }
    }
}

#[derive(Clone)]
pub struct Cors<S> {
    inner: S,
}

type Answer = Ready<Result<Response<Body>, std::convert::Infallible>>;

impl<S> Service<Request<Body>> for Cors<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible>,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Either<Answer, CorsFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let route = req.extensions().get::<Route>().copied();
        let tenant = req.extensions().get::<Arc<Tenant>>();
        let (Some(route), Some(tenant)) = (route, tenant) else {
            return Either::Left(futures_util::future::ready(Ok(Reject::Internal.response())));
        };
        let methods = policy(route, req.uri().path());
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .filter(|o| tenant.cors_allows(o.as_bytes()))
            .cloned();
        if is_preflight(&req) {
            let answer = match (methods, origin) {
                (Some(methods), Some(origin)) => preflight(methods, origin),
                _ => Reject::CorsForbidden.response(),
            };
            return Either::Left(futures_util::future::ready(Ok(answer)));
        }
        Either::Right(CorsFuture {
            inner: self.inner.call(req),
            allow: methods.and(origin),
            vary: methods.is_some(),
            upstream_owned: matches!(route, Route::Api(_)),
        })
    }
}

fn is_preflight(req: &Request<Body>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn preflight(methods: &'static str, origin: HeaderValue) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    response
}

pin_project! {
    /// Adds the CORS headers to the inner response.
    pub struct CorsFuture<F> {
        #[pin]
        inner: F,
        allow: Option<HeaderValue>,
        vary: bool,
        upstream_owned: bool,
    }
}

impl<F> Future for CorsFuture<F>
where
    F: Future<Output = Result<Response<Body>, std::convert::Infallible>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.inner.poll(cx));
        let headers = response.headers_mut();
        if *this.upstream_owned {
            strip_cors(headers);
        }
        if let Some(origin) = this.allow.take() {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
        if *this.vary {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        Poll::Ready(Ok(response))
    }
}

/// Drops the backend's own CORS headers: the gateway's policy is the only one.
fn strip_cors(headers: &mut HeaderMap) {
    let names: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{body_string, tenant};
    use tower::ServiceExt;

    async fn call(
        route: Route,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (Response<Body>, bool) {
        let mut t = tenant("acme", "acme.test");
        t.cors_origins = vec!["https://shop.example".into()];
        let mut builder = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let mut req = builder.body(empty()).unwrap();
        req.extensions_mut().insert(Arc::new(t));
        req.extensions_mut().insert(route);
        let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = reached.clone();
        let inner = tower::service_fn(move |_req: Request<Body>| {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            async {
                let mut r = Response::new(empty());
                r.headers_mut()
                    .insert("access-control-allow-origin", HeaderValue::from_static("*"));
                Ok(r)
            }
        });
        let response = CorsLayer.layer(inner).oneshot(req).await.unwrap();
        (response, reached.load(std::sync::atomic::Ordering::SeqCst))
    }

    const PREFLIGHT: [(&str, &str); 3] = [
        ("origin", "https://shop.example"),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ];

    #[tokio::test]
    async fn preflight_for_an_allowed_origin_is_answered_here() {
        let (r, reached) = call(
            Route::Api(Side::Storefront),
            "OPTIONS",
            "/api/x",
            &PREFLIGHT,
        )
        .await;
        assert!(!reached);
        assert_eq!(r.status(), 204);
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://shop.example"
        );
        assert_eq!(r.headers()["access-control-allow-methods"], API_METHODS);
        assert_eq!(r.headers()["access-control-allow-headers"], ALLOW_HEADERS);
        let (r, _) = call(Route::Issuer, "OPTIONS", "/oauth2-token", &PREFLIGHT).await;
        assert_eq!(r.status(), 204);
        assert_eq!(r.headers()["access-control-allow-methods"], "POST");
    }

    #[tokio::test]
    async fn preflight_is_refused_for_other_origins_and_routes() {
        let forbidden = r#"{"errors":[{"status":"403","code":"cors_forbidden","title":"Forbidden","detail":"this origin may not call this endpoint"}]}"#;
        let mut evil = PREFLIGHT;
        evil[0] = ("origin", "https://evil.example");
        for (route, path, headers) in [
            (Route::Api(Side::Storefront), "/api/x", evil),
            (Route::Api(Side::Backoffice), "/admin/api/x", PREFLIGHT),
            (Route::Issuer, "/oauth2-token/authorize", PREFLIGHT),
            (Route::Issuer, "/oauth2-token/introspect", PREFLIGHT),
        ] {
            let (r, reached) = call(route, "OPTIONS", path, &headers).await;
            assert!(!reached, "{path}");
            assert_eq!(r.status(), 403, "{path}");
            assert_eq!(body_string(r).await, forbidden);
        }
    }

    #[tokio::test]
    async fn actual_requests_get_the_origin_only_when_allowed() {
        let (r, reached) = call(
            Route::Api(Side::Storefront),
            "GET",
            "/api/x",
            &[("origin", "https://shop.example")],
        )
        .await;
        assert!(reached);
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://shop.example"
        );
        assert_eq!(r.headers()["vary"], "Origin");
        let (r, _) = call(
            Route::Api(Side::Storefront),
            "GET",
            "/api/x",
            &[("origin", "https://evil.example")],
        )
        .await;
        assert!(!r.headers().contains_key("access-control-allow-origin"));
        let (r, _) = call(
            Route::Api(Side::Backoffice),
            "GET",
            "/admin/api/x",
            &[("origin", "https://shop.example")],
        )
        .await;
        assert!(
            !r.headers().contains_key("access-control-allow-origin"),
            "the backend's own CORS header is dropped"
        );
    }
}
