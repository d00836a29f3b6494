//! The conformance suite: the behaviour every [`Store`] implementation must show, written once
//! and run against each implementation by its own test file.
//!
//! A test file provides a fixture function, `async fn() -> Option<Fixture<S>>` that gives a
//! fresh, empty store (or `None` when the implementation cannot be tested here, after saying
//! why), and expands [`conformance_suite!`](crate::conformance_suite) with it; that generates
//! one test per check below. An implementation whose tests must share a process-wide resource
//! and release it at the end calls [`run_all`] and [`model_check`] from a single test instead.
//! Each check panics with a message naming what differed.

mod model;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::Bound;

use crate::error::StoreError;
use crate::limits::{Limits, MAX_KEY_SIZE, MAX_VALUE_SIZE, MAX_WRITE_SET_SIZE};
use crate::scan::Scan;
use crate::traits::{Entry, Store, Transaction};

pub use model::model_check;

/// A store under test, with whatever must live as long as it (a temporary directory...).
pub struct Fixture<S> {
    /// The store, empty when the fixture is made.
    pub store: S,
    _keep: Box<dyn Any + Send + Sync>,
}

impl<S> Fixture<S> {
    /// A fixture that needs nothing kept alive.
    pub fn new(store: S) -> Self {
        Fixture {
            store,
            _keep: Box::new(()),
        }
    }

