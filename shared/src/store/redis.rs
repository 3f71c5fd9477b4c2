//! The `redis` backend: one Redis (`store.url`) or a Redis Cluster
//! (`store.cluster`), shared by any number of issuer and gateway processes.
//!
//! The store's shapes map onto Redis types: values are strings with a `PX`
//! TTL, maps are hashes, expiring sets are sorted sets scored by each
//! member's expiry (Unix ms, the caller's clock). Steps that must be atomic
//! and are not one command are Lua scripts ([`scripts`]). Every key carries
//! its tenant as a hash tag (`sg:{tenant}:...`, see [`key`](super::key)), and
//! every script touches one key, so a cluster needs nothing more.
//!
//! Connections ([`conn`]) reconnect by themselves and fail fast while Redis
//! is away; failures are sorted into the store's error kinds in one place
//! ([`errors`]). Change events go over pub/sub ([`pubsub`]).

mod conn;
mod errors;
mod pubsub;
mod scripts;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::{Client, Cmd, FromRedisValue};

use super::{Backend, Event, StoreError, StoreResult, Subscription};
use crate::config::StoreConfig;
use crate::time::now_millis;
use conn::Conn;
use errors::{Target, classify, redact};
use pubsub::Node;
use scripts::{Lua, Scripts};

/// How long an expiring set outlives its last member's expiry, so that a
/// Redis clock a little ahead of the callers' does not drop live members.
const SET_GRACE_MS: u64 = 60_000;

pub struct RedisStore {
    conn: Conn,
    /// Where subscriptions connect: the one server, or each seed in turn.
    nodes: Arc<[Node]>,
    scripts: Scripts,
    /// Names the server(s) in messages, without credentials.
    target: Target,
    timeout: Duration,
}

impl RedisStore {
    /// Connects to `config.url` or `config.cluster` and checks with `PING`
    /// that the server answers and accepts the credentials. Failures name
    /// the server (never the password): unreachable is
    /// [`StoreError::Unavailable`], refused credentials or a malformed URL
    /// [`StoreError::Failed`].
    pub async fn connect(config: &StoreConfig) -> StoreResult<RedisStore> {
        let timeout = config.timeout;
        let (urls, cluster) = match (&config.url, config.cluster.as_slice()) {
            (Some(url), _) => (vec![url.clone()], false),
            (None, []) => {
                return Err(StoreError::Failed(
                    "backend = \"redis\" needs store.url or store.cluster".into(),
                ));
            }
            (None, seeds) => (seeds.to_vec(), true),
        };
        let names: Vec<String> = urls.iter().map(|u| redact(u)).collect();
        let target = Target {
            name: names.join(", "),
            cluster,
        };
        let certs = match &config.ca {
            Some(path) => Some(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(path).map_err(|e| {
                    StoreError::Failed(format!("store.ca ({}): {e}", path.display()))
                })?),
            }),
            None => None,
        };
        let mut nodes = Vec::with_capacity(urls.len());
        for (url, name) in urls.iter().zip(names) {
            let client = match &certs {
                Some(certs) => Client::build_with_tls(url.as_str(), certs.clone()),
                None => Client::open(url.as_str()),
            }
            .map_err(|e| StoreError::Failed(format!("`{name}` is not a usable Redis URL: {e}")))?;
            nodes.push(Node { client, name });
        }
        let connecting = async {
            let conn = if cluster {
                Conn::cluster(&urls, timeout, certs.clone()).await?
            } else {
                Conn::single(nodes[0].client.clone(), timeout).await?
            };
            conn.ping().await.map(|()| conn)
        };
        // Connecting and the `PING` are each bounded by the timeout.
        let conn = match tokio::time::timeout(timeout * 2, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(at_start(classify(&e, &target))),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "Redis at {target} did not answer within {}",
                    crate::duration::format(timeout * 2)
                )));
            }
        };
        Ok(RedisStore {
            conn,
            nodes: nodes.into(),
            scripts: Scripts::new(),
            target,
            timeout,
        })
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> StoreResult<T> {
        self.conn
            .query(cmd)
            .await
            .map_err(|e| classify(&e, &self.target))
    }

    async fn run<T: FromRedisValue>(
        &self,
        script: &Lua,
        key: &str,
        args: &[&[u8]],
    ) -> StoreResult<T> {
        script
            .run(&self.conn, key, args)
            .await
            .map_err(|e| classify(&e, &self.target))
    }
}

