//! The route layer: the URL map of DESIGN §2 applied to the canonical path
//! (see [`crate::path`]). It decides which side's API a request is for, or
//! that it belongs to the issuer; answers the RFC 9728 protected-resource
//! metadata itself; and answers 404 for everything else, so that nothing
//! the map does not name ever reaches the backend.
//!
//! The request's target is rewritten to the canonical path (plus the query
//! as sent): the route is chosen on exactly what is forwarded.

use std::sync::Arc;

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use splitgate_shared::Tenant;
use splitgate_shared::http::{Body, full};
use splitgate_shared::side::Side;

use crate::error::Reject;
use crate::gate::{Gate, gate_layer};
use crate::path::{is_under, normalize};

/// Where a request goes, in its extensions once routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/api/...` or `P/api/...`: bearer required, proxied to the backend.
    Api(Side),
    /// The issuer's public endpoints: passed to the issuer service as they
    /// are (it authenticates its own clients).
    Issuer,
}

/// What the route map says about a canonical path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Route(Route),
    /// RFC 9728 metadata of a side's API, answered here.
    ResourceMetadata(Side),
}

const WELL_KNOWN_AS: &str = "/.well-known/oauth-authorization-server";
const WELL_KNOWN_PR: &str = "/.well-known/oauth-protected-resource";

/// The URL map of DESIGN §2 for one tenant. `None` is 404.
fn classify(tenant: &Tenant, path: &str) -> Option<Target> {
    let prefix = tenant.backend_prefix.as_str();
    let backoffice = path
        .strip_prefix(prefix)
        .filter(|rest| rest.starts_with('/'));
    if is_under(path, "/api") {
        return Some(Target::Route(Route::Api(Side::Storefront)));
    }
    if backoffice.is_some_and(|rest| is_under(rest, "/api")) {
        return Some(Target::Route(Route::Api(Side::Backoffice)));
    }
    if is_under(path, "/oauth2-token")
        || backoffice.is_some_and(|rest| is_under(rest, "/oauth2-token"))
        || path == "/.well-known/jwks.json"
    {
        return Some(Target::Route(Route::Issuer));
    }
    if let Some(rest) = path.strip_prefix(WELL_KNOWN_AS) {
        let side_path = rest.strip_suffix("/oauth2-server")?;
        return (side_path.is_empty() || side_path == prefix)
            .then_some(Target::Route(Route::Issuer));
    }
    if let Some(rest) = path.strip_prefix(WELL_KNOWN_PR) {
        let side_path = rest.strip_suffix("/api")?;
        return match side_path {
            "" => Some(Target::ResourceMetadata(Side::Storefront)),
            p if p == prefix => Some(Target::ResourceMetadata(Side::Backoffice)),
            _ => None,
        };
    }
    None
}

#[derive(Clone, Copy, Default)]
pub struct RouteLayer;

gate_layer!(RouteLayer);

impl Gate for RouteLayer {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        match route(req) {
            Ok(None) => Ok(()),
            Ok(Some(answer)) => Err(answer),
            Err(reject) => Err(reject.response()),
        }
    }
}

