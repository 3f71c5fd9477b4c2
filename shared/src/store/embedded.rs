//! The `embedded` backend (default): one redb file in the data directory,
//! owned by one process.
//!
//! Reads run on the caller's thread in a redb read transaction (a snapshot:
//! no lock, no waiting on writers). Writes go to one writer thread
//! ([`writer`]) that commits everything queued in one durable transaction
//! (group commit) and then answers each caller; as it is the only writer,
//! insert-if-absent, compare-and-swap, take and counters are atomic without
//! further locking. The layout of the file, and the expiry rule that reads
//! and writes share, are in [`tables`]. Expired values and set members are
//! hidden at once and purged from the file by the writer within about a
//! second.
//!
//! redb locks the file, so a second process pointed at the same data
//! directory is refused at start-up with a message that says so. Events
//! stay in the process, as only one process can use the store.

mod file;
mod tables;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadTransaction, ReadableDatabase};
use tokio::sync::broadcast;

use super::{Backend, Event, StoreError, StoreResult, Subscription};
use crate::time::now_millis;
use file::{create_tables, open_database, store_error};
use tables::{Answer, MAPS, Op, SETS, VALUES};
use writer::Writer;

pub struct EmbeddedStore {
    db: Arc<Database>,
    path: Arc<Path>,
    writer: Writer,
    events: broadcast::Sender<Event>,
}

impl EmbeddedStore {
    /// Opens the store file at `path`, creating it (mode 0600) and its
    /// directory (mode 0700) if missing. A file that another process holds
    /// open is refused with [`StoreError::Failed`] naming it.
    pub fn open(path: &Path) -> StoreResult<EmbeddedStore> {
        let db = Arc::new(open_database(path)?);
        let path: Arc<Path> = path.into();
        create_tables(&db, &path)?;
        let writer = Writer::start(db.clone(), path.clone())?;
        Ok(EmbeddedStore {
            db,
            path,
            writer,
            events: broadcast::channel(4096).0,
        })
    }

    /// Durable commits since the store was opened: with group commit,
    /// usually far fewer than writes.
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, redb::Error>,
    ) -> StoreResult<T> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| store_error(&self.path, e))?;
        f(&txn).map_err(|e| store_error(&self.path, e))
    }

    async fn write(&self, op: Op) -> StoreResult<Answer> {
        self.writer.send(op).await
    }
}

/// An answer of the wrong kind for its op: impossible by construction.
/// The message leaves the answer out, as it may hold a stored value.
fn unexpected() -> StoreError {
    StoreError::Failed("the store writer gave an answer of the wrong kind".into())
}

