//! The conformance suite on [`ServiceStore`], the store a service process opens from its
//! `[store]` section: holding the embedded store it must behave exactly as the store it
//! forwards to.

use citychain_store::conformance::Fixture;
use citychain_store::{EmbeddedStore, ServiceStore};

async fn fresh_store() -> Option<Fixture<ServiceStore>> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(dir.path().join("service.redb"))
        .await
        .expect("open");
    Some(Fixture::keeping(ServiceStore::Embedded(store), dir))
}

citychain_store::conformance_suite!(fresh_store);
