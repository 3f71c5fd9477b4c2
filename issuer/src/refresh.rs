//! Refresh families: one per login (or code exchange), rotating its token
//! on every use (DESIGN §4).
//!
//! The family record (`sg:{t}:family:<sid>`) holds the hash of the one
//! current token; every token ever issued has an index entry
//! (`sg:{t}:refresh:<hash>` -> sid) for as long as it could be presented.
//! A presented token that is indexed but not current is a replay of a
//! rotated token: the whole family is revoked. Rotation is a
//! compare-and-swap on the family record, so of many concurrent uses of one
//! token exactly one wins; the others are replays by definition and revoke
//! the family (the strict reading of the OAuth 2.0 Security BCP §4.14).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use splitgate_shared::revocation::{self, Revocation, RevocationView};
use splitgate_shared::secrets::{hash_secret, random_token};
use splitgate_shared::store::{self, Store, StoreResult, encode, ttl_until};
use splitgate_shared::time::now_secs;
use splitgate_shared::{Kind, Side, Tenant};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub sid: String,
    pub client_id: String,
    pub side: Side,
    pub kind: Kind,
    pub subject: String,
    /// As first granted; refreshes may narrow their access tokens' scope,
    /// never the family's.
    pub scope: String,
    /// Hash of the current refresh token.
    current: String,
    /// When the family began (the login): subject revocations compare it.
    pub created_at: u64,
    /// When the current token was issued.
    pub issued_at: u64,
    /// When the current token stops being valid.
    pub expires_at: u64,
    #[serde(default)]
    pub revoked: bool,
}

fn family_key(tenant: &str, sid: &str) -> String {
    store::key(tenant, &format!("family:{sid}"))
}

fn index_key(tenant: &str, hash: &str) -> String {
    store::key(tenant, &format!("refresh:{hash}"))
}

/// What a new family is for.
pub struct NewFamily<'a> {
    pub sid: &'a str,
    pub client_id: &'a str,
    pub side: Side,
    pub kind: Kind,
    pub subject: &'a str,
    pub scope: &'a str,
    /// The login time (the first access token's `iat`).
    pub issued_at: u64,
}

/// Starts a family; returns its first refresh token.
pub async fn start(store: &Store, tenant: &Tenant, new: NewFamily<'_>) -> StoreResult<String> {
    let now = new.issued_at;
    let token = random_token();
    let hash = hash_secret(&token);
    let family = Family {
        sid: new.sid.to_owned(),
        client_id: new.client_id.to_owned(),
        side: new.side,
        kind: new.kind,
        subject: new.subject.to_owned(),
        scope: new.scope.to_owned(),
        current: hash.clone(),
        created_at: now,
        issued_at: now,
        expires_at: now + tenant.refresh_token_ttl.as_secs(),
        revoked: false,
    };
    let ttl = Some(tenant.refresh_token_ttl);
    store
        .put(&index_key(&tenant.id, &hash), new.sid.as_bytes(), ttl)
        .await?;
    store
        .put(&family_key(&tenant.id, new.sid), &encode(&family), ttl)
        .await?;
    Ok(token)
}

/// A presented token's family as found, with the stored bytes for the
/// compare-and-swap of [`advance`].
pub struct Found {
    pub family: Family,
    raw: Vec<u8>,
    /// Whether the presented token is the family's current one.
    pub current: bool,
}

/// Looks a presented refresh token up. `None` when it was never issued, or
/// its index entry or family has expired.
pub async fn find(store: &Store, tenant: &str, presented: &str) -> StoreResult<Option<Found>> {
    let hash = hash_secret(presented);
    let Some(sid) = store.get(&index_key(tenant, &hash)).await? else {
        return Ok(None);
    };
    let sid = String::from_utf8_lossy(&sid).into_owned();
    let key = family_key(tenant, &sid);
    let Some(raw) = store.get(&key).await? else {
        return Ok(None);
    };
    let family: Family = store::decode(&key, &raw)?;
    let current = splitgate_shared::secrets::ct_eq(family.current.as_bytes(), hash.as_bytes());
    Ok(Some(Found {
        family,
        raw,
        current,
    }))
}

/// Rotates a current token: `Some(new token)` if this call won, `None` if
/// another use of the same token rotated it first.
pub async fn advance(store: &Store, tenant: &Tenant, found: &Found) -> StoreResult<Option<String>> {
    let now = now_secs();
    let token = random_token();
    let hash = hash_secret(&token);
    let mut next = found.family.clone();
    next.current = hash.clone();
    next.issued_at = now;
    next.expires_at = now + tenant.refresh_token_ttl.as_secs();
    let ttl = Some(tenant.refresh_token_ttl);
    // Index first: if we then lose the race, the entry points at a family
    // whose current token is someone else's, and nobody holds ours.
    store
        .put(&index_key(&tenant.id, &hash), next.sid.as_bytes(), ttl)
        .await?;
    let won = store
        .replace(
            &family_key(&tenant.id, &next.sid),
            &found.raw,
            &encode(&next),
            ttl,
        )
        .await?;
    Ok(won.then_some(token))
}

/// Revokes a family: marks the record (so no issuer rotates it again) and
/// records a `Family` revocation (so every gateway refuses its access
/// tokens). Idempotent.
pub async fn revoke(
    store: &Store,
    view: &Arc<RevocationView>,
    tenant: &Tenant,
    sid: &str,
) -> StoreResult<()> {
    let key = family_key(&tenant.id, sid);
    let mut until = now_secs() + tenant.access_token_ttl.as_secs();
    for _ in 0..16 {
        let Some(raw) = store.get(&key).await? else {
            break;
        };
        let mut family: Family = store::decode(&key, &raw)?;
        until = until.max(family.expires_at);
        if family.revoked {
            break;
        }
        family.revoked = true;
        if store
            .replace(
                &key,
                &raw,
                &encode(&family),
                Some(ttl_until(family.expires_at * 1000)),
            )
            .await?
        {
            break;
        }
    }
    let revocation = Revocation::Family {
        sid: sid.to_owned(),
        until,
    };
    // Recorded, then applied here at once (the in-process gateway refuses
    // the family's tokens on the very next request).
    revocation::record(store, &tenant.id, &revocation).await?;
    view.apply(&tenant.id, &revocation);
    Ok(())
}
