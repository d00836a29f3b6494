//! The model check: random sequences of transactions (puts, deletes, gets, scans of every
//! shape, commits, aborts) run against the store and against a `BTreeMap` model, which must
//! agree on every read and on the final contents.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use crate::scan::{Scan, prefix_end};
use crate::traits::{Entry, Store, Transaction};

/// One step of a generated run. Keys are short and drawn from a few byte values, so that
/// writes, reads and bounds meet often, including at the edges of the byte range.
#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Get(Vec<u8>),
    Scan {
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: Option<usize>,
        reverse: bool,
    },
    Commit,
    Abort,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    vec(select(&[0x00u8, 0x01, 0x7f, 0xfe, 0xff][..]), 0..=3)
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        Just(Bound::Unbounded),
        key().prop_map(Bound::Included),
        key().prop_map(Bound::Excluded),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (key(), vec(any::<u8>(), 0..6)).prop_map(|(key, value)| Op::Put(key, value)),
        2 => key().prop_map(Op::Delete),
        2 => key().prop_map(Op::Get),
        3 => (bound(), bound(), option::of(0usize..4), any::<bool>()).prop_map(
            |(start, end, limit, reverse)| Op::Scan { start, end, limit, reverse }
        ),
        1 => Just(Op::Commit),
        1 => Just(Op::Abort),
    ]
}

/// Runs `cases` generated runs (or `PROPTEST_CASES`) against `store`, each in a key space of
/// its own, so the store need not be emptied between them. Prints the seed; set
/// `PROPTEST_RNG_SEED` to it to replay a failure.
pub fn model_check<S: Store>(runtime: &tokio::runtime::Runtime, store: &S, cases: u32) {
    let from_env = Config::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        from_env.cases
    } else {
        cases
    };
    let seed = match from_env.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(1),
    };
    println!("model check: {cases} cases, seed {seed} (replay with PROPTEST_RNG_SEED={seed})");
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..from_env
    };
    let mut runner = TestRunner::new(config);
    let next_case = AtomicU64::new(0);
    let result = runner.run(&vec(op(), 1..48), |ops| {
        let case = next_case.fetch_add(1, Ordering::Relaxed);
        runtime
            .block_on(run_case(store, case, &ops))
            .map_err(TestCaseError::fail)
    });
    if let Err(failure) = result {
        panic!("model check failed (seed {seed}): {failure}");
    }
}

/// The key space of one case.
struct Space(Vec<u8>);

impl Space {
    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = self.0.clone();
        full.extend_from_slice(key);
        full
    }

    fn bound(&self, bound: &Bound<Vec<u8>>, unbounded: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
        match bound {
            Bound::Included(key) => Bound::Included(self.key(key)),
            Bound::Excluded(key) => Bound::Excluded(self.key(key)),
            Bound::Unbounded => unbounded,
        }
    }

    fn scan(&self, start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> Scan {
        let lowest = Bound::Included(self.0.clone());
        let beyond = match prefix_end(&self.0) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        let start = self.bound(start, lowest);
        let end = self.bound(end, beyond);
        Scan::range((
            start.as_ref().map(Vec::as_slice),
            end.as_ref().map(Vec::as_slice),
        ))
    }

    fn strip(&self, entries: Vec<Entry>) -> Result<Vec<Entry>, String> {
        entries
            .into_iter()
            .map(|(key, value)| match key.strip_prefix(self.0.as_slice()) {
                Some(short) => Ok((short.to_vec(), value)),
                None => Err(format!(
                    "scan returned {key:?}, outside the case's key space"
                )),
            })
            .collect()
    }
}

/// What the model says a read should see: the committed map with the open transaction's
/// writes laid over it.
fn view(
    committed: &BTreeMap<Vec<u8>, Vec<u8>>,
    pending: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut seen = committed.clone();
    for (key, value) in pending {
        match value {
            Some(value) => seen.insert(key.clone(), value.clone()),
            None => seen.remove(key),
        };
    }
    seen
}

async fn run_case<S: Store>(store: &S, case: u64, ops: &[Op]) -> Result<(), String> {
    let space = Space(format!("model/{case:010}/").into_bytes());
    let failed = |step: usize, what: &str, error: crate::StoreError| {
        format!("step {step} ({what}): store error {error}")
    };
    let mut committed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut pending: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let mut open: Option<S::Txn> = None;

    for (step, op) in ops.iter().enumerate() {
        if open.is_none() {
            open = Some(
                store
                    .begin()
                    .await
                    .map_err(|error| failed(step, "begin", error))?,
            );
        }
        let txn = open.as_mut().expect("a transaction was just begun");
        match op {
            Op::Put(key, value) => {
                txn.put(&space.key(key), value)
                    .map_err(|error| failed(step, "put", error))?;
                pending.insert(key.clone(), Some(value.clone()));
            }
            Op::Delete(key) => {
                txn.delete(&space.key(key))
                    .map_err(|error| failed(step, "delete", error))?;
                pending.insert(key.clone(), None);
            }
            Op::Get(key) => {
                let got = txn
                    .get(&space.key(key))
                    .await
                    .map_err(|error| failed(step, "get", error))?;
                let want = view(&committed, &pending).get(key).cloned();
                if got != want {
                    return Err(format!(
                        "step {step}: get {key:?}: store {got:?}, model {want:?}"
                    ));
                }
            }
            Op::Scan {
                start,
                end,
                limit,
                reverse,
            } => {
                let mut request = space.scan(start, end);
                if let Some(limit) = limit {
                    request = request.limit(*limit);
                }
                if *reverse {
                    request = request.reverse();
                }
                let got = txn
                    .scan(&request)
                    .await
                    .map_err(|error| failed(step, "scan", error))?;
                let got = space.strip(got)?;
                let range = (start.clone(), end.clone());
                let matching = view(&committed, &pending)
                    .into_iter()
                    .filter(|(key, _)| range.contains(key));
                let mut want: Vec<_> = if *reverse {
                    matching.rev().collect()
                } else {
                    matching.collect()
                };
                want.truncate(limit.unwrap_or(usize::MAX));
                if got != want {
                    return Err(format!(
                        "step {step}: {op:?}: store {got:?}, model {want:?}"
                    ));
                }
            }
            Op::Commit => {
                let txn = open.take().expect("open");
                txn.commit()
                    .await
                    .map_err(|error| failed(step, "commit", error))?;
                committed = view(&committed, &pending);
                pending.clear();
            }
            Op::Abort => {
                open = None;
                pending.clear();
            }
        }
    }
    if let Some(txn) = open.take() {
        txn.commit()
            .await
            .map_err(|error| failed(ops.len(), "final commit", error))?;
        committed = view(&committed, &pending);
    }

    let mut check = store
        .begin()
        .await
        .map_err(|error| failed(ops.len(), "begin", error))?;
    let everything = space.scan(&Bound::Unbounded, &Bound::Unbounded);
    let stored = check
        .scan(&everything)
        .await
        .map_err(|error| failed(ops.len(), "scan", error))?;
    let stored = space.strip(stored)?;
    let want: Vec<_> = committed.into_iter().collect();
    if stored != want {
        return Err(format!("final contents: store {stored:?}, model {want:?}"));
    }
    Ok(())
}
