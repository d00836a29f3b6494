//! The FoundationDB store (feature `foundationdb`): a [`Store`] over a FoundationDB cluster,
//! confined to one subspace (key prefix) per service, so that replicas of a service share its
//! state and any replica can apply the next block.
//!
//! FoundationDB provides what the trait promises natively: serializable transactions with
//! read-your-writes, conflicts reported at commit (`not_committed`, 1020). This module adds the
//! key prefix, the crate's uniform limit checks and the mapping of FoundationDB's error codes.
//!
//! Process lifetime: the client's network thread starts on the first [`FdbStore::open`] and
//! must be stopped with [`stop_network`] before the process exits.
//!
//! Transactions are subject to FoundationDB's own rules as well, notably its five-second limit
//! on a transaction's life; such an error is [`StoreError::Transient`], and `Store::run`
//! retries it.

mod network;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use foundationdb::options::StreamingMode;
use foundationdb::{Database, FdbError, KeySelector, RangeOption, Transaction as FdbTransaction};

use crate::error::StoreError;
use crate::limits::{Limits, MAX_KEY_SIZE, WriteBudget};
use crate::scan::{Scan, prefix_end};
use crate::traits::{Entry, Store, Transaction};

pub use network::stop_network;

/// The longest key prefix accepted, in bytes. The prefix counts against FoundationDB's key
/// limit, so it lowers this store's [`Limits::max_key_size`] by its length.
pub const MAX_PREFIX_SIZE: usize = 1_000;

/// A store over a FoundationDB cluster, within one key prefix.
///
/// Cheap to clone; clones share the database handle.
///
/// The first `open` in a process starts FoundationDB's client network thread, which serves
/// every store of the process. The application must call [`stop_network`] before it exits
/// (after its last use of any `FdbStore`), as FoundationDB's client requires; being killed is
/// fine.
///
/// Limits: as every store, except that a key may be at most `10,000 - prefix length` bytes,
/// since FoundationDB's limit applies to the stored key, prefix included.
#[derive(Clone)]
pub struct FdbStore {
    db: Arc<Database>,
    prefix: Arc<[u8]>,
    limits: Limits,
}

impl FdbStore {
    /// Opens the cluster described by `cluster_file` (FoundationDB's default file if `None`),
    /// for the keys under `key_prefix`.
    ///
    /// The prefix must be 1 to [`MAX_PREFIX_SIZE`] bytes and must not start with `0xff`
    /// (FoundationDB's system keys). Give each service its own prefix, none a prefix of another.
    pub async fn open(
        cluster_file: Option<&Path>,
        key_prefix: &[u8],
    ) -> Result<FdbStore, StoreError> {
        check_prefix(key_prefix)?;
        let cluster_file = match cluster_file {
            None => None,
            Some(path) => Some(path.to_str().ok_or_else(|| StoreError::InvalidArgument {
                what: "cluster file path",
                reason: format!("{} is not valid UTF-8", path.display()),
            })?),
        };
        network::ensure_started()?;
        let db =
            Database::new(cluster_file).map_err(|error| fdb_error(error, 0, Limits::STANDARD))?;
        let limits = Limits {
            max_key_size: MAX_KEY_SIZE - key_prefix.len(),
            ..Limits::STANDARD
        };
        Ok(FdbStore {
            db: Arc::new(db),
            prefix: Arc::from(key_prefix),
            limits,
        })
    }

    /// The key prefix of this store's subspace.
    pub fn key_prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Deletes every key of this store's subspace, in one transaction. For tests and tools.
    pub async fn clear_subspace(&self) -> Result<(), StoreError> {
        let trx = self
            .db
            .create_trx()
            .map_err(|error| fdb_error(error, 0, self.limits))?;
        let end = subspace_end(&self.prefix);
        trx.clear_range(&self.prefix, &end);
        trx.commit()
            .await
            .map_err(|error| fdb_error(*error, 0, self.limits))?;
        Ok(())
    }
}

fn check_prefix(prefix: &[u8]) -> Result<(), StoreError> {
    let reason = if prefix.is_empty() {
        "must not be empty: each service needs a subspace of its own".to_string()
    } else if prefix[0] == 0xff {
        "must not start with 0xff, FoundationDB's system keys".to_string()
    } else if prefix.len() > MAX_PREFIX_SIZE {
        format!(
            "is {} bytes, more than the {MAX_PREFIX_SIZE} allowed",
            prefix.len()
        )
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidArgument {
        what: "key prefix",
        reason,
    })
}

/// The first key after the subspace. Exists: a valid prefix does not start with 0xff.
fn subspace_end(prefix: &[u8]) -> Vec<u8> {
    prefix_end(prefix).unwrap_or_else(|| vec![0xff])
}

impl fmt::Debug for FdbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdbStore")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .finish_non_exhaustive()
    }
}

