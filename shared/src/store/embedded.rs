//! The `embedded` backend (default): one redb file in the data directory.
//! (Being implemented.)

use std::path::Path;
use std::time::Duration;

use super::{Backend, Event, StoreError, StoreResult, Subscription};

pub struct EmbeddedStore {
    events: tokio::sync::broadcast::Sender<Event>,
}

fn todo<T>() -> StoreResult<T> {
    Err(StoreError::Failed(
        "embedded backend not implemented yet".into(),
    ))
}

impl EmbeddedStore {
    pub fn open(_path: &Path) -> StoreResult<EmbeddedStore> {
        Ok(EmbeddedStore {
            events: tokio::sync::broadcast::channel(16).0,
        })
    }
}

impl Backend for EmbeddedStore {
    async fn get(&self, _key: &str) -> StoreResult<Option<Vec<u8>>> {
        todo()
    }
    async fn put(&self, _key: &str, _value: &[u8], _ttl: Option<Duration>) -> StoreResult<()> {
        todo()
    }
    async fn insert(&self, _key: &str, _value: &[u8], _ttl: Option<Duration>) -> StoreResult<bool> {
        todo()
    }
    async fn replace(
        &self,
        _key: &str,
        _expected: &[u8],
        _value: &[u8],
        _ttl: Option<Duration>,
    ) -> StoreResult<bool> {
        todo()
    }
    async fn take(&self, _key: &str) -> StoreResult<Option<Vec<u8>>> {
        todo()
    }
    async fn delete(&self, _key: &str) -> StoreResult<bool> {
        todo()
    }
    async fn incr(&self, _key: &str, _by: i64, _ttl: Option<Duration>) -> StoreResult<i64> {
        todo()
    }
    async fn map_get(&self, _key: &str, _field: &str) -> StoreResult<Option<Vec<u8>>> {
        todo()
    }
    async fn map_put(&self, _key: &str, _field: &str, _value: &[u8]) -> StoreResult<()> {
        todo()
    }
    async fn map_insert(&self, _key: &str, _field: &str, _value: &[u8]) -> StoreResult<bool> {
        todo()
    }
    async fn map_delete(&self, _key: &str, _field: &str) -> StoreResult<bool> {
        todo()
    }
    async fn map_all(&self, _key: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        todo()
    }
    async fn set_add(&self, _key: &str, _member: &str, _expires_at_ms: u64) -> StoreResult<()> {
        todo()
    }
    async fn set_members(&self, _key: &str) -> StoreResult<Vec<(String, u64)>> {
        todo()
    }
    async fn publish(&self, event: &Event) -> StoreResult<()> {
        let _ = self.events.send(event.clone());
        Ok(())
    }
    fn subscribe(&self) -> Subscription {
        super::memory::forward(self.events.subscribe())
    }
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}