    /// A fixture that keeps `guard` alive as long as the store.
    pub fn keeping(store: S, guard: impl Any + Send + Sync) -> Self {
        Fixture {
            store,
            _keep: Box::new(guard),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Fixture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Generates the conformance tests for one implementation, one test per check, given the path
/// of an `async fn() -> Option<Fixture<S>>` that makes a fresh store (or says why it cannot and
/// returns `None`, which makes each test pass without checking anything). The calling crate
/// needs `tokio` (features `macros`, `rt-multi-thread`) among its dependencies.
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:path) => {
        $crate::__conformance_checks!(__conformance_async_tests!($fixture;));

        #[test]
        fn model_check_against_a_btreemap() {
            let runtime = ::tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            if let Some(fixture) = runtime.block_on($fixture()) {
                $crate::conformance::model_check(&runtime, &fixture.store, 48);
            }
        }
    };
}

/// The list of checks, written once: expands `$crate::$then!(<given tokens> check, ...)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_checks {
    ($then:ident ! ($($given:tt)*)) => {
        $crate::$then!(
            $($given)*
            get_put_delete,
            read_your_writes,
            scans_honour_bounds_limit_and_order,
            scans_see_own_writes,
            dropped_transaction_writes_nothing,
            commit_is_atomic,
            reads_are_repeatable,
            read_then_write_conflicts,
            scan_then_insert_in_range_conflicts,
            blind_writes_do_not_conflict,
            disjoint_transactions_both_commit,
            read_only_transactions_always_commit,
            run_retries_conflicts_until_serial,
            key_size_limit,
            value_size_limit,
            write_set_size_limit,
            arbitrary_bytes_round_trip,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_async_tests {
    ($fixture:path; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(fixture) = $fixture().await {
                    $crate::conformance::$check(&fixture.store).await;
                }
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_in_sequence {
    ($fresh:ident; $($check:ident),* $(,)?) => {
        $(
            {
                let fixture = $fresh().await;
                $crate::conformance::$check(&fixture.store).await;
                println!("conformance: {} passed", stringify!($check));
            }
        )*
    };
}

/// Runs every check except the model check (which needs to block: call [`model_check`] outside
/// the runtime), one after another, each on a fresh store from `fresh`. For implementations
/// whose tests must share one process-wide resource and release it at the end, as
/// FoundationDB's network thread.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = Fixture<S>>,
{
    crate::__conformance_checks!(__conformance_in_sequence!(fresh;));
}

// ---- helpers -------------------------------------------------------------------------------

type Entries = Vec<Entry>;

async fn begin<S: Store>(store: &S) -> S::Txn {
    store.begin().await.expect("begin a transaction")
}

async fn write<S: Store>(store: &S, entries: &[(&[u8], &[u8])]) {
    let mut txn = begin(store).await;
    for (key, value) in entries {
        txn.put(key, value).expect("put");
    }
    txn.commit().await.expect("commit");
}

async fn read<S: Store>(store: &S, key: &[u8]) -> Option<Vec<u8>> {
    begin(store).await.get(key).await.expect("get")
}

async fn scan<S: Store>(store: &S, scan: &Scan) -> Entries {
    begin(store).await.scan(scan).await.expect("scan")
}

fn owned(entries: &[(&[u8], &[u8])]) -> Entries {
    entries
        .iter()
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect()
}

fn keys(entries: &Entries) -> Vec<Vec<u8>> {
    entries.iter().map(|(key, _)| key.clone()).collect()
}

fn key_list(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|key| key.to_vec()).collect()
}

// ---- basic operations ----------------------------------------------------------------------

/// Put, overwrite, delete, and delete of a missing key.
pub async fn get_put_delete<S: Store>(store: &S) {
    assert_eq!(read(store, b"k").await, None, "a fresh store holds nothing");
    write(store, &[(b"k", b"v1")]).await;
    assert_eq!(read(store, b"k").await.as_deref(), Some(&b"v1"[..]));
    write(store, &[(b"k", b"v2")]).await;
    assert_eq!(
        read(store, b"k").await.as_deref(),
        Some(&b"v2"[..]),
        "overwrite"
    );

    let mut txn = begin(store).await;
    txn.delete(b"k").expect("delete");
    txn.delete(b"never-written")
        .expect("deleting a missing key is fine");
    txn.commit().await.expect("commit");
    assert_eq!(read(store, b"k").await, None, "deleted");
    assert_eq!(scan(store, &Scan::all()).await, Entries::new());
}

/// A transaction reads its own puts and deletes; others do not see them before commit.
pub async fn read_your_writes<S: Store>(store: &S) {
    write(store, &[(b"a", b"1")]).await;
    let mut txn = begin(store).await;
    txn.put(b"b", b"2").expect("put");
    assert_eq!(
        txn.get(b"b").await.expect("get").as_deref(),
        Some(&b"2"[..])
    );
    txn.put(b"a", b"3").expect("put");
    assert_eq!(
        txn.get(b"a").await.expect("get").as_deref(),
        Some(&b"3"[..])
    );
    txn.delete(b"a").expect("delete");
    assert_eq!(txn.get(b"a").await.expect("get"), None, "own delete");
    txn.put(b"a", b"4").expect("put");
    txn.delete(b"a").expect("delete");
    assert_eq!(txn.get(b"a").await.expect("get"), None, "put then delete");

    let mut other = begin(store).await;
    assert_eq!(
        other.get(b"a").await.expect("get").as_deref(),
        Some(&b"1"[..]),
        "uncommitted"
    );
    assert_eq!(other.get(b"b").await.expect("get"), None, "uncommitted");
    drop(other);

    txn.commit().await.expect("commit");
    assert_eq!(scan(store, &Scan::all()).await, owned(&[(b"b", b"2")]));
}

/// Bounds (inclusive, exclusive, open), prefixes, limits, reverse order, empty ranges.
pub async fn scans_honour_bounds_limit_and_order<S: Store>(store: &S) {
    let stored: [&[u8]; 8] = [
        b"a",
        b"a\x00",
        b"a\x01",
        b"ab",
        b"b",
        b"b\xff",
        b"b\xff\xff",
        b"c",
    ];
    let mut txn = begin(store).await;
    for key in stored {
        txn.put(key, &[key.len() as u8]).expect("put");
    }
    txn.commit().await.expect("commit");

    let a: &[u8] = b"a";
    let ab: &[u8] = b"ab";
    let b: &[u8] = b"b";
    let table: Vec<(&str, Scan, Vec<&[u8]>)> = vec![
        ("all", Scan::all(), stored.to_vec()),
        (
            "all, reverse",
            Scan::all().reverse(),
            stored.iter().rev().copied().collect(),
        ),
        (
            "a..b",
            Scan::range(a..b),
            vec![b"a", b"a\x00", b"a\x01", b"ab"],
        ),
        (
            "a..=b",
            Scan::range(a..=b),
            vec![b"a", b"a\x00", b"a\x01", b"ab", b"b"],
        ),
        (
            "(a, b]",
            Scan::range((Bound::Excluded(a), Bound::Included(b))),
            vec![b"a\x00", b"a\x01", b"ab", b"b"],
        ),
        ("..ab", Scan::range(..ab), vec![b"a", b"a\x00", b"a\x01"]),
        (
            "b..",
            Scan::range(b..),
            vec![b"b", b"b\xff", b"b\xff\xff", b"c"],
        ),
        (
            "prefix a",
            Scan::prefix(b"a"),
            vec![b"a", b"a\x00", b"a\x01", b"ab"],
        ),
        (
            "prefix b\\xff",
            Scan::prefix(b"b\xff"),
            vec![b"b\xff", b"b\xff\xff"],
        ),
        (
            "prefix b\\xff\\xff",
            Scan::prefix(b"b\xff\xff"),
            vec![b"b\xff\xff"],
        ),
        ("prefix none", Scan::prefix(b"zz"), vec![]),
        ("limit 2", Scan::all().limit(2), vec![b"a", b"a\x00"]),
        (
            "limit 2, reverse",
            Scan::all().reverse().limit(2),
            vec![b"c", b"b\xff\xff"],
        ),
        (
            "prefix a, reverse, limit 3",
            Scan::prefix(b"a").reverse().limit(3),
            vec![b"ab", b"a\x01", b"a\x00"],
        ),
        ("limit 0", Scan::all().limit(0), vec![]),
        (
            "limit beyond",
            Scan::prefix(b"b").limit(100),
            vec![b"b", b"b\xff", b"b\xff\xff"],
        ),
        ("b..a, inverted", Scan::range(b..a), vec![]),
        ("a..a, empty", Scan::range(a..a), vec![]),
        ("a..=a", Scan::range(a..=a), vec![b"a"]),
        ("between keys", Scan::range(&b"ac"[..]..&b"az"[..]), vec![]),
    ];
    for (name, request, want) in table {
        let got = scan(store, &request).await;
        assert_eq!(keys(&got), key_list(&want), "scan {name}");
        for (key, value) in &got {
            assert_eq!(
                value,
                &vec![key.len() as u8],
                "scan {name}: value of {key:?}"
            );
        }
    }
}

/// Scans inside a transaction merge its buffered writes with the snapshot, in either order and
/// under a limit.
pub async fn scans_see_own_writes<S: Store>(store: &S) {
    write(
        store,
        &[
            (b"r/1", b"old"),
            (b"r/3", b"old"),
            (b"r/5", b"old"),
            (b"s", b"old"),
        ],
    )
    .await;
    let mut txn = begin(store).await;
    txn.put(b"r/2", b"new").expect("put");
    txn.delete(b"r/3").expect("delete");
    txn.put(b"r/5", b"new").expect("put");
    txn.put(b"r/6", b"new").expect("put");
    txn.put(b"q", b"new").expect("put");

    let prefix = Scan::prefix(b"r/");
    let got = txn.scan(&prefix).await.expect("scan");
    let want: Entries = owned(&[
        (b"r/1", b"old"),
        (b"r/2", b"new"),
        (b"r/5", b"new"),
        (b"r/6", b"new"),
    ]);
    assert_eq!(got, want, "prefix scan with own writes");
    let got = txn
        .scan(&prefix.clone().reverse().limit(2))
        .await
        .expect("scan");
    assert_eq!(
        got,
        owned(&[(b"r/6", b"new"), (b"r/5", b"new")]),
        "reverse, limit 2"
    );
    let got = txn.scan(&prefix.clone().limit(2)).await.expect("scan");
    assert_eq!(got, owned(&[(b"r/1", b"old"), (b"r/2", b"new")]), "limit 2");
    let got = txn.scan(&Scan::all()).await.expect("scan");
    assert_eq!(
        keys(&got),
        key_list(&[b"q", b"r/1", b"r/2", b"r/5", b"r/6", b"s"]),
        "all"
    );
    drop(txn);
    assert_eq!(
        keys(&scan(store, &Scan::all()).await),
        key_list(&[b"r/1", b"r/3", b"r/5", b"s"]),
        "the dropped transaction wrote nothing"
    );
}

// ---- atomicity and isolation -----------------------------------------------------------------

/// A transaction dropped without commit writes nothing, whatever it did.
pub async fn dropped_transaction_writes_nothing<S: Store>(store: &S) {
    write(store, &[(b"keep", b"1")]).await;
    let mut txn = begin(store).await;
    txn.put(b"x", b"1").expect("put");
    txn.put(b"keep", b"2").expect("put");
    txn.delete(b"keep").expect("delete");
    assert!(txn.get(b"x").await.expect("get").is_some());
    drop(txn);
    assert_eq!(scan(store, &Scan::all()).await, owned(&[(b"keep", b"1")]));
}

/// All of a commit's writes become visible together: a snapshot taken before sees none.
pub async fn commit_is_atomic<S: Store>(store: &S) {
    let mut before = begin(store).await;
    assert_eq!(before.get(b"batch/000").await.expect("get"), None);

    let mut txn = begin(store).await;
    for i in 0..200u32 {
        txn.put(format!("batch/{i:03}").as_bytes(), &i.to_be_bytes())
            .expect("put");
    }
    txn.commit().await.expect("commit");

    assert_eq!(
        before
            .scan(&Scan::prefix(b"batch/"))
            .await
            .expect("scan")
            .len(),
        0,
        "a snapshot taken before the commit sees none of it"
    );
    let after = scan(store, &Scan::prefix(b"batch/")).await;
    assert_eq!(after.len(), 200, "a snapshot taken after sees all of it");
    for (i, (_, value)) in after.iter().enumerate() {
        assert_eq!(value, &(i as u32).to_be_bytes().to_vec());
    }
}

/// Reads inside a transaction keep returning its snapshot's values while others commit.
pub async fn reads_are_repeatable<S: Store>(store: &S) {
    write(store, &[(b"k", b"v0"), (b"p/1", b"v0")]).await;
    let mut reader = begin(store).await;
    assert_eq!(
        reader.get(b"k").await.expect("get").as_deref(),
        Some(&b"v0"[..])
    );
    write(store, &[(b"k", b"v1"), (b"p/2", b"v1")]).await;
    assert_eq!(
        reader.get(b"k").await.expect("get").as_deref(),
        Some(&b"v0"[..]),
        "get again"
    );
    assert_eq!(
        reader.scan(&Scan::prefix(b"p/")).await.expect("scan"),
        owned(&[(b"p/1", b"v0")]),
        "scan after another commit"
    );
    reader
        .commit()
        .await
        .expect("a read-only transaction commits");
}

// ---- conflicts ---------------------------------------------------------------------------

fn assert_conflict(result: Result<(), StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict) => {}
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

/// Two transactions read a key; the first to commit a write of it wins, the other conflicts
/// and writes nothing.
pub async fn read_then_write_conflicts<S: Store>(store: &S) {
    write(store, &[(b"k", b"0")]).await;
    let mut first = begin(store).await;
    let mut second = begin(store).await;
    assert!(first.get(b"k").await.expect("get").is_some());
    assert!(second.get(b"k").await.expect("get").is_some());
    second.put(b"k", b"second").expect("put");
    second.commit().await.expect("the first committer wins");
    first.put(b"k", b"first").expect("put");
    first.put(b"other", b"first").expect("put");
    assert_conflict(first.commit().await, "commit after a conflicting commit");
    assert_eq!(read(store, b"k").await.as_deref(), Some(&b"second"[..]));
    assert_eq!(
        read(store, b"other").await,
        None,
        "the conflicting commit wrote nothing"
    );
}

/// A transaction that scanned a range conflicts with a commit that inserted into it
/// (a phantom), even if the key did not exist when scanned.
pub async fn scan_then_insert_in_range_conflicts<S: Store>(store: &S) {
    write(store, &[(b"p/1", b"x")]).await;
    let mut scanner = begin(store).await;
    assert_eq!(
        scanner
            .scan(&Scan::prefix(b"p/"))
            .await
            .expect("scan")
            .len(),
        1
    );
    write(store, &[(b"p/2", b"x")]).await;
    scanner.put(b"summary", b"1 entry").expect("put");
    assert_conflict(
        scanner.commit().await,
        "commit after an insert into a scanned range",
    );
    assert_eq!(read(store, b"summary").await, None);
}

/// Transactions that only write never conflict; the later commit wins.
pub async fn blind_writes_do_not_conflict<S: Store>(store: &S) {
    let mut first = begin(store).await;
    let mut second = begin(store).await;
    first.put(b"k", b"first").expect("put");
    second.put(b"k", b"second").expect("put");
    second.commit().await.expect("commit");
    first
        .commit()
        .await
        .expect("a blind write does not conflict");
    assert_eq!(
        read(store, b"k").await.as_deref(),
        Some(&b"first"[..]),
        "the later commit wins"
    );
}

/// Concurrent transactions over different keys both commit.
pub async fn disjoint_transactions_both_commit<S: Store>(store: &S) {
    write(store, &[(b"a", b"0"), (b"b", b"0")]).await;
    let mut one = begin(store).await;
    let mut two = begin(store).await;
    assert!(one.get(b"a").await.expect("get").is_some());
    assert!(two.get(b"b").await.expect("get").is_some());
    assert!(
        one.scan(&Scan::prefix(b"a/"))
            .await
            .expect("scan")
            .is_empty()
    );
    one.put(b"a", b"1").expect("put");
    two.put(b"b", b"2").expect("put");
    two.put(b"b/child", b"2").expect("put"); // beside, not inside, the range `one` scanned
    two.commit().await.expect("commit");
    one.commit().await.expect("no overlap, no conflict");
    assert_eq!(read(store, b"a").await.as_deref(), Some(&b"1"[..]));
    assert_eq!(read(store, b"b").await.as_deref(), Some(&b"2"[..]));
}

/// A transaction that wrote nothing commits even if what it read has changed since.
pub async fn read_only_transactions_always_commit<S: Store>(store: &S) {
    write(store, &[(b"k", b"0")]).await;
    let mut reader = begin(store).await;
    assert!(reader.get(b"k").await.expect("get").is_some());
    write(store, &[(b"k", b"1")]).await;
    reader.commit().await.expect("read-only commit");
}

/// Concurrent read-modify-write loops through [`Store::run`] lose no update: conflicts are
/// detected and retried until the increments have run one after another.
pub async fn run_retries_conflicts_until_serial<S: Store>(store: &S) {
    const WORKERS: u64 = 4;
    const INCREMENTS: u64 = 10;
    let worker = |id: u64| async move {
        for _ in 0..INCREMENTS {
            store
                .run(|txn| {
                    Box::pin(async move {
                        let count = match txn.get(b"counter").await? {
                            Some(bytes) => u64::from_be_bytes(bytes.try_into().expect("8 bytes")),
                            None => 0,
                        };
                        // Give the other workers a chance to read the same value.
                        tokio::task::yield_now().await;
                        txn.put(b"counter", &(count + 1).to_be_bytes())?;
                        txn.put(format!("worker/{id}").as_bytes(), &count.to_be_bytes())?;
                        Ok::<_, StoreError>(())
                    })
                })
                .await
                .expect("run");
        }
    };
    tokio::join!(worker(0), worker(1), worker(2), worker(3));
    let count = read(store, b"counter").await.expect("a counter");
    assert_eq!(
        u64::from_be_bytes(count.try_into().expect("8 bytes")),
        WORKERS * INCREMENTS,
        "every increment counted once"
    );
}

// ---- limits ------------------------------------------------------------------------------

fn check_limits(limits: Limits) {
    assert!(limits.max_key_size <= MAX_KEY_SIZE, "{limits:?}");
    assert!(limits.max_key_size >= MAX_KEY_SIZE - 1_000, "{limits:?}");
    assert_eq!(limits.max_value_size, MAX_VALUE_SIZE, "{limits:?}");
    assert_eq!(limits.max_write_set_size, MAX_WRITE_SET_SIZE, "{limits:?}");
}

/// The largest key is accepted; one byte more is refused by put, delete and get, with the size
/// and the limit, and spoils the transaction's commit.
pub async fn key_size_limit<S: Store>(store: &S) {
    let limits = store.limits();
    check_limits(limits);
    let largest = vec![b'k'; limits.max_key_size];
    write(store, &[(&largest, b"fits")]).await;
    assert_eq!(read(store, &largest).await.as_deref(), Some(&b"fits"[..]));

    let too_long = vec![b'k'; limits.max_key_size + 1];
    let expected = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::KeyTooLarge { size, limit })
            if size == limits.max_key_size + 1 && limit == limits.max_key_size => {}
        other => panic!("{what}: expected KeyTooLarge, got {other:?}"),
    };
    let mut txn = begin(store).await;
    expected(txn.get(&too_long).await.map(drop), "get");
    txn.put(b"before", b"1").expect("put");
    expected(txn.put(&too_long, b"v"), "put");
    expected(txn.delete(&too_long), "delete");
    expected(txn.commit().await, "commit after a refused put");
    assert_eq!(read(store, b"before").await, None, "nothing written");
}

/// The largest value is accepted; one byte more is refused with the size and the limit and
/// spoils the transaction's commit.
pub async fn value_size_limit<S: Store>(store: &S) {
    let limits = store.limits();
    check_limits(limits);
    let largest: Vec<u8> = (0..limits.max_value_size)
        .map(|i| (i % 251) as u8)
        .collect();
    write(store, &[(b"big", &largest)]).await;
    assert_eq!(read(store, b"big").await, Some(largest));

    let mut txn = begin(store).await;
    txn.put(b"before", b"1").expect("put");
    let too_long = vec![0u8; limits.max_value_size + 1];
    let expected = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::ValueTooLarge { size, limit })
            if size == limits.max_value_size + 1 && limit == limits.max_value_size => {}
        other => panic!("{what}: expected ValueTooLarge, got {other:?}"),
    };
    expected(txn.put(b"huge", &too_long), "put");
    expected(txn.commit().await, "commit after a refused put");
    assert_eq!(read(store, b"before").await, None, "nothing written");
    assert_eq!(read(store, b"huge").await, None, "nothing written");
}

