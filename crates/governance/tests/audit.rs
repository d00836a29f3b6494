//! The chain auditor: blocks are checked with the validator set governance puts in force, and
//! a committed transaction whose signer is refused is a chain error.

mod common;

use citychain_governance::{Action, AuditError, ChainAuditor, Refusal, Registry};
use citychain_kernel::{BlockError, Height, PublicKey};
use common::*;

#[test]
fn validator_set_change_demands_the_new_sets_certificate_at_the_next_height() {
    let mut net = Net::new(31);
    let mut auditor = ChainAuditor::new(&net.net.genesis);
    let mut chain = ChainBuilder::new();
    let old_set = auditor.registry().next_validator_set();

    // Block 1 passes a set of three departments, certified by the genesis set.
    let three = Action::SetValidators(DEPTS[..3].iter().map(|s| mid(s)).collect());
    let txs = vec![
        net.propose(DEPTS[0], "three", three),
        net.approve(DEPTS[1], "three"),
        net.approve(DEPTS[2], "three"),
    ];
    let block = chain.block_by_all(&net, Height(1), txs, &old_set);
    let outcome = auditor.push(&block).unwrap();
    assert!(outcome.validators_changed);
    chain.advance(&block);
    let new_set = auditor.registry().next_validator_set();
    assert_eq!(auditor.verifier().validators(), &new_set);

    // Block 2 naming and certified by the old set is refused.
    let stale = chain.block_by_all(&net, Height(2), vec![], &old_set);
    match auditor.push(&stale) {
        Err(AuditError::Block {
            height,
            source: BlockError::ValidatorsHash { .. },
        }) => {
            assert_eq!(height, Height(2))
        }
        other => panic!("{other:?}"),
    }
    // Naming the new set but signed with the removed validator among the signers is refused.
    let removed = net.key(DEPTS[3]).public_key();
    let mut signers: Vec<PublicKey> = new_set.validators().iter().map(|v| v.key).take(2).collect();
    signers.push(removed);
    signers.sort();
    let mixed = chain.block(&net, Height(2), vec![], &new_set, &signers);
    assert!(matches!(
        auditor.push(&mixed),
        Err(AuditError::Block {
            source: BlockError::NotAValidator { .. },
            ..
        })
    ));
    // Certified by the new set it is accepted.
    let good = chain.block_by_all(&net, Height(2), vec![], &new_set);
    auditor.push(&good).unwrap();
    assert_eq!(auditor.next_height(), Height(3));
}

#[test]
fn refused_transaction_in_a_committed_block_is_a_chain_error() {
    let mut net = Net::new(32);
    let mut auditor = ChainAuditor::new(&net.net.genesis);
    let chain = ChainBuilder::new();
    let set = auditor.registry().next_validator_set();
    let stranger = fresh_keys(220);
    let txs = vec![
        net.tx(&net.key(BANK), plain_body()),
        net.tx(&stranger.signing, plain_body()),
    ];
    let block = chain.block_by_all(&net, Height(1), txs, &set);
    let before = auditor.registry().state_hash();
    match auditor.push(&block) {
        Err(
            e @ AuditError::Refused {
                height,
                index,
                reason: Refusal::NotAMember { .. },
                ..
            },
        ) => {
            assert_eq!((height, index), (Height(1), 1));
            assert!(e.to_string().starts_with("block 1 transaction 1"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing changed.
    assert_eq!(auditor.registry().state_hash(), before);
    assert_eq!(auditor.next_height(), Height(1));
}

#[test]
fn rotated_validator_key_signs_from_the_effect_height() {
    let mut net = Net::new(33);
    let mut auditor = ChainAuditor::new(&net.net.genesis);
    let mut chain = ChainBuilder::new();
    let new = fresh_keys(221);
    net.learn(&new);
    let old_key = net.key(DEPTS[0]).public_key();
    let rotate = Action::RotateKey {
        member: mid(DEPTS[0]),
        signing_key: new.signing.public_key(),
        encryption_key: None,
    };
    let txs = vec![
        net.propose(DEPTS[0], "rot", rotate),
        net.approve(DEPTS[1], "rot"),
        net.approve(DEPTS[2], "rot"),
    ];
    let set = auditor.registry().next_validator_set();
    let block = chain.block_by_all(&net, Height(1), txs, &set);
    auditor.push(&block).unwrap();
    chain.advance(&block);

    let set = auditor.registry().next_validator_set();
    assert!(set.get(&old_key).is_none());
    let block = chain.block_by_all(&net, Height(2), vec![], &set);
    auditor.push(&block).unwrap();
    chain.advance(&block);

    // Resuming from the stored registry continues the same chain.
    let stored = auditor.registry().encode();
    let registry = Registry::decode(&stored).unwrap();
    let mut resumed = ChainAuditor::resume(&net.net.genesis, &block.header, 0, registry).unwrap();
    let block3 = chain.block_by_all(&net, Height(3), vec![], &set);
    resumed.push(&block3).unwrap();
    auditor.push(&block3).unwrap();
    assert_eq!(
        resumed.registry().state_hash(),
        auditor.registry().state_hash()
    );

    // A registry from another height does not resume.
    let wrong = Registry::from_genesis(&net.net.genesis);
    assert!(matches!(
        ChainAuditor::resume(&net.net.genesis, &block3.header, 0, wrong),
        Err(AuditError::Resume { .. })
    ));
}
