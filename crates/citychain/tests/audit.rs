//! The offline audit commands against a running network (four validators, a ledger, a real
//! nats-server): a committed transaction's proof from `GetTransaction` passes
//! `citychain proof verify` and a mutated one does not, and `citychain chain export` writes a
//! file that `citychain verify` accepts from genesis.

mod common;

use common::{citychain, text};

use std::path::Path;
use std::time::Duration;

use citychain_client::Signer;
use citychain_kernel::proof::TransactionProof;
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_scenarios::Network;
use citychain_testkit::genesis::network;

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proofs_from_the_ledger_verify_offline_and_exports_verify_from_genesis() {
    let mut net = Network::new(network(4, 61)).await;
    net.start_validators().await;
    net.start_ledger("ledger").await;
    let mut client = net.client().await;
    let member = net.net.genesis.validators[0].to_string();
    let signer = Signer::new(
        net.net.genesis.chain_id.clone(),
        net.net.keys[&member].signing.clone(),
        1,
    );
    let tx = client
        .sign(&signer, citychain_testkit::note("deed 12"))
        .await
        .unwrap();
    let id = client.submit(&tx).await.unwrap();
    client.wait(&id, Duration::from_secs(30)).await.unwrap();
    let response = client
        .grpc()
        .get_transaction(pb::GetTransactionRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let proof = TransactionProof::from_proto(response.proof.unwrap()).unwrap();

    let dir = net.dir.path();
    let genesis = dir.join("genesis.json");
    let proof_file = dir.join("tx.proof");
    std::fs::write(&proof_file, proof.encode()).unwrap();
    let mut mutated = proof.encode();
    let middle = mutated.len() / 2;
    mutated[middle] ^= 0x20;
    let mutated_file = dir.join("mutated.proof");
    std::fs::write(&mutated_file, mutated).unwrap();

    let ok = citychain(&[
        "proof",
        "verify",
        "--genesis",
        arg(&genesis),
        arg(&proof_file),
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains(&id), "{}", text(&ok.stdout));
    assert!(text(&ok.stdout).contains("verified"));
    let bad = citychain(&[
        "proof",
        "verify",
        "--genesis",
        arg(&genesis),
        arg(&mutated_file),
    ]);
    assert!(!bad.status.success(), "a mutated proof was accepted");

    let export = dir.join("chain.export");
    let ledger = format!("http://{}", net.ledger_addr);
    let exported = citychain(&[
        "chain",
        "export",
        "--ledger",
        &ledger,
        "--genesis",
        arg(&genesis),
        "--out",
        arg(&export),
    ]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let verified = citychain(&["verify", arg(&genesis), arg(&export)]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(
        text(&verified.stdout).contains("heights:      1.."),
        "{}",
        text(&verified.stdout)
    );
    let with_chain = citychain(&[
        "proof",
        "verify",
        "--genesis",
        arg(&genesis),
        "--chain",
        arg(&export),
        arg(&proof_file),
    ]);
    assert!(with_chain.status.success(), "{}", text(&with_chain.stderr));
}
