//! Signing keys over their lifetime (DESIGN §3, §6; `docs/operations.md`).
//!
//! Each tenant's keys are one record in the store (`sg:{t}:keys`), private
//! halves sealed with the key-encryption key. A key is *published* (in the
//! JWKS) from creation, *signs* from `active_at`, and is *dropped* at
//! `drop_at`, once every token it signed has expired. Rotation therefore
//! never fails a request: gateways learn a new key before it signs, and keep
//! the old one until its last token is gone.
//!
//! Every issuer process holds the same view: writes are compare-and-swap on
//! the record, followed by a `KeysChanged` event that makes the others
//! reload. What signs and what is published is decided by time alone, so
//! processes agree without talking.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};
use splitgate_shared::keys::kek::Kek;
use splitgate_shared::keys::{KeySet, PublishedKeys, SigningAlg, SigningKey};
use splitgate_shared::store::{self, Change, Event, Store, encode};
use splitgate_shared::time::{now_millis, now_secs};
use splitgate_shared::{StoreError, Tenant, Tenants};

/// Beyond the gateways' leeway, a retired key stays published this much
/// longer (clocks of issuer and gateway processes disagree a little).
const DROP_MARGIN: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    pub alg: SigningAlg,
    /// PKCS#8, sealed with the key-encryption key (AAD `tenant/kid`).
    sealed: String,
    pub created_at: u64,
    pub active_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_at: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StoredRing {
    keys: Vec<StoredKey>,
}

/// What `keys list` shows.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: SigningAlg,
    pub created_at: u64,
    pub active_at: u64,
    pub drop_at: Option<u64>,
    /// `pending` (published, not yet signing), `signing`, `retiring`
    /// (published for tokens it signed), or `dropped`.
    pub state: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("tenant `{tenant}`: {message}")]
    Key { tenant: String, message: String },
    #[error("tenant `{0}` changed its keys too often at once; try again")]
    Contended(String),
}

/// The published kids and the signing kid.
type Fingerprint = (Vec<String>, Option<String>);

struct LoadedKey {
    stored: StoredKey,
    signer: Arc<SigningKey>,
}

/// One tenant's keys, unsealed.
struct TenantKeys {
    /// Sorted by `active_at`.
    keys: Vec<LoadedKey>,
}

impl TenantKeys {
    fn signer(&self, now: u64) -> Option<&Arc<SigningKey>> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.stored.active_at <= now && k.stored.drop_at.is_none_or(|d| d > now))
            .map(|k| &k.signer)
    }

    fn published(&self, now: u64) -> Vec<&LoadedKey> {
        self.keys
            .iter()
            .filter(|k| k.stored.drop_at.is_none_or(|d| d > now))
            .collect()
    }

    fn jwks(&self, now: u64) -> JwkSet {
        JwkSet {
            keys: self
                .published(now)
                .iter()
                .map(|k| k.signer.public_jwk())
                .collect(),
        }
    }

    /// What changes at `now` in what is published or signs; used to tell
    /// when to republish.
    fn fingerprint(&self, now: u64) -> Fingerprint {
        (
            self.published(now)
                .iter()
                .map(|k| k.stored.kid.clone())
                .collect(),
            self.signer(now).map(|s| s.kid().to_owned()),
        )
    }
}

/// Every tenant's keys, and where they are published.
pub struct KeyRing {
    store: Store,
    kek: Kek,
    published: Arc<PublishedKeys>,
    publish_delay: Duration,
    /// Seconds a retired key outlives its last token: the gateways' leeway
    /// plus [`DROP_MARGIN`].
    drop_margin: u64,
    tenants: ArcSwap<HashMap<String, Arc<TenantKeys>>>,
    last_published: std::sync::Mutex<HashMap<String, Fingerprint>>,
}

fn ring_key(tenant: &str) -> String {
    store::key(tenant, "keys")
}

impl KeyRing {
    pub fn new(
        store: Store,
        kek: Kek,
        published: Arc<PublishedKeys>,
        publish_delay: Duration,
        leeway: Duration,
    ) -> KeyRing {
        KeyRing {
            store,
            kek,
            published,
            publish_delay,
            drop_margin: leeway.as_secs() + DROP_MARGIN,
            tenants: ArcSwap::default(),
            last_published: Default::default(),
        }
    }

    /// Makes sure every tenant has a key of its configured algorithm that
    /// signs now, creating one at first start (or when `signing_alg`
    /// changed), then loads and publishes them all.
    pub async fn start(&self, tenants: &Tenants) -> Result<(), KeyRingError> {
        for tenant in tenants.iter() {
            self.ensure(tenant).await?;
        }
        Ok(())
    }

