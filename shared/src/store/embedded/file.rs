//! Opening the store file, and what redb's failures mean to an operator.

use std::fs::OpenOptions;
use std::path::Path;

use redb::backends::FileBackend;
use redb::{Builder, Database, DatabaseError};

use super::super::{StoreError, StoreResult};
use super::tables::Tables;

/// redb's page cache. Far more than an auth server's state needs; the
/// default (1 GiB) would let the cache alone grow past a small machine.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

pub(super) fn open_database(path: &Path) -> StoreResult<Database> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|e| {
            StoreError::Failed(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| {
        StoreError::Failed(format!(
            "cannot open the store file {}: {e}",
            path.display()
        ))
    })?;
    let backend = FileBackend::new(file).map_err(|e| open_error(path, e))?;
    let mut builder = Builder::new();
    // A file damaged outside redb is reported as corrupted rather than
    // trusted (where redb might panic); it costs one read of the file.
    builder
        .set_cache_size(CACHE_BYTES)
        .set_check_integrity_on_open(true);
    // Belt and braces for "never panic": a damaged file stops start-up with
    // a message, not a crash.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        builder.create_with_backend(backend)
    }));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(open_error(path, e)),
        Err(_) => Err(StoreError::Failed(format!(
            "the store file {} is damaged: redb could not read it",
            path.display()
        ))),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates every table up front, so that reads never meet a missing one.
pub(super) fn create_tables(db: &Database, path: &Path) -> StoreResult<()> {
    let created = (|| -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        drop(Tables::open(&txn)?);
        txn.commit()?;
        Ok(())
    })();
    created.map_err(|e| store_error(path, e))
}

fn open_error(path: &Path, err: DatabaseError) -> StoreError {
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            already_open(path)
        }
        DatabaseError::UpgradeRequired(version) => StoreError::Failed(format!(
            "the store file {} has the old redb file format {version} and must be upgraded \
             before this version of splitgate can open it",
            path.display()
        )),
        other => store_error(path, other),
    }
}

fn already_open(path: &Path) -> StoreError {
    StoreError::Failed(format!(
        "the store file {} is locked: another splitgate process probably holds it (stop \
         that process, or give this one another store.data_dir)",
        path.display()
    ))
}

/// Maps a redb failure on the file at `path` to a [`StoreError`] an
/// operator can act on.
pub(super) fn store_error(path: &Path, err: impl Into<redb::Error>) -> StoreError {
    let file = path.display();
    match err.into() {
        redb::Error::Io(e) if is_disk_full(&e) => {
            StoreError::Full(format!("no space left for the store file {file}: {e}"))
        }
        redb::Error::Io(e) => StoreError::Unavailable(format!("I/O error on {file}: {e}")),
        // redb refuses all further I/O after one failed: the store is down
        // until the file is reopened.
        redb::Error::PreviousIo => StoreError::Unavailable(format!(
            "an earlier I/O error stopped the store file {file}: restart splitgate once the \
             disk is healthy"
        )),
        redb::Error::DatabaseClosed => {
            StoreError::Unavailable(format!("the store file {file} is closed"))
        }
        redb::Error::Corrupted(what) => {
            StoreError::Failed(format!("the store file {file} is corrupted: {what}"))
        }
        redb::Error::ValueTooLarge(len) => StoreError::Failed(format!(
            "a value of {len} bytes is too large for the store file {file}"
        )),
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => already_open(path),
        other => StoreError::Failed(format!("the store file {file}: {other}")),
    }
}

fn is_disk_full(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded
    )
}