impl Answer {
    fn done(self) -> StoreResult<()> {
        match self {
            Answer::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }
    fn flag(self) -> StoreResult<bool> {
        match self {
            Answer::Flag(flag) => Ok(flag),
            _ => Err(unexpected()),
        }
    }
    fn value(self) -> StoreResult<Option<Vec<u8>>> {
        match self {
            Answer::Value(value) => Ok(value),
            _ => Err(unexpected()),
        }
    }
    fn count(self) -> StoreResult<i64> {
        match self {
            Answer::Count(count) => Ok(count),
            _ => Err(unexpected()),
        }
    }
}

impl Backend for EmbeddedStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(|txn| {
            let values = txn.open_table(VALUES)?;
            Ok(tables::live_value(&values, key, now_millis())?.map(|(_, value)| value))
        })
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.write(Op::Put { key, value, ttl }).await?.done()
    }

    async fn insert(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.write(Op::Insert { key, value, ttl }).await?.flag()
    }

    async fn replace(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> StoreResult<bool> {
        let op = Op::Replace {
            key: key.to_owned(),
            expected: expected.to_vec(),
            value: value.to_vec(),
            ttl,
        };
        self.write(op).await?.flag()
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.write(Op::Take { key }).await?.value()
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        let key = key.to_owned();
        self.write(Op::Delete { key }).await?.flag()
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> StoreResult<i64> {
        let key = key.to_owned();
        self.write(Op::Incr { key, by, ttl }).await?.count()
    }

    async fn map_get(&self, key: &str, field: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(|txn| {
            let maps = txn.open_table(MAPS)?;
            let value = maps.get((key, field))?.map(|v| v.value().to_vec());
            Ok(value)
        })
    }

    async fn map_put(&self, key: &str, field: &str, value: &[u8]) -> StoreResult<()> {
        let (key, field, value) = (key.to_owned(), field.to_owned(), value.to_vec());
        self.write(Op::MapPut { key, field, value }).await?.done()
    }

    async fn map_insert(&self, key: &str, field: &str, value: &[u8]) -> StoreResult<bool> {
        let (key, field, value) = (key.to_owned(), field.to_owned(), value.to_vec());
        self.write(Op::MapInsert { key, field, value })
            .await?
            .flag()
    }

    async fn map_delete(&self, key: &str, field: &str) -> StoreResult<bool> {
        let (key, field) = (key.to_owned(), field.to_owned());
        self.write(Op::MapDelete { key, field }).await?.flag()
    }

    async fn map_all(&self, key: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.read(|txn| Ok(tables::map_entries(&txn.open_table(MAPS)?, key)?))
    }

    async fn set_add(&self, key: &str, member: &str, expires_at_ms: u64) -> StoreResult<()> {
        let op = Op::SetAdd {
            key: key.to_owned(),
            member: member.to_owned(),
            expires_at: expires_at_ms,
        };
        self.write(op).await?.done()
    }

    async fn set_members(&self, key: &str) -> StoreResult<Vec<(String, u64)>> {
        self.read(|txn| {
            Ok(tables::set_members(
                &txn.open_table(SETS)?,
                key,
                now_millis(),
            )?)
        })
    }

    async fn publish(&self, event: &Event) -> StoreResult<()> {
        // No receivers is not an error: nobody is listening yet.
        let _ = self.events.send(event.clone());
        Ok(())
    }

    fn subscribe(&self) -> Subscription {
        super::memory::forward(self.events.subscribe())
    }

    /// Both paths answer: a read transaction opens, and the writer thread
    /// runs a (write-nothing) transaction.
    async fn ping(&self) -> StoreResult<()> {
        self.read(|txn| {
            txn.open_table(VALUES)?;
            Ok(())
        })?;
        self.write(Op::Ping).await?.done()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};

    use std::sync::atomic::AtomicU64;

    use super::tables::{Answer, Op, SET_EXPIRY, SETS, VALUE_EXPIRY, VALUES};
    use super::{Backend, EmbeddedStore};
    use crate::store::{Store, StoreError};
    use crate::time::now_millis;

    /// A store in a directory that is removed as soon as the store is open:
    /// on Unix an open file outlives its name, so the store works until it
    /// is dropped and nothing is left behind, even when a test fails.
    fn scratch_store() -> Store {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Store::embedded(&dir.path().join("splitgate.redb")).expect("the store opens")
    }

    mod conformance {
        crate::conformance_tests!(super::scratch_store());
    }

    async fn wait_for(what: &str, mut probe: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !probe() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within 10s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn data_survives_close_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("splitgate.redb");
        let store = EmbeddedStore::open(&path).unwrap();
        store.put("k", b"v", None).await.unwrap();
        store
            .put("ttl", b"t", Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        store.incr("n", 41, None).await.unwrap();
        store.map_put("m", "f", b"x").await.unwrap();
        let until = now_millis() + 3_600_000;
        store.set_add("s", "member", until).await.unwrap();
        drop(store);

        let store = EmbeddedStore::open(&path).expect("reopens at once after a drop");
        assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(store.get("ttl").await.unwrap().as_deref(), Some(&b"t"[..]));
        assert_eq!(store.incr("n", 1, None).await.unwrap(), 42);
        assert_eq!(
            store.map_all("m").await.unwrap(),
            vec![("f".into(), b"x".to_vec())]
        );
        assert_eq!(
            store.set_members("s").await.unwrap(),
            vec![("member".into(), until)]
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let path = data.join("splitgate.redb");
        let _store = EmbeddedStore::open(&path).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&path), 0o600);
    }

    #[tokio::test]
    async fn a_second_open_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("splitgate.redb");
        let first = EmbeddedStore::open(&path).unwrap();
        let Err(err) = EmbeddedStore::open(&path) else {
            panic!("a second open of a held file must fail");
        };
        assert_eq!(
            err,
            StoreError::Failed(format!(
                "the store file {} is locked: another splitgate process probably holds it \
                 (stop that process, or give this one another store.data_dir)",
                path.display()
            ))
        );
        first.put("k", b"v", None).await.unwrap();
        drop(first);
        let again = EmbeddedStore::open(&path).expect("the lock goes with the store");
        assert_eq!(again.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_puts_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
        let before = store.commits();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let v = format!("value-{i}");
                    store.put(&format!("k{i}"), v.as_bytes(), None).await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let commits = store.commits() - before;
        for i in 0..200 {
            let value = store.get(&format!("k{i}")).await.unwrap();
            assert_eq!(value, Some(format!("value-{i}").into_bytes()));
        }
        assert!(
            commits < 200,
            "200 concurrent puts took {commits} commits: no group commit"
        );
    }

    fn rows<K: redb::Key + 'static, V: redb::Value + 'static>(
        store: &EmbeddedStore,
        table: TableDefinition<K, V>,
    ) -> u64 {
        let txn = store.db.begin_read().unwrap();
        txn.open_table(table).unwrap().len().unwrap()
    }

    #[tokio::test]
    async fn expired_entries_are_purged_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        let short = Some(Duration::from_millis(50));
        let now = now_millis();
        store.put("keep", b"v", None).await.unwrap();
        store.put("gone", b"v", short).await.unwrap();
        store.incr("counter", 1, short).await.unwrap();
        store.set_add("set", "keep", now + 3_600_000).await.unwrap();
        store.set_add("set", "gone", now + 50).await.unwrap();
        // A value that loses its TTL leaves the expiry index at once.
        store.put("was-expiring", b"v", short).await.unwrap();
        store.put("was-expiring", b"v", None).await.unwrap();
        assert_eq!(rows(&store, VALUES), 4);
        assert_eq!(rows(&store, VALUE_EXPIRY), 2);
        assert_eq!(rows(&store, SETS), 2);

        // No further calls: the writer purges on its own.
        wait_for("expired rows purged", || {
            rows(&store, VALUES) == 2
                && rows(&store, VALUE_EXPIRY) == 0
                && rows(&store, SETS) == 1
                && rows(&store, SET_EXPIRY) == 1
        })
        .await;
        assert!(store.get("keep").await.unwrap().is_some());
        assert!(store.get("was-expiring").await.unwrap().is_some());
        let members = store.set_members("set").await.unwrap();
        assert_eq!(members, vec![("keep".into(), now + 3_600_000)]);
    }

    #[tokio::test]
    async fn a_refused_step_leaves_the_rest_of_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        store.put("text", b"abc", None).await.unwrap();
        let incr = Op::Incr {
            key: "text".into(),
            by: 1,
            ttl: None,
        };
        let put = Op::Put {
            key: "k".into(),
            value: b"v".to_vec(),
            ttl: None,
        };
        let (answers, _) =
            super::writer::transact(&store.db, &[&incr, &put], false, &AtomicU64::new(0)).unwrap();
        assert_eq!(
            answers,
            vec![
                Err(StoreError::Failed("the value is not a counter".into())),
                Ok(Answer::Done)
            ]
        );
        assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(
            store.get("text").await.unwrap().as_deref(),
            Some(&b"abc"[..])
        );
    }

    /// A rough figure, not a check: `cargo test -p splitgate-shared --release
    /// embedded::tests::write_throughput -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement"]
    async fn write_throughput() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
        let started = std::time::Instant::now();
        for i in 0..200 {
            store.put(&format!("seq{i}"), b"v", None).await.unwrap();
        }
        let one_by_one = started.elapsed();
        let (writes, tasks) = (20_000, 200);
        let before = store.commits();
        let started = std::time::Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..writes / tasks {
                        store
                            .put(&format!("k{t}-{i}"), &[7; 200], None)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        let elapsed = started.elapsed();
        println!(
            "sequential: {:.0} puts/s; {tasks} concurrent writers: {:.0} puts/s in {} commits",
            200.0 / one_by_one.as_secs_f64(),
            f64::from(writes) / elapsed.as_secs_f64(),
            store.commits() - before
        );
    }

    #[test]
    fn errors_name_the_file_and_a_full_disk_is_full() {
        let path = std::path::Path::new("/data/splitgate.redb");
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let err = super::file::store_error(path, redb::StorageError::Io(full));
        assert!(
            matches!(&err, StoreError::Full(m) if m.starts_with("no space left for the store file /data/splitgate.redb")),
            "{err:?}"
        );
        let io = std::io::Error::other("bad sector");
        assert_eq!(
            super::file::store_error(path, redb::StorageError::Io(io)),
            StoreError::Unavailable("I/O error on /data/splitgate.redb: bad sector".into())
        );
        assert!(matches!(
            super::file::store_error(path, redb::StorageError::PreviousIo),
            StoreError::Unavailable(m) if m.contains("restart splitgate")
        ));
    }
}