/// At start-up "unavailable" means "cannot connect": say so.
fn at_start(e: StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("cannot connect: {m}")),
        other => other,
    }
}

/// A TTL in whole milliseconds, at least 1 (`PX 0` is an error in Redis).
fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

/// A TTL as a script argument: milliseconds, or empty for none.
fn ttl_arg(ttl: Option<Duration>) -> String {
    ttl.map(|t| millis(t).to_string()).unwrap_or_default()
}

fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(millis(ttl));
    }
    cmd
}

impl Backend for RedisStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        self.query(&set_cmd(key, value, ttl)).await
    }

    async fn insert(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        let mut cmd = set_cmd(key, value, ttl);
        cmd.arg("NX");
        // `OK` when set, nil when the key exists.
        Ok(self.query::<Option<String>>(&cmd).await?.is_some())
    }

    async fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> StoreResult<bool> {
        let ttl = ttl_arg(ttl);
        self.run(
            &self.scripts.replace,
            key,
            &[expected, value, ttl.as_bytes()],
        )
        .await
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.run(&self.scripts.take, key, &[]).await
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        Ok(self.query::<u64>(redis::cmd("DEL").arg(key)).await? > 0)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64> {
        let by = by.to_string();
        let ttl = ttl_arg(ttl);
        self.run(&self.scripts.incr, key, &[by.as_bytes(), ttl.as_bytes()])
            .await
    }

    async fn map_get(&self, key: &str, field: &str) -> StoreResult<Option<Vec<u8>>> {
        self.query(redis::cmd("HGET").arg(key).arg(field)).await
    }

    async fn map_put(&self, key: &str, field: &str, value: &[u8]) -> StoreResult<()> {
        self.query::<u64>(redis::cmd("HSET").arg(key).arg(field).arg(value))
            .await
            .map(|_| ())
    }

    async fn map_insert(&self, key: &str, field: &str, value: &[u8]) -> StoreResult<bool> {
        self.query(redis::cmd("HSETNX").arg(key).arg(field).arg(value))
            .await
    }

    async fn map_delete(&self, key: &str, field: &str) -> StoreResult<bool> {
        Ok(self
            .query::<u64>(redis::cmd("HDEL").arg(key).arg(field))
            .await?
            > 0)
    }

    async fn map_all(&self, key: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let all: BTreeMap<String, Vec<u8>> = self.query(redis::cmd("HGETALL").arg(key)).await?;
        Ok(all.into_iter().collect())
    }

    async fn set_add(&self, key: &str, member: &str, expires_at_ms: u64) -> StoreResult<()> {
        let expires = expires_at_ms.to_string();
        let now = now_millis().to_string();
        let grace = SET_GRACE_MS.to_string();
        self.run::<i64>(
            &self.scripts.set_add,
            key,
            &[
                member.as_bytes(),
                expires.as_bytes(),
                now.as_bytes(),
                grace.as_bytes(),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn set_members(&self, key: &str) -> StoreResult<Vec<(String, u64)>> {
        // Members whose expiry is after now, by the same clock as `set_add`.
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(key)
            .arg(format!("({}", now_millis()))
            .arg("+inf")
            .arg("WITHSCORES");
        let live: Vec<(String, f64)> = self.query(&cmd).await?;
        let mut members: Vec<(String, u64)> = live
            .into_iter()
            .map(|(member, expires)| (member, expires as u64))
            .collect();
        members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(members)
    }

    async fn publish(&self, event: &Event) -> StoreResult<()> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(pubsub::CHANNEL).arg(pubsub::encode(event));
        self.query::<i64>(&cmd).await.map(|_| ())
    }

    fn subscribe(&self) -> Subscription {
        pubsub::subscribe(self.nodes.clone(), self.timeout)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.conn
            .ping()
            .await
            .map_err(|e| classify(&e, &self.target))
    }
}
