//! Validators over a real nats-server under the fault models the protocol tolerates (n4f1:
//! one crashed) and those it must survive without forking (n4f2: two silent), and replayed
//! transactions.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use citychain_bus::HeaderMap;
use citychain_consensus::{BlockStore, BlockStoreError};
use citychain_kernel::{Height, SignedTx};
use citychain_testkit::damage::{block_needle, flip_in_file};
use common::Cluster;

/// Waits until CHAIN reaches `height`, or panics after `secs`.
async fn wait_for_height(cluster: &Cluster, height: u64, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while cluster.chain_height().await < height {
        assert!(
            tokio::time::Instant::now() < deadline,
            "CHAIN stayed at {} below {height} for {secs} s",
            cluster.chain_height().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n4f1_crash_one_validator_the_others_commit_and_it_catches_up() {
    let mut cluster = Cluster::new(4, 21).await;
    cluster.start_all().await;
    let txs = cluster.transactions(600, 1);
    cluster.submit(&txs[..200]).await;
    cluster.wait_for_txs(200, 60).await;

    // Killed mid-run: its task is aborted wherever it stands.
    cluster.kill(2).await;
    cluster.submit(&txs[200..400]).await;
    cluster.wait_for_txs(400, 60).await;
    let while_down = cluster.chain_height().await;

    cluster.start(2).await;
    cluster.submit(&txs[400..]).await;
    cluster.wait_for_txs(600, 60).await;
    wait_for_height(&cluster, while_down + 1, 30).await;

    let chain = cluster.chain().await;
    let ids: BTreeSet<_> = chain
        .iter()
        .flat_map(|b| b.txs.iter().map(|t| t.id()))
        .collect();
    assert_eq!(ids.len(), 600);
    // The restarted validator catches up to the same chain.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let height = cluster.members[2].status.lock().unwrap().height;
        if height > chain.len() as u64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "validator 2 stuck at {height}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.stop(2).await;
    let blocks = BlockStore::new(cluster.open_store(2).await);
    for block in &chain {
        let own = blocks.block(block.header.height.0).await.unwrap();
        assert_eq!(own.map(|b| b.hash()), Some(block.hash()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n4f2_two_silent_validators_halt_commits_without_a_fork_until_one_returns() {
    let mut cluster = Cluster::new(4, 31).await;
    cluster.start_all().await;
    let txs = cluster.transactions(300, 1);
    cluster.submit(&txs[..100]).await;
    cluster.wait_for_txs(100, 60).await;

    cluster.stop(1).await;
    cluster.stop(3).await;
    // Heights already being decided may still finish; after that nothing commits.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let halted = cluster.chain_height().await;
    cluster.submit(&txs[100..200]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        cluster.chain_height().await,
        halted,
        "two of four validators cannot commit"
    );

    cluster.start(1).await;
    cluster.submit(&txs[200..]).await;
    cluster.wait_for_txs(300, 60).await;
    // chain() verifies every block from genesis: hash links, roots, certificates; a fork
    // would show as a second block at a height, which the stream's sequence check excludes.
    let chain = cluster.chain().await;
    assert!(chain.len() as u64 > halted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_transactions_commit_once() {
    let mut cluster = Cluster::new(4, 41).await;
    cluster.start_all().await;
    let original = cluster.transactions(1, 7).remove(0);
    let subject = cluster.streams.mempool_subject();
    // The same bytes under another message id (so JetStream's de-duplication cannot help),
    // and another transaction with the same signer and nonce.
    let signer = cluster
        .net
        .keys
        .values()
        .map(|k| &k.signing)
        .find(|k| k.public_key() == *original.signer())
        .unwrap()
        .clone();
    let same_nonce = SignedTx::sign(
        &cluster.net.genesis.chain_id,
        &signer,
        original.nonce(),
        Height(800),
        citychain_testkit::note("another body"),
    )
    .unwrap();
    for (i, tx) in [&original, &original, &same_nonce, &original]
        .iter()
        .enumerate()
    {
        cluster
            .bus
            .publish_idempotent(
                &subject,
                &format!("copy-{i}"),
                tx.bytes().to_vec().into(),
                HeaderMap::new(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    cluster.submit(&cluster.transactions(20, 1_000)).await;
    cluster.wait_for_txs(21, 60).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let chain = cluster.chain().await;
    let pairs: Vec<_> = chain
        .iter()
        .flat_map(|b| b.txs.iter())
        .filter(|t| t.signer() == original.signer() && t.nonce() == original.nonce())
        .collect();
    assert_eq!(
        pairs.len(),
        1,
        "signer and nonce committed {} times",
        pairs.len()
    );
}

/// All four validators crash at once with transactions in their pools: each MEMPOOL delivery
/// is acknowledged only once its transaction is committed, so the server delivers the rest
/// again and every submitted transaction commits, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n4_all_validators_crash_at_once_and_no_submitted_transaction_is_lost() {
    let mut cluster = Cluster::new(4, 51).await;
    let txs = cluster.transactions(3_000, 1);
    // Stored in MEMPOOL (acknowledged to the submitter) before any validator runs, so all
    // four take a backlog into their pools at once.
    cluster.submit(&txs).await;
    cluster.start_all().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all_hold = cluster
            .members
            .iter()
            .all(|m| m.status.lock().unwrap().mempool_depth > 0);
        if all_hold {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the validators never took transactions into their pools"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for i in 0..4 {
        cluster.kill(i).await;
    }
    let committed_before = cluster.committed_txs().await;
    assert!(
        committed_before < txs.len(),
        "everything committed before the crash ({committed_before}): the test proves nothing"
    );

    cluster.start_all().await;
    cluster.wait_for_txs(txs.len(), 90).await;
    let chain = cluster.chain().await;
    let carried: Vec<_> = chain
        .iter()
        .flat_map(|b| b.txs.iter().map(|t| t.id()))
        .collect();
    let distinct: BTreeSet<_> = carried.iter().copied().collect();
    assert_eq!(
        carried.len(),
        distinct.len(),
        "a transaction committed twice"
    );
    let submitted: BTreeSet<_> = txs.iter().map(SignedTx::id).collect();
    assert_eq!(
        distinct, submitted,
        "committed exactly the submitted transactions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_whose_stored_tip_was_damaged_while_stopped_rewrites_it_and_rejoins() {
    let mut cluster = Cluster::with_committed(27, 60).await;
    cluster.stop(1).await;

    let blocks = BlockStore::new(cluster.open_store(1).await);
    let tip = blocks.tip().await.unwrap().expect("a stored tip");
    let stored = blocks
        .block(tip.height)
        .await
        .unwrap()
        .expect("the tip block");
    drop(blocks);
    let path = cluster.members[1].dir.path().join("blocks.redb");
    assert!(
        flip_in_file(&path, block_needle(&stored.encode())) >= 1,
        "the tip's bytes are in the file"
    );
    {
        let blocks = BlockStore::new(cluster.open_store(1).await);
        let read = blocks.block_bytes(tip.height).await;
        assert!(
            matches!(read, Err(BlockStoreError::Damaged { height, .. }) if height == tip.height),
            "damaged bytes must not be read back: {read:?}"
        );
    }

    let chain_before = cluster.chain_height().await;
    cluster.start(1).await;
    cluster.submit(&cluster.transactions(20, 1_000)).await;
    cluster.wait_for_txs(80, 60).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cluster.members[1].status.lock().unwrap().height <= chain_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "validator 1 did not rejoin"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.stop(1).await;
    let blocks = BlockStore::new(cluster.open_store(1).await);
    let repaired = blocks.block(tip.height).await.unwrap().unwrap();
    assert_eq!(repaired.hash(), tip.hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_block_below_the_tip_is_not_served_until_rewritten_from_chain() {
    let mut cluster = Cluster::with_committed(29, 60).await;
    cluster.stop(2).await;

    let chain = cluster.chain().await;
    let target = chain
        .iter()
        .find(|b| !b.txs.is_empty())
        .expect("a block with transactions")
        .clone();
    let height = target.header.height.0;
    let blocks = BlockStore::new(cluster.open_store(2).await);
    assert!(
        blocks.tip().await.unwrap().unwrap().height > height,
        "below the tip"
    );
    // The validator's own copy: its certificate may hold other precommits than CHAIN's.
    let own = blocks.block(height).await.unwrap().expect("stored");
    drop(blocks);
    let path = cluster.members[2].dir.path().join("blocks.redb");
    assert!(flip_in_file(&path, block_needle(&own.encode())) >= 1);

    cluster.start(2).await;
    let key = cluster.members[2].setup.key.public_key().to_string();
    let subject = cluster.streams.block_service_subject(&key);
    // Its block service answers once it has caught up from CHAIN.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let reply = loop {
        match cluster
            .bus
            .request(
                &subject,
                height.to_be_bytes().to_vec().into(),
                HeaderMap::new(),
                Duration::from_secs(5),
            )
            .await
        {
            Ok(reply) => break reply,
            Err(err) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "validator 2's block service never answered: {err}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(
        reply.payload.as_ref(),
        target.encode().as_slice(),
        "the block served is CHAIN's copy, rewritten into the store"
    );
    cluster.stop(2).await;
    let blocks = BlockStore::new(cluster.open_store(2).await);
    assert_eq!(
        blocks.block(height).await.unwrap().map(|b| b.hash()),
        Some(target.hash())
    );
}
