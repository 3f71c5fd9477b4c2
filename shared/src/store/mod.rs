//! The Store (DESIGN §6): all state that outlives a request, behind one
//! interface with three backends that behave the same, proven by one
//! conformance suite ([`conformance`], run by every backend's tests).
//!
//! The interface is deliberately small and data-agnostic, so that a new
//! backend has little to get right:
//!
//! - **values** with an optional TTL, with the atomic steps the issuer needs:
//!   insert-if-absent, compare-and-swap (refresh rotation, code redemption),
//!   take (single use) and counters;
//! - **maps** (a key holding named fields, no TTL) for things that are
//!   listed: clients and users;
//! - **expiring sets** (members with their own expiry) for revocations, so
//!   that a gateway can load a tenant's whole revocation list in one call;
//! - **change events**, published by the issuer and followed by every
//!   gateway ([`Subscription`]).
//!
//! Keys are built with [`key`], which puts the tenant in a Redis Cluster
//! hash tag (`sg:{acme}:...`) so that everything of one tenant lives in one
//! slot and Lua scripts may touch several of its keys at once.
//!
//! Every call is bounded by `store.timeout`: a store that does not answer
//! fails the call with [`StoreError::Unavailable`] (503
//! `temporarily_unavailable`), never a hung request.

pub mod embedded;
pub mod memory;
pub mod redis;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::{StoreBackend, StoreConfig};
use crate::revocation::Revocation;

/// Why a store call failed. None of these carry a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Down, unreachable, timed out, or (Redis) loading: retry later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Out of memory or disk: writes are refused, reads go on.
    #[error("the store is full: {0}")]
    Full(String),
    /// Refused for a reason that retrying will not fix (bad credentials,
    /// a stored value we cannot read).
    #[error("the store failed: {0}")]
    Failed(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// `sg:{<tenant>}:<rest>`: the one key format of every backend.
pub fn key(tenant: &str, rest: &str) -> String {
    format!("sg:{{{tenant}}}:{rest}")
}

/// A change that other processes must hear about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub tenant: String,
    #[serde(flatten)]
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Something was revoked: gateways add it to their view.
    Revoked { revocation: Revocation },
    /// The tenant's key ring changed: issuers reload keys, gateways in
    /// `serve` mode republish.
    KeysChanged,
}

/// What a [`Subscription`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// (Re)connected: whatever happened while away is unknown, so reload the
    /// whole state (revocations, keys) and then apply events from here on.
    /// Always the first notice.
    Resync,
    /// One change, in publication order.
    Event(Event),
    /// The connection to the store was lost; a `Resync` follows when it is
    /// back. Until then the subscriber's view may be stale.
    Lost,
}

/// A stream of [`Notice`]s; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Notice>,
}

impl Subscription {
    pub fn new(rx: mpsc::Receiver<Notice>) -> Self {
        Subscription { rx }
    }

    /// The next notice; `None` once the store is shut down.
    pub async fn next(&mut self) -> Option<Notice> {
        self.rx.recv().await
    }
}

/// What a backend implements. Callers use [`Store`], which adds the
/// timeout; see the module docs for the semantics, and [`conformance`] for
/// their exact statement.
pub trait Backend: Send + Sync + 'static {
    /// The value, unless absent or expired.
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send;
    /// Sets the value and its TTL (`None`: no expiry), replacing any.
    fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Sets the value only if the key is absent (or expired); `true` if set.
    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Atomically replaces the value only if it currently equals `expected`;
    /// `true` if replaced. Of many concurrent calls with the same
    /// `expected`, exactly one succeeds.
    fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Atomically gets and deletes: of many concurrent takes, one gets it.
    fn take(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send;
    /// `true` if something was deleted.
    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Adds `by` to a counter (absent counts as 0) and returns the new
    /// value; the TTL is set only when the counter is created.
    fn incr(
        &self,
        key: &str,
        by: i64,
        ttl: Option<Duration>,
    ) -> impl Future<Output = StoreResult<i64>> + Send;

    /// One field of a map.
    fn map_get(
        &self,
        key: &str,
        field: &str,
    ) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send;
    /// Sets a field, replacing any.
    fn map_put(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Sets a field only if absent; `true` if set.
    fn map_insert(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// `true` if the field existed.
    fn map_delete(&self, key: &str, field: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Every field, sorted by field name.
    fn map_all(
        &self,
        key: &str,
    ) -> impl Future<Output = StoreResult<Vec<(String, Vec<u8>)>>> + Send;

    /// Adds (or re-adds with a new expiry) a member that lives until
    /// `expires_at_ms` (Unix milliseconds).
    fn set_add(
        &self,
        key: &str,
        member: &str,
        expires_at_ms: u64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The members not yet expired, with their expiry, sorted by member.
    fn set_members(
        &self,
        key: &str,
    ) -> impl Future<Output = StoreResult<Vec<(String, u64)>>> + Send;

    /// Sends an event to every subscriber, in this process and (Redis) in
    /// every other one.
    fn publish(&self, event: &Event) -> impl Future<Output = StoreResult<()>> + Send;
    /// Follows events from now on; the first notice is [`Notice::Resync`].
    fn subscribe(&self) -> Subscription;
    /// Whether the store answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;
}

#[derive(Clone)]
enum Inner {
    Memory(std::sync::Arc<memory::MemoryStore>),
    Embedded(std::sync::Arc<embedded::EmbeddedStore>),
    Redis(std::sync::Arc<redis::RedisStore>),
}

/// The store handle the rest of the program uses: one of the backends, with
/// every call bounded by the configured timeout. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Inner,
    timeout: Duration,
    name: &'static str,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.name)
            .finish()
    }
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $call:expr) => {{
        let fut = async {
            match &$self.inner {
                Inner::Memory($b) => $call.await,
                Inner::Embedded($b) => $call.await,
                Inner::Redis($b) => $call.await,
            }
        };
        match tokio::time::timeout($self.timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {}",
                crate::duration::format($self.timeout)
            ))),
        }
    }};
}

