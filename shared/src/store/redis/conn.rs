//! The command connection: one Redis through a `ConnectionManager`, or a
//! Redis Cluster through `cluster_async`, behind one small enum so that the
//! backend's methods do not care which.
//!
//! Both reconnect by themselves. They are tuned to fail fast rather than
//! to retry for long: a store call has `store.timeout` (2 s by default) in
//! all, and while Redis is down a request should get its 503 at once, not
//! after a retry schedule. So the single-node manager makes one connection
//! attempt per call that finds the connection broken (a refused connection
//! fails in microseconds), and the cluster client retries a few times with
//! short waits (enough to follow a `MOVED` or a topology refresh).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Client, Cmd, FromRedisValue, RedisResult, Value};

/// How many times the cluster client retries a request (redirections,
/// reconnections) before giving up, and its waits between tries.
const CLUSTER_RETRIES: u32 = 3;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 10;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 150;

#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects to one Redis. The first connection is made here, so an
    /// unreachable server fails start-up.
    pub(super) async fn single(client: Client, timeout: Duration) -> RedisResult<Conn> {
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        Ok(Conn::Single(
            ConnectionManager::new_with_config(client, config).await?,
        ))
    }

    /// Connects to a Redis Cluster through its seed nodes (any reachable
    /// one gives the slot map).
    pub(super) async fn cluster(
        seeds: &[String],
        timeout: Duration,
        certs: Option<redis::TlsCertificates>,
    ) -> RedisResult<Conn> {
        let mut builder = ClusterClient::builder(seeds.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS);
        if let Some(certs) = certs {
            builder = builder.certs(certs);
        }
        let client = builder.build()?;
        Ok(Conn::Cluster(client.get_async_connection().await?))
    }

    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    /// `PING`. In a cluster, one answering primary is enough: a node that
    /// is down makes its own slots unavailable (those calls fail), not the
    /// whole store, and `/readyz` should not take every process out of
    /// service for it.
    pub(super) async fn ping(&self) -> RedisResult<()> {
        let ping = redis::cmd("PING");
        let reply = match self {
            Conn::Single(c) => c.clone().send_packed_command(&ping).await?,
            Conn::Cluster(c) => {
                let route = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::OneSucceeded),
                ));
                c.clone().route_command(ping, route).await?
            }
        };
        // A server error (`NOAUTH`) comes back as a value, not as `Err`.
        reply.extract_error().map(|_: Value| ())
    }
}
