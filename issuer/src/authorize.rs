//! The authorization code flow (issue 4): not implemented yet.

use splitgate_shared::Tenant;

use crate::Ctx;
use crate::clients::ClientRecord;
use crate::error::{Code, OAuthError, OAuthResult};
use crate::params::Params;
use crate::tokens::TokenResponse;

/// Whether the code flow is served (metadata lists it only then).
pub const ENABLED: bool = false;

pub async fn exchange(
    _ctx: &Ctx,
    _tenant: &Tenant,
    _client: &ClientRecord,
    _params: &Params,
) -> OAuthResult<TokenResponse> {
    Err(OAuthError::new(
        Code::UnsupportedGrantType,
        "the grant type `authorization_code` is not supported",
    ))
}

/// Routes the code flow's pages; `None` for paths that are not theirs.
pub async fn route(
    _ctx: &Ctx,
    _tenant: &Tenant,
    _parts: http::request::Parts,
    _body: splitgate_shared::http::Body,
) -> Option<http::Response<splitgate_shared::http::Body>> {
    None
}