impl Store {
    /// Opens the configured backend. Failing here (a locked data file, a
    /// wrong Redis password) stops start-up with a clear message.
    pub async fn open(config: &StoreConfig) -> StoreResult<Store> {
        let inner = match config.backend {
            StoreBackend::Memory => Inner::Memory(std::sync::Arc::new(memory::MemoryStore::new())),
            StoreBackend::Embedded => {
                let path = config.data_dir.join("splitgate.redb");
                Inner::Embedded(std::sync::Arc::new(embedded::EmbeddedStore::open(&path)?))
            }
            StoreBackend::Redis => Inner::Redis(std::sync::Arc::new(
                redis::RedisStore::connect(config).await?,
            )),
        };
        Ok(Store::from_inner(inner, config.timeout))
    }

    /// A fresh in-memory store (tests, throwaway runs).
    pub fn memory() -> Store {
        Store::from_inner(
            Inner::Memory(std::sync::Arc::new(memory::MemoryStore::new())),
            Duration::from_secs(2),
        )
    }

    /// An embedded store at `path` (tests).
    pub fn embedded(path: &std::path::Path) -> StoreResult<Store> {
        Ok(Store::from_inner(
            Inner::Embedded(std::sync::Arc::new(embedded::EmbeddedStore::open(path)?)),
            Duration::from_secs(2),
        ))
    }

    /// A Redis store from an already built backend (tests).
    pub fn from_redis(store: redis::RedisStore, timeout: Duration) -> Store {
        Store::from_inner(Inner::Redis(std::sync::Arc::new(store)), timeout)
    }

    fn from_inner(inner: Inner, timeout: Duration) -> Store {
        let name = match inner {
            Inner::Memory(_) => "memory",
            Inner::Embedded(_) => "embedded",
            Inner::Redis(_) => "redis",
        };
        Store {
            inner,
            timeout,
            name,
        }
    }

    /// `memory`, `embedded` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        self.name
    }

    /// Whether other processes can share this store (only Redis).
    pub fn is_shared(&self) -> bool {
        matches!(self.inner, Inner::Redis(_))
    }

    pub async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        dispatch!(self, b => b.get(key))
    }
    pub async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        dispatch!(self, b => b.put(key, value, ttl))
    }
    pub async fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> StoreResult<bool> {
        dispatch!(self, b => b.insert(key, value, ttl))
    }
    pub async fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> StoreResult<bool> {
        dispatch!(self, b => b.replace(key, expected, value, ttl))
    }
    pub async fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        dispatch!(self, b => b.take(key))
    }
    pub async fn delete(&self, key: &str) -> StoreResult<bool> {
        dispatch!(self, b => b.delete(key))
    }
    pub async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64> {
        dispatch!(self, b => b.incr(key, by, ttl))
    }
    pub async fn map_get(&self, key: &str, field: &str) -> StoreResult<Option<Vec<u8>>> {
        dispatch!(self, b => b.map_get(key, field))
    }
    pub async fn map_put(&self, key: &str, field: &str, value: &[u8]) -> StoreResult<()> {
        dispatch!(self, b => b.map_put(key, field, value))
    }
    pub async fn map_insert(&self, key: &str, field: &str, value: &[u8]) -> StoreResult<bool> {
        dispatch!(self, b => b.map_insert(key, field, value))
    }
    pub async fn map_delete(&self, key: &str, field: &str) -> StoreResult<bool> {
        dispatch!(self, b => b.map_delete(key, field))
    }
    pub async fn map_all(&self, key: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        dispatch!(self, b => b.map_all(key))
    }
    pub async fn set_add(&self, key: &str, member: &str, expires_at_ms: u64) -> StoreResult<()> {
        dispatch!(self, b => b.set_add(key, member, expires_at_ms))
    }
    pub async fn set_members(&self, key: &str) -> StoreResult<Vec<(String, u64)>> {
        dispatch!(self, b => b.set_members(key))
    }
    pub async fn publish(&self, event: &Event) -> StoreResult<()> {
        dispatch!(self, b => b.publish(event))
    }
    pub async fn ping(&self) -> StoreResult<()> {
        dispatch!(self, b => b.ping())
    }

    pub fn subscribe(&self) -> Subscription {
        match &self.inner {
            Inner::Memory(b) => b.subscribe(),
            Inner::Embedded(b) => b.subscribe(),
            Inner::Redis(b) => b.subscribe(),
        }
    }

    /// JSON helpers: most values are records serialised with serde.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> StoreResult<Option<T>> {
        self.get(key).await?.map(|v| decode(key, &v)).transpose()
    }

    pub async fn map_get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        field: &str,
    ) -> StoreResult<Option<T>> {
        self.map_get(key, field)
            .await?
            .map(|v| decode(key, &v))
            .transpose()
    }
}

/// Decodes a stored JSON record; a record we cannot read is a store
/// failure naming the key, never a panic.
pub fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Failed(format!("unreadable record at {key}: {e}")))
}

/// Serialises a record for storing.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Milliseconds from now until `expires_at_ms`, as a TTL (at least 1 ms).
pub fn ttl_until(expires_at_ms: u64) -> Duration {
    Duration::from_millis(
        expires_at_ms
            .saturating_sub(crate::time::now_millis())
            .max(1),
    )
}
