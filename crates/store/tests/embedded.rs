//! The conformance suite on the embedded store, each test on a fresh file in a temporary
//! directory; plus what only the embedded store promises (reopening, one open per file).

use citychain_store::conformance::{self, Fixture};
use citychain_store::{EmbeddedStore, Scan, Store, StoreError, Transaction};

async fn fresh_store() -> Option<Fixture<EmbeddedStore>> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(dir.path().join("store.redb"))
        .await
        .expect("open");
    Some(Fixture::keeping(store, dir))
}

citychain_store::conformance_suite!(fresh_store);

mod in_memory {
    use super::*;

    async fn fresh_store() -> Option<Fixture<EmbeddedStore>> {
        Some(Fixture::new(
            EmbeddedStore::in_memory().await.expect("in-memory store"),
        ))
    }

    citychain_store::conformance_suite!(fresh_store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_in_sequence_on_one_process_wide_runner() {
    conformance::run_all(|| async {
        Fixture::new(EmbeddedStore::in_memory().await.expect("in-memory store"))
    })
    .await;
}

#[tokio::test]
async fn committed_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = EmbeddedStore::open(&path).await.unwrap();
        let mut txn = store.begin().await.unwrap();
        txn.put(b"kept", b"yes").unwrap();
        txn.commit().await.unwrap();
        let mut dropped = store.begin().await.unwrap();
        dropped.put(b"dropped", b"yes").unwrap();
        drop(dropped);
        store.close().await.unwrap();
    }
    let store = EmbeddedStore::open(&path).await.unwrap();
    let mut txn = store.begin().await.unwrap();
    assert_eq!(
        txn.scan(&Scan::all()).await.unwrap(),
        vec![(b"kept".to_vec(), b"yes".to_vec())]
    );
}

#[tokio::test]
async fn a_file_is_opened_once_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = EmbeddedStore::open(&path).await.unwrap();
    let second = EmbeddedStore::open(&path).await;
    assert!(matches!(second, Err(StoreError::Backend(_))), "{second:?}");
    assert_eq!(store.path(), Some(path.as_path()));
}
