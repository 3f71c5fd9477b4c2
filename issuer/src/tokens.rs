//! Minting access tokens (DESIGN §3) and the token endpoint's success
//! response (DESIGN §4, exact).

use http::{HeaderValue, Response, header};
use serde::Serialize;
use splitgate_shared::claims::AccessClaims;
use splitgate_shared::http::{Body, full};
use splitgate_shared::secrets::random_id;
use splitgate_shared::time::now_secs;
use splitgate_shared::{Kind, Side, Tenant};

use crate::error::{Code, OAuthError, OAuthResult};
use crate::keyring::KeyRing;

/// Who a token is for and on what grant.
#[derive(Debug, Clone)]
pub struct Grantee<'a> {
    pub side: Side,
    pub kind: Kind,
    pub subject: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    /// The refresh family or grant id.
    pub sid: &'a str,
    /// `iat` (see [`issue_time`]); `nbf` is never later than the real now.
    pub issued_at: u64,
}

/// The `iat` for a new token of `subject`: now, or, if the subject was
/// revoked "before T" within this very second, T. Claims count whole
/// seconds, so without this a login right after `revoke --subject` would
/// get a token that is already revoked.
pub fn issue_time(
    view: &splitgate_shared::revocation::RevocationView,
    tenant: &str,
    subject: &str,
) -> u64 {
    let now = now_secs();
    view.subject_revoked_before(tenant, subject)
        .map_or(now, |before| now.max(before))
}

/// Signs an access token for `grantee` with the tenant's current key.
pub fn mint(keys: &KeyRing, tenant: &Tenant, grantee: &Grantee<'_>) -> OAuthResult<String> {
    let now = grantee.issued_at;
    let claims = AccessClaims {
        iss: tenant.issuer(grantee.side),
        aud: tenant.audience(grantee.side),
        sub: grantee.subject.to_owned(),
        client_id: grantee.client_id.to_owned(),
        exp: now + tenant.access_token_ttl.as_secs(),
        iat: now,
        nbf: now_secs().min(now),
        jti: random_id(),
        scope: grantee.scope.to_owned(),
        sid: grantee.sid.to_owned(),
        kind: grantee.kind,
    };
    let unavailable = || {
        OAuthError::new(
            Code::TemporarilyUnavailable,
            "no signing key is available; retry in a moment",
        )
    };
    let key = keys.signer(&tenant.id).ok_or_else(unavailable)?;
    key.sign_jwt(&claims).map_err(|e| {
        tracing::error!(cause = %e, tenant = %tenant.id, "signing failed");
        unavailable()
    })
}

/// The exact success body: field order as in DESIGN §4.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub token_type: &'static str,
    pub expires_in: u64,
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    pub fn new(tenant: &Tenant, access_token: String, refresh_token: Option<String>) -> Self {
        TokenResponse {
            token_type: "Bearer",
            expires_in: tenant.access_token_ttl.as_secs(),
            access_token,
            refresh_token,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        json_no_store(&self)
    }
}

/// A 200 JSON response that caches must not keep (tokens, introspection).
pub fn json_no_store<T: Serialize>(value: &T) -> Response<Body> {
    let mut response = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