/// A write set just under the limit commits; the write that crosses it is refused with the
/// size reached and the limit, and the transaction then writes nothing.
pub async fn write_set_size_limit<S: Store>(store: &S) {
    let limits = store.limits();
    check_limits(limits);
    let value = vec![7u8; 100_000 - 10];
    let key = |i: usize| format!("w/{i:08}").into_bytes(); // 10 bytes: 100,000 per put

    let fits = limits.max_write_set_size * 9 / 10 / 100_000;
    let mut txn = begin(store).await;
    for i in 0..fits {
        txn.put(&key(i), &value).expect("put under the limit");
    }
    txn.commit()
        .await
        .expect("a write set under the limit commits");
    let stored = scan(store, &Scan::prefix(b"w/")).await;
    assert_eq!(stored.len(), fits);

    let mut txn = begin(store).await;
    txn.delete(b"x/marker").expect("delete");
    let mut used = b"x/marker".len();
    let mut i = 0;
    let refused = loop {
        let key = format!("x/{i:08}").into_bytes();
        match txn.put(&key, &value) {
            Ok(()) => used += key.len() + value.len(),
            Err(error) => break error,
        }
        i += 1;
        assert!(used <= limits.max_write_set_size, "accepted {used} bytes");
    };
    match refused {
        StoreError::TransactionTooLarge { size, limit } => {
            assert_eq!(limit, limits.max_write_set_size);
            assert_eq!(
                size,
                used + 100_000,
                "the size the refused put would have reached"
            );
            assert!(size > limit);
        }
        other => panic!("expected TransactionTooLarge, got {other:?}"),
    }
    assert!(
        matches!(
            txn.commit().await,
            Err(StoreError::TransactionTooLarge { .. })
        ),
        "a transaction that crossed the limit cannot commit"
    );
    assert!(
        scan(store, &Scan::prefix(b"x/")).await.is_empty(),
        "nothing written"
    );
}

