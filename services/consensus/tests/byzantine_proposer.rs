//! n4f1-byzantine proposer: three honest validators and one that, at its own turns, sends a
//! signed proposal and block of its own making instead of running the protocol. A block of
//! notes it builds is decided in its round as any proposer's would be; a block carrying a body
//! the chain does not carry (a well-signed transaction from a member) is refused by every
//! honest validator, so that round goes nil and the height is decided in a later round
//! without it.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use citychain_consensus_domain::context::{
    Address, BlockValue, CityContext, ConsensusSignature, Height as ConsensusHeight, Proposal,
};
use citychain_consensus_domain::wire::{BlockPart, with_placeholder_certificate};
use citychain_consensus_domain::{Envelope, WireMessage};
use citychain_kernel::block::tx_root;
use citychain_kernel::{
    Block, BlockHeader, CommitCertificate, Height, SignedTx, SigningKey, TxBody,
};
use common::Cluster;
use malachitebft_core_types::{Round, SignedMessage};

/// The messages a proposer sends for `txs` at the height after `prev`, in round 0.
fn proposal_for(
    cluster: &Cluster,
    proposer: &SigningKey,
    prev: &Block,
    txs: Vec<SignedTx>,
) -> (Block, Vec<Envelope>) {
    let genesis = &cluster.net.genesis;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let height = prev.header.height.0 + 1;
    let header = BlockHeader {
        chain_id: genesis.chain_id.clone(),
        height: Height(height),
        time_unix_ms: now.max(prev.header.time_unix_ms + 1),
        prev_hash: prev.hash(),
        tx_root: tx_root(&txs),
        tx_count: txs.len() as u64,
        validators_hash: genesis.validator_set().hash(),
        proposer: proposer.public_key(),
    };
    let block = with_placeholder_certificate(&Block {
        certificate: CommitCertificate {
            height: header.height,
            round: 0,
            block_hash: header.hash(),
            signatures: Vec::new(),
        },
        header,
        txs,
    });
    let ctx = CityContext::new(genesis.chain_id.clone());
    let proposal = Proposal {
        height: ConsensusHeight(height),
        round: Round::new(0),
        value: BlockValue(block.hash()),
        pol_round: Round::Nil,
        proposer: Address(proposer.public_key()),
    };
    let signature = ConsensusSignature(proposer.sign(&ctx.proposal_sign_bytes(&proposal)));
    let envelope = |message| Envelope {
        chain_id: genesis.chain_id.clone(),
        message,
    };
    let messages = vec![
        envelope(WireMessage::Proposal(SignedMessage::new(
            proposal, signature,
        ))),
        envelope(WireMessage::BlockPart(BlockPart {
            height,
            round: 0,
            block: block.clone(),
        })),
    ];
    (block, messages)
}

/// The block at `height` on CHAIN, once it is there.
async fn block_at(cluster: &Cluster, height: u64) -> Block {
    let stream = cluster
        .streams
        .stream_name(citychain_bus::StreamKind::Chain);
    for _ in 0..1_500 {
        if cluster.chain_height().await >= height {
            let message = cluster.bus.get_message(&stream, height).await.unwrap();
            return Block::decode(&message.payload).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("height {height} was not decided within 30 s");
}

/// Waits for the last block before one of `turn`'s heights (`height % validators == turn`)
/// and returns it.
async fn before_turn(cluster: &Cluster, turn: usize) -> Block {
    let n = cluster.members.len() as u64;
    loop {
        let tip = cluster.chain_height().await;
        if tip >= 1 && (tip + 1) % n == turn as u64 {
            return block_at(cluster, tip).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Publishes `messages` on the broadcast subject a few times over half a second, so a
/// validator that reaches the height a moment later still receives them.
async fn broadcast(cluster: &Cluster, messages: &[Envelope]) {
    for _ in 0..5 {
        cluster.broadcast(messages).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Proposed blocks each honest validator refused.
fn invalid_blocks(cluster: &Cluster) -> Vec<u64> {
    cluster.members[..3]
        .iter()
        .map(|m| {
            let status = m.status.lock().unwrap();
            status.dropped.get("invalid_block").copied().unwrap_or(0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n4f1_a_byzantine_proposer_s_block_with_a_body_the_chain_does_not_carry_is_prevoted_nil() {
    let mut cluster = Cluster::new(4, 53).await;
    for i in 0..3 {
        cluster.start(i).await;
    }
    let byzantine = cluster.members[3].setup.key.clone();
    let turn = cluster
        .net
        .genesis
        .validator_set()
        .validators()
        .iter()
        .position(|v| v.key == byzantine.public_key())
        .expect("the byzantine validator is in the set");
    let [note, junk] = {
        let mut txs = cluster.transactions(1, 1);
        let member = cluster
            .net
            .transaction_signers()
            .map(|(_, k)| k.signing.clone())
            .next()
            .unwrap();
        let junk = SignedTx::sign(
            &cluster.net.genesis.chain_id,
            &member,
            2,
            Height(900),
            TxBody::new("citychain.bench.v1.Put", b"key=value".to_vec()),
        )
        .unwrap();
        [txs.remove(0), junk]
    };

    // Control: a block of the chain's own bodies, proposed the same way, is decided in the
    // byzantine validator's round, so the messages below do reach the honest validators.
    let prev = before_turn(&cluster, turn).await;
    let (own, messages) = proposal_for(&cluster, &byzantine, &prev, vec![note.clone()]);
    broadcast(&cluster, &messages).await;
    let decided = block_at(&cluster, own.header.height.0).await;
    assert_eq!(
        decided.hash(),
        own.hash(),
        "the proposed block of notes was decided"
    );
    assert_eq!(decided.certificate.round, 0);
    assert_eq!(invalid_blocks(&cluster), [0, 0, 0]);

    // The same at its next turn with a transaction whose body the chain does not carry.
    let prev = before_turn(&cluster, turn).await;
    let (bad, messages) = proposal_for(&cluster, &byzantine, &prev, vec![junk.clone()]);
    broadcast(&cluster, &messages).await;
    let decided = block_at(&cluster, bad.header.height.0).await;
    assert_ne!(decided.hash(), bad.hash());
    assert!(
        decided.certificate.round >= 1,
        "round 0 was the byzantine proposer's and went nil"
    );
    assert_ne!(decided.header.proposer, byzantine.public_key());
    assert!(decided.txs.iter().all(|tx| tx.id() != junk.id()));
    let refused = invalid_blocks(&cluster);
    assert!(
        refused.iter().all(|&n| n >= 1),
        "every honest validator refused the block: {refused:?}"
    );

    // Commits go on, and every block verifies from genesis.
    let later = cluster.chain_height().await + 2;
    block_at(&cluster, later).await;
    let chain = cluster.chain().await;
    assert!(
        chain
            .iter()
            .flat_map(|b| &b.txs)
            .all(|tx| tx.id() != junk.id())
    );
}
