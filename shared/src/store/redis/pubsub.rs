//! Change events over Redis pub/sub: one channel, [`CHANNEL`], carrying each
//! [`Event`] as JSON.
//!
//! Each [`Subscription`] is a task with its own pub/sub connection (a
//! subscribed connection can do nothing else). Classic pub/sub is broadcast
//! to every node of a cluster, so any reachable node will do: the task
//! tries the nodes it was given in turn, starting with the last that
//! worked.
//!
//! Pub/sub does not queue for absent subscribers, so the task's contract is
//! the one of [`Notice`]: `Resync` once the `SUBSCRIBE` is confirmed (the
//! subscriber then reloads what it keeps, so nothing published before is
//! missed), the events, `Lost` as soon as the connection drops, then
//! reconnection with a capped backoff and `Resync` again. A connection that
//! stays open but stops answering is found by a periodic `PING`. The task
//! ends when the [`Subscription`] is dropped.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Client, Msg};
use tokio::sync::mpsc;

use super::errors::{Target, classify};
use crate::store::{Event, Notice, StoreResult, Subscription};

/// The one channel every event goes through.
pub(super) const CHANNEL: &str = "sg:events";

/// How often an idle subscription checks that its connection still answers.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Reconnection waits: doubled from the first to the last.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// A server a subscription may connect to.
pub(super) struct Node {
    pub(super) client: Client,
    /// For messages: the URL without its credentials.
    pub(super) name: String,
}

impl Node {
    fn target(&self) -> Target {
        Target {
            name: self.name.clone(),
            cluster: false,
        }
    }
}

/// Starts a subscription task over `nodes` (never empty).
pub(super) fn subscribe(nodes: Arc<[Node]>, timeout: Duration) -> Subscription {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(follow(nodes, timeout, tx));
    Subscription::new(rx)
}

/// Why following one connection stopped.
enum Stop {
    /// The connection is gone: say `Lost`, reconnect.
    Lost,
    /// The subscription was dropped: end the task.
    Dropped,
}

async fn follow(nodes: Arc<[Node]>, timeout: Duration, tx: mpsc::Sender<Notice>) {
    let mut first = 0;
    let mut retry = FIRST_RETRY;
    loop {
        match connect_any(&nodes, &mut first, timeout).await {
            Ok((sink, stream)) => {
                retry = FIRST_RETRY;
                if tx.send(Notice::Resync).await.is_err() {
                    return;
                }
                match listen(sink, stream, timeout, &tx).await {
                    Stop::Dropped => return,
                    Stop::Lost => {
                        tracing::warn!(
                            node = %nodes[first].name,
                            "lost the Redis event subscription; reconnecting"
                        );
                        if tx.send(Notice::Lost).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(cause = %e, "no Redis node takes the event subscription yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = tx.closed() => return,
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// Subscribes on the first node that accepts, trying each once from
/// `first`, which is left at the node that accepted.
async fn connect_any(
    nodes: &[Node],
    first: &mut usize,
    timeout: Duration,
) -> StoreResult<(PubSubSink, PubSubStream)> {
    let mut last_error = None;
    for i in 0..nodes.len() {
        let at = (*first + i) % nodes.len();
        match connect(&nodes[at], timeout).await {
            Ok(connection) => {
                *first = at;
                return Ok(connection);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        crate::store::StoreError::Failed("no Redis node to subscribe to".into())
    }))
}

async fn connect(node: &Node, timeout: Duration) -> StoreResult<(PubSubSink, PubSubStream)> {
    let unavailable = || {
        crate::store::StoreError::Unavailable(format!(
            "Redis at {} did not answer the subscription within {}",
            node.name,
            crate::duration::format(timeout)
        ))
    };
    let pubsub = tokio::time::timeout(timeout, node.client.get_async_pubsub())
        .await
        .map_err(|_| unavailable())?
        .map_err(|e| classify(&e, &node.target()))?;
    let (mut sink, stream) = pubsub.split();
    tokio::time::timeout(timeout, sink.subscribe(CHANNEL))
        .await
        .map_err(|_| unavailable())?
        .map_err(|e| classify(&e, &node.target()))?;
    Ok((sink, stream))
}

/// Forwards events until the connection or the subscription goes away.
async fn listen(
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    timeout: Duration,
    tx: &mpsc::Sender<Notice>,
) -> Stop {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return Stop::Lost };
                let Some(event) = decode(&message) else { continue };
                if tx.send(Notice::Event(event)).await.is_err() {
                    return Stop::Dropped;
                }
            }
            _ = ping.tick() => {
                let answered = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    return Stop::Lost;
                }
            }
            _ = tx.closed() => return Stop::Dropped,
        }
    }
}

/// An event from a message; a message that is not one (another program
/// publishing on the channel, a newer version's event) is skipped.
fn decode(message: &Msg) -> Option<Event> {
    match serde_json::from_slice(message.get_payload_bytes()) {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::warn!(cause = %e, "skipping an unreadable event on {CHANNEL}");
            None
        }
    }
}

/// The message for an event.
pub(super) fn encode(event: &Event) -> Vec<u8> {
    crate::store::encode(event)
}
