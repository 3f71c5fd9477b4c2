//! The issuer's public endpoints (DESIGN §2): tenant by `Host`, then a
//! route by method and path. Served by the gateway in `serve` mode and on
//! the public listener by `splitgate issuer`.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use splitgate_shared::http::Body;
use splitgate_shared::{Side, Tenant};

use crate::Ctx;
use crate::error::{Code, OAuthError};
use crate::{grants, introspect, metadata, params};

/// The tenant a request is for: set by the gateway, or from `Host`.
pub fn tenant_of<B>(ctx: &Ctx, req: &Request<B>) -> Option<Arc<Tenant>> {
    if let Some(t) = req.extensions().get::<Arc<Tenant>>() {
        return Some(t.clone());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    ctx.tenants.by_host(host).cloned()
}

pub async fn handle(ctx: Arc<Ctx>, req: Request<Body>) -> Response<Body> {
    let Some(tenant) = tenant_of(&ctx, &req) else {
        return OAuthError::invalid_request("no tenant is served at this host")
            .with_status(StatusCode::MISDIRECTED_REQUEST)
            .into_response();
    };
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    match path.as_str() {
        "/oauth2-token" | "/oauth2-token/revoke" | "/oauth2-token/introspect" => {
            let params = match params::read(
                &parts.method,
                &parts.headers,
                body,
                ctx.config.max_body_bytes,
            )
            .await
            {
                Ok(p) => p,
                Err(e) => return error(&ctx, e),
            };
            let result = match path.as_str() {
                "/oauth2-token" => grants::token(&ctx, &tenant, &parts, &params)
                    .await
                    .map(|t| t.into_response()),
                "/oauth2-token/revoke" => introspect::revoke(&ctx, &tenant, &parts, &params).await,
                _ => introspect::introspect(&ctx, &tenant, &parts, &params).await,
            };
            result.unwrap_or_else(|e| error(&ctx, e))
        }
        "/.well-known/jwks.json" => get_only(&parts.method, || {
            metadata::jwks_response(ctx.keys.published(), &tenant)
        }),
        p if p == tenant.metadata_path(Side::Storefront) => get_only(&parts.method, || {
            metadata::metadata_response(&tenant, Side::Storefront)
        }),
        p if p == tenant.metadata_path(Side::Backoffice) => get_only(&parts.method, || {
            metadata::metadata_response(&tenant, Side::Backoffice)
        }),
        _ => match crate::authorize::route(&ctx, &tenant, parts, body).await {
            Some(response) => response,
            None => not_found(),
        },
    }
}

fn error(ctx: &Ctx, e: OAuthError) -> Response<Body> {
    ctx.metrics.error(e.code);
    if e.code == Code::InvalidClient {
        tracing::info!(error = e.code.as_str(), description = %e.description, "token request refused");
    } else {
        tracing::debug!(error = e.code.as_str(), description = %e.description, "token request refused");
    }
    e.into_response()
}

fn get_only(method: &Method, ok: impl FnOnce() -> Response<Body>) -> Response<Body> {
    if method == Method::GET || method == Method::HEAD {
        return ok();
    }
    let mut response = OAuthError::invalid_request("use GET")
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
        .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

pub fn not_found() -> Response<Body> {
    OAuthError::invalid_request("no such endpoint")
        .with_status(StatusCode::NOT_FOUND)
        .into_response()
}
