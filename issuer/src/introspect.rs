//! RFC 7009 revocation and RFC 7662 introspection, both client-
//! authenticated, both for access and refresh tokens.

use http::request::Parts;
use http::{Response, StatusCode};
use serde::Serialize;
use splitgate_shared::http::{Body, empty};
use splitgate_shared::revocation::{self, Revocation};
use splitgate_shared::time::now_secs;
use splitgate_shared::{Kind, Tenant};

use crate::Ctx;
use crate::access::{self, Expiry};
use crate::clients::{self, ClientRecord};
use crate::error::OAuthResult;
use crate::params::{self, Params};
use crate::refresh;
use crate::tokens::json_no_store;

async fn client(
    ctx: &Ctx,
    tenant: &Tenant,
    parts: &Parts,
    params: &Params,
) -> OAuthResult<ClientRecord> {
    let creds = params::client_credentials(&parts.headers, params, &tenant.id)?;
    clients::authenticate(&ctx.store, &tenant.id, &creds, &tenant.id).await
}

/// `POST /oauth2-token/revoke`: 200 whether or not the token was known
/// (RFC 7009 §2.2); only the client's own tokens are revoked.
pub async fn revoke(
    ctx: &Ctx,
    tenant: &Tenant,
    parts: &Parts,
    params: &Params,
) -> OAuthResult<Response<Body>> {
    let client = client(ctx, tenant, parts, params).await?;
    let token = params.require("token")?;
    let hint = params.get("token_type_hint");
    let as_access = access::looks_like_jwt(token) && hint != Some("refresh_token")
        || hint == Some("access_token");
    if as_access && revoke_access(ctx, tenant, &client, token).await? {
        return Ok(ok());
    }
    if let Some(found) = refresh::find(&ctx.store, &tenant.id, token).await?
        && found.family.client_id == client.client_id
    {
        refresh::revoke(&ctx.store, &ctx.revocations, tenant, &found.family.sid).await?;
        tracing::info!(tenant = %tenant.id, sid = %found.family.sid, "refresh family revoked by its client");
        return Ok(ok());
    }
    if !as_access {
        revoke_access(ctx, tenant, &client, token).await?;
    }
    Ok(ok())
}

async fn revoke_access(
    ctx: &Ctx,
    tenant: &Tenant,
    client: &ClientRecord,
    token: &str,
) -> OAuthResult<bool> {
    let Some(claims) = access::verify(ctx.keys.published(), &tenant.id, token, Expiry::Ignore)
    else {
        return Ok(false);
    };
    if claims.client_id != client.client_id {
        return Ok(false);
    }
    if claims.exp > now_secs() {
        let revocation = Revocation::Token {
            jti: claims.jti.clone(),
            until: claims.exp,
        };
        revocation::record(&ctx.store, &tenant.id, &revocation).await?;
        ctx.revocations.apply(&tenant.id, &revocation);
        tracing::info!(tenant = %tenant.id, jti = %claims.jti, "access token revoked by its client");
    }
    Ok(true)
}

fn ok() -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

#[derive(Debug, Default, Serialize)]
struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<Kind>,
}

/// `POST /oauth2-token/introspect`: `active: true` only for a live,
/// unrevoked token of this tenant and of the calling client's side.
pub async fn introspect(
    ctx: &Ctx,
    tenant: &Tenant,
    parts: &Parts,
    params: &Params,
) -> OAuthResult<Response<Body>> {
    let client = client(ctx, tenant, parts, params).await?;
    let token = params.require("token")?;
    let hint = params.get("token_type_hint");
    let first_access = access::looks_like_jwt(token) && hint != Some("refresh_token");
    let answer = if first_access {
        match access_introspection(ctx, tenant, &client, token) {
            Some(a) => a,
            None => refresh_introspection(ctx, tenant, &client, token).await?,
        }
    } else {
        match refresh_introspection(ctx, tenant, &client, token).await? {
            a if a.active => a,
            _ => access_introspection(ctx, tenant, &client, token).unwrap_or_default(),
        }
    };
    Ok(json_no_store(&answer))
}

fn access_introspection(
    ctx: &Ctx,
    tenant: &Tenant,
    client: &ClientRecord,
    token: &str,
) -> Option<Introspection> {
    let claims = access::verify(ctx.keys.published(), &tenant.id, token, Expiry::Check)?;
    if claims.iss != tenant.issuer(client.side) || claims.aud != tenant.audience(client.side) {
        return None;
    }
    if ctx.revocations.is_revoked(
        &tenant.id,
        &claims.jti,
        &claims.sid,
        &claims.sub,
        claims.iat,
    ) {
        return None;
    }
    Some(Introspection {
        active: true,
        scope: Some(claims.scope),
        client_id: Some(claims.client_id),
        username: matches!(claims.kind, Kind::User | Kind::Customer).then(|| claims.sub.clone()),
        token_type: Some("Bearer"),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        nbf: Some(claims.nbf),
        sub: Some(claims.sub),
        aud: Some(claims.aud),
        iss: Some(claims.iss),
        jti: Some(claims.jti),
        sid: Some(claims.sid),
        kind: Some(claims.kind),
    })
}

async fn refresh_introspection(
    ctx: &Ctx,
    tenant: &Tenant,
    client: &ClientRecord,
    token: &str,
) -> OAuthResult<Introspection> {
    let Some(found) = refresh::find(&ctx.store, &tenant.id, token).await? else {
        return Ok(Introspection::default());
    };
    let f = &found.family;
    let live = found.current
        && !f.revoked
        && f.expires_at > now_secs()
        && f.side == client.side
        && !ctx
            .revocations
            .is_family_revoked(&tenant.id, &f.sid, &f.subject, f.created_at);
    if !live {
        return Ok(Introspection::default());
    }
    Ok(Introspection {
        active: true,
        scope: Some(f.scope.clone()),
        client_id: Some(f.client_id.clone()),
        username: matches!(f.kind, Kind::User | Kind::Customer).then(|| f.subject.clone()),
        token_type: Some("refresh_token"),
        exp: Some(f.expires_at),
        iat: Some(f.issued_at),
        sub: Some(f.subject.clone()),
        iss: Some(tenant.issuer(f.side)),
        sid: Some(f.sid.clone()),
        kind: Some(f.kind),
        ..Introspection::default()
    })
}
