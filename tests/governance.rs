//! Governance end to end, with four real validators, a real ledger and a real nats-server:
//! a validator set change is followed by consensus from the height it takes effect, and a
//! rotated key is refused from the rotation height while its earlier transactions stay valid.

use std::time::Duration;

use citychain_client::{LedgerClient, Signer};
use citychain_governance::Action;
use citychain_kernel::proof::TransactionProof;
use citychain_kernel::{Block, KeyPair, MemberId, Validator, ValidatorSet};
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_scenarios::Network;
use citychain_testkit::genesis::network;
use citychain_testkit::note;

const SEED: u64 = 53;

fn departments(net: &Network) -> Vec<String> {
    net.net
        .genesis
        .validators
        .iter()
        .map(|v| v.to_string())
        .collect()
}

async fn block(client: &mut LedgerClient, height: u64) -> Block {
    let response = client
        .grpc()
        .get_block(pb::GetBlockRequest {
            at: Some(pb::get_block_request::At::Height(height)),
        })
        .await
        .unwrap()
        .into_inner();
    Block::decode(&prost::Message::encode_to_vec(&response.block.unwrap())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_validator_set_change_is_followed_by_consensus_from_the_next_height() {
    let mut net = Network::new(network(4, SEED)).await;
    net.start_validators().await;
    net.start_ledger("ledger").await;
    let mut client = net.client().await;
    let depts = departments(&net);
    let remaining: Vec<MemberId> = depts[..3]
        .iter()
        .map(|d| MemberId::new(d.clone()).unwrap())
        .collect();

    let passed = net
        .pass(
            &mut client,
            "three-validators",
            &Action::SetValidators(remaining.clone()),
        )
        .await;
    // The chain goes on under the new set: a later transaction commits.
    let later = client
        .submit_and_wait(&net.signer(&depts[3], 1), note("after"))
        .await
        .unwrap();
    assert!(later.height > passed);

    let new_set = ValidatorSet::new(
        remaining
            .iter()
            .map(|id| Validator {
                member_id: id.clone(),
                key: net.net.keys[id.as_str()].signing.public_key(),
            })
            .collect(),
    );
    let before = block(&mut client, passed).await;
    let after = block(&mut client, passed + 1).await;
    assert_eq!(
        before.header.validators_hash,
        net.net.genesis.validator_set().hash()
    );
    assert_eq!(after.header.validators_hash, new_set.hash());
    let newest = block(&mut client, later.height).await;
    assert_eq!(newest.header.validators_hash, new_set.hash());
    assert!(
        newest
            .certificate
            .signatures
            .iter()
            .all(|(key, _)| new_set.get(key).is_some()),
        "only validators of the new set sign"
    );
    let checkpoint = client
        .grpc()
        .get_checkpoint(pb::GetCheckpointRequest {
            height: later.height,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checkpoint.validators.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_key_is_refused_from_the_rotation_height_and_its_old_transactions_still_verify() {
    let mut net = Network::new(network(4, SEED + 1)).await;
    net.start_validators().await;
    net.start_ledger("ledger").await;
    let mut client = net.client().await;
    let bank = net
        .net
        .keys
        .keys()
        .find(|id| id.starts_with("bank."))
        .cloned()
        .unwrap();
    let old = net.signer(&bank, 1);
    let before = client.sign(&old, note("before")).await.unwrap();
    let before_id = client.submit(&before).await.unwrap();
    client
        .wait(&before_id, Duration::from_secs(30))
        .await
        .unwrap();

    let fresh = KeyPair::from_seeds(None, &[31; 32], &[32; 32]);
    let rotated_at = net
        .pass(
            &mut client,
            "rotate-bank",
            &Action::RotateKey {
                member: MemberId::new(bank.clone()).unwrap(),
                signing_key: fresh.signing.public_key(),
                encryption_key: None,
            },
        )
        .await;

    let refused = client.sign(&old, note("old key")).await.unwrap();
    let said = client.submit(&refused).await.unwrap_err().to_string();
    assert!(said.contains("rotated from height"), "{said}");
    let new = Signer::new(net.net.genesis.chain_id.clone(), fresh.signing, 1);
    let accepted = client.submit_and_wait(&new, note("new key")).await.unwrap();
    assert!(accepted.height > rotated_at);

    // The old key's transaction from before the rotation still has a valid proof.
    let response = client
        .grpc()
        .get_transaction(pb::GetTransactionRequest { id: before_id })
        .await
        .unwrap()
        .into_inner();
    let proof = TransactionProof::from_proto(response.proof.unwrap()).unwrap();
    proof.verify(&net.net.genesis.chain_id).unwrap();
    assert_eq!(response.signer_member, bank);
}
