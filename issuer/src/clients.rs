//! OAuth clients: registered through the admin API, one tenant and one side
//! each, fixed at creation (DESIGN §2, §7).
//!
//! A confidential client's secret is 256 random bits, shown once and stored
//! as a SHA-256 hash (see `splitgate_shared::secrets` for why not argon2).
//! Clients live in one map per tenant (`sg:{t}:clients`), so that they can
//! be listed.

use serde::{Deserialize, Serialize};
use splitgate_shared::secrets::{ct_eq, hash_secret, random_id, random_token};
use splitgate_shared::store::{self, Store, encode};
use splitgate_shared::time::now_secs;
use splitgate_shared::{Side, StoreError};

use crate::error::{Code, OAuthError, OAuthResult};
use crate::params::{AuthMethod, ClientCredentials};

/// The grants of DESIGN §4, as stored and as written in `--grant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    ClientCredentials,
    Password,
    AuthorizationCode,
    RefreshToken,
}

impl Grant {
    pub const ALL: [Grant; 4] = [
        Grant::ClientCredentials,
        Grant::Password,
        Grant::AuthorizationCode,
        Grant::RefreshToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::Password => "password",
            Grant::AuthorizationCode => "authorization_code",
            Grant::RefreshToken => "refresh_token",
        }
    }

    pub fn parse(s: &str) -> Option<Grant> {
        Grant::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// A client as stored. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: String,
    pub side: Side,
    pub public: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    pub grants: Vec<Grant>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Scopes the client may request; also the default when it asks for none.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub skip_consent: bool,
    /// PKCE `plain` allowed (S256 is always allowed, and required for public
    /// clients otherwise).
    #[serde(default)]
    pub allow_plain_pkce: bool,
    #[serde(default)]
    pub disabled: bool,
    pub created_at: u64,
}

impl ClientRecord {
    pub fn allows(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
    }
}

/// What the admin API accepts to create a client.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub side: Option<Side>,
    pub name: Option<String>,
    #[serde(default)]
    pub grants: Vec<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub skip_consent: bool,
    #[serde(default)]
    pub allow_plain_pkce: bool,
}

/// A created client with its secret: the only time the secret exists
/// outside the client's hands.
#[derive(Debug, Serialize)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: PublicClient,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A client as the admin API shows it (no hash).
#[derive(Debug, Serialize)]
pub struct PublicClient {
    pub client_id: String,
    pub name: String,
    pub side: Side,
    pub public: bool,
    pub grants: Vec<Grant>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub skip_consent: bool,
    pub allow_plain_pkce: bool,
    pub disabled: bool,
    pub created_at: u64,
}

impl From<&ClientRecord> for PublicClient {
    fn from(c: &ClientRecord) -> Self {
        PublicClient {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            side: c.side,
            public: c.public,
            grants: c.grants.clone(),
            redirect_uris: c.redirect_uris.clone(),
            scopes: c.scopes.clone(),
            skip_consent: c.skip_consent,
            allow_plain_pkce: c.allow_plain_pkce,
            disabled: c.disabled,
            created_at: c.created_at,
        }
    }
}

/// Why a client could not be created; shown to the admin as is.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn map_key(tenant: &str) -> String {
    store::key(tenant, "clients")
}

