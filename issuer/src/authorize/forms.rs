//! The forms the authorize pages post back: login, consent and logout.
//! Each checks the session's CSRF token first; login and consent then take
//! their single-use form token, which also names the authorization request
//! (checked again, since the client may have changed meanwhile).

use http::request::Parts;
use http::{Response, StatusCode};
use minijinja::context;
use splitgate_shared::http::Body;
use splitgate_shared::store::StoreResult;
use splitgate_shared::{Kind, Side, Tenant};

use super::csrf::{self, Purpose, Refused};
use super::flow::{code_redirect, login_page, refuse, to_client};
use super::pages::{self, Page};
use super::params::{self, AuthRequest, MAX_QUERY_BYTES};
use super::sessions::{self, Loaded};
use crate::params::Params;
use crate::{Ctx, users};

/// Largest form body read (a login form is well under 1 KiB).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Reads a posted form; a malformed one is a 400 (413, 415) page.
async fn read_form(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    parts: &Parts,
    body: Body,
) -> Result<Params, Page> {
    let limit = MAX_FORM_BYTES.min(ctx.config.max_body_bytes);
    crate::params::read(&parts.method, &parts.headers, body, limit)
        .await
        .map_err(|e| {
            let status = e.status.unwrap_or(StatusCode::BAD_REQUEST);
            pages::message(tenant, side, status, "Form not valid", &e.description)
        })
}

/// The session a form was posted in, if its CSRF token checks out.
async fn verified_session(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    parts: &Parts,
    form: &Params,
) -> StoreResult<Option<Loaded>> {
    Ok(sessions::load(ctx, tenant, side, &parts.headers)
        .await?
        .filter(|loaded| csrf::check(&loaded.session, form.get("csrf"))))
}

/// Takes the form token and checks the request it names again.
async fn redeem_request(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    loaded: &Loaded,
    purpose: Purpose,
    form: &Params,
) -> StoreResult<Result<(AuthRequest, csrf::FormRecord), Response<Body>>> {
    let record = match csrf::redeem(ctx, tenant, loaded, purpose, form.get("form")).await? {
        Ok(record) => record,
        Err(Refused::Spent) => return Ok(Err(pages::spent(tenant, side).into_response())),
        Err(Refused::Foreign) => return Ok(Err(pages::forged(tenant, side).into_response())),
    };
    match params::validate(ctx, &tenant.id, side, &record.query).await {
        Ok(req) => Ok(Ok((req, record))),
        Err(refusal) => Ok(Err(refuse(tenant, side, refusal, StatusCode::SEE_OTHER))),
    }
}

/// `POST .../authorize/login`. A wrong user name and a wrong password get
/// the same page; success starts a new session and returns to authorize.
pub async fn login(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    parts: &Parts,
    body: Body,
) -> StoreResult<Response<Body>> {
    let form = match read_form(ctx, tenant, side, parts, body).await {
        Ok(form) => form,
        Err(page) => return Ok(page.into_response()),
    };
    let Some(loaded) = verified_session(ctx, tenant, side, parts, &form).await? else {
        return Ok(pages::forged(tenant, side).into_response());
    };
    let (req, _) = match redeem_request(ctx, tenant, side, &loaded, Purpose::Login, &form).await? {
        Ok(found) => found,
        Err(response) => return Ok(response),
    };
    let username = form.get("username").unwrap_or_default();
    let password = form.get("password").unwrap_or_default();
    let user = if username.is_empty() || password.is_empty() {
        None
    } else {
        users::verify_login(
            &ctx.store,
            &ctx.passwords,
            &tenant.id,
            side,
            username,
            password,
        )
        .await?
    };
    let Some(user) = user else {
        tracing::info!(tenant = %tenant.id, side = %side, client = %req.client.client_id, "login refused on the authorize page");
        let error = match side {
            Side::Backoffice => "The username or password is incorrect.",
            Side::Storefront => "The email or password is incorrect.",
        };
        let page = login_page(ctx, tenant, side, &req, &loaded, Some(error), username).await?;
        return Ok(page.status(StatusCode::BAD_REQUEST).into_response());
    };
    let (_, cookie) = sessions::log_in(ctx, tenant, &loaded, &user.username).await?;
    let location = format!("{}?{}", tenant.authorize_path(side), req.query);
    Ok(pages::redirect(StatusCode::SEE_OTHER, &location, &[cookie]))
}