// ---- bytes -------------------------------------------------------------------------------

/// Keys and values are arbitrary bytes (empty, NUL, 0xff, every byte value), kept exactly and
/// ordered byte-wise.
pub async fn arbitrary_bytes_round_trip<S: Store>(store: &S) {
    let mut want: Entries = Vec::new();
    want.push((Vec::new(), (0..=255u8).collect()));
    for byte in 0..=255u8 {
        want.push((vec![byte], vec![byte; usize::from(byte % 5)]));
    }
    want.push((vec![0, 0], b"two NULs".to_vec()));
    want.push((vec![0xff, 0xff], Vec::new()));
    want.push((b"k\x00v".to_vec(), b"\x00\x00\x00".to_vec()));
    want.sort();

    let mut txn = begin(store).await;
    for (key, value) in &want {
        txn.put(key, value).expect("put");
    }
    txn.commit().await.expect("commit");

    assert_eq!(
        scan(store, &Scan::all()).await,
        want,
        "everything, in byte order"
    );
    for (key, value) in &want {
        assert_eq!(read(store, key).await.as_ref(), Some(value), "key {key:?}");
    }
    assert_eq!(
        read(store, b"").await,
        Some((0..=255u8).collect()),
        "the empty key"
    );
    let reversed: Entries = want.iter().rev().cloned().collect();
    assert_eq!(
        scan(store, &Scan::all().reverse()).await,
        reversed,
        "reverse byte order"
    );
}
