//! Login sessions of the authorize pages: a random cookie per browser and
//! side, the record behind it in the store (`sg:{t}:session:<sha256>`).
//!
//! A browser gets an anonymous session on its first authorize request: it
//! anchors the CSRF token of the login form. Logging in replaces it with a
//! new one (a new cookie value, so that a session id planted before login
//! is worth nothing after it). The cookie is `HttpOnly`, `SameSite=Lax`
//! (sent on the client's top-level redirect to authorize, not on
//! cross-site posts), `Secure` on https tenants, and scoped to the side's
//! `/oauth2-token` path, so that the two sides never share a session.

use std::time::Duration;

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use splitgate_shared::secrets::{hash_secret, random_token};
use splitgate_shared::store::{self, StoreResult, encode, ttl_until};
use splitgate_shared::time::now_secs;
use splitgate_shared::{Side, Tenant};

use crate::Ctx;

pub const COOKIE: &str = "sg_session";

/// How long a session nobody logged into is kept.
const ANONYMOUS_TTL: Duration = Duration::from_secs(3600);

/// Consent given in this session: a later request of the same client for
/// no more than these scopes is not asked again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub client_id: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub side: Side,
    /// The CSRF token of every form shown in this session.
    pub csrf: String,
    /// The user (back office) or customer (storefront) logged in; `None`
    /// before login.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub consents: Vec<Consent>,
    pub expires_at: u64,
}

impl Session {
    pub fn consented(&self, client_id: &str, scope: &str) -> bool {
        self.consents.iter().any(|c| {
            c.client_id == client_id
                && scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .all(|s| c.scopes.iter().any(|g| g == s))
        })
    }
}

/// A session with the hash that names it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// SHA-256 of the cookie value: the store key's last part, and what
    /// forms are bound to.
    pub id_hash: String,
    pub session: Session,
}

fn session_key(tenant: &str, id_hash: &str) -> String {
    store::key(tenant, &format!("session:{id_hash}"))
}

/// The `Cookie` values named [`COOKIE`] (a browser may send several).
fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty() && value.len() <= 64).then_some(value)
        })
}

/// The browser's session on `side`, if it has a live one.
pub async fn load(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    headers: &HeaderMap,
) -> StoreResult<Option<Loaded>> {
    for value in cookie_values(headers).take(4) {
        let id_hash = hash_secret(value);
        let key = session_key(&tenant.id, &id_hash);
        let Some(session) = ctx.store.get_json::<Session>(&key).await? else {
            continue;
        };
        if session.side == side && session.expires_at > now_secs() {
            return Ok(Some(Loaded { id_hash, session }));
        }
    }
    Ok(None)
}

/// A new session; returns it with its `Set-Cookie` value.
async fn create(
    ctx: &Ctx,
    tenant: &Tenant,
    side: Side,
    subject: Option<String>,
    consents: Vec<Consent>,
) -> StoreResult<(Loaded, String)> {
    let ttl = if subject.is_some() {
        ctx.config.login_session_ttl
    } else {
        ANONYMOUS_TTL.min(ctx.config.login_session_ttl)
    };
    let id = random_token();
    let id_hash = hash_secret(&id);
    let session = Session {
        side,
        csrf: random_token(),
        subject,
        consents,
        expires_at: now_secs() + ttl.as_secs(),
    };
    ctx.store
        .put(
            &session_key(&tenant.id, &id_hash),
            &encode(&session),
            Some(ttl),
        )
        .await?;
    let cookie = set_cookie(tenant, side, &id, ttl.as_secs());
    Ok((Loaded { id_hash, session }, cookie))
}

/// An anonymous session for a browser that has none.
pub async fn start(ctx: &Ctx, tenant: &Tenant, side: Side) -> StoreResult<(Loaded, String)> {
    create(ctx, tenant, side, None, Vec::new()).await
}

/// Logs `subject` in: the old session is dropped and a new one (new id, new
/// CSRF token) takes its place. Consents carry over only for the same
/// subject.
pub async fn log_in(
    ctx: &Ctx,
    tenant: &Tenant,
    old: &Loaded,
    subject: &str,
) -> StoreResult<(Loaded, String)> {
    end(ctx, tenant, old).await?;
    let consents = if old.session.subject.as_deref() == Some(subject) {
        old.session.consents.clone()
    } else {
        Vec::new()
    };
    create(
        ctx,
        tenant,
        old.session.side,
        Some(subject.to_owned()),
        consents,
    )
    .await
}

/// Remembers a consent in the session.
pub async fn remember_consent(
    ctx: &Ctx,
    tenant: &Tenant,
    loaded: &mut Loaded,
    client_id: &str,
    scope: &str,
) -> StoreResult<()> {
    let scopes = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let consents = &mut loaded.session.consents;
    consents.retain(|c| c.client_id != client_id);
    consents.push(Consent {
        client_id: client_id.to_owned(),
        scopes,
    });
    ctx.store
        .put(
            &session_key(&tenant.id, &loaded.id_hash),
            &encode(&loaded.session),
            Some(ttl_until(loaded.session.expires_at * 1000)),
        )
        .await
}

/// Drops a session (logout, or replaced at login).
pub async fn end(ctx: &Ctx, tenant: &Tenant, loaded: &Loaded) -> StoreResult<()> {
    ctx.store
        .delete(&session_key(&tenant.id, &loaded.id_hash))
        .await
        .map(|_| ())
}

/// The path a side's cookie is scoped to.
pub fn cookie_path(tenant: &Tenant, side: Side) -> String {
    format!("{}/oauth2-token", tenant.side_prefix(side))
}

fn set_cookie(tenant: &Tenant, side: Side, value: &str, max_age: u64) -> String {
    let secure = if tenant.is_https() { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        cookie_path(tenant, side)
    )
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn clear_cookie(tenant: &Tenant, side: Side) -> String {
    set_cookie(tenant, side, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_from_every_header() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", "a=1; sg_session=first".parse().unwrap());
        headers.append("cookie", "sg_session=second;x=2".parse().unwrap());
        headers.append("cookie", "sg_session=".parse().unwrap());
        let found: Vec<_> = cookie_values(&headers).collect();
        assert_eq!(found, ["first", "second"]);
    }

    #[test]
    fn consent_covers_subsets_only() {
        let s = Session {
            side: Side::Storefront,
            csrf: String::new(),
            subject: Some("a".into()),
            consents: vec![Consent {
                client_id: "c".into(),
                scopes: vec!["read".into(), "write".into()],
            }],
            expires_at: 0,
        };
        assert!(s.consented("c", "read"));
        assert!(s.consented("c", ""));
        assert!(s.consented("c", "write read"));
        assert!(!s.consented("c", "read admin"));
        assert!(!s.consented("d", "read"));
    }
}
