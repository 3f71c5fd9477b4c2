//! The `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636 §4.6): the
//! code must be live, issued to this client for this redirect URI, and
//! answered by the right PKCE verifier. A failed check leaves the code
//! usable (the verifier and client cannot be guessed, and burning it would
//! let anyone who saw it lock the real client out); a second redemption
//! revokes everything the first one issued.

use splitgate_shared::secrets::random_id;
use splitgate_shared::time::now_secs;
use splitgate_shared::{Kind, Tenant};

use super::codes::{self, CodeRecord};
use super::pkce;
use crate::Ctx;
use crate::clients::ClientRecord;
use crate::error::{OAuthError, OAuthResult};
use crate::grants::issue_with_refresh;
use crate::params::Params;
use crate::tokens::TokenResponse;
use crate::{refresh, users, visitors};

const UNKNOWN: &str = "the authorization code is unknown or has expired";
const REUSED: &str =
    "the authorization code was already used; the tokens issued for it have been revoked";

pub async fn exchange(
    ctx: &Ctx,
    tenant: &Tenant,
    client: &ClientRecord,
    params: &Params,
) -> OAuthResult<TokenResponse> {
    let code = params.require("code")?;
    let found = codes::find(ctx, tenant, code)
        .await?
        .filter(|f| f.record.expires_at > now_secs() || f.record.redeemed_sid.is_some())
        .ok_or_else(|| OAuthError::invalid_grant(UNKNOWN))?;
    if found.record.redeemed_sid.is_some() {
        return Err(replayed(ctx, tenant, &found).await);
    }
    check_binding(&found.record, client, params)?;
    if !subject_active(ctx, tenant, &found.record).await? {
        return Err(OAuthError::invalid_grant(
            "the account that approved this code is disabled or gone",
        ));
    }
    let sid = random_id();
    if !codes::redeem(ctx, tenant, &found, &sid).await? {
        return Err(replayed(ctx, tenant, &found).await);
    }
    let record = &found.record;
    let response = issue_with_refresh(
        ctx,
        tenant,
        client,
        record.kind,
        &record.subject,
        &record.scope,
        &sid,
    )
    .await?;
    if codes::was_reused(ctx, &found).await? {
        refresh::revoke(&ctx.store, &ctx.revocations, tenant, &sid).await?;
        return Err(OAuthError::invalid_grant(REUSED));
    }
    Ok(response)
}

/// The code is the client's, for this redirect URI, and the verifier
/// answers its challenge.
fn check_binding(record: &CodeRecord, client: &ClientRecord, params: &Params) -> OAuthResult<()> {
    if record.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    match params.get("redirect_uri") {
        Some(uri) if uri != record.redirect_uri => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the one of the authorization request",
            ));
        }
        None if record.redirect_uri_sent => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri is required: the authorization request had one",
            ));
        }
        _ => {}
    }
    let verifier = params.get("code_verifier");
    match (&record.challenge, verifier) {
        (Some(_), None) => Err(OAuthError::invalid_grant(
            "code_verifier is required: the authorization request had a code_challenge",
        )),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "a code_verifier was sent but the authorization request had no code_challenge",
        )),
        (Some(_), Some(v)) if !pkce::valid_verifier(v) => Err(OAuthError::invalid_request(
            "code_verifier must be 43 to 128 characters of A-Z, a-z, 0-9, -, ., _ and ~",
        )),
        (Some(challenge), Some(v)) if !pkce::verify(challenge, v) => Err(
            OAuthError::invalid_grant("the code_verifier does not match the code_challenge"),
        ),
        _ => Ok(()),
    }
}

/// Whether whoever approved the code may still get tokens.
async fn subject_active(ctx: &Ctx, tenant: &Tenant, record: &CodeRecord) -> OAuthResult<bool> {
    Ok(match record.kind {
        Kind::User | Kind::Customer => {
            users::is_active(&ctx.store, &tenant.id, record.side, &record.subject).await?
        }
        Kind::Visitor => visitors::touch(&ctx.store, tenant, &record.subject).await?,
        Kind::Client => false,
    })
}

/// A second presentation: revoke what the first one issued.
async fn replayed(ctx: &Ctx, tenant: &Tenant, found: &codes::Found) -> OAuthError {
    let revoked = async {
        if let Some(sid) = codes::mark_reused(ctx, tenant, found).await? {
            refresh::revoke(&ctx.store, &ctx.revocations, tenant, &sid).await?;
            tracing::warn!(tenant = %tenant.id, sid = %sid, client = %found.record.client_id, "authorization code reuse; its tokens revoked");
        }
        Ok::<_, OAuthError>(())
    };
    match revoked.await {
        Ok(()) => OAuthError::invalid_grant(REUSED),
        Err(e) => e,
    }
}