impl Store for FdbStore {
    type Txn = FdbTxn;

    async fn begin(&self) -> Result<FdbTxn, StoreError> {
        let trx = self
            .db
            .create_trx()
            .map_err(|error| fdb_error(error, 0, self.limits))?;
        Ok(FdbTxn {
            trx,
            prefix: Arc::clone(&self.prefix),
            budget: WriteBudget::new(self.limits),
        })
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}

/// A transaction of an [`FdbStore`].
pub struct FdbTxn {
    trx: FdbTransaction,
    prefix: Arc<[u8]>,
    budget: WriteBudget,
}

impl FdbTxn {
    fn stored_key(&self, key: &[u8]) -> Vec<u8> {
        let mut stored = Vec::with_capacity(self.prefix.len() + key.len());
        stored.extend_from_slice(&self.prefix);
        stored.extend_from_slice(key);
        stored
    }

    fn fail(&self, error: FdbError) -> StoreError {
        fdb_error(error, self.budget.used(), *self.budget.limits())
    }
}

impl fmt::Debug for FdbTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdbTxn")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("write_set_bytes", &self.budget.used())
            .finish_non_exhaustive()
    }
}

impl Transaction for FdbTxn {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.budget.limits().check_key(key)?;
        let stored = self.stored_key(key);
        match self.trx.get(&stored, false).await {
            Ok(found) => Ok(found.map(|value| value.to_vec())),
            Err(error) => Err(self.fail(error)),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.budget.put(key, value)?;
        self.trx.set(&self.stored_key(key), value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.budget.delete(key)?;
        self.trx.clear(&self.stored_key(key));
        Ok(())
    }

    async fn scan(&mut self, scan: &Scan) -> Result<Vec<Entry>, StoreError> {
        let span = scan.span();
        let limit = scan.max_entries();
        if span.is_empty() || limit == Some(0) {
            return Ok(Vec::new());
        }
        let begin = self.stored_key(&span.begin);
        let end = match &span.end {
            Some(end) => self.stored_key(end),
            None => subspace_end(&self.prefix),
        };
        let mut request = RangeOption {
            begin: KeySelector::first_greater_or_equal(begin),
            end: KeySelector::first_greater_or_equal(end),
            limit,
            reverse: scan.is_reverse(),
            mode: StreamingMode::WantAll,
            ..RangeOption::default()
        };
        let mut entries = Vec::new();
        let mut iteration = 1;
        loop {
            let batch = match self.trx.get_range(&request, iteration, false).await {
                Ok(batch) => batch,
                Err(error) => return Err(self.fail(error)),
            };
            for entry in &batch {
                let key = entry.key().get(self.prefix.len()..).ok_or_else(|| {
                    StoreError::Corruption(
                        "FoundationDB returned a key outside the range asked for".into(),
                    )
                })?;
                entries.push((key.to_vec(), entry.value().to_vec()));
            }
            match request.next_range(&batch) {
                Some(next) => request = next,
                None => break,
            }
            iteration += 1;
        }
        Ok(entries)
    }

    async fn commit(self) -> Result<(), StoreError> {
        self.budget.check_commit()?;
        let used = self.budget.used();
        let limits = *self.budget.limits();
        match self.trx.commit().await {
            Ok(_) => Ok(()),
            Err(error) => Err(fdb_error(*error, used, limits)),
        }
    }
}

/// Sorts a FoundationDB error into the store's classes. `used` is the transaction's write set
/// size, reported if FoundationDB finds the transaction too large.
fn fdb_error(error: FdbError, used: usize, limits: Limits) -> StoreError {
    const NOT_COMMITTED: i32 = 1020;
    const COMMIT_UNKNOWN_RESULT: i32 = 1021;
    const TRANSACTION_TOO_LARGE: i32 = 2101;
    const KEY_TOO_LARGE: i32 = 2102;
    const VALUE_TOO_LARGE: i32 = 2103;
    let code = error.code();
    match code {
        NOT_COMMITTED => StoreError::Conflict,
        COMMIT_UNKNOWN_RESULT => StoreError::CommitUnknown,
        // FoundationDB also counts the prefix and its own overhead, so it can refuse a write
        // set our count still admits.
        TRANSACTION_TOO_LARGE => StoreError::TransactionTooLarge {
            size: used.max(limits.max_write_set_size + 1),
            limit: limits.max_write_set_size,
        },
        KEY_TOO_LARGE | VALUE_TOO_LARGE => StoreError::InvalidArgument {
            what: "key or value",
            reason: format!("FoundationDB refused it: {} ({code})", error.message()),
        },
        _ if error.is_maybe_committed() => StoreError::CommitUnknown,
        _ if error.is_retryable() => StoreError::Transient {
            reason: format!("{} ({code})", error.message()),
        },
        _ => StoreError::Backend(format!("FoundationDB: {} ({code})", error.message())),
    }
}
