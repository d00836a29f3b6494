//! The conformance suite on [`ServiceStore`], the store a service process opens from its
//! `[store]` section: with the default (embedded) backend it must behave exactly as the store
//! it forwards to.

use citychain_store::conformance::Fixture;
use citychain_store::{ServiceStore, StoreConfig};

async fn fresh_store() -> Option<Fixture<ServiceStore>> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = ServiceStore::open(&StoreConfig::default(), dir.path(), "conformance")
        .await
        .expect("open");
    Some(Fixture::keeping(store, dir))
}

citychain_store::conformance_suite!(fresh_store);
