//! The verifying consumer of CHAIN against a real nats-server: a block that is damaged on
//! CHAIN is repaired from a validator's block service and verified; a block no source can
//! vouch for halts the follower at that height, with the alert raised, and is never skipped.
//!
//! The chain is built by the test kit (real signatures and certificates of the network's
//! validators), and "validators" here are NATS responders serving those same blocks by height
//! on the validators' block service subjects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use citychain_bus::{Bus, HeaderMap, StreamsConfig, connect, ensure_streams};
use citychain_follower::{Shared, read_checkpoint};
use citychain_kernel::{Block, Height};
use citychain_ledger::store::PROJECTION_NAME;
use citychain_ledger::{LedgerFollower, LedgerReader, resume_follower};
use citychain_store::EmbeddedStore;
use citychain_testkit::chain::ChainBuilder;
use citychain_testkit::genesis::network;
use citychain_testkit::nats::NatsServer;

const SEED: u64 = 77;

async fn chain_with(bus: &Bus, streams: &StreamsConfig, payloads: &[Vec<u8>]) {
    ensure_streams(bus, streams).await.unwrap();
    for (i, payload) in payloads.iter().enumerate() {
        bus.append_expected(
            &streams.chain_subject(),
            i as u64,
            &format!("block-{}", i + 1),
            payload.clone().into(),
            HeaderMap::new(),
        )
        .await
        .unwrap();
    }
}

async fn follow_until(
    follower: LedgerFollower<EmbeddedStore>,
    shared: &Arc<Shared>,
    done: impl Fn(&Shared) -> bool,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(follower.run(async {
        let _ = stop_rx.await;
    }));
    for _ in 0..100 {
        if done(shared) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_block_on_chain_is_repaired_from_a_validator_and_verified() {
    let nats = NatsServer::start().await.unwrap();
    let bus = connect(&nats.operator()).await.unwrap();
    let net = network(4, SEED);
    let blocks: Vec<Block> = ChainBuilder::new(&net, SEED).txs_per_block(1, 3).build(5);
    let streams = StreamsConfig::new(net.genesis.chain_id.as_str()).unwrap();
    let mut payloads: Vec<Vec<u8>> = blocks.iter().map(Block::encode).collect();
    payloads[2][10] ^= 0x40; // block 3 damaged on CHAIN
    chain_with(&bus, &streams, &payloads).await;

    // One validator (the third) serves its intact copies.
    let served = blocks.clone();
    let validator = net.validator_keys()[2].signing.public_key().to_string();
    let _responder = bus
        .serve(
            &streams.block_service_subject(&validator),
            None,
            move |request| {
                let blocks = served.clone();
                async move {
                    let height = <[u8; 8]>::try_from(request.payload.as_ref())
                        .map(u64::from_be_bytes)
                        .unwrap_or(0);
                    match blocks.get((height as usize).wrapping_sub(1)) {
                        Some(block) => Bytes::from(block.encode()),
                        None => Bytes::new(),
                    }
                }
            },
        )
        .await
        .unwrap();

    let store = EmbeddedStore::in_memory().await.unwrap();
    let shared = Shared::new(&net.genesis);
    let follower = resume_follower(
        &net.genesis,
        store.clone(),
        bus.clone(),
        streams.clone(),
        shared.clone(),
        Duration::from_millis(500),
    )
    .await
    .unwrap();
    follow_until(follower, &shared, |s| s.applied() == Height(5)).await;

    assert_eq!(shared.applied(), Height(5));
    assert!(shared.alert.lock().unwrap().is_none());
    let reader = LedgerReader::new(store);
    let repaired = reader.block(Height(3)).await.unwrap().unwrap();
    assert_eq!(
        repaired, blocks[2],
        "the validator's intact copy was applied"
    );
    let checkpoint = read_checkpoint(reader.store(), PROJECTION_NAME)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.header, blocks[4].header);
    assert_eq!(shared.registry().as_ref(), &checkpoint.registry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_no_source_vouches_for_halts_the_follower_with_an_alert() {
    let nats = NatsServer::start().await.unwrap();
    let bus = connect(&nats.operator()).await.unwrap();
    let net = network(4, SEED + 1);
    let blocks: Vec<Block> = ChainBuilder::new(&net, SEED + 1)
        .txs_per_block(0, 2)
        .build(4);
    let streams = StreamsConfig::new(net.genesis.chain_id.as_str()).unwrap();
    let mut payloads: Vec<Vec<u8>> = blocks.iter().map(Block::encode).collect();
    // Block 3 swapped for block 4: it does not link, and block 4 must not be applied either.
    payloads[2] = payloads[3].clone();
    chain_with(&bus, &streams, &payloads).await;

    let store = EmbeddedStore::in_memory().await.unwrap();
    let shared = Shared::new(&net.genesis);
    let follower = resume_follower(
        &net.genesis,
        store.clone(),
        bus.clone(),
        streams,
        shared.clone(),
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    follow_until(follower, &shared, |s| s.alert.lock().unwrap().is_some()).await;

    assert_eq!(shared.applied(), Height(2), "stops before the bad block");
    let alert = shared.alert.lock().unwrap().clone().unwrap();
    assert!(alert.starts_with("block 3:"), "{alert}");
    assert!(alert.contains("CHAIN"), "{alert}");
    let reader = LedgerReader::new(store);
    assert!(reader.block(Height(3)).await.unwrap().is_none());
    assert!(
        reader.block(Height(4)).await.unwrap().is_none(),
        "nothing skipped to"
    );
    let checkpoint = read_checkpoint(reader.store(), PROJECTION_NAME)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        checkpoint.height(),
        Height(2),
        "the checkpoint stays with the store"
    );
}
