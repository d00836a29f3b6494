//! The ledger's indexes over a real embedded store: shortened ids resolve to the committed ids
//! they start with (several when ambiguous, with a flag past the listing limit), and a store
//! indexed by an older layout gains the new indexes for every block it already holds, once.

use citychain_kernel::{Hash32, Height};
use citychain_ledger::{LedgerReader, upgrade_indexes};
use citychain_ledger_domain::keys::{self, INDEX_VERSION, INDEX_VERSION_KEY};
use citychain_ledger_domain::{IndexEntry, MAX_MATCHES, index_block};
use citychain_store::{EmbeddedStore, Scan, Store, Transaction, put_pieces};
use citychain_testkit::chain::ChainBuilder;
use citychain_testkit::genesis::network;

async fn store() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("ledger.redb"))
        .await
        .unwrap();
    (dir, store)
}

fn id(hex_prefix: &str, fill: u8) -> [u8; 32] {
    let mut out = [fill; 32];
    let bytes = hex::decode(hex_prefix).unwrap();
    out[..bytes.len()].copy_from_slice(&bytes);
    out
}

#[tokio::test]
async fn prefixes_resolve_to_every_id_they_start_and_flag_more_than_the_limit() {
    let (_dir, store) = store().await;
    let mut txn = store.begin().await.unwrap();
    let ids = [
        id("deadbeef00", 1),
        id("deadbeef01", 2),
        id("deadbeef10", 3),
        id("deadbee0", 4),
        id("0badcafe", 5),
    ];
    for id in &ids {
        let mut key = keys::TX_LOCATIONS.to_vec();
        key.extend_from_slice(id);
        txn.put(&key, &[0; 12]).unwrap();
    }
    // Keys with the same bytes in the tables before and after never match.
    for table in [keys::HEIGHTS_BY_HASH, b"l/v/".as_slice()] {
        for prefix in ["deadbeef", "ffffffff"] {
            let mut key = table.to_vec();
            key.extend_from_slice(&id(prefix, 9));
            txn.put(&key, &[0; 8]).unwrap();
        }
    }
    txn.commit().await.unwrap();

    let reader = LedgerReader::new(store.clone());
    let table = keys::TX_LOCATIONS;
    let (found, truncated) = reader.resolve_prefix(table, "deadbeef").await.unwrap();
    assert_eq!(found, vec![Hash32(ids[0]), Hash32(ids[1]), Hash32(ids[2])]);
    assert!(!truncated);
    let (found, _) = reader.resolve_prefix(table, "DEADBEEF0").await.unwrap();
    assert_eq!(found, vec![Hash32(ids[0]), Hash32(ids[1])]);
    let (found, _) = reader.resolve_prefix(table, "0badcafe").await.unwrap();
    assert_eq!(found, vec![Hash32(ids[4])]);
    let (found, _) = reader.resolve_prefix(table, "0badcaff").await.unwrap();
    assert!(found.is_empty());
    let (found, _) = reader.resolve_prefix(table, "ffffffff").await.unwrap();
    assert!(found.is_empty());
    assert!(reader.resolve_prefix(table, "deadbe").await.is_err());

    // More matches than are listed: the first ones, and the flag.
    let mut txn = store.begin().await.unwrap();
    for n in 0..=MAX_MATCHES as u8 {
        let mut key = keys::TX_LOCATIONS.to_vec();
        key.extend_from_slice(&id(&format!("abcdef01{n:02x}"), 0));
        txn.put(&key, &[0; 12]).unwrap();
    }
    txn.commit().await.unwrap();
    let (found, truncated) = reader.resolve_prefix(table, "abcdef01").await.unwrap();
    assert_eq!(found.len(), MAX_MATCHES);
    assert!(truncated);
}

#[tokio::test]
async fn a_store_indexed_by_an_older_layout_gains_the_type_index_for_every_stored_block() {
    let net = network(4, 71);
    let blocks = ChainBuilder::new(&net, 71).txs_per_block(1, 3).build(300);
    let (_dir, store) = store().await;
    // Blocks stored and indexed as version 1 did: everything but the type index.
    let mut txn = store.begin().await.unwrap();
    for block in &blocks {
        put_pieces(&mut txn, &keys::block(block.header.height), &block.encode())
            .await
            .unwrap();
        for IndexEntry { key, value } in index_block(block) {
            if !key.starts_with(b"l/y/") {
                txn.put(&key, &value).unwrap();
            }
        }
    }
    txn.commit().await.unwrap();

    assert_eq!(upgrade_indexes(&store).await.unwrap(), 300);
    let mut txn = store.begin().await.unwrap();
    let version = txn.get(INDEX_VERSION_KEY).await.unwrap().unwrap();
    assert_eq!(version, INDEX_VERSION.to_be_bytes());
    let typed = txn.scan(&Scan::prefix(b"l/y/")).await.unwrap();
    let txs: usize = blocks.iter().map(|b| b.txs.len()).sum();
    assert_eq!(typed.len(), txs);
    for block in &blocks {
        for tx in &block.txs {
            let prefix = keys::by_type_prefix(&tx.body().type_url);
            assert!(
                typed
                    .iter()
                    .any(|(k, v)| k.starts_with(&prefix) && v.as_slice() == tx.id().0.as_bytes()),
                "{} at {}",
                tx.id(),
                block.header.height
            );
        }
    }
    drop(txn);
    // Once current, starting again re-indexes nothing.
    assert_eq!(upgrade_indexes(&store).await.unwrap(), 0);
    let reader = LedgerReader::new(store);
    assert!(reader.block(Height(300)).await.unwrap().is_some());
}
