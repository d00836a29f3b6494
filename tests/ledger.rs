//! The ledger service end to end, against a real nats-server and four real validators:
//! submission to commit with an offline-verifiable proof, typed errors for malformed requests,
//! governance admitting a member, and a ledger killed under load resuming exactly.

use std::time::Duration;

use citychain_bus::HeaderMap;
use citychain_client::{LedgerClient, Signer};
use citychain_governance::{Action, ProposalId, approve_body, propose_body};
use citychain_kernel::genesis::Role;
use citychain_kernel::proof::TransactionProof;
use citychain_kernel::{
    BlockHeader, CommitCertificate, Height, KeyPair, Member, MemberId, SignedTx,
};
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_scenarios::Network;
use citychain_store::{EmbeddedStore, Scan, Store, Transaction};
use citychain_testkit::genesis::network;
use citychain_testkit::{note, note_about};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const SEED: u64 = 41;

fn signer(net: &Network, member: &str, first_nonce: u64) -> Signer {
    Signer::new(
        net.net.genesis.chain_id.clone(),
        net.net.keys[member].signing.clone(),
        first_nonce,
    )
}

/// The first member that is not a validator (a bank, say).
fn non_validator(net: &Network) -> String {
    net.net
        .keys
        .keys()
        .find(|id| !net.net.genesis.validators.iter().any(|v| v.as_str() == *id))
        .cloned()
        .expect("sample members exist")
}