/// `POST .../authorize/consent`: `decision=allow` sends a code,
/// `decision=deny` sends `access_denied`.
pub async fn consent(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    parts: &Parts,
    body: Body,
) -> StoreResult<Response<Body>> {
    let form = match read_form(ctx, tenant, side, parts, body).await {
        Ok(form) => form,
        Err(page) => return Ok(page.into_response()),
    };
    let Some(mut loaded) = verified_session(ctx, tenant, side, parts, &form).await? else {
        return Ok(pages::forged(tenant, side).into_response());
    };
    let Some(subject) = loaded.session.subject.clone() else {
        return Ok(pages::forged(tenant, side).into_response());
    };
    let (req, record) =
        match redeem_request(ctx, tenant, side, &loaded, Purpose::Consent, &form).await? {
            Ok(found) => found,
            Err(response) => return Ok(response),
        };
    if record.subject.as_deref() != Some(subject.as_str()) {
        return Ok(pages::forged(tenant, side).into_response());
    }
    match form.get("decision") {
        Some("allow") => {
            sessions::remember_consent(ctx, tenant, &mut loaded, &req.client.client_id, &req.scope)
                .await?;
            let kind = Kind::person(side);
            code_redirect(
                ctx,
                tenant,
                side,
                &req,
                kind,
                &subject,
                StatusCode::SEE_OTHER,
            )
            .await
        }
        Some("deny") => {
            let params = [
                ("error", "access_denied"),
                ("error_description", "the user denied the request"),
            ];
            Ok(to_client(
                tenant,
                side,
                &req.target(),
                &params,
                StatusCode::SEE_OTHER,
                &[],
            ))
        }
        _ => Ok(pages::message(
            tenant,
            side,
            StatusCode::BAD_REQUEST,
            "Form not valid",
            "Choose Allow or Deny. Go back to the application and start again.",
        )
        .into_response()),
    }
}

/// A `continue` value: an authorize query to return to after logout. Only
/// a query is taken, so the redirect cannot leave the authorize endpoint.
fn continue_query(form: &Params) -> Option<&str> {
    form.get("continue").filter(|q| {
        q.len() <= MAX_QUERY_BYTES
            && q.bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'#' | b'\\' | b'"' | b'<' | b'>'))
    })
}

/// `GET .../authorize/logout` shows a sign-out button, `POST` signs out
/// (and returns to authorize when the form says where).
pub async fn logout(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    parts: &Parts,
    body: Body,
) -> StoreResult<Response<Body>> {
    let not_signed_in = |cookie: Option<String>| {
        pages::message(
            tenant,
            side,
            StatusCode::OK,
            "Sign out",
            "You are not signed in.",
        )
        .cookie(cookie)
        .into_response()
    };
    if parts.method == http::Method::GET {
        let loaded = sessions::load(ctx, tenant, side, &parts.headers).await?;
        let Some(loaded) = loaded.filter(|l| l.session.subject.is_some()) else {
            return Ok(not_signed_in(None));
        };
        let message = format!(
            "You are signed in as {}.",
            loaded.session.subject.as_deref().unwrap_or_default()
        );
        let values = context! {
            title => "Sign out",
            message,
            csrf => loaded.session.csrf.as_str(),
            logout_action => format!("{}/logout", tenant.authorize_path(side)),
        };
        return Ok(pages::render(tenant, side, "message.html", values).into_response());
    }
    let form = match read_form(ctx, tenant, side, parts, body).await {
        Ok(form) => form,
        Err(page) => return Ok(page.into_response()),
    };
    let clear = sessions::clear_cookie(tenant, side);
    let Some(loaded) = sessions::load(ctx, tenant, side, &parts.headers).await? else {
        return Ok(not_signed_in(Some(clear)));
    };
    if !csrf::check(&loaded.session, form.get("csrf")) {
        return Ok(pages::forged(tenant, side).into_response());
    }
    sessions::end(ctx, tenant, &loaded).await?;
    if let Some(query) = continue_query(&form) {
        let location = format!("{}?{query}", tenant.authorize_path(side));
        return Ok(pages::redirect(StatusCode::SEE_OTHER, &location, &[clear]));
    }
    Ok(pages::message(
        tenant,
        side,
        StatusCode::OK,
        "Signed out",
        &format!("You are signed out of {}.", tenant.name),
    )
    .cookie(Some(clear))
    .into_response())
}