/// Routes the request in place; `Some` is an answer given here.
fn route(req: &mut Request<Body>) -> Result<Option<Response<Body>>, Reject> {
    if matches!(*req.method(), Method::CONNECT | Method::TRACE) {
        return Err(Reject::MethodNotAllowed(
            "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        ));
    }
    let tenant = req
        .extensions()
        .get::<Arc<Tenant>>()
        .cloned()
        .ok_or(Reject::Internal)?;
    let path = normalize(req.uri().path()).map_err(Reject::InvalidPath)?;
    let target = classify(&tenant, &path).ok_or(Reject::NotFound)?;
    let route = match target {
        Target::Route(route) => route,
        Target::ResourceMetadata(side) => return resource_metadata(req.method(), &tenant, side),
    };
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let path_and_query = PathAndQuery::try_from(path_and_query).map_err(|_| Reject::Internal)?;
    *req.uri_mut() = Uri::from(path_and_query);
    req.extensions_mut().insert(route);
    Ok(None)
}

/// RFC 9728 §3: what a client needs to find the authorization server of
/// this API. `resource` is the side's audience, `authorization_servers`
/// its issuer.
fn resource_metadata(
    method: &Method,
    tenant: &Tenant,
    side: Side,
) -> Result<Option<Response<Body>>, Reject> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(Reject::MethodNotAllowed("GET, HEAD"));
    }
    let side_name = match side {
        Side::Backoffice => "back-office API",
        Side::Storefront => "storefront API",
    };
    let document = serde_json::json!({
        "resource": tenant.audience(side),
        "authorization_servers": [tenant.issuer(side)],
        "bearer_methods_supported": ["header"],
        "resource_name": format!("{} {side_name}", tenant.name),
    });
    let body = if *method == Method::HEAD {
        splitgate_shared::http::empty()
    } else {
        full(document.to_string())
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(Some(response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{body_string, tenant};
    use tower::{Layer, ServiceExt};

    #[test]
    fn the_url_map() {
        let mut t = tenant("acme", "acme.test");
        t.backend_prefix = "/bo/x".into();
        let api = |s| Some(Target::Route(Route::Api(s)));
        let issuer = Some(Target::Route(Route::Issuer));
        let cases = [
            ("/api", api(Side::Storefront)),
            ("/api/users/1", api(Side::Storefront)),
            ("/bo/x/api", api(Side::Backoffice)),
            ("/bo/x/api/users", api(Side::Backoffice)),
            ("/oauth2-token", issuer),
            ("/oauth2-token/authorize", issuer),
            ("/oauth2-token/revoke", issuer),
            ("/bo/x/oauth2-token/authorize", issuer),
            ("/.well-known/jwks.json", issuer),
            (
                "/.well-known/oauth-authorization-server/oauth2-server",
                issuer,
            ),
            (
                "/.well-known/oauth-authorization-server/bo/x/oauth2-server",
                issuer,
            ),
            (
                "/.well-known/oauth-protected-resource/api",
                Some(Target::ResourceMetadata(Side::Storefront)),
            ),
            (
                "/.well-known/oauth-protected-resource/bo/x/api",
                Some(Target::ResourceMetadata(Side::Backoffice)),
            ),
            ("/", None),
            ("/apix", None),
            ("/API/users", None),
            ("/bo/api/users", None),
            ("/bo/x", None),
            ("/bo/xapi", None),
            ("/bo/x/apix", None),
            ("/admin/api/users", None),
            ("/oauth2-tokens", None),
            ("/oauth2-server", None),
            ("/.well-known/oauth-authorization-server", None),
            (
                "/.well-known/oauth-authorization-server/x/oauth2-server",
                None,
            ),
            ("/.well-known/oauth-protected-resource/x/api", None),
            ("/.well-known/openid-configuration", None),
            ("/.well-known/jwks.json/x", None),
        ];
        for (path, want) in cases {
            assert_eq!(classify(&t, path), want, "{path}");
        }
    }

    async fn call(method: &str, uri: &str) -> Result<Request<Body>, (u16, String)> {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(splitgate_shared::http::empty())
            .unwrap();
        req.extensions_mut()
            .insert(Arc::new(tenant("acme", "acme.test")));
        let (tx, rx) = std::sync::mpsc::channel();
        let inner = tower::service_fn(move |req: Request<Body>| {
            tx.send(req).unwrap();
            async { Ok(Response::new(splitgate_shared::http::empty())) }
        });
        let response = RouteLayer.layer(inner).oneshot(req).await.unwrap();
        match rx.try_recv() {
            Ok(req) => Ok(req),
            Err(_) => Err((response.status().as_u16(), body_string(response).await)),
        }
    }

    #[tokio::test]
    async fn rewrites_to_the_canonical_path_and_keeps_the_query() {
        let req = call("GET", "/api/x/../%2e%2e/admin/api/users?page[size]=2")
            .await
            .unwrap();
        assert_eq!(req.uri(), "/admin/api/users?page[size]=2");
        assert_eq!(
            req.extensions().get::<Route>(),
            Some(&Route::Api(Side::Backoffice))
        );
        let req = call("GET", "http://acme.test/api/users").await.unwrap();
        assert_eq!(req.uri(), "/api/users");
    }

    #[tokio::test]
    async fn refusals_are_exact() {
        assert_eq!(
            call("GET", "/api/%2F").await.unwrap_err(),
            (
                400,
                r#"{"errors":[{"status":"400","code":"invalid_path","title":"Bad Request","detail":"the path contains an encoded slash"}]}"#.into()
            )
        );
        assert_eq!(
            call("GET", "/nothing").await.unwrap_err(),
            (
                404,
                r#"{"errors":[{"status":"404","code":"not_found","title":"Not Found","detail":"no route matches this path"}]}"#.into()
            )
        );
        assert_eq!(
            call("TRACE", "/api/users").await.unwrap_err(),
            (
                405,
                r#"{"errors":[{"status":"405","code":"method_not_allowed","title":"Method Not Allowed","detail":"this method is not allowed here"}]}"#.into()
            )
        );
    }

    #[tokio::test]
    async fn answers_protected_resource_metadata() {
        let (status, body) = call("GET", "/.well-known/oauth-protected-resource/admin/api")
            .await
            .unwrap_err();
        assert_eq!(status, 200);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "resource": "http://acme.test/admin/api",
                "authorization_servers": ["http://acme.test/admin/oauth2-server"],
                "bearer_methods_supported": ["header"],
                "resource_name": "acme back-office API",
            })
        );
        let (status, _) = call("POST", "/.well-known/oauth-protected-resource/api")
            .await
            .unwrap_err();
        assert_eq!(status, 405);
    }
}
