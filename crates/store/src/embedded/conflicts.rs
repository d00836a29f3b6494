//! Optimistic conflict detection for the embedded store: what a transaction read, the keys
//! written by recent commits, and the check that decides whether a commit is serializable.
//!
//! Every transaction reads from the snapshot of some commit version. At commit time it is
//! serializable exactly when no commit with a later version wrote a key it read or a key inside
//! a range it scanned: then it is as if it ran, in full, right after the last commit and before
//! anything else. The log below keeps, for each recent commit, the keys it wrote, for as long
//! as a live transaction may need them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::error::StoreError;
use crate::scan::KeySpan;

/// How many bytes of written keys the log may hold. Past this the oldest commits are forgotten,
/// and a transaction that began before them can no longer be checked, so its commit reports a
/// conflict (it is retried on a fresh snapshot). Only a transaction left open for a very long
/// time under heavy writing meets this.
const MAX_RETAINED_KEY_BYTES: usize = 256 << 20;

/// What a transaction read from its snapshot.
#[derive(Debug, Default, Clone)]
pub(crate) struct ReadSet {
    keys: BTreeSet<Vec<u8>>,
    spans: Vec<KeySpan>,
}

impl ReadSet {
    pub(crate) fn add_key(&mut self, key: &[u8]) {
        if !self.keys.contains(key) {
            self.keys.insert(key.to_vec());
        }
    }

    pub(crate) fn add_span(&mut self, span: KeySpan) {
        if !span.is_empty() {
            self.spans.push(span);
        }
    }

    /// True if any of `written` is a key read or falls in a range scanned.
    fn meets(&self, written: &BTreeSet<Vec<u8>>) -> bool {
        let key_hit = if self.keys.len() <= written.len() {
            self.keys.iter().any(|key| written.contains(key))
        } else {
            written.iter().any(|key| self.keys.contains(key))
        };
        key_hit
            || self
                .spans
                .iter()
                .any(|span| written.range::<[u8], _>(span.bounds()).next().is_some())
    }
}

/// The keys written by one commit.
#[derive(Debug)]
struct Commit {
    version: u64,
    keys: BTreeSet<Vec<u8>>,
    bytes: usize,
}

/// The commit versions, the live transactions' snapshot versions, and the written keys of the
/// commits that a live transaction may still have to be checked against.
#[derive(Debug, Default)]
pub(crate) struct CommitLog {
    /// The version of the latest commit (0 before the first one since the store was opened).
    version: u64,
    /// Commits up to this version have been dropped from `commits`.
    floor: u64,
    commits: VecDeque<Commit>,
    retained_bytes: usize,
    /// Snapshot version of each live transaction, with how many share it.
    live: BTreeMap<u64, usize>,
}

impl CommitLog {
    /// Registers a new transaction and returns its snapshot version. The caller must take its
    /// storage snapshot after this call, so the snapshot holds at least every commit up to the
    /// version returned (a later one can only cause a needless conflict, never a missed one).
    pub(crate) fn register(&mut self) -> u64 {
        *self.live.entry(self.version).or_default() += 1;
        self.version
    }

    /// Forgets a transaction registered at `version`.
    pub(crate) fn deregister(&mut self, version: u64) {
        if let Some(count) = self.live.get_mut(&version) {
            *count -= 1;
            if *count == 0 {
                self.live.remove(&version);
            }
        }
        self.prune();
    }

    /// Ok if a transaction with this snapshot version and read set may commit now.
    pub(crate) fn check(&self, snapshot: u64, reads: &ReadSet) -> Result<(), StoreError> {
        if snapshot < self.floor {
            // Commits it would have to be checked against are forgotten.
            return Err(StoreError::Conflict);
        }
        let newer = self
            .commits
            .iter()
            .filter(|commit| commit.version > snapshot);
        for commit in newer {
            if reads.meets(&commit.keys) {
                return Err(StoreError::Conflict);
            }
        }
        Ok(())
    }

    /// Records a commit that is now durable and visible to new snapshots.
    pub(crate) fn record(&mut self, keys: BTreeSet<Vec<u8>>) {
        self.version += 1;
        let bytes = keys.iter().map(Vec::len).sum();
        self.retained_bytes += bytes;
        self.commits.push_back(Commit {
            version: self.version,
            keys,
            bytes,
        });
        self.prune();
    }

    /// Drops the commits no live transaction can need: those at or below the oldest live
    /// snapshot, and the oldest ones beyond the size bound.
    fn prune(&mut self) {
        let needed_after = self.live.keys().next().copied().unwrap_or(self.version);
        while let Some(oldest) = self.commits.front() {
            if oldest.version > needed_after && self.retained_bytes <= MAX_RETAINED_KEY_BYTES {
                break;
            }
            self.retained_bytes -= oldest.bytes;
            self.floor = self.floor.max(oldest.version);
            self.commits.pop_front();
        }
        if self.commits.is_empty() {
            // Nothing below the current version is kept, and no live snapshot is older than
            // `needed_after`: raising the floor to it loses nothing.
            self.floor = self.floor.max(needed_after.min(self.version));
        }
    }

    #[cfg(test)]
    fn retained(&self) -> usize {
        self.commits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Scan;

    fn keys(list: &[&[u8]]) -> BTreeSet<Vec<u8>> {
        list.iter().map(|key| key.to_vec()).collect()
    }

    #[test]
    fn a_key_read_and_written_since_the_snapshot_conflicts() {
        let mut log = CommitLog::default();
        let snapshot = log.register();
        let mut reads = ReadSet::default();
        reads.add_key(b"a");
        log.record(keys(&[b"b"]));
        assert!(log.check(snapshot, &reads).is_ok(), "b was not read");
        log.record(keys(&[b"a"]));
        assert!(matches!(
            log.check(snapshot, &reads),
            Err(StoreError::Conflict)
        ));
    }

    #[test]
    fn a_key_written_inside_a_scanned_range_conflicts() {
        let mut log = CommitLog::default();
        let snapshot = log.register();
        let mut reads = ReadSet::default();
        reads.add_span(Scan::prefix(b"p/").span());
        log.record(keys(&[b"p", b"q"]));
        assert!(log.check(snapshot, &reads).is_ok());
        log.record(keys(&[b"p/new"]));
        assert!(matches!(
            log.check(snapshot, &reads),
            Err(StoreError::Conflict)
        ));
    }

    #[test]
    fn commits_before_the_snapshot_do_not_conflict() {
        let mut log = CommitLog::default();
        log.record(keys(&[b"a"]));
        let snapshot = log.register();
        let mut reads = ReadSet::default();
        reads.add_key(b"a");
        assert!(log.check(snapshot, &reads).is_ok());
    }

    #[test]
    fn commits_are_kept_only_while_a_live_transaction_may_need_them() {
        let mut log = CommitLog::default();
        log.record(keys(&[b"a"]));
        assert_eq!(log.retained(), 0, "nobody is live");
        let old = log.register();
        log.record(keys(&[b"b"]));
        log.record(keys(&[b"c"]));
        assert_eq!(log.retained(), 2);
        let newer = log.register();
        log.deregister(old);
        assert_eq!(log.retained(), 0, "the live transaction began after both");
        log.record(keys(&[b"d"]));
        assert_eq!(log.retained(), 1);
        let mut reads = ReadSet::default();
        reads.add_key(b"d");
        assert!(matches!(
            log.check(newer, &reads),
            Err(StoreError::Conflict)
        ));
        log.deregister(newer);
        assert_eq!(log.retained(), 0);
    }
}
