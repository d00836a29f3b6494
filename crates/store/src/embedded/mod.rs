//! The embedded store: a [`Store`] in one local file, over redb (pure Rust, copy-on-write
//! B-trees, crash-safe).
//!
//! Concurrency design. Transactions run concurrently and optimistically: each reads from a
//! redb read snapshot (MVCC, never blocked by writers) and buffers its writes in memory. Commits
//! are serialized, one writer at a time as redb allows: under the writer lock a commit is
//! checked against the keys written by every commit since its snapshot (see `conflicts`), and,
//! if serializable, written in one redb write transaction with `Durability::Immediate`, which
//! is fsync'ed before `commit` returns. A commit that would break serializability fails with
//! [`StoreError::Conflict`] and writes nothing.
//!
//! redb's calls can block on disk (reads that miss its cache, the fsync of a commit), so every
//! one of them runs on tokio's blocking pool (`spawn_blocking`), never on an async worker.
//! The in-memory bookkeeping (the commit log, the write buffer) is taken under short locks
//! that never wait for I/O.

mod conflicts;
mod merge;
mod txn;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, TableDefinition};

use crate::error::StoreError;
use crate::limits::Limits;
use crate::traits::Store;

use conflicts::{CommitLog, ReadSet};
pub use txn::EmbeddedTxn;

/// The one table holding every key.
const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("kv");

/// A read snapshot of the key table.
type Snapshot = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The embedded store, in one redb file.
///
/// The handle is cheap to clone and every clone shares one open database. redb locks the file,
/// so a second open of the same path, from this process or another, fails: open it once per
/// process and clone the handle.
///
/// Durability: [`Transaction::commit`](crate::Transaction::commit) returns after the data is
/// fsync'ed. A process killed at any moment (SIGKILL, power loss) reopens to the state of the
/// last commit that returned, or of one that was in flight, never to a mix.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// Where the file is, for messages; `None` in memory.
    path: Option<PathBuf>,
    /// Held for the whole of a commit (check, write, fsync), so commits are serialized.
    writer: Mutex<()>,
    /// Conflict bookkeeping; held only briefly, never across I/O.
    log: Mutex<CommitLog>,
}

impl EmbeddedStore {
    /// Opens the store at `path`, creating the file if it does not exist. After a crash, redb
    /// repairs the file on open, which can take a while for a large file.
    pub async fn open(path: impl AsRef<Path>) -> Result<EmbeddedStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        blocking(move || {
            let db = Database::create(&path).map_err(|error| {
                let error = redb_error(error);
                tracing::error!(path = %path.display(), %error, "cannot open the embedded store");
                error
            })?;
            EmbeddedStore::prepare(db, Some(path))
        })
        .await
    }

    /// A store held in memory only, gone when the last handle is dropped. It behaves as a file
    /// store does, minus durability: for tests and replays that need no file.
    pub async fn in_memory() -> Result<EmbeddedStore, StoreError> {
        blocking(|| {
            let db = Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(redb_error)?;
            EmbeddedStore::prepare(db, None)
        })
        .await
    }

    /// Closes the store if this is its last handle (no clone and no transaction left), on the
    /// blocking pool, and reports any error; otherwise only drops this handle.
    ///
    /// Dropping the last handle closes the store too, but on the dropping thread, ignoring
    /// errors: closing writes and syncs redb's clean-shutdown record, which is I/O an async
    /// worker should not wait for.
    pub async fn close(self) -> Result<(), StoreError> {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => blocking(move || inner.db.close().map_err(redb_error)).await,
            Err(_shared) => Ok(()),
        }
    }

    /// The file the store lives in, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Makes sure the key table exists, so that read snapshots can always open it.
    fn prepare(db: Database, path: Option<PathBuf>) -> Result<EmbeddedStore, StoreError> {
        let mut setup = db.begin_write().map_err(redb_error)?;
        setup
            .set_durability(Durability::Immediate)
            .map_err(redb_error)?;
        setup.open_table(TABLE).map_err(redb_error)?;
        setup.commit().map_err(redb_error)?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                path,
                writer: Mutex::new(()),
                log: Mutex::new(CommitLog::default()),
            }),
        })
    }
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Store for EmbeddedStore {
    type Txn = EmbeddedTxn;

    async fn begin(&self) -> Result<EmbeddedTxn, StoreError> {
        EmbeddedTxn::begin(Arc::clone(&self.inner)).await
    }

    fn limits(&self) -> Limits {
        Limits::STANDARD
    }
}

impl Inner {
    fn log(&self) -> MutexGuard<'_, CommitLog> {
        // The log is left consistent by every critical section (none can panic half-way
        // through an update that matters), so a poisoned lock is still usable.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a read snapshot of the key table. Blocking.
    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let read = self.db.begin_read().map_err(redb_error)?;
        read.open_table(TABLE).map_err(redb_error)
    }

    /// Checks and writes a transaction's writes as one durable redb commit. Blocking.
    fn commit(
        &self,
        snapshot_version: u64,
        reads: &ReadSet,
        writes: Vec<merge::Pending>,
    ) -> Result<(), StoreError> {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // No other commit can happen between this check and the write below: we hold the
        // writer lock.
        self.log().check(snapshot_version, reads)?;
        let mut write = self.db.begin_write().map_err(redb_error)?;
        write
            .set_durability(Durability::Immediate)
            .map_err(redb_error)?;
        {
            let mut table = write.open_table(TABLE).map_err(redb_error)?;
            for (key, value) in &writes {
                match value {
                    Some(value) => {
                        table
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(redb_error)?;
                    }
                    None => {
                        table.remove(key.as_slice()).map_err(redb_error)?;
                    }
                }
            }
        }
        write.commit().map_err(redb_error)?;
        // Recorded only once durable and visible, so a snapshot taken after registering at
        // this version is sure to include it.
        self.log()
            .record(writes.into_iter().map(|(key, _)| key).collect());
        Ok(())
    }
}

/// Runs a blocking storage call on tokio's blocking pool.
async fn blocking<T, F>(call: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result,
        // A panic in storage code is a bug: let it surface where the caller awaits.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(StoreError::Backend(format!(
            "storage task did not finish: {error}"
        ))),
    }
}

/// Sorts a redb error into the store's classes.
fn redb_error(error: impl Into<redb::Error>) -> StoreError {
    match error.into() {
        redb::Error::Io(error) => StoreError::Io(error),
        redb::Error::Corrupted(what) => StoreError::Corruption(what),
        redb::Error::DatabaseAlreadyOpen => StoreError::Backend(
            "the store's file is already open, in this process or another".to_string(),
        ),
        other => StoreError::Backend(format!("redb: {other}")),
    }
}
