//! Authorization codes: 256 random bits, stored only as a SHA-256 hash
//! (`sg:{t}:code:<sha256>`) for `auth_code_ttl`, bound to the client, the
//! redirect URI and the PKCE challenge.
//!
//! Redemption is a compare-and-swap that marks the record used and records
//! the refresh family (`sid`) the exchange starts; the used record stays
//! for another `auth_code_ttl`, so a second presentation is recognised and
//! revokes that family (RFC 6749 §4.1.2). When two exchanges race, the
//! loser marks the record `reused`; the winner looks again after minting,
//! so whichever order they run in, the family ends up revoked.

use serde::{Deserialize, Serialize};
use splitgate_shared::secrets::{hash_secret, random_token};
use splitgate_shared::store::{self, StoreResult, encode};
use splitgate_shared::time::now_secs;
use splitgate_shared::{Kind, Side, Tenant};

use super::pkce::Challenge;
use crate::Ctx;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    pub client_id: String,
    pub side: Side,
    pub kind: Kind,
    pub subject: String,
    pub scope: String,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    #[serde(default)]
    pub challenge: Option<Challenge>,
    pub expires_at: u64,
    /// The family of the exchange that redeemed the code.
    #[serde(default)]
    pub redeemed_sid: Option<String>,
    /// Presented again after redemption.
    #[serde(default)]
    pub reused: bool,
}

/// What a new code is for.
pub struct NewCode<'a> {
    pub client_id: &'a str,
    pub side: Side,
    pub kind: Kind,
    pub subject: &'a str,
    pub scope: &'a str,
    pub redirect_uri: &'a str,
    pub redirect_uri_sent: bool,
    pub challenge: Option<Challenge>,
}

fn code_key(tenant: &str, code: &str) -> String {
    store::key(tenant, &format!("code:{}", hash_secret(code)))
}

/// Stores a new code; returns the code itself (the only time it exists
/// outside the client's hands).
pub async fn issue(ctx: &Ctx, tenant: &Tenant, new: NewCode<'_>) -> StoreResult<String> {
    let code = random_token();
    let record = CodeRecord {
        client_id: new.client_id.to_owned(),
        side: new.side,
        kind: new.kind,
        subject: new.subject.to_owned(),
        scope: new.scope.to_owned(),
        redirect_uri: new.redirect_uri.to_owned(),
        redirect_uri_sent: new.redirect_uri_sent,
        challenge: new.challenge,
        expires_at: now_secs() + tenant.auth_code_ttl.as_secs(),
        redeemed_sid: None,
        reused: false,
    };
    ctx.store
        .put(
            &code_key(&tenant.id, &code),
            &encode(&record),
            Some(tenant.auth_code_ttl),
        )
        .await?;
    Ok(code)
}

/// A presented code as found, with the stored bytes for the swap.
pub struct Found {
    pub record: CodeRecord,
    key: String,
    raw: Vec<u8>,
}

pub async fn find(ctx: &Ctx, tenant: &Tenant, code: &str) -> StoreResult<Option<Found>> {
    let key = code_key(&tenant.id, code);
    let Some(raw) = ctx.store.get(&key).await? else {
        return Ok(None);
    };
    let record = store::decode(&key, &raw)?;
    Ok(Some(Found { record, key, raw }))
}

/// Marks an unused code redeemed by family `sid`; `false` if another
/// exchange got there first.
pub async fn redeem(ctx: &Ctx, tenant: &Tenant, found: &Found, sid: &str) -> StoreResult<bool> {
    let mut used = found.record.clone();
    used.redeemed_sid = Some(sid.to_owned());
    ctx.store
        .replace(
            &found.key,
            &found.raw,
            &encode(&used),
            Some(tenant.auth_code_ttl),
        )
        .await
}

/// Marks a code presented after its redemption; returns the family to
/// revoke (`None` if the record is gone meanwhile).
pub async fn mark_reused(ctx: &Ctx, tenant: &Tenant, found: &Found) -> StoreResult<Option<String>> {
    let Some(raw) = ctx.store.get(&found.key).await? else {
        return Ok(None);
    };
    let mut record: CodeRecord = store::decode(&found.key, &raw)?;
    record.reused = true;
    ctx.store
        .put(&found.key, &encode(&record), Some(tenant.auth_code_ttl))
        .await?;
    Ok(record.redeemed_sid)
}

/// Whether a code redeemed by this exchange has since been presented again.
pub async fn was_reused(ctx: &Ctx, found: &Found) -> StoreResult<bool> {
    Ok(ctx
        .store
        .get_json::<CodeRecord>(&found.key)
        .await?
        .is_some_and(|r| r.reused))
}