/// Validates and stores a new client; returns it with its one-time secret.
pub async fn create(
    store: &Store,
    tenant: &str,
    new: NewClient,
) -> Result<CreatedClient, ClientError> {
    let invalid = |m: String| ClientError::Invalid(m);
    let side = new
        .side
        .ok_or_else(|| invalid("`side` is required: backoffice or storefront".into()))?;
    let name = new.name.unwrap_or_default();
    if name.trim().is_empty() || name.len() > 200 {
        return Err(invalid(
            "`name` is required (at most 200 characters)".into(),
        ));
    }
    let mut grants = Vec::new();
    for g in &new.grants {
        let grant = Grant::parse(g).ok_or_else(|| {
            invalid(format!(
                "`{g}` is not a grant; use client_credentials, password, authorization_code or refresh_token"
            ))
        })?;
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    if grants.is_empty() {
        grants = if new.public {
            vec![Grant::AuthorizationCode, Grant::RefreshToken]
        } else {
            Grant::ALL.to_vec()
        };
    }
    if new.public && grants.contains(&Grant::ClientCredentials) {
        return Err(invalid(
            "a public client cannot use client_credentials: it has no secret".into(),
        ));
    }
    for uri in &new.redirect_uris {
        crate::redirect::validate_registered(uri).map_err(invalid)?;
    }
    if grants.contains(&Grant::AuthorizationCode)
        && new.redirect_uris.is_empty()
        && new.grants.iter().any(|g| g == "authorization_code")
    {
        return Err(invalid(
            "authorization_code needs at least one redirect URI (--redirect-uri)".into(),
        ));
    }
    for scope in &new.scopes {
        if !crate::scope::valid_token(scope) {
            return Err(invalid(format!("`{scope}` is not a valid scope token")));
        }
    }
    let secret = (!new.public).then(random_token);
    let record = ClientRecord {
        client_id: random_id(),
        name: name.trim().to_owned(),
        side,
        public: new.public,
        secret_hash: secret.as_deref().map(hash_secret),
        grants,
        redirect_uris: new.redirect_uris,
        scopes: new.scopes,
        skip_consent: new.skip_consent,
        allow_plain_pkce: new.allow_plain_pkce,
        disabled: false,
        created_at: now_secs(),
    };
    if !store
        .map_insert(&map_key(tenant), &record.client_id, &encode(&record))
        .await?
    {
        return Err(invalid("client id collision; try again".into()));
    }
    Ok(CreatedClient {
        client: PublicClient::from(&record),
        client_secret: secret,
    })
}

pub async fn get(
    store: &Store,
    tenant: &str,
    client_id: &str,
) -> Result<Option<ClientRecord>, StoreError> {
    store.map_get_json(&map_key(tenant), client_id).await
}

pub async fn list(store: &Store, tenant: &str) -> Result<Vec<ClientRecord>, StoreError> {
    let key = map_key(tenant);
    store
        .map_all(&key)
        .await?
        .into_iter()
        .map(|(_, v)| store::decode(&key, &v))
        .collect()
}

/// Disables or enables a client; `None` if there is no such client. A
/// disabled client is refused like one with a wrong secret.
pub async fn set_disabled(
    store: &Store,
    tenant: &str,
    client_id: &str,
    disabled: bool,
) -> Result<Option<ClientRecord>, StoreError> {
    let key = map_key(tenant);
    let Some(mut client) = store.map_get_json::<ClientRecord>(&key, client_id).await? else {
        return Ok(None);
    };
    client.disabled = disabled;
    store.map_put(&key, client_id, &encode(&client)).await?;
    Ok(Some(client))
}

pub async fn delete(store: &Store, tenant: &str, client_id: &str) -> Result<bool, StoreError> {
    store.map_delete(&map_key(tenant), client_id).await
}

/// Checks a client's credentials. Unknown, disabled, wrong secret, and a
/// secret where none belongs all give the same `invalid_client`.
pub async fn authenticate(
    store: &Store,
    tenant: &str,
    creds: &ClientCredentials,
    realm: &str,
) -> OAuthResult<ClientRecord> {
    let failed = || {
        let e = OAuthError::new(Code::InvalidClient, "client authentication failed");
        if creds.method == AuthMethod::Basic {
            e.basic(realm)
        } else {
            e
        }
    };
    let client = get(store, tenant, &creds.id).await?;
    // Hash even when the client is unknown, so that timing does not tell
    // which client ids exist.
    let presented = creds.secret.as_deref().map(hash_secret);
    let Some(client) = client else {
        return Err(failed());
    };
    if client.disabled {
        return Err(failed());
    }
    match (&client.secret_hash, presented) {
        (Some(stored), Some(presented)) if ct_eq(stored.as_bytes(), presented.as_bytes()) => {
            Ok(client)
        }
        (None, None) if client.public => Ok(client),
        _ => Err(failed()),
    }
}
