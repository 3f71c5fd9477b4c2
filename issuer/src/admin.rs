//! The admin API (DESIGN §7): clients, users, keys and revocations, behind
//! the admin token; plus `/healthz`, `/readyz` and `/metrics`. Served on
//! the admin listener (loopback by default); the CLI's admin commands call
//! it. See `docs/http-api.md` for every route.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use splitgate_shared::http::{Body, BodyError, full, read_body_limited};
use splitgate_shared::revocation::{self, Revocation};
use splitgate_shared::secrets::ct_eq;
use splitgate_shared::time::now_secs;
use splitgate_shared::{Side, StoreError, Tenant};

use crate::Ctx;
use crate::clients::{self, ClientError, NewClient, PublicClient};
use crate::users::{self, PublicUser, UserError};

/// An admin API failure: status, a short code and a message for the
/// operator.
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AdminError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AdminError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        tracing::error!(cause = %e, "store call failed");
        AdminError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            e.to_string(),
        )
    }
}

impl From<ClientError> for AdminError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(m) => AdminError::bad(m),
            ClientError::Store(e) => e.into(),
        }
    }
}

impl From<UserError> for AdminError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Invalid(m) => AdminError::bad(m),
            e @ UserError::Exists { .. } => {
                AdminError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            e @ UserError::NotFound { .. } => AdminError::not_found(e.to_string()),
            UserError::Store(e) => e.into(),
            UserError::Hash => AdminError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "password hashing failed",
            ),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut response = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

impl AdminError {
    fn into_response(self) -> Response<Body> {
        let mut r = json(
            self.status,
            &ErrorBody {
                error: self.code,
                message: &self.message,
            },
        );
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"splitgate-admin\""),
            );
        }
        r
    }
}

pub async fn handle(ctx: Arc<Ctx>, req: Request<Body>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => return text(StatusCode::OK, "ok\n".into(), "text/plain; charset=utf-8"),
        "/readyz" => {
            return match ctx.store.ping().await {
                Ok(()) => text(
                    StatusCode::OK,
                    "ready\n".into(),
                    "text/plain; charset=utf-8",
                ),
                Err(e) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {e}\n"),
                    "text/plain; charset=utf-8",
                ),
            };
        }
        "/metrics" => {
            return text(
                StatusCode::OK,
                ctx.metrics.render(),
                "text/plain; version=0.0.4",
            );
        }
        _ => {}
    }
    if !authorized(&ctx, &req) {
        return AdminError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin token is required (Authorization: Bearer ...)",
        )
        .into_response();
    }
    route(&ctx, req)
        .await
        .unwrap_or_else(AdminError::into_response)
}

fn authorized<B>(ctx: &Ctx, req: &Request<B>) -> bool {
    let Some(value) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(token) = value.strip_prefix("Bearer ") else {
        return false;
    };
    ct_eq(token.trim().as_bytes(), ctx.admin_token.expose().as_bytes())
}

async fn route(ctx: &Ctx, req: Request<Body>) -> Result<Response<Body>, AdminError> {
    let segments: Vec<String> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let ["v1", "tenants", tenant_id, rest @ ..] = segs.as_slice() else {
        return Err(AdminError::not_found("no such admin endpoint"));
    };
    let tenant = ctx.tenants.by_id(tenant_id).cloned().ok_or_else(|| {
        AdminError::not_found(format!("no tenant `{tenant_id}` in the configuration"))
    })?;
    let body = req.into_body();
    match rest {
        ["clients", rest @ ..] => client_routes(ctx, &tenant, method, rest, body).await,
        ["users", rest @ ..] => user_routes(ctx, &tenant, method, rest, &query, body).await,
        ["keys"] if method == Method::GET => Ok(json(StatusCode::OK, &ctx.keys.list(&tenant.id))),
        ["keys", "rotate"] if method == Method::POST => {
            let key = ctx.keys.rotate(&tenant).await.map_err(|e| {
                AdminError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    e.to_string(),
                )
            })?;
            Ok(json(StatusCode::OK, &key))
        }
        ["revocations"] if method == Method::POST => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Body {
                subject: String,
            }
            let Body { subject } = read_json(body).await?;
            if subject.is_empty() {
                return Err(AdminError::bad("`subject` is required"));
            }
            let revocation = revoke_subject(ctx, &tenant, &subject).await?;
            Ok(json(StatusCode::OK, &revocation))
        }
        _ => Err(AdminError::not_found("no such admin endpoint")),
    }
}

