//! n4f1-byzantine: three honest validators and one that equivocates (conflicting prevotes and
//! precommits for the same round), forges votes in another validator's name, while a
//! non-member injects votes too. Commits go on, no fork appears, the forgeries and the
//! outsider are dropped, and the equivocation yields evidence on the EVENTS stream.

mod common;

use std::time::Duration;

use citychain_bus::StreamKind;
use citychain_consensus_domain::context::{Address, CityContext, ConsensusSignature, Height, Vote};
use citychain_consensus_domain::{Envelope, WireMessage};
use citychain_kernel::{BlockHash, Hash32, SigningKey};
use common::Cluster;
use malachitebft_core_types::{NilOrVal, Round, SignedMessage, VoteType};

fn vote(
    ctx: &CityContext,
    signer: &SigningKey,
    claimed: &SigningKey,
    height: u64,
    round: u32,
    vote_type: VoteType,
    value: u8,
) -> Envelope {
    let vote = Vote {
        vote_type,
        height: Height(height),
        round: Round::new(round),
        value: NilOrVal::Val(BlockHash(Hash32([value; 32]))),
        validator: Address(claimed.public_key()),
    };
    let signature = ConsensusSignature(signer.sign(&ctx.vote_sign_bytes(&vote)));
    Envelope {
        chain_id: ctx.chain_id().clone(),
        message: WireMessage::Vote(SignedMessage::new(vote, signature)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n4f1_byzantine_equivocation_and_forgeries_are_caught_without_a_fork() {
    let mut cluster = Cluster::new(4, 51).await;
    // Validator 3 is Byzantine: it does not run the protocol, it only sends bad messages.
    for i in 0..3 {
        cluster.start(i).await;
    }
    let byzantine = cluster.members[3].setup.key.clone();
    let honest = cluster.members[0].setup.key.clone();
    let outsider = SigningKey::from_seed(&[0x99; 32]);
    let ctx = CityContext::new(cluster.net.genesis.chain_id.clone());

    let txs = cluster.transactions(300, 1);
    cluster.submit(&txs[..100]).await;
    for tick in 0..30u8 {
        let height = cluster.members[0].status.lock().unwrap().height.max(1);
        let mut messages = Vec::new();
        for vote_type in [VoteType::Prevote, VoteType::Precommit] {
            // Two different values for the same height, round and step.
            messages.push(vote(
                &ctx, &byzantine, &byzantine, height, 0, vote_type, tick,
            ));
            messages.push(vote(
                &ctx,
                &byzantine,
                &byzantine,
                height,
                0,
                vote_type,
                tick ^ 0xff,
            ));
            // A vote in an honest validator's name, and one from a non-member.
            messages.push(vote(&ctx, &byzantine, &honest, height, 0, vote_type, 7));
            messages.push(vote(&ctx, &outsider, &outsider, height, 0, vote_type, 8));
        }
        cluster.broadcast(&messages).await;
        if tick == 10 {
            cluster.submit(&txs[100..]).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.wait_for_txs(300, 60).await;
    // chain() verifies every block from genesis.
    let chain = cluster.chain().await;
    assert!(chain.len() >= 2);

    let status = cluster.members[1].status.lock().unwrap().clone();
    assert!(status.evidence > 0, "no equivocation evidence: {status:?}");
    assert!(
        status.dropped.get("bad_signature").copied().unwrap_or(0) > 0,
        "{status:?}"
    );
    assert!(
        status.dropped.get("non_validator").copied().unwrap_or(0) > 0,
        "{status:?}"
    );
    let events = cluster.streams.stream_name(StreamKind::Events);
    let stored = cluster.bus.stream_state(&events).await.unwrap();
    assert!(stored.messages > 0, "evidence was not published");
}
