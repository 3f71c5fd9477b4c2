//! The verified-token cache: a client sends the same access token for an
//! hour, so after the first signature check a repeated token should cost a
//! hash lookup. An entry remembers which key set verified it and for which
//! side; it is only used while that exact set is the tenant's current one
//! (a rotation or a JWKS refetch swaps the `Arc`), for the same side, and
//! until the token expires. Revocation is not cached: it is checked on
//! every request against the in-memory view.
//!
//! Bounded: sharded maps with a fixed capacity each; a full shard first
//! drops its expired entries, then an arbitrary one.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use splitgate_shared::AccessClaims;
use splitgate_shared::keys::KeySet;
use splitgate_shared::side::Side;

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<Box<str>, Entry>>;

struct Entry {
    keys: Arc<KeySet>,
    side: Side,
    claims: Arc<AccessClaims>,
}

pub struct TokenCache {
    shards: Box<[Shard]>,
    per_shard: usize,
    hasher: RandomState,
}

impl TokenCache {
    /// A cache of about `capacity` tokens (0 turns caching off).
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, token: &str) -> &Shard {
        let index = self.hasher.hash_one(token) as usize % SHARDS;
        &self.shards[index]
    }

    /// The claims of `token` if it was verified with `keys` for `side` and
    /// is not expired at `now` (with `leeway` seconds).
    pub fn get(
        &self,
        token: &str,
        keys: &Arc<KeySet>,
        side: Side,
        now: u64,
        leeway: u64,
    ) -> Option<Arc<AccessClaims>> {
        let mut map = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get(token)?;
        if !Arc::ptr_eq(&entry.keys, keys) || entry.claims.exp.saturating_add(leeway) < now {
            map.remove(token);
            return None;
        }
        (entry.side == side).then(|| entry.claims.clone())
    }

    pub fn insert(
        &self,
        token: &str,
        keys: Arc<KeySet>,
        side: Side,
        claims: Arc<AccessClaims>,
        now: u64,
        leeway: u64,
    ) {
        if self.per_shard == 0 {
            return;
        }
        let mut map = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.per_shard && !map.contains_key(token) {
            map.retain(|_, e| e.claims.exp.saturating_add(leeway) >= now);
            if map.len() >= self.per_shard
                && let Some(victim) = map.keys().next().cloned()
            {
                map.remove(&victim);
            }
        }
        map.insert(token.into(), Entry { keys, side, claims });
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitgate_shared::Kind;

    fn claims(exp: u64) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "s".into(),
            client_id: "c".into(),
            exp,
            iat: 0,
            nbf: 0,
            jti: "j".into(),
            scope: String::new(),
            sid: "f".into(),
            kind: Kind::User,
        })
    }

    #[test]
    fn hits_only_for_the_same_key_set_side_and_lifetime() {
        let cache = TokenCache::new(64);
        let keys = Arc::new(KeySet::default());
        cache.insert("t", keys.clone(), Side::Backoffice, claims(100), 0, 0);
        assert!(cache.get("t", &keys, Side::Backoffice, 100, 0).is_some());
        assert!(cache.get("t", &keys, Side::Storefront, 100, 0).is_none());
        assert!(cache.get("t", &keys, Side::Backoffice, 130, 30).is_some());
        assert!(cache.get("t", &keys, Side::Backoffice, 101, 0).is_none());
        assert_eq!(cache.len(), 0, "expired entries are dropped on sight");

        cache.insert("t", keys.clone(), Side::Backoffice, claims(100), 0, 0);
        let rotated = Arc::new(KeySet::default());
        assert!(cache.get("t", &rotated, Side::Backoffice, 50, 0).is_none());
        assert!(
            cache.get("t", &keys, Side::Backoffice, 50, 0).is_none(),
            "a key set change drops the entry"
        );
    }

    #[test]
    fn stays_bounded() {
        let cache = TokenCache::new(32);
        let keys = Arc::new(KeySet::default());
        for i in 0..1000 {
            cache.insert(
                &format!("t{i}"),
                keys.clone(),
                Side::Storefront,
                claims(100),
                0,
                0,
            );
        }
        assert!(cache.len() <= 32, "{}", cache.len());
    }
}