    async fn ensure(&self, tenant: &Tenant) -> Result<(), KeyRingError> {
        for _ in 0..8 {
            let (raw, ring) = self.fetch(&tenant.id).await?;
            let now = now_secs();
            let usable = ring.keys.iter().any(|k| {
                k.alg == tenant.signing_alg
                    && k.drop_at.is_none()
                    && k.active_at <= self.first_signing_second()
            });
            if usable {
                self.load(tenant, &ring)?;
                return Ok(());
            }
            // No key of the configured algorithm: make one that signs at
            // once (there is nothing to wait for at first start; after an
            // algorithm change, the old keys stay published until their
            // tokens expire).
            let mut next = ring.clone();
            for old in &mut next.keys {
                old.drop_at
                    .get_or_insert(now + tenant.access_token_ttl.as_secs() + self.drop_margin);
            }
            next.keys.push(self.new_key(tenant, now)?);
            if self.write(&tenant.id, raw.as_deref(), &next).await? {
                tracing::info!(tenant = %tenant.id, alg = %tenant.signing_alg, "created a signing key");
                self.load(tenant, &next)?;
                return Ok(());
            }
        }
        Err(KeyRingError::Contended(tenant.id.clone()))
    }

    fn new_key(&self, tenant: &Tenant, active_at: u64) -> Result<StoredKey, KeyRingError> {
        let key = SigningKey::generate(tenant.signing_alg).map_err(|e| KeyRingError::Key {
            tenant: tenant.id.clone(),
            message: e.to_string(),
        })?;
        Ok(StoredKey {
            kid: key.kid().to_owned(),
            alg: key.alg(),
            sealed: self
                .kek
                .seal(key.pkcs8(), &format!("{}/{}", tenant.id, key.kid())),
            created_at: now_secs(),
            active_at,
            drop_at: None,
        })
    }

    /// Adds a key that is published now and signs after `key_publish_delay`;
    /// the keys it replaces are dropped once their last token has expired.
    pub async fn rotate(&self, tenant: &Tenant) -> Result<KeyInfo, KeyRingError> {
        for _ in 0..8 {
            let (raw, ring) = self.fetch(&tenant.id).await?;
            let now = now_secs();
            let mut next = ring.clone();
            let new = self.new_key(tenant, self.first_signing_second())?;
            let drop_at = new.active_at + tenant.access_token_ttl.as_secs() + self.drop_margin;
            for old in &mut next.keys {
                if old.drop_at.is_none_or(|d| d > drop_at) {
                    old.drop_at = Some(drop_at);
                }
            }
            next.keys.push(new.clone());
            if self.write(&tenant.id, raw.as_deref(), &next).await? {
                tracing::info!(tenant = %tenant.id, kid = %new.kid, active_at = new.active_at, "rotated the signing key");
                self.load(tenant, &next)?;
                return Ok(info(&new, now));
            }
        }
        Err(KeyRingError::Contended(tenant.id.clone()))
    }

    /// The first whole second at least `key_publish_delay` from now: a key
    /// signs from `active_at` (whole seconds), so `now_secs() + delay`
    /// would let it sign up to a second early, before gateways that
    /// refresh every `jwks_refresh` (< the delay) are sure to have it.
    fn first_signing_second(&self) -> u64 {
        let delay_ms = u64::try_from(self.publish_delay.as_millis()).unwrap_or(u64::MAX / 2);
        now_millis().saturating_add(delay_ms).div_ceil(1000)
    }

    /// Removes dropped keys from the store and republishes when what signs
    /// or what is published has changed with time. Run every second or so.
    pub async fn maintain(&self, tenants: &Tenants) {
        let now = now_secs();
        for tenant in tenants.iter() {
            self.publish_if_changed(&tenant.id, now);
            if let Err(e) = self.prune(tenant, now).await {
                tracing::warn!(cause = %e, tenant = %tenant.id, "could not prune dropped keys");
            }
        }
    }

    async fn prune(&self, tenant: &Tenant, now: u64) -> Result<(), KeyRingError> {
        let (raw, ring) = self.fetch(&tenant.id).await?;
        if !ring
            .keys
            .iter()
            .any(|k| k.drop_at.is_some_and(|d| d <= now))
        {
            return Ok(());
        }
        let next = StoredRing {
            keys: ring
                .keys
                .into_iter()
                .filter(|k| k.drop_at.is_none_or(|d| d > now))
                .collect(),
        };
        if next.keys.is_empty() {
            return Ok(()); // never leave a tenant without keys; `ensure` adds one at start
        }
        if self.write(&tenant.id, raw.as_deref(), &next).await? {
            self.load(tenant, &next)?;
        }
        Ok(())
    }

