//! The `memory` backend: everything in one process's memory, gone at exit.
//! For tests and throwaway runs; behaves exactly like the others.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::{Backend, Event, Notice, StoreError, StoreResult, Subscription};
use crate::time::now_millis;

#[derive(Default)]
struct Data {
    /// key -> (value, expires_at_ms or 0)
    values: HashMap<String, (Vec<u8>, u64)>,
    maps: HashMap<String, BTreeMap<String, Vec<u8>>>,
    sets: HashMap<String, BTreeMap<String, u64>>,
    writes: u64,
}

impl Data {
    fn live(&mut self, key: &str, now: u64) -> Option<&mut (Vec<u8>, u64)> {
        let expired = matches!(self.values.get(key), Some((_, exp)) if *exp != 0 && *exp <= now);
        if expired {
            self.values.remove(key);
        }
        self.values.get_mut(key)
    }

    /// Every so many writes, drops what has expired so memory stays bounded
    /// by what is live.
    fn wrote(&mut self, now: u64) {
        self.writes += 1;
        if self.writes.is_multiple_of(4096) {
            self.values.retain(|_, (_, exp)| *exp == 0 || *exp > now);
            for set in self.sets.values_mut() {
                set.retain(|_, exp| *exp > now);
            }
            self.sets.retain(|_, set| !set.is_empty());
        }
    }
}

pub struct MemoryStore {
    data: Mutex<Data>,
    events: broadcast::Sender<Event>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore {
            data: Mutex::default(),
            events: broadcast::channel(4096).0,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Data, u64) -> T) -> T {
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut data, now_millis())
    }
}

fn expiry(ttl: Option<Duration>, now: u64) -> u64 {
    ttl.map_or(0, |t| now + (t.as_millis() as u64).max(1))
}

/// Forwards an in-process broadcast to a subscription, turning a lag (the
/// subscriber fell more than the channel's capacity behind) into a resync.
pub(super) fn forward(mut rx: broadcast::Receiver<Event>) -> Subscription {
    let (tx, out) = mpsc::channel(1024);
    tokio::spawn(async move {
        if tx.send(Notice::Resync).await.is_err() {
            return;
        }
        loop {
            let notice = match rx.recv().await {
                Ok(event) => Notice::Event(event),
                Err(broadcast::error::RecvError::Lagged(_)) => Notice::Resync,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(notice).await.is_err() {
                return;
            }
        }
    });
    Subscription::new(out)
}

impl Backend for MemoryStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.with(|d, now| d.live(key, now).map(|(v, _)| v.clone())))
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        self.with(|d, now| {
            d.values
                .insert(key.to_owned(), (value.to_vec(), expiry(ttl, now)));
            d.wrote(now);
        });
        Ok(())
    }

    async fn insert(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        Ok(self.with(|d, now| {
            if d.live(key, now).is_some() {
                return false;
            }
            d.values
                .insert(key.to_owned(), (value.to_vec(), expiry(ttl, now)));
            d.wrote(now);
            true
        }))
    }

    async fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> StoreResult<bool> {
        Ok(self.with(|d, now| match d.live(key, now) {
            Some(current) if current.0 == expected => {
                *current = (value.to_vec(), expiry(ttl, now));
                true
            }
            _ => false,
        }))
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.with(|d, now| {
            d.live(key, now)?;
            d.values.remove(key).map(|(v, _)| v)
        }))
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        Ok(self.with(|d, now| d.live(key, now).is_some() && d.values.remove(key).is_some()))
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64> {
        self.with(|d, now| {
            let next = match d.live(key, now) {
                Some((value, exp)) => {
                    let current = parse_counter(value)?;
                    let next = current
                        .checked_add(by)
                        .ok_or_else(|| StoreError::Failed("counter overflow".into()))?;
                    *value = next.to_string().into_bytes();
                    let _ = exp;
                    next
                }
                None => {
                    d.values.insert(
                        key.to_owned(),
                        (by.to_string().into_bytes(), expiry(ttl, now)),
                    );
                    by
                }
            };
            d.wrote(now);
            Ok(next)
        })
    }

    async fn map_get(&self, key: &str, field: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.with(|d, _| d.maps.get(key).and_then(|m| m.get(field).cloned())))
    }

    async fn map_put(&self, key: &str, field: &str, value: &[u8]) -> StoreResult<()> {
        self.with(|d, _| {
            d.maps
                .entry(key.to_owned())
                .or_default()
                .insert(field.to_owned(), value.to_vec())
        });
        Ok(())
    }

    async fn map_insert(&self, key: &str, field: &str, value: &[u8]) -> StoreResult<bool> {
        Ok(self.with(|d, _| {
            let map = d.maps.entry(key.to_owned()).or_default();
            if map.contains_key(field) {
                return false;
            }
            map.insert(field.to_owned(), value.to_vec());
            true
        }))
    }

    async fn map_delete(&self, key: &str, field: &str) -> StoreResult<bool> {
        Ok(self.with(|d, _| {
            d.maps
                .get_mut(key)
                .is_some_and(|m| m.remove(field).is_some())
        }))
    }

    async fn map_all(&self, key: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        Ok(self.with(|d, _| {
            d.maps
                .get(key)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        }))
    }

    async fn set_add(&self, key: &str, member: &str, expires_at_ms: u64) -> StoreResult<()> {
        self.with(|d, now| {
            d.sets
                .entry(key.to_owned())
                .or_default()
                .insert(member.to_owned(), expires_at_ms);
            d.wrote(now);
        });
        Ok(())
    }

    async fn set_members(&self, key: &str) -> StoreResult<Vec<(String, u64)>> {
        Ok(self.with(|d, now| {
            d.sets
                .get(key)
                .map(|s| {
                    s.iter()
                        .filter(|(_, exp)| **exp > now)
                        .map(|(m, exp)| (m.clone(), *exp))
                        .collect()
                })
                .unwrap_or_default()
        }))
    }

    async fn publish(&self, event: &Event) -> StoreResult<()> {
        // No receivers is not an error: nobody is listening yet.
        let _ = self.events.send(event.clone());
        Ok(())
    }

    fn subscribe(&self) -> Subscription {
        forward(self.events.subscribe())
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// Counters are stored as decimal text (as Redis does).
pub(super) fn parse_counter(value: &[u8]) -> StoreResult<i64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Failed("the value is not a counter".into()))
}

#[cfg(test)]
mod tests {
    crate::conformance_tests!(crate::store::Store::memory());
}
