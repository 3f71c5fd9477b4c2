//! `GET .../authorize` and `GET /oauth2-token/authorize-visitor`: check the
//! request, then log in, ask for consent, or answer the client with a code.

use http::request::Parts;
use http::{Response, StatusCode};
use minijinja::context;
use splitgate_shared::http::Body;
use splitgate_shared::store::StoreResult;
use splitgate_shared::{Kind, Side, Tenant};

use super::codes::{self, NewCode};
use super::csrf::{self, Purpose};
use super::pages::{self, Page};
use super::params::{self, AuthRequest, Refusal, Target};
use super::sessions::{self, Loaded};
use crate::{Ctx, users, visitors};

/// The authorize endpoint of `side`.
pub async fn authorize(ctx: &Ctx, tenant: &Tenant, side: Side, parts: &Parts) -> Response<Body> {
    let query = parts.uri.query().unwrap_or("");
    let req = match params::validate(ctx, &tenant.id, side, query).await {
        Ok(req) => req,
        Err(refusal) => return refuse(tenant, side, refusal, StatusCode::FOUND),
    };
    let answer = async {
        let session = sessions::load(ctx, tenant, side, &parts.headers).await?;
        proceed(ctx, tenant, side, &req, session, StatusCode::FOUND).await
    };
    answer
        .await
        .unwrap_or_else(|e| pages::store_failed(tenant, side, &e))
}

/// A checked request in a browser with `session`: a code if the person is
/// logged in and has consented (or the client skips consent), else the
/// page that asks for what is missing.
pub async fn proceed(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    req: &AuthRequest,
    session: Option<Loaded>,
    status: StatusCode,
) -> StoreResult<Response<Body>> {
    let subject = session.as_ref().and_then(|s| s.session.subject.clone());
    let active = match &subject {
        Some(subject) => users::is_active(&ctx.store, &tenant.id, side, subject).await?,
        None => false,
    };
    match (session, subject) {
        (Some(loaded), Some(subject)) if active => {
            if req.client.skip_consent
                || loaded.session.consented(&req.client.client_id, &req.scope)
            {
                return code_redirect(ctx, tenant, side, req, Kind::person(side), &subject, status)
                    .await;
            }
            Ok(consent_page(ctx, tenant, side, req, &loaded)
                .await?
                .into_response())
        }
        (session, _) => {
            let (loaded, cookie) = match session {
                Some(anonymous) if anonymous.session.subject.is_none() => (anonymous, None),
                stale => {
                    if let Some(stale) = stale {
                        sessions::end(ctx, tenant, &stale).await?;
                    }
                    let (loaded, cookie) = sessions::start(ctx, tenant, side).await?;
                    (loaded, Some(cookie))
                }
            };
            let page = login_page(ctx, tenant, side, req, &loaded, None, "").await?;
            Ok(page.cookie(cookie).into_response())
        }
    }
}

/// The login form, with a fresh single-use form token.
pub async fn login_page(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    req: &AuthRequest,
    loaded: &Loaded,
    error: Option<&str>,
    username: &str,
) -> StoreResult<Page> {
    let form = csrf::issue(ctx, tenant, loaded, Purpose::Login, &req.query).await?;
    let values = context! {
        title => "Sign in",
        client => req.client.name.as_str(),
        error,
        username,
        csrf => loaded.session.csrf.as_str(),
        form,
        action => format!("{}/login", tenant.authorize_path(side)),
    };
    Ok(pages::render(tenant, side, "login.html", values).returns_to(&req.redirect_uri))
}

async fn consent_page(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    req: &AuthRequest,
    loaded: &Loaded,
) -> StoreResult<Page> {
    let form = csrf::issue(ctx, tenant, loaded, Purpose::Consent, &req.query).await?;
    let scopes: Vec<String> = req
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let values = context! {
        title => "Allow access",
        client => req.client.name.as_str(),
        scopes,
        subject => loaded.session.subject.clone(),
        return_to => return_to(&req.redirect_uri),
        csrf => loaded.session.csrf.as_str(),
        form,
        query => req.query.as_str(),
        action => format!("{}/consent", tenant.authorize_path(side)),
        logout_action => format!("{}/logout", tenant.authorize_path(side)),
    };
    Ok(pages::render(tenant, side, "consent.html", values).returns_to(&req.redirect_uri))
}

/// What the consent page says the person will be sent back to: the host
/// (and port) of an http(s) redirect URI, or the app's scheme.
fn return_to(redirect_uri: &str) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(url) if url.has_host() => {
            let host = url.host_str().unwrap_or_default();
            match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            }
        }
        Ok(url) => format!("the {} app", url.scheme()),
        Err(_) => redirect_uri.to_owned(),
    }
}

/// Issues a code and sends it to the client.
pub async fn code_redirect(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    req: &AuthRequest,
    kind: Kind,
    subject: &str,
    status: StatusCode,
) -> StoreResult<Response<Body>> {
    let code = codes::issue(
        ctx,
        tenant,
        NewCode {
            client_id: &req.client.client_id,
            side,
            kind,
            subject,
            scope: &req.scope,
            redirect_uri: &req.redirect_uri,
            redirect_uri_sent: req.redirect_uri_sent,
            challenge: req.challenge.clone(),
        },
    )
    .await?;
    Ok(to_client(
        tenant,
        side,
        &req.target(),
        &[("code", &code)],
        status,
        &[],
    ))
}

/// A redirect to the client with `params`, then `state` and `iss`
/// (RFC 9207).
pub fn to_client(
    tenant: &Tenant,
    side: Side,
    target: &Target,
    params: &[(&str, &str)],
    status: StatusCode,
    cookies: &[String],
) -> Response<Body> {
    let Ok(mut url) = url::Url::parse(&target.redirect_uri) else {
        return pages::fault(
            tenant,
            side,
            &params::PageFault::BadRequest("The redirect URI is not valid.".into()),
        )
        .into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
        if let Some(state) = &target.state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &tenant.issuer(side));
    }
    pages::redirect(status, url.as_str(), cookies)
}

/// Answers a refused request: its page, or an error sent to the client.
pub fn refuse(tenant: &Tenant, side: Side, refusal: Refusal, status: StatusCode) -> Response<Body> {
    match refusal {
        Refusal::Page(fault) => pages::fault(tenant, side, &fault).into_response(),
        Refusal::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => {
            let target = Target {
                redirect_uri,
                state,
            };
            let params = [
                ("error", error),
                ("error_description", description.as_str()),
            ];
            to_client(tenant, side, &target, &params, status, &[])
        }
    }
}

/// `GET /oauth2-token/authorize-visitor`: a code for a new guest visitor,
/// without login or consent (storefront clients only: a back-office client
/// is refused like on the other side's authorize endpoint).
pub async fn visitor(ctx: &Ctx, tenant: &Tenant, parts: &Parts) -> Response<Body> {
    let side = Side::Storefront;
    let query = parts.uri.query().unwrap_or("");
    let req = match params::validate(ctx, &tenant.id, side, query).await {
        Ok(req) => req,
        Err(refusal) => return refuse(tenant, side, refusal, StatusCode::FOUND),
    };
    let answer = async {
        let subject = visitors::create(&ctx.store, tenant).await?;
        code_redirect(
            ctx,
            tenant,
            side,
            &req,
            Kind::Visitor,
            &subject,
            StatusCode::FOUND,
        )
        .await
    };
    answer
        .await
        .unwrap_or_else(|e| pages::store_failed(tenant, side, &e))
}