    /// Reloads a tenant's keys after another process changed them.
    pub async fn reload(&self, tenant: &Tenant) -> Result<(), KeyRingError> {
        let (_, ring) = self.fetch(&tenant.id).await?;
        if ring.keys.is_empty() {
            return self.ensure(tenant).await;
        }
        self.load(tenant, &ring)
    }

    async fn fetch(&self, tenant: &str) -> Result<(Option<Vec<u8>>, StoredRing), KeyRingError> {
        let key = ring_key(tenant);
        let raw = self.store.get(&key).await?;
        let ring = match &raw {
            Some(bytes) => store::decode(&key, bytes)?,
            None => StoredRing::default(),
        };
        Ok((raw, ring))
    }

    /// Compare-and-swap of the ring record, then a `KeysChanged` event.
    async fn write(
        &self,
        tenant: &str,
        expected: Option<&[u8]>,
        next: &StoredRing,
    ) -> Result<bool, KeyRingError> {
        let key = ring_key(tenant);
        let bytes = encode(next);
        let written = match expected {
            Some(old) => self.store.replace(&key, old, &bytes, None).await?,
            None => self.store.insert(&key, &bytes, None).await?,
        };
        if written {
            let event = Event {
                tenant: tenant.to_owned(),
                change: Change::KeysChanged,
            };
            if let Err(e) = self.store.publish(&event).await {
                tracing::warn!(cause = %e, tenant, "could not announce a key change; other processes see it on their next reload");
            }
        }
        Ok(written)
    }

    fn load(&self, tenant: &Tenant, ring: &StoredRing) -> Result<(), KeyRingError> {
        let mut keys = Vec::with_capacity(ring.keys.len());
        for stored in &ring.keys {
            let err = |message: String| KeyRingError::Key {
                tenant: tenant.id.clone(),
                message,
            };
            let pkcs8 = self
                .kek
                .open(&stored.sealed, &format!("{}/{}", tenant.id, stored.kid))
                .map_err(|e| err(e.to_string()))?;
            let signer =
                SigningKey::from_pkcs8(stored.alg, &pkcs8).map_err(|e| err(e.to_string()))?;
            if signer.kid() != stored.kid {
                return Err(err(format!("key {} does not match its id", stored.kid)));
            }
            keys.push(LoadedKey {
                stored: stored.clone(),
                signer: Arc::new(signer),
            });
        }
        keys.sort_by_key(|k| k.stored.active_at);
        let loaded = Arc::new(TenantKeys { keys });
        self.tenants.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(tenant.id.clone(), loaded.clone());
            next
        });
        self.last_published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tenant.id);
        self.publish_if_changed(&tenant.id, now_secs());
        Ok(())
    }

    fn publish_if_changed(&self, tenant: &str, now: u64) {
        let Some(keys) = self.tenants.load().get(tenant).cloned() else {
            return;
        };
        let fingerprint = keys.fingerprint(now);
        let mut last = self
            .last_published
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.get(tenant) != Some(&fingerprint) {
            self.published
                .set(tenant, KeySet::from_jwks(&keys.jwks(now)));
            last.insert(tenant.to_owned(), fingerprint);
        }
    }

    /// The key that signs for `tenant` now.
    pub fn signer(&self, tenant: &str) -> Option<Arc<SigningKey>> {
        self.tenants.load().get(tenant)?.signer(now_secs()).cloned()
    }

    /// The keys the tenant publishes now, for verifying its own tokens
    /// (revocation, introspection).
    pub fn published(&self) -> &Arc<PublishedKeys> {
        &self.published
    }

    pub fn list(&self, tenant: &str) -> Vec<KeyInfo> {
        let now = now_secs();
        let Some(keys) = self.tenants.load().get(tenant).cloned() else {
            return Vec::new();
        };
        let signing = keys.signer(now).map(|s| s.kid().to_owned());
        keys.keys
            .iter()
            .map(|k| {
                let mut i = info(&k.stored, now);
                // During a rotation's publish delay the old key still signs.
                i.state = match (Some(&k.stored.kid) == signing.as_ref(), i.state) {
                    (true, _) => "signing",
                    (false, "signing") => "retiring",
                    (false, state) => state,
                };
                i
            })
            .collect()
    }
}

fn info(k: &StoredKey, now: u64) -> KeyInfo {
    let state = if k.drop_at.is_some_and(|d| d <= now) {
        "dropped"
    } else if k.active_at > now {
        "pending"
    } else if k.drop_at.is_none() {
        "signing"
    } else {
        "retiring"
    };
    KeyInfo {
        kid: k.kid.clone(),
        alg: k.alg,
        created_at: k.created_at,
        active_at: k.active_at,
        drop_at: k.drop_at,
        state,
    }
}