async fn running(seed: u64) -> (Network, LedgerClient) {
    Network::with_ledger(network(4, seed)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submitted_transaction_commits_and_its_proof_verifies_offline() {
    let (net, mut client) = running(SEED).await;
    let bank = non_validator(&net);
    let signer = signer(&net, &bank, 1);
    let body = note_about("citizen:3301-0007", "loan file 7");

    let tx = client.sign(&signer, body).await.unwrap();
    let id = client.submit(&tx).await.unwrap();
    let again = client
        .grpc()
        .submit_transaction(pb::SubmitTransactionRequest {
            transaction: tx.bytes().to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let committed = client.wait(&id, Duration::from_secs(30)).await.unwrap();

    assert_eq!(id, tx.id().to_string());
    assert_eq!(again.id, id, "the same bytes get the same id");
    let response = client
        .grpc()
        .get_transaction(pb::GetTransactionRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.height, committed.height);
    assert_eq!(response.signer_member, bank);
    let proof = TransactionProof::from_proto(response.proof.unwrap()).unwrap();
    let verified = proof.verify(&net.net.genesis.chain_id).unwrap();
    assert_eq!(verified.tx.id(), tx.id());
    assert!(verified.signed_by_genesis(&net.net.genesis));

    // The proof of another transaction, and a mutated proof, are refused.
    let other = signer.sign(note("other"), tx.expiry()).unwrap();
    let mut swapped = proof.clone();
    swapped.transaction = other.bytes().to_vec();
    assert!(swapped.verify(&net.net.genesis.chain_id).is_err());
    let encoded = proof.encode();
    for at in (0..encoded.len()).step_by(7) {
        let mut bytes = encoded.clone();
        bytes[at] ^= 0x01;
        let refused = TransactionProof::decode(&bytes)
            .and_then(|p| p.verify(&net.net.genesis.chain_id).map(|_| ()));
        assert!(
            refused.is_err(),
            "flipping byte {at} of the proof went unnoticed"
        );
    }

    // It is found by its signer and by its declared subject.
    let by_subject = client
        .grpc()
        .list_transactions(pb::ListTransactionsRequest {
            filter: Some(pb::list_transactions_request::Filter::Subject(
                "citizen:3301-0007".into(),
            )),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_subject.transactions.len(), 1);
    assert_eq!(by_subject.transactions[0].id, id);
    let by_signer = client
        .grpc()
        .list_transactions(pb::ListTransactionsRequest {
            filter: Some(pb::list_transactions_request::Filter::Signer(
                signer.key().public_key().to_string(),
            )),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_signer.transactions.len(), 1, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_requests_get_typed_errors_and_the_service_keeps_serving() {
    let (net, mut client) = running(SEED + 1).await;
    let grpc = client.grpc();

    let garbage = grpc
        .submit_transaction(pb::SubmitTransactionRequest {
            transaction: vec![0xff, 0x00, 0x13, 0x37],
        })
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");

    let page = grpc
        .list_blocks(pb::ListBlocksRequest {
            from_height: 1,
            page_size: 101,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(page.code(), Code::InvalidArgument);
    assert!(
        page.message().contains("maximum of 100"),
        "{}",
        page.message()
    );

    let token = grpc
        .list_blocks(pb::ListBlocksRequest {
            from_height: 1,
            page_size: 5,
            page_token: "not-a-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(token.code(), Code::InvalidArgument);

    // A real token edited to start elsewhere (the key moved, its tag kept) is refused too.
    while client.tip_height().await.unwrap() < 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grpc = client.grpc();
    let first = grpc
        .list_blocks(pb::ListBlocksRequest {
            from_height: 1,
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let real = first.next_page_token;
    assert!(!real.is_empty(), "a full page has a next token");
    let mut moved = real.clone().into_bytes();
    // The key's last byte (before the 32 hex characters of the tag) is the height's lowest.
    let at = moved.len() - 33;
    moved[at] = if moved[at] == b'9' { b'8' } else { b'9' };
    let moved = grpc
        .list_blocks(pb::ListBlocksRequest {
            from_height: 1,
            page_size: 1,
            page_token: String::from_utf8(moved).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(moved.code(), Code::InvalidArgument);
    assert!(
        moved.message().contains("was not issued for this list"),
        "{}",
        moved.message()
    );
    let next = grpc
        .list_blocks(pb::ListBlocksRequest {
            from_height: 1,
            page_size: 1,
            page_token: real,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.blocks.len(), 1);

    let far = grpc
        .get_block(pb::GetBlockRequest {
            at: Some(pb::get_block_request::At::Height(1_000_000_000)),
        })
        .await
        .unwrap_err();
    assert_eq!(far.code(), Code::NotFound);

    let bad_id = grpc
        .get_transaction(pb::GetTransactionRequest { id: "zz".into() })
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    assert!(bad_id.message().contains("id"), "{}", bad_id.message());

    let unknown = grpc
        .watch_transaction(pb::WatchTransactionRequest {
            id: "ab".repeat(32),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let stranger = KeyPair::from_seeds(None, &[9; 32], &[8; 32]);
    let outsider = Signer::new(net.net.genesis.chain_id.clone(), stranger.signing, 1);
    let tx = client.sign(&outsider, note("1")).await.unwrap();
    let refused = client.submit(&tx).await.unwrap_err().to_string();
    assert!(refused.contains("not a member"), "{refused}");

    let too_far = outsider.sign(note("1"), Height(u64::MAX)).unwrap();
    let expiry = client.submit(&too_far).await.unwrap_err().to_string();
    assert!(expiry.contains("choose an expiry up to"), "{expiry}");

    // Still serving.
    assert!(client.tip_height().await.unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_admitted_by_three_of_four_departments_transacts_from_the_next_height() {
    let (net, mut client) = running(SEED + 2).await;
    let departments: Vec<String> = net
        .net
        .genesis
        .validators
        .iter()
        .map(|v| v.to_string())
        .collect();
    let newcomer = KeyPair::from_seeds(None, &[21; 32], &[22; 32]);
    let member = Member {
        id: MemberId::new("enterprise.newco").unwrap(),
        name: "NewCo".into(),
        role: Role::Enterprise,
        signing_key: newcomer.signing.public_key(),
        encryption_key: newcomer.encryption.public_key(),
    };
    let proposal = ProposalId::new("admit-newco").unwrap();
    let newco = Signer::new(
        net.net.genesis.chain_id.clone(),
        newcomer.signing.clone(),
        1,
    );

    // Two of four: proposed by one department, approved by another.
    let first = signer(&net, &departments[0], 1);
    client
        .submit_and_wait(&first, propose_body(&proposal, &Action::AddMember(member)))
        .await
        .unwrap();
    let second = signer(&net, &departments[1], 1);
    client
        .submit_and_wait(&second, approve_body(&proposal))
        .await
        .unwrap();
    let early = client.sign(&newco, note("1")).await.unwrap();
    let refused = client.submit(&early).await.unwrap_err().to_string();
    assert!(refused.contains("not a member"), "with 2 of 4: {refused}");

    // The third approval admits it from the next height.
    let third = signer(&net, &departments[2], 1);
    let passed = client
        .submit_and_wait(&third, approve_body(&proposal))
        .await
        .unwrap();
    let admitted = client.submit_and_wait(&newco, note("2")).await.unwrap();
    assert!(admitted.height > passed.height);
    let record = client
        .grpc()
        .get_member(pb::GetMemberRequest {
            id: "enterprise.newco".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.status, "active");
}

/// Every ledger key of a stopped ledger's store.
async fn ledger_keys(path: std::path::PathBuf) -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = EmbeddedStore::open(&path).await.unwrap();
    let mut txn = store.begin().await.unwrap();
    txn.scan(&Scan::prefix(b"l/")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ledger_killed_under_load_resumes_with_no_block_applied_twice_or_skipped() {
    let (mut net, mut client) = running(SEED + 3).await;
    let bank = non_validator(&net);
    let signer = signer(&net, &bank, 1);
    let tip = client.tip_height().await.unwrap();
    let txs: Vec<SignedTx> = (0..300u32)
        .map(|i| {
            signer
                .sign(note(&format!("note {i}")), Height(tip + 200))
                .unwrap()
        })
        .collect();
    for tx in &txs[..150] {
        client.submit(tx).await.unwrap();
    }

    net.kill_ledger().await;
    // Meanwhile the validators go on committing what was submitted.
    tokio::time::sleep(Duration::from_millis(700)).await;
    net.start_ledger("ledger").await;
    let mut client = net.client().await;
    for tx in &txs[150..] {
        client.submit(tx).await.unwrap();
    }
    for tx in &txs {
        client
            .wait(&tx.id().to_string(), Duration::from_secs(60))
            .await
            .unwrap();
    }

    // Stop the chain, let a fresh ledger replay it from genesis, and compare every index.
    for i in 0..4 {
        net.stop_validator(i).await;
    }
    let height = net.chain_height().await;
    net.wait_ledger_at(&mut client, height).await;
    net.stop_ledger().await;
    net.start_ledger("replay").await;
    let mut replay = net.client().await;
    net.wait_ledger_at(&mut replay, height).await;
    assert_eq!(replay.tip_height().await.unwrap(), height);
    net.stop_ledger().await;
    let resumed = ledger_keys(net.dir.path().join("ledger/ledger.redb")).await;
    let fresh = ledger_keys(net.dir.path().join("replay/ledger.redb")).await;
    assert!(resumed.len() > 300 * 3, "indexes hold every transaction");
    assert_eq!(resumed.len(), fresh.len());
    let differing = resumed
        .iter()
        .zip(&fresh)
        .find(|(a, b)| a != b)
        .map(|(a, b)| {
            (
                String::from_utf8_lossy(&a.0).into_owned(),
                a.1.len(),
                b.1.len(),
            )
        });
    assert_eq!(
        differing, None,
        "the resumed ledger's indexes differ from a fresh replay (key, lengths)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_block_on_chain_halts_the_ledger_without_skipping_it() {
    let (mut net, mut client) = running(SEED + 5).await;
    for i in 0..4 {
        net.stop_validator(i).await;
    }
    let tip = net.chain_height().await;
    net.wait_ledger_at(&mut client, tip).await;
    let last = client
        .grpc()
        .get_block(pb::GetBlockRequest {
            at: Some(pb::get_block_request::At::Height(tip)),
        })
        .await
        .unwrap()
        .into_inner();
    let last =
        citychain_kernel::Block::decode(&prost::Message::encode_to_vec(&last.block.unwrap()))
            .unwrap();

    // The next block, signed by only two of the four validators (a quorum is three).
    let genesis = &net.net.genesis;
    let keys = net.net.validator_keys();
    let header = BlockHeader::new(
        genesis.chain_id.clone(),
        Height(tip + 1),
        last.header.time_unix_ms + 1,
        last.hash(),
        &[],
        &genesis.validator_set(),
        genesis.validator_set().proposer(Height(tip + 1), 0).key,
    );
    let certificate = CommitCertificate::sign(
        &genesis.chain_id,
        Height(tip + 1),
        0,
        header.hash(),
        &[&keys[0].signing, &keys[1].signing],
    );
    let forged = citychain_kernel::Block {
        header,
        txs: Vec::new(),
        certificate,
    };
    net.bus()
        .await
        .append_expected(
            &net.streams.chain_subject(),
            tip,
            &forged.hash().to_string(),
            forged.encode().into(),
            HeaderMap::new(),
        )
        .await
        .unwrap();

    for _ in 0..100 {
        if net.ledger_health().await == Some(ServingStatus::NotServing as i32) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        net.ledger_health().await,
        Some(ServingStatus::NotServing as i32),
        "the ledger reports the violation"
    );
    assert_eq!(
        client.tip_height().await.unwrap(),
        tip,
        "the forged block is not applied"
    );
    // Queries of the verified part still work, and the block after it is never skipped to.
    assert!(
        client
            .grpc()
            .get_block(pb::GetBlockRequest {
                at: Some(pb::get_block_request::At::Height(tip + 1)),
            })
            .await
            .is_err()
    );
}
