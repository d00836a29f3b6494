//! A transaction of the embedded store: a redb read snapshot, an in-memory write buffer, and
//! the record of what was read, checked at commit.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use super::conflicts::ReadSet;
use super::merge::{Pending, merge};
use super::{Inner, Snapshot, blocking, redb_error};
use crate::error::StoreError;
use crate::limits::{Limits, WriteBudget};
use crate::scan::{KeySpan, Scan, successor};
use crate::traits::{Entry, Transaction};

/// An entry as a redb range yields it.
type StoredEntry = Result<
    (
        redb::AccessGuard<'static, &'static [u8]>,
        redb::AccessGuard<'static, &'static [u8]>,
    ),
    redb::StorageError,
>;

fn copy_entry(entry: StoredEntry) -> Result<Entry, StoreError> {
    entry
        .map(|(key, value)| (key.value().to_vec(), value.value().to_vec()))
        .map_err(redb_error)
}

/// A transaction of an [`EmbeddedStore`](super::EmbeddedStore).
pub struct EmbeddedTxn {
    inner: Arc<Inner>,
    registration: Registration,
    snapshot: Arc<Snapshot>,
    /// Buffered writes: `Some(value)` to put, `None` to delete.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    reads: ReadSet,
    budget: WriteBudget,
}

/// A live transaction's entry in the commit log; leaves it when dropped.
struct Registration {
    inner: Arc<Inner>,
    version: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.inner.log().deregister(self.version);
    }
}

impl EmbeddedTxn {
    pub(super) async fn begin(inner: Arc<Inner>) -> Result<EmbeddedTxn, StoreError> {
        // Register first, then take the snapshot: the snapshot then holds at least every
        // commit up to the registered version (see `CommitLog::register`).
        let version = inner.log().register();
        let registration = Registration {
            inner: Arc::clone(&inner),
            version,
        };
        let snapshot = {
            let inner = Arc::clone(&inner);
            blocking(move || inner.snapshot()).await?
        };
        Ok(EmbeddedTxn {
            inner,
            registration,
            snapshot: Arc::new(snapshot),
            writes: BTreeMap::new(),
            reads: ReadSet::default(),
            budget: WriteBudget::new(Limits::STANDARD),
        })
    }
}

impl fmt::Debug for EmbeddedTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedTxn")
            .field("snapshot_version", &self.registration.version)
            .field("buffered_writes", &self.writes.len())
            .field("write_set_bytes", &self.budget.used())
            .finish_non_exhaustive()
    }
}

impl Transaction for EmbeddedTxn {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.budget.limits().check_key(key)?;
        if let Some(written) = self.writes.get(key) {
            // Our own write: the answer does not depend on the snapshot, so it is not a read
            // that a later commit could invalidate.
            return Ok(written.clone());
        }
        self.reads.add_key(key);
        let snapshot = Arc::clone(&self.snapshot);
        let key = key.to_vec();
        blocking(move || {
            let found = snapshot.get(key.as_slice()).map_err(redb_error)?;
            Ok(found.map(|value| value.value().to_vec()))
        })
        .await
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.budget.put(key, value)?;
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.budget.delete(key)?;
        self.writes.insert(key.to_vec(), None);
        Ok(())
    }

    async fn scan(&mut self, scan: &Scan) -> Result<Vec<Entry>, StoreError> {
        let span = scan.span();
        let limit = scan.max_entries();
        let reverse = scan.is_reverse();
        if span.is_empty() || limit == Some(0) {
            return Ok(Vec::new());
        }
        let pending: Vec<Pending> = self
            .writes
            .range::<[u8], _>(span.bounds())
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let snapshot = Arc::clone(&self.snapshot);
        let bounds = span.clone();
        let entries = blocking(move || {
            let end = match &bounds.end {
                Some(end) => Bound::Excluded(end.as_slice()),
                None => Bound::Unbounded,
            };
            let range = snapshot
                .range::<&[u8]>((Bound::Included(bounds.begin.as_slice()), end))
                .map_err(redb_error)?;
            if reverse {
                merge(range.rev().map(copy_entry), pending, true, limit)
            } else {
                merge(range.map(copy_entry), pending, false, limit)
            }
        })
        .await?;
        self.reads
            .add_span(read_span(span, &entries, reverse, limit));
        Ok(entries)
    }

    async fn commit(self) -> Result<(), StoreError> {
        self.budget.check_commit()?;
        if self.writes.is_empty() {
            // A read-only transaction is serializable at its snapshot; nothing to check.
            return Ok(());
        }
        let EmbeddedTxn {
            inner,
            registration,
            snapshot,
            writes,
            reads,
            ..
        } = self;
        // Let redb reclaim the snapshot's pages as soon as it can.
        drop(snapshot);
        let writes: Vec<Pending> = writes.into_iter().collect();
        let result = blocking(move || {
            let result = inner.commit(registration.version, &reads, writes);
            // Stay registered until checked, so the commits we were checked against were kept.
            drop(registration);
            result
        })
        .await;
        if let Err(error) = &result {
            tracing::debug!(%error, "embedded commit refused or failed");
        }
        result
    }
}

/// The keys a scan's answer depends on. A scan cut short by its limit depends only on the keys
/// up to the last one returned (from the first key, or down from the end when reversed):
/// a write beyond that could not have changed the answer.
fn read_span(span: KeySpan, entries: &[Entry], reverse: bool, limit: Option<usize>) -> KeySpan {
    let cut_short = limit.is_some_and(|limit| entries.len() >= limit);
    match entries.last() {
        Some((last, _)) if cut_short => {
            if reverse {
                KeySpan {
                    begin: last.clone(),
                    end: span.end,
                }
            } else {
                KeySpan {
                    begin: span.begin,
                    end: Some(successor(last)),
                }
            }
        }
        _ => span,
    }
}
