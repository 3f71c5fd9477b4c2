//! The `redis` backend: one Redis or a Redis Cluster.
//! (Being implemented.)

use std::time::Duration;

use super::{Backend, Event, StoreError, StoreResult, Subscription};

pub struct RedisStore {
    events: tokio::sync::broadcast::Sender<Event>,
}

fn todo<T>() -> StoreResult<T> {
    Err(StoreError::Failed(
        "redis backend not implemented yet".into(),
    ))
}

impl RedisStore {
    pub async fn connect(_config: &crate::config::StoreConfig) -> StoreResult<RedisStore> {
        Err(StoreError::Failed(
            "redis backend not implemented yet".into(),
        ))
    }
}

impl Backend for RedisStore {
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
