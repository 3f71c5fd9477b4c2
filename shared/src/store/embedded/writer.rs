//! The one thread that writes the file, with group commit.
//!
//! redb allows one write transaction at a time, and a durable commit costs
//! an fsync. So callers queue their [`Op`] and await a oneshot; the thread
//! takes everything queued, applies it in order in one transaction, commits
//! once with [`Durability::Immediate`], and only then answers each caller.
//! Under load one fsync covers many writes; alone, a write waits for one.
//! Because nothing else writes, the atomic steps need no other lock.
//!
//! The same thread purges what has expired, at most [`PURGE_LIMIT`] rows
//! per table per pass, a pass every [`PURGE_EVERY`] (or at once while a
//! backlog is left), whether or not callers are writing.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::super::{StoreError, StoreResult};
use super::file::store_error;
use super::tables::{Answer, Op, Tables};
use crate::time::now_millis;

/// Writes queued or in flight at most; more callers wait (asynchronously)
/// for a slot, bounded by the store timeout.
const MAX_QUEUED: usize = 4096;
/// Writes in one transaction at most, so that one commit stays bounded.
const MAX_BATCH: usize = 1024;
/// How often expired rows are purged.
const PURGE_EVERY: Duration = Duration::from_secs(1);
/// Rows purged per table per pass at most, so that a pass stays short.
const PURGE_LIMIT: usize = 1000;

struct Request {
    op: Op,
    reply: oneshot::Sender<StoreResult<Answer>>,
    /// Frees the caller's queue slot once the request is answered.
    _slot: OwnedSemaphorePermit,
}

/// The handle on the writer thread. Dropping it ends the thread (after it
/// has answered what was queued) and waits for it, so that the file is
/// closed, and its lock released, once the store is dropped.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Request>>,
    slots: Arc<Semaphore>,
    commits: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the embedded store's writer thread has stopped".into())
}

impl Writer {
    pub(super) fn start(db: Arc<Database>, path: Arc<Path>) -> StoreResult<Writer> {
        let (queue, requests) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        let thread = std::thread::Builder::new()
            .name("splitgate-store-writer".into())
            .spawn(move || run(&db, &path, &requests, &counted))
            .map_err(|e| {
                StoreError::Failed(format!("cannot start the store writer thread: {e}"))
            })?;
        Ok(Writer {
            queue: Some(queue),
            slots: Arc::new(Semaphore::new(MAX_QUEUED)),
            commits,
            thread: Some(thread),
        })
    }

    /// Queues `op` and waits (without blocking the runtime) for its answer,
    /// which comes once the transaction holding it is durable.
    pub(super) async fn send(&self, op: Op) -> StoreResult<Answer> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| stopped())?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            op,
            reply,
            _slot: slot,
        };
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue.send(request).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Durable commits so far.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop.
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &Database, path: &Path, requests: &mpsc::Receiver<Request>, commits: &AtomicU64) {
    let mut next_purge = Instant::now() + PURGE_EVERY;
    loop {
        let wait = next_purge.saturating_duration_since(Instant::now());
        let mut batch = Vec::new();
        match requests.recv_timeout(wait) {
            Ok(first) => batch.push(first),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        batch.extend(requests.try_iter().take(MAX_BATCH - batch.len()));
        let purge = Instant::now() >= next_purge;
        if batch.is_empty() && !purge {
            continue;
        }
        let more = commit(db, path, batch, purge, commits);
        if purge {
            next_purge = Instant::now() + if more { Duration::ZERO } else { PURGE_EVERY };
        }
    }
}

/// Runs a batch (and a purge pass, if `purge`) in one transaction and
/// answers each request. Returns whether the purge left expired rows.
fn commit(
    db: &Database,
    path: &Path,
    batch: Vec<Request>,
    purge: bool,
    commits: &AtomicU64,
) -> bool {
    let ops: Vec<&Op> = batch.iter().map(|r| &r.op).collect();
    match transact(db, &ops, purge, commits) {
        Ok((answers, more)) => {
            for (request, answer) in batch.into_iter().zip(answers) {
                // The caller may have given up (timeout): the write stands.
                let _ = request.reply.send(answer);
            }
            more
        }
        Err(err) if batch.len() > 1 || (purge && !batch.is_empty()) => {
            // The transaction is lost. Retry each write alone, so that a
            // failing one (a value too large, a full disk) fails only its
            // own caller.
            tracing::debug!(cause = %err, "store batch failed; retrying writes one by one");
            for request in batch {
                let answer = match transact(db, &[&request.op], false, commits) {
                    Ok((mut answers, _)) => answers.pop().unwrap_or_else(|| Err(stopped())),
                    Err(err) => Err(store_error(path, err)),
                };
                let _ = request.reply.send(answer);
            }
            false
        }
        Err(err) => {
            let err = store_error(path, err);
            if batch.is_empty() {
                tracing::warn!(cause = %err, "could not purge expired entries from the store");
            }
            for request in batch {
                let _ = request.reply.send(Err(err.clone()));
            }
            false
        }
    }
}

type Answers = Vec<StoreResult<Answer>>;

/// One write transaction: the ops in order, then the purge pass. Commits
/// durably if anything changed, else aborts (no fsync).
pub(super) fn transact(
    db: &Database,
    ops: &[&Op],
    purge: bool,
    commits: &AtomicU64,
) -> Result<(Answers, bool), redb::Error> {
    let now = now_millis();
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let (answers, more, changed) = {
        let mut tables = Tables::open(&txn)?;
        let answers = ops
            .iter()
            .map(|op| tables.apply(op, now))
            .collect::<Result<Answers, _>>()?;
        let more = purge && tables.purge(now, PURGE_LIMIT)?;
        (answers, more, tables.changed)
    };
    if changed {
        txn.commit()?;
        commits.fetch_add(1, Ordering::Relaxed);
    } else {
        txn.abort()?;
    }
    Ok((answers, more))
}
