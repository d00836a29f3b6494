//! The follower against a real nats-server with a service's projection: it applies CHAIN's
//! blocks in order, stops, and a new follower over the same store resumes from the
//! checkpoint (not from genesis) and carries on with the blocks appended meanwhile.

use std::sync::Arc;
use std::time::Duration;

use citychain_bus::{Bus, HeaderMap, StreamsConfig, connect, ensure_streams};
use citychain_follower::{
    AuditedBlock, ChainProjection, Follower, FollowerConfig, Shared, read_checkpoint,
};
use citychain_kernel::{Block, Height};
use citychain_store::{EmbeddedStore, Retryable, Scan, Store, StoreError, Transaction};
use citychain_testkit::chain::ChainBuilder;
use citychain_testkit::genesis::network;
use citychain_testkit::nats::NatsServer;

const SEED: u64 = 91;

/// Records, per block, the height of the registry it was authorized by and the running
/// transaction count, under `seen/<height>`.
#[derive(Debug)]
struct Seen;

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct SeenError(#[from] StoreError);

impl Retryable for SeenError {
    fn is_retryable(&self) -> bool {
        self.0.is_retryable()
    }
}

impl ChainProjection for Seen {
    type Error = SeenError;

    fn name(&self) -> &str {
        "seen"
    }

    async fn apply<T: Transaction>(
        &self,
        txn: &mut T,
        block: &AuditedBlock,
    ) -> Result<(), SeenError> {
        let mut key = b"seen/".to_vec();
        key.extend_from_slice(&block.height().0.to_be_bytes());
        let mut value = block.registry_before.height().0.to_be_bytes().to_vec();
        value.extend_from_slice(&block.transactions.to_be_bytes());
        txn.put(&key, &value)?;
        Ok(())
    }
}

async fn append(bus: &Bus, streams: &StreamsConfig, blocks: &[Block]) {
    for block in blocks {
        let height = block.header.height.0;
        bus.append_expected(
            &streams.chain_subject(),
            height - 1,
            &format!("block-{height}"),
            block.encode().into(),
            HeaderMap::new(),
        )
        .await
        .unwrap();
    }
}

async fn follow_to(follower: Follower<EmbeddedStore, Seen>, shared: &Arc<Shared>, height: u64) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(follower.run(async {
        let _ = stop_rx.await;
    }));
    for _ in 0..100 {
        if shared.applied() == Height(height) && shared.is_healthy() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_follower_resumes_from_the_checkpoint_and_applies_each_block_once() {
    let nats = NatsServer::start().await.unwrap();
    let bus = connect(&nats.operator()).await.unwrap();
    let net = network(4, SEED);
    let blocks = ChainBuilder::new(&net, SEED).txs_per_block(1, 3).build(6);
    let streams = StreamsConfig::new(net.genesis.chain_id.as_str()).unwrap();
    ensure_streams(&bus, &streams).await.unwrap();
    append(&bus, &streams, &blocks[..3]).await;
    let store = EmbeddedStore::in_memory().await.unwrap();
    let config = FollowerConfig::new("test", Duration::from_millis(200));
    let start = |shared: Arc<Shared>| {
        Follower::resume(
            &net.genesis,
            store.clone(),
            Seen,
            bus.clone(),
            streams.clone(),
            shared,
            config.clone(),
        )
    };

    let shared = Shared::new(&net.genesis);
    let follower = start(shared.clone()).await.unwrap();
    follow_to(follower, &shared, 3).await;
    assert_eq!(shared.applied(), Height(3));
    let checkpoint = read_checkpoint(&store, "seen").await.unwrap().unwrap();
    assert_eq!(checkpoint.header, blocks[2].header);
    assert_eq!(shared.registry().as_ref(), &checkpoint.registry);

    append(&bus, &streams, &blocks[3..]).await;
    let shared = Shared::new(&net.genesis);
    let follower = start(shared.clone()).await.unwrap();
    assert_eq!(shared.applied(), Height(3), "resumed at the checkpoint");
    assert_eq!(shared.registry().height(), Height(3));
    assert!(!shared.is_healthy(), "not caught up before it runs");
    follow_to(follower, &shared, 6).await;
    assert_eq!(shared.applied(), Height(6));
    assert!(shared.is_healthy());

    let mut txn = store.begin().await.unwrap();
    let seen = txn.scan(&Scan::prefix(b"seen/")).await.unwrap();
    let mut transactions = 0;
    assert_eq!(seen.len(), 6);
    for ((_, value), block) in seen.iter().zip(&blocks) {
        transactions += block.txs.len() as u64;
        let mut expected = (block.header.height.0 - 1).to_be_bytes().to_vec();
        expected.extend_from_slice(&transactions.to_be_bytes());
        assert_eq!(value, &expected, "block {}", block.header.height.0);
    }
}
