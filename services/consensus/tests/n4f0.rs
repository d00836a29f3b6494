//! n4f0: four honest validators commit 1,000 submitted transactions; CHAIN verifies from
//! genesis and every validator's own store holds the same blocks.

mod common;

use std::collections::BTreeSet;

use citychain_consensus::BlockStore;
use common::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n4f0_four_validators_commit_a_thousand_transactions() {
    let mut cluster = Cluster::new(4, 11).await;
    cluster.start_all().await;
    let txs = cluster.transactions(1_000, 1);
    cluster.submit(&txs).await;
    cluster.wait_for_txs(1_000, 120).await;

    let chain = cluster.chain().await;
    let committed: Vec<_> = chain
        .iter()
        .flat_map(|b| b.txs.iter().map(|t| t.id()))
        .collect();
    let unique: BTreeSet<_> = committed.iter().collect();
    assert_eq!(
        committed.len(),
        unique.len(),
        "a transaction committed twice"
    );
    let submitted: BTreeSet<_> = txs.iter().map(|t| t.id()).collect();
    assert_eq!(
        unique.into_iter().copied().collect::<BTreeSet<_>>(),
        submitted
    );
    for block in &chain {
        assert!(block.certificate.signatures.len() >= 3);
    }

    // Each validator's own copy equals CHAIN (up to the height it has).
    let height = chain.len() as u64;
    for i in 0..4 {
        cluster.stop(i).await;
        let blocks = BlockStore::new(cluster.open_store(i).await);
        let tip = blocks
            .tip()
            .await
            .unwrap()
            .expect("validator stored blocks");
        assert!(
            tip.height + 1 >= height,
            "validator {i} is at {} of {height}",
            tip.height
        );
        for h in 1..=tip.height.min(height) {
            let own = blocks.block(h).await.unwrap().unwrap();
            assert_eq!(
                own.hash(),
                chain[h as usize - 1].hash(),
                "validator {i} height {h}"
            );
        }
    }
}
