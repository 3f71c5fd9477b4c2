//! CSRF protection of the authorize pages' forms, in two parts:
//!
//! - every form carries the session's CSRF token (`csrf`), compared in
//!   constant time with the one stored in the session that the cookie
//!   names: a page of another site can make the browser send the cookie,
//!   but cannot read the token;
//! - the login and consent forms also carry a single-use form token
//!   (`form`) naming a stored record (`sg:{t}:form:<sha256>`) that binds the
//!   form to its session and holds the authorization request it belongs to.
//!   It is taken atomically on submission, so a replayed form fails.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use splitgate_shared::Tenant;
use splitgate_shared::secrets::{ct_eq, hash_secret, random_token};
use splitgate_shared::store::{self, StoreResult, encode};

use super::sessions::{Loaded, Session};
use crate::Ctx;

/// How long a shown form may wait for its submission.
const FORM_TTL: Duration = Duration::from_secs(3600);

/// What a form is for: a token of one cannot be used for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Login,
    Consent,
}

/// A shown form, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormRecord {
    pub purpose: Purpose,
    /// The session the form was shown in (hash of its id).
    session: String,
    /// The authorization request's query.
    pub query: String,
    /// Consent forms: who was asked.
    #[serde(default)]
    pub subject: Option<String>,
}

fn form_key(tenant: &str, token: &str) -> String {
    store::key(tenant, &format!("form:{}", hash_secret(token)))
}

/// Whether the submitted CSRF token is the session's.
pub fn check(session: &Session, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| ct_eq(p.as_bytes(), session.csrf.as_bytes()))
}

/// Stores a new form for `loaded`'s session; returns its token.
pub async fn issue(
    ctx: &Ctx,
    tenant: &Tenant,
    loaded: &Loaded,
    purpose: Purpose,
    query: &str,
) -> StoreResult<String> {
    let token = random_token();
    let record = FormRecord {
        purpose,
        session: loaded.id_hash.clone(),
        query: query.to_owned(),
        subject: loaded.session.subject.clone(),
    };
    ctx.store
        .put(
            &form_key(&tenant.id, &token),
            &encode(&record),
            Some(FORM_TTL),
        )
        .await?;
    Ok(token)
}

/// Why a submitted form token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Unknown, expired or already used.
    Spent,
    /// Issued to another session or for another purpose.
    Foreign,
}

/// Takes a submitted form token: it works once, in the session and for the
/// purpose it was issued for.
pub async fn redeem(
    ctx: &Ctx,
    tenant: &Tenant,
    loaded: &Loaded,
    purpose: Purpose,
    token: Option<&str>,
) -> StoreResult<Result<FormRecord, Refused>> {
    let Some(token) = token.filter(|t| t.len() <= 64) else {
        return Ok(Err(Refused::Spent));
    };
    let key = form_key(&tenant.id, token);
    let Some(raw) = ctx.store.take(&key).await? else {
        return Ok(Err(Refused::Spent));
    };
    let record: FormRecord = store::decode(&key, &raw)?;
    if record.purpose != purpose || !ct_eq(record.session.as_bytes(), loaded.id_hash.as_bytes()) {
        return Ok(Err(Refused::Foreign));
    }
    Ok(Ok(record))
}