/// `/v1/tenants/{t}/clients...`
async fn client_routes(
    ctx: &Ctx,
    tenant: &Tenant,
    method: Method,
    rest: &[&str],
    body: Body,
) -> Result<Response<Body>, AdminError> {
    let missing = |id: &str| AdminError::not_found(format!("no client `{id}`"));
    match (method, rest) {
        (Method::GET, []) => {
            let list: Vec<PublicClient> = clients::list(&ctx.store, &tenant.id)
                .await?
                .iter()
                .map(PublicClient::from)
                .collect();
            Ok(json(StatusCode::OK, &list))
        }
        (Method::POST, []) => {
            let new: NewClient = read_json(body).await?;
            let created = clients::create(&ctx.store, &tenant.id, new).await?;
            tracing::info!(tenant = %tenant.id, client_id = %created.client.client_id, side = %created.client.side, "client created");
            Ok(json(StatusCode::CREATED, &created))
        }
        (Method::GET, [id]) => match clients::get(&ctx.store, &tenant.id, id).await? {
            Some(c) => Ok(json(StatusCode::OK, &PublicClient::from(&c))),
            None => Err(missing(id)),
        },
        (Method::POST, [id, action @ ("disable" | "enable")]) => {
            let client = clients::set_disabled(&ctx.store, &tenant.id, id, *action == "disable")
                .await?
                .ok_or_else(|| missing(id))?;
            tracing::info!(tenant = %tenant.id, client_id = %id, action, "client updated");
            Ok(json(StatusCode::OK, &PublicClient::from(&client)))
        }
        (Method::DELETE, [id]) => {
            if !clients::delete(&ctx.store, &tenant.id, id).await? {
                return Err(missing(id));
            }
            tracing::info!(tenant = %tenant.id, client_id = %id, "client deleted");
            Ok(json(StatusCode::OK, &serde_json::json!({"deleted": id})))
        }
        _ => Err(AdminError::not_found("no such admin endpoint")),
    }
}

/// `/v1/tenants/{t}/users...`
async fn user_routes(
    ctx: &Ctx,
    tenant: &Tenant,
    method: Method,
    rest: &[&str],
    query: &str,
    body: Body,
) -> Result<Response<Body>, AdminError> {
    match (method, rest) {
        (Method::GET, []) => list_users(ctx, tenant, query).await,
        (Method::POST, []) => create_user(ctx, tenant, body).await,
        (Method::POST, [side, username, action @ ("disable" | "enable")]) => {
            let side = parse_side(side)?;
            let user =
                users::set_disabled(&ctx.store, &tenant.id, side, username, *action == "disable")
                    .await?;
            if *action == "disable" {
                revoke_subject(ctx, tenant, &user.username).await?;
            }
            tracing::info!(tenant = %tenant.id, %side, username = %user.username, action, "user updated");
            Ok(json(StatusCode::OK, &PublicUser::new(&user, side)))
        }
        (Method::DELETE, [side, username]) => {
            let side = parse_side(side)?;
            let Some(user) = users::get(&ctx.store, &tenant.id, side, username).await? else {
                return Err(AdminError::not_found(format!(
                    "no {side} user `{username}`"
                )));
            };
            users::delete(&ctx.store, &tenant.id, side, username).await?;
            revoke_subject(ctx, tenant, &user.username).await?;
            tracing::info!(tenant = %tenant.id, %side, username = %user.username, "user deleted");
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"deleted": user.username}),
            ))
        }
        _ => Err(AdminError::not_found("no such admin endpoint")),
    }
}

/// Revokes every token of `subject` issued before now, on both sides.
async fn revoke_subject(
    ctx: &Ctx,
    tenant: &Tenant,
    subject: &str,
) -> Result<Revocation, AdminError> {
    let now = now_secs();
    let longest = tenant
        .access_token_ttl
        .max(tenant.refresh_token_ttl)
        .as_secs();
    // `before` is the next second: tokens issued in this very second are
    // covered too (their `iat` is whole seconds).
    let revocation = Revocation::Subject {
        subject: subject.to_owned(),
        before: now + 1,
        until: now + longest + 60,
    };
    // Stored first: a revocation that could not be recorded is not applied
    // here either, so no process believes in one the others never see.
    revocation::record(&ctx.store, &tenant.id, &revocation).await?;
    ctx.revocations.apply(&tenant.id, &revocation);
    tracing::info!(tenant = %tenant.id, subject, "subject revoked");
    Ok(revocation)
}

async fn list_users(ctx: &Ctx, tenant: &Tenant, query: &str) -> Result<Response<Body>, AdminError> {
    let side = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "side")
        .map(|(_, v)| v.into_owned());
    let sides = match side {
        Some(s) => vec![parse_side(&s)?],
        None => Side::ALL.to_vec(),
    };
    let mut out = Vec::new();
    for side in sides {
        for user in users::list(&ctx.store, &tenant.id, side).await? {
            out.push(PublicUser::new(&user, side));
        }
    }
    Ok(json(StatusCode::OK, &out))
}

async fn create_user(ctx: &Ctx, tenant: &Tenant, body: Body) -> Result<Response<Body>, AdminError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewUser {
        side: Side,
        username: String,
        password: String,
    }
    let new: NewUser = read_json(body).await?;
    let user = users::create(
        &ctx.store,
        &ctx.passwords,
        &tenant.id,
        new.side,
        &new.username,
        &new.password,
    )
    .await?;
    tracing::info!(tenant = %tenant.id, side = %new.side, username = %user.username, "user created");
    Ok(json(StatusCode::CREATED, &PublicUser::new(&user, new.side)))
}

fn parse_side(s: &str) -> Result<Side, AdminError> {
    s.parse()
        .map_err(|_| AdminError::bad("side must be `backoffice` or `storefront`"))
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, AdminError> {
    let bytes = read_body_limited(body, None, 64 * 1024)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => AdminError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the body is larger than 64 KiB",
            ),
            BodyError::Read(m) => AdminError::bad(m),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| AdminError::bad(format!("invalid JSON body: {e}")))
}
