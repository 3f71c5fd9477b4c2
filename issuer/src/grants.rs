//! `POST /oauth2-token` (DESIGN §4): client authentication, then one of the
//! grants. Every failure is an [`OAuthError`]; nothing here writes HTTP.

use http::request::Parts;
use splitgate_shared::secrets::random_id;
use splitgate_shared::{Kind, Side, Tenant};

use crate::Ctx;
use crate::clients::{self, ClientRecord, Grant};
use crate::error::{Code, OAuthError, OAuthResult};
use crate::params::{self, Params};
use crate::refresh::{self, NewFamily};
use crate::tokens::{self, Grantee, TokenResponse};
use crate::users::{self, GUEST};
use crate::{scope, visitors};

const WRONG_LOGIN: &str = "the username or password is incorrect";

pub async fn token(
    ctx: &Ctx,
    tenant: &Tenant,
    parts: &Parts,
    params: &Params,
) -> OAuthResult<TokenResponse> {
    let grant_type = params.require("grant_type")?;
    let creds = params::client_credentials(&parts.headers, params, &tenant.id)?;
    let client = clients::authenticate(&ctx.store, &tenant.id, &creds, &tenant.id).await?;
    let grant = Grant::parse(grant_type).ok_or_else(|| {
        OAuthError::new(
            Code::UnsupportedGrantType,
            format!("the grant type `{grant_type}` is not supported"),
        )
    })?;
    if !client.allows(grant) {
        return Err(OAuthError::new(
            Code::UnauthorizedClient,
            format!("this client may not use the {} grant", grant.as_str()),
        ));
    }
    let response = match grant {
        Grant::ClientCredentials => client_credentials(ctx, tenant, &client, params)?,
        Grant::Password => password(ctx, tenant, &client, params).await?,
        Grant::RefreshToken => refresh_token(ctx, tenant, &client, params).await?,
        Grant::AuthorizationCode => {
            crate::authorize::exchange(ctx, tenant, &client, params).await?
        }
    };
    ctx.metrics.issued(grant);
    Ok(response)
}

fn client_credentials(
    ctx: &Ctx,
    tenant: &Tenant,
    client: &ClientRecord,
    params: &Params,
) -> OAuthResult<TokenResponse> {
    if client.public {
        return Err(OAuthError::new(
            Code::UnauthorizedClient,
            "a public client cannot use client_credentials",
        ));
    }
    let scope = scope::resolve(params.get("scope"), &client.scopes)?;
    let sid = random_id();
    let access = tokens::mint(
        &ctx.keys,
        tenant,
        &Grantee {
            side: client.side,
            kind: Kind::Client,
            subject: &client.client_id,
            client_id: &client.client_id,
            scope: &scope,
            sid: &sid,
            issued_at: tokens::issue_time(&ctx.revocations, &tenant.id, &client.client_id),
        },
    )?;
    Ok(TokenResponse::new(tenant, access, None))
}

async fn password(
    ctx: &Ctx,
    tenant: &Tenant,
    client: &ClientRecord,
    params: &Params,
) -> OAuthResult<TokenResponse> {
    let username = params.require("username")?;
    let password = params.require("password")?;
    let scope = scope::resolve(params.get("scope"), &client.scopes)?;
    let (subject, kind) = if username == GUEST && password == GUEST {
        if client.side != Side::Storefront {
            return Err(OAuthError::invalid_grant(WRONG_LOGIN));
        }
        (visitors::create(&ctx.store, tenant).await?, Kind::Visitor)
    } else {
        let user = users::verify_login(
            &ctx.store,
            &ctx.passwords,
            &tenant.id,
            client.side,
            username,
            password,
        )
        .await?
        .ok_or_else(|| OAuthError::invalid_grant(WRONG_LOGIN))?;
        (user.username, Kind::person(client.side))
    };
    issue_with_refresh(ctx, tenant, client, kind, &subject, &scope, &random_id()).await
}

/// An access token, and a refresh token starting a family when the client
/// may refresh.
pub(crate) async fn issue_with_refresh(
    ctx: &Ctx,
    tenant: &Tenant,
    client: &ClientRecord,
    kind: Kind,
    subject: &str,
    scope: &str,
    sid: &str,
) -> OAuthResult<TokenResponse> {
    let issued_at = tokens::issue_time(&ctx.revocations, &tenant.id, subject);
    let grantee = Grantee {
        side: client.side,
        kind,
        subject,
        client_id: &client.client_id,
        scope,
        sid,
        issued_at,
    };
    let access = tokens::mint(&ctx.keys, tenant, &grantee)?;
    let refresh = if client.allows(Grant::RefreshToken) {
        let new = NewFamily {
            sid,
            client_id: &client.client_id,
            side: client.side,
            kind,
            subject,
            scope,
            issued_at,
        };
        Some(refresh::start(&ctx.store, tenant, new).await?)
    } else {
        None
    };
    Ok(TokenResponse::new(tenant, access, refresh))
}

async fn refresh_token(
    ctx: &Ctx,
    tenant: &Tenant,
    client: &ClientRecord,
    params: &Params,
) -> OAuthResult<TokenResponse> {
    let presented = params.require("refresh_token")?;
    let invalid = |why: &str| OAuthError::invalid_grant(why.to_owned());
    let found = refresh::find(&ctx.store, &tenant.id, presented)
        .await?
        .ok_or_else(|| invalid("the refresh token is unknown or has expired"))?;
    let family = &found.family;
    if family.client_id != client.client_id {
        return Err(invalid("the refresh token was issued to another client"));
    }
    if family.revoked
        || ctx.revocations.is_family_revoked(
            &tenant.id,
            &family.sid,
            &family.subject,
            family.created_at,
        )
    {
        return Err(invalid("the refresh token has been revoked"));
    }
    if family.expires_at <= splitgate_shared::time::now_secs() {
        return Err(invalid("the refresh token is unknown or has expired"));
    }
    if !found.current {
        refresh::revoke(&ctx.store, &ctx.revocations, tenant, &family.sid).await?;
        tracing::warn!(tenant = %tenant.id, sid = %family.sid, client = %client.client_id, "refresh token reuse; family revoked");
        return Err(invalid(
            "the refresh token was already used; its session has been revoked",
        ));
    }
    let scope = scope::narrow(params.get("scope"), &family.scope)?;
    let active = match family.kind {
        Kind::User | Kind::Customer => {
            users::is_active(&ctx.store, &tenant.id, family.side, &family.subject).await?
        }
        Kind::Visitor => visitors::touch(&ctx.store, tenant, &family.subject).await?,
        Kind::Client => true,
    };
    if !active {
        return Err(invalid(
            "the account behind this refresh token is disabled or gone",
        ));
    }
    let Some(next) = refresh::advance(&ctx.store, tenant, &found).await? else {
        refresh::revoke(&ctx.store, &ctx.revocations, tenant, &family.sid).await?;
        tracing::warn!(tenant = %tenant.id, sid = %family.sid, "concurrent use of one refresh token; family revoked");
        return Err(invalid(
            "the refresh token was already used; its session has been revoked",
        ));
    };
    let grantee = Grantee {
        side: family.side,
        kind: family.kind,
        subject: &family.subject,
        client_id: &client.client_id,
        scope: &scope,
        sid: &family.sid,
        issued_at: tokens::issue_time(&ctx.revocations, &tenant.id, &family.subject),
    };
    let access = tokens::mint(&ctx.keys, tenant, &grantee)?;
    Ok(TokenResponse::new(tenant, access, Some(next)))
}
