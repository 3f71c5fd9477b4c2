//! The authorization code flow with PKCE (DESIGN §2, §4; issue 4): the
//! authorize endpoint of each side with its login and consent pages, guest
//! codes on the storefront, and the `authorization_code` grant.
//!
//! For a side whose prefix is `S` (empty for the storefront, the tenant's
//! backend prefix for the back office):
//!
//! | route | |
//! |---|---|
//! | `GET S/oauth2-token/authorize` | the authorization request ([`flow`]) |
//! | `POST S/oauth2-token/authorize/login` | the login form ([`forms`]) |
//! | `POST S/oauth2-token/authorize/consent` | the consent form |
//! | `GET, POST S/oauth2-token/authorize/logout` | sign out |
//! | `GET /oauth2-token/authorize-visitor` | a guest code, storefront only |
//!
//! The rest lives in small rooms: [`params`] checks requests, [`pkce`]
//! challenges and verifiers, [`sessions`] the login cookie, [`csrf`] the
//! forms' tokens, [`codes`] the stored codes, [`pages`] the HTML, and
//! [`exchange`] the token endpoint's side of it. `docs/http-api.md`
//! ("Authorization code flow") walks through it.

mod codes;
mod csrf;
mod exchange;
mod flow;
mod forms;
mod pages;
mod params;
mod pkce;
mod sessions;

use http::{Method, Response};
use splitgate_shared::http::Body;
use splitgate_shared::{Side, Tenant};

use crate::Ctx;

pub use exchange::exchange;

/// Whether the code flow is served (metadata lists it only then).
pub const ENABLED: bool = true;

/// Which side a path under `S/oauth2-token` is for, and the rest of it.
fn split_side<'a>(tenant: &Tenant, path: &'a str) -> Option<(Side, &'a str)> {
    if let Some(rest) = path.strip_prefix("/oauth2-token/") {
        return Some((Side::Storefront, rest));
    }
    let rest = path
        .strip_prefix(tenant.backend_prefix.as_str())?
        .strip_prefix("/oauth2-token/")?;
    Some((Side::Backoffice, rest))
}

/// Routes the code flow's pages; `None` for paths that are not theirs.
pub async fn route(
    ctx: &Ctx,
    tenant: &Tenant,
    parts: http::request::Parts,
    body: Body,
) -> Option<Response<Body>> {
    let (side, rest) = split_side(tenant, parts.uri.path())?;
    let get = parts.method == Method::GET;
    let post = parts.method == Method::POST;
    let answer = match (side, rest) {
        (_, "authorize") if get => Ok(flow::authorize(ctx, tenant, side, &parts).await),
        (_, "authorize") => Ok(pages::wrong_method(tenant, side, "GET")),
        (Side::Storefront, "authorize-visitor") if get => {
            Ok(flow::visitor(ctx, tenant, &parts).await)
        }
        (Side::Storefront, "authorize-visitor") => Ok(pages::wrong_method(tenant, side, "GET")),
        (_, "authorize/login") if post => forms::login(ctx, tenant, side, &parts, body).await,
        (_, "authorize/consent") if post => forms::consent(ctx, tenant, side, &parts, body).await,
        (_, "authorize/login" | "authorize/consent") => {
            Ok(pages::wrong_method(tenant, side, "POST"))
        }
        (_, "authorize/logout") if get || post => {
            forms::logout(ctx, tenant, side, &parts, body).await
        }
        (_, "authorize/logout") => Ok(pages::wrong_method(tenant, side, "GET, POST")),
        _ => return None,
    };
    Some(answer.unwrap_or_else(|e| pages::store_failed(tenant, side, &e)))
}
