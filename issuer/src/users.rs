//! People who log in: back-office users (by username) and storefront
//! customers (by email, case-insensitively), one map per tenant and side.
//!
//! Passwords are hashed with argon2id off the async reactor, at most
//! `issuer.password_hash_concurrency` at a time: a flood of logins queues
//! for hashing instead of starving every other request of threads.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use serde::{Deserialize, Serialize};
use splitgate_shared::secrets::{random_bytes, random_token};
use splitgate_shared::store::{self, Store, encode};
use splitgate_shared::time::now_secs;
use splitgate_shared::{Side, StoreError};
use tokio::sync::Semaphore;

/// The one username that is never a user: `guest`/`guest` on a storefront
/// client asks for a visitor token.
pub const GUEST: &str = "guest";

/// Longest password accepted, so that hashing cost stays bounded.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The username (back office) or email (storefront) as registered; this
    /// is the token's `sub`.
    pub username: String,
    pub password_hash: String,
    #[serde(default)]
    pub disabled: bool,
    pub created_at: u64,
}

/// A user as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct PublicUser {
    pub username: String,
    pub side: Side,
    pub disabled: bool,
    pub created_at: u64,
}

impl PublicUser {
    pub fn new(user: &UserRecord, side: Side) -> Self {
        PublicUser {
            username: user.username.clone(),
            side,
            disabled: user.disabled,
            created_at: user.created_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("a {side} user `{username}` already exists")]
    Exists { side: Side, username: String },
    #[error("no {side} user `{username}`")]
    NotFound { side: Side, username: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed")]
    Hash,
}

fn map_key(tenant: &str, side: Side) -> String {
    store::key(tenant, &format!("users:{side}"))
}

/// The map field a login name is stored under: the username as is for the
/// back office, the lowercased email for the storefront.
pub fn lookup_name(side: Side, name: &str) -> String {
    match side {
        Side::Backoffice => name.to_owned(),
        Side::Storefront => name.to_lowercase(),
    }
}

fn validate_name(side: Side, name: &str) -> Result<(), UserError> {
    let invalid = |m: &str| Err(UserError::Invalid(m.to_owned()));
    if name.is_empty()
        || name.len() > 254
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return invalid("a username is 1-254 characters without spaces or control characters");
    }
    if name.eq_ignore_ascii_case(GUEST) {
        return invalid("`guest` is reserved for visitor tokens");
    }
    if side == Side::Storefront
        && !matches!(name.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty())
    {
        return invalid("a storefront customer is registered by email address");
    }
    Ok(())
}

/// Hashes and verifies passwords with a bound on concurrent work.
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: unknown users are checked against
    /// it so that their answer takes as long as a known user's.
    dummy: String,
}

fn hasher() -> Argon2<'static> {
    // OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
    #[allow(clippy::expect_used)]
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<String, UserError> {
    let salt = random_bytes::<16>();
    hasher()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| UserError::Hash)
}

impl Passwords {
    pub fn new(concurrency: usize) -> Result<Passwords, UserError> {
        Ok(Passwords {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: hash_now(&random_token())?,
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String, UserError> {
        let _permit = self.permits.acquire().await.map_err(|_| UserError::Hash)?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|_| UserError::Hash)?
    }

    /// Whether `password` matches `hash`; `None` (unknown user) is checked
    /// against a dummy hash and is always false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.dummy).to_owned();
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            hasher()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        ok && known
    }
}

pub async fn create(
    store: &Store,
    passwords: &Passwords,
    tenant: &str,
    side: Side,
    username: &str,
    password: &str,
) -> Result<UserRecord, UserError> {
    validate_name(side, username)?;
    if password.chars().count() < 8 || password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::Invalid(format!(
            "a password is 8 to {MAX_PASSWORD_BYTES} bytes long"
        )));
    }
    let record = UserRecord {
        username: username.to_owned(),
        password_hash: passwords.hash(password).await?,
        disabled: false,
        created_at: now_secs(),
    };
    if !store
        .map_insert(
            &map_key(tenant, side),
            &lookup_name(side, username),
            &encode(&record),
        )
        .await?
    {
        return Err(UserError::Exists {
            side,
            username: username.to_owned(),
        });
    }
    Ok(record)
}

pub async fn get(
    store: &Store,
    tenant: &str,
    side: Side,
    username: &str,
) -> Result<Option<UserRecord>, StoreError> {
    store
        .map_get_json(&map_key(tenant, side), &lookup_name(side, username))
        .await
}

pub async fn list(store: &Store, tenant: &str, side: Side) -> Result<Vec<UserRecord>, StoreError> {
    let key = map_key(tenant, side);
    store
        .map_all(&key)
        .await?
        .into_iter()
        .map(|(_, v)| store::decode(&key, &v))
        .collect()
}

pub async fn set_disabled(
    store: &Store,
    tenant: &str,
    side: Side,
    username: &str,
    disabled: bool,
) -> Result<UserRecord, UserError> {
    let key = map_key(tenant, side);
    let field = lookup_name(side, username);
    let mut user: UserRecord =
        store
            .map_get_json(&key, &field)
            .await?
            .ok_or_else(|| UserError::NotFound {
                side,
                username: username.to_owned(),
            })?;
    user.disabled = disabled;
    store.map_put(&key, &field, &encode(&user)).await?;
    Ok(user)
}

pub async fn delete(
    store: &Store,
    tenant: &str,
    side: Side,
    username: &str,
) -> Result<bool, StoreError> {
    store
        .map_delete(&map_key(tenant, side), &lookup_name(side, username))
        .await
}

/// Checks a login. `None` for an unknown user, a wrong password or a
/// disabled user alike; the caller gives all of them one answer.
pub async fn verify_login(
    store: &Store,
    passwords: &Passwords,
    tenant: &str,
    side: Side,
    username: &str,
    password: &str,
) -> Result<Option<UserRecord>, StoreError> {
    if password.len() > MAX_PASSWORD_BYTES || username.len() > 254 {
        return Ok(None);
    }
    let user = get(store, tenant, side, username).await?;
    let ok = passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await;
    Ok(user.filter(|u| ok && !u.disabled))
}

/// Whether the subject of a token may still get tokens (refresh): it exists
/// and is not disabled.
pub async fn is_active(
    store: &Store,
    tenant: &str,
    side: Side,
    username: &str,
) -> Result<bool, StoreError> {
    Ok(get(store, tenant, side, username)
        .await?
        .is_some_and(|u| !u.disabled))
}
