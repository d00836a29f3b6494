//! A damaged store is never served. Bytes of a stored block are flipped inside a stopped
//! ledger's redb file (below the tip, and at the tip the ledger checks when it starts), and
//! after a kill the file is made one that redb cannot open at all. Each time the ledger reports the damage (DATA_LOSS to the caller,
//! NOT_SERVING while it lasts), rewrites or rebuilds what was damaged from CHAIN, and serves
//! the block the chain committed again. It never answers with the damaged bytes and never
//! crash-loops. Real nats-server, four real validators.

use std::path::PathBuf;
use std::time::Duration;

use citychain_client::LedgerClient;
use citychain_kernel::Height;
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_scenarios::{Network, wait_unlocked};
use citychain_testkit::damage::{block_needle, flip_in_file};
use citychain_testkit::genesis::network;
use citychain_testkit::note;
use prost::Message as _;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

fn store_file(net: &Network) -> PathBuf {
    net.dir.path().join("ledger/ledger.redb")
}

/// Block `height` as the ledger serves it: its encoding, or the status.
async fn block_at(client: &mut LedgerClient, height: u64) -> Result<Vec<u8>, tonic::Status> {
    let response = client
        .grpc()
        .get_block(pb::GetBlockRequest {
            at: Some(pb::get_block_request::At::Height(height)),
        })
        .await?
        .into_inner();
    Ok(response.block.expect("a block").encode_to_vec())
}

/// Commits `count` notes, the first carrying `marker`, and returns the first one's height.
async fn commit_notes(net: &Network, client: &mut LedgerClient, marker: &str, count: u32) -> u64 {
    let member = net.departments()[0].clone();
    let signer = net.signer(&member, 1_000);
    let tip = client.tip_height().await.unwrap();
    let mut first = None;
    for i in 0..count {
        let text = if i == 0 {
            marker.to_string()
        } else {
            format!("{marker} then {i}")
        };
        let tx = signer.sign(note(&text), Height(tip + 500)).unwrap();
        client.submit(&tx).await.unwrap();
        let committed = client
            .wait(&tx.id().to_string(), Duration::from_secs(60))
            .await
            .unwrap();
        first.get_or_insert(committed.height);
    }
    first.unwrap()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_block_damaged_while_stopped_is_refused_then_rewritten_from_chain() {
    let (mut net, mut client) = Network::with_ledger(network(4, 61)).await;
    let height = commit_notes(&net, &mut client, "damage target 61", 4).await;
    let committed = block_at(&mut client, height).await.unwrap();
    assert!(client.tip_height().await.unwrap() > height, "not the tip");
    net.stop_ledger().await;

    let copies = flip_in_file(&store_file(&net), block_needle(&committed));
    assert!(copies >= 1, "the block's bytes are in the file");
    net.start_ledger("ledger").await;
    let mut client = net.client().await;

    let refused = block_at(&mut client, height).await.unwrap_err();
    assert_eq!(refused.code(), Code::DataLoss, "{refused:?}");
    assert!(
        refused
            .message()
            .contains(&format!("stored block {height} is damaged")),
        "{}",
        refused.message()
    );
    // Repaired from CHAIN: the committed block again, and SERVING.
    wait_for("the block to be rewritten", async || {
        block_at(&mut client, height).await.is_ok()
    })
    .await;
    assert_eq!(block_at(&mut client, height).await.unwrap(), committed);
    wait_for("SERVING again", async || {
        net.ledger_health().await == Some(ServingStatus::Serving as i32)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_tip_is_found_by_the_check_at_start_and_the_store_rebuilt_from_chain() {
    let (mut net, mut client) = Network::with_ledger(network(4, 62)).await;
    commit_notes(&net, &mut client, "damage target 62", 3).await;
    for i in 0..4 {
        net.stop_validator(i).await;
    }
    let tip = net.chain_height().await;
    net.wait_ledger_at(&mut client, tip).await;
    let committed = block_at(&mut client, tip).await.unwrap();
    // A clean stop: redb opens the file without recovery, so only the ledger's own check of
    // its applied height can find the damage.
    net.stop_ledger().await;

    let file = store_file(&net);
    assert!(flip_in_file(&file, block_needle(&committed)) >= 1);
    net.start_ledger("ledger").await;
    let mut client = net.client().await;
    assert!(
        file.with_extension("redb.damaged").exists(),
        "the damaged file is kept aside for inspection"
    );
    net.wait_ledger_at(&mut client, tip).await;
    assert_eq!(block_at(&mut client, tip).await.unwrap(), committed);
    block_at(&mut client, 1)
        .await
        .expect("block 1 is served again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_file_redb_cannot_open_is_moved_aside_and_rebuilt() {
    let (mut net, mut client) = Network::with_ledger(network(4, 63)).await;
    commit_notes(&net, &mut client, "damage target 63", 2).await;
    let tip = client.tip_height().await.unwrap();
    let first = block_at(&mut client, 1).await.unwrap();
    net.kill_ledger().await;

    // Both commit slots of redb's header overwritten: nothing in the file can be trusted.
    let file = store_file(&net);
    wait_unlocked(&file).await;
    let mut bytes = std::fs::read(&file).unwrap();
    for b in bytes.iter_mut().take(4096).skip(9) {
        *b ^= 0x5a;
    }
    std::fs::write(&file, bytes).unwrap();

    net.start_ledger("ledger").await;
    let mut client = net.client().await;
    net.wait_ledger_at(&mut client, tip).await;
    assert_eq!(block_at(&mut client, 1).await.unwrap(), first);
    assert!(file.with_extension("redb.damaged").exists());
}
