//! The conformance suite on FoundationDB, run when `FDB_CLUSTER_FILE` names a cluster file
//! (with the `foundationdb` feature); skipped with a message otherwise.
//!
//! FoundationDB's client network can start once per process and must be stopped before the
//! process exits, so the whole suite runs in one test, which stops it at the end. Each check
//! works in a subspace of its own, cleared before use.
#![cfg(feature = "foundationdb")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use citychain_store::FdbStore;
use citychain_store::conformance::{self, Fixture};
use citychain_store::fdb::stop_network;

async fn fresh_store(cluster_file: &Path) -> Fixture<FdbStore> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = format!(
        "citychain-store-test/{}/{}/",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let store = FdbStore::open(Some(cluster_file), prefix.as_bytes())
        .await
        .expect("open");
    store
        .clear_subspace()
        .await
        .expect("clear the test subspace");
    Fixture::new(store)
}

/// Stops the network when the test ends, passed or failed.
struct StopNetworkAtEnd;

impl Drop for StopNetworkAtEnd {
    fn drop(&mut self) {
        stop_network();
    }
}

#[test]
fn conformance_on_foundationdb() {
    let Some(cluster_file) = std::env::var_os("FDB_CLUSTER_FILE").map(PathBuf::from) else {
        println!("skipped: FDB_CLUSTER_FILE is not set, no FoundationDB cluster to test against");
        return;
    };
    let _stop = StopNetworkAtEnd;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(conformance::run_all(|| fresh_store(&cluster_file)));
    let fixture = runtime.block_on(fresh_store(&cluster_file));
    conformance::model_check(&runtime, &fixture.store, 48);
}
