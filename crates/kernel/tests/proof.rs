//! Transaction proofs: every transaction of a real chain has a proof that verifies and
//! round-trips, and a proof for another transaction, at another index, under another header,
//! signed by too few validators, or with any byte of its encoding changed is refused.

mod common;

use citychain_kernel::block::{Block, CommitCertificate};
use citychain_kernel::proof::{MAX_PROOF_BYTES, ProofError, TransactionProof};
use citychain_kernel::{BlockError, ChainId, Genesis, Height, KeyPair, ValidatorSet};
use citychain_proto::citychain::kernel::v1 as pb;
use prost::Message;

struct Fixture {
    genesis: Genesis,
    blocks: Vec<Block>,
}

/// A 4-validator chain of `count` blocks; block `h` holds `h % 8` transactions (0 to 7, so
/// trees of many shapes), certified by 3 validators.
fn chain(salt: u64, count: u64) -> Fixture {
    let (genesis, keys) = common::network(salt);
    let blocks = blocks_for(&genesis, &keys, count);
    Fixture { genesis, blocks }
}

fn blocks_for(genesis: &Genesis, keys: &[KeyPair], count: u64) -> Vec<Block> {
    let shape = common::Shape {
        txs_modulo: 8,
        rotate_signers: false,
    };
    common::blocks_for(genesis, keys, count, shape)
}

fn proof(f: &Fixture, height: u64, index: u64) -> TransactionProof {
    TransactionProof::build(
        &f.blocks[height as usize - 1],
        index,
        &f.genesis.validator_set(),
    )
    .unwrap()
}

#[test]
fn every_transaction_has_a_proof_that_verifies_and_round_trips() {
    let f = chain(1, 16);
    let mut checked = 0;
    for block in &f.blocks {
        for (index, tx) in block.txs.iter().enumerate() {
            let p =
                TransactionProof::build(block, index as u64, &f.genesis.validator_set()).unwrap();
            let verified = p.verify(&f.genesis.chain_id).unwrap();
            assert_eq!(verified.tx.id(), tx.id());
            assert_eq!(verified.height, block.header.height);
            assert_eq!(verified.index, index as u64);
            assert_eq!(verified.block_hash, block.hash());
            assert_eq!((verified.signers, verified.validators), (3, 4));
            assert!(verified.signed_by_genesis(&f.genesis));
            let bytes = p.encode();
            assert_eq!(TransactionProof::decode(&bytes).unwrap(), p);
            checked += 1;
        }
    }
    assert_eq!(checked, (1..=16u64).map(|h| h % 8).sum::<u64>());
}

#[test]
fn the_proof_of_another_transaction_is_refused() {
    let f = chain(2, 8);
    let mut p = proof(&f, 7, 2);
    // Same block, another transaction: a valid, signed transaction that is not this leaf.
    p.transaction = f.blocks[6].txs[3].bytes().to_vec();
    let err = p.verify(&f.genesis.chain_id).unwrap_err();
    assert!(
        matches!(err, ProofError::NotIncluded { index: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("index 2"), "{err}");
    // A transaction from another block.
    let mut p = proof(&f, 7, 2);
    p.transaction = f.blocks[4].txs[0].bytes().to_vec();
    assert!(matches!(
        p.verify(&f.genesis.chain_id),
        Err(ProofError::NotIncluded { .. })
    ));
}

#[test]
fn a_wrong_index_is_refused() {
    let f = chain(3, 8);
    for (index, wrong) in [(0u64, 1u64), (2, 3), (3, 2), (6, 5), (6, 7), (6, 100)] {
        let mut p = proof(&f, 7, index);
        p.index = wrong;
        let err = p.verify(&f.genesis.chain_id).unwrap_err();
        assert!(
            matches!(err, ProofError::NotIncluded { .. }),
            "{index} -> {wrong}: {err}"
        );
    }
}

#[test]
fn a_header_from_another_block_is_refused() {
    let f = chain(4, 8);
    // Another block's header alone: its certificate no longer matches, or the root does not.
    let mut p = proof(&f, 7, 1);
    p.header = f.blocks[5].header.clone();
    assert!(p.verify(&f.genesis.chain_id).is_err());
    // Another block's header with its own certificate and height: the root does not hold the
    // transaction.
    let mut p = proof(&f, 7, 1);
    p.header = f.blocks[5].header.clone();
    p.certificate = f.blocks[5].certificate.clone();
    p.height = Height(6);
    p.tree_size = f.blocks[5].header.tx_count;
    let err = p.verify(&f.genesis.chain_id).unwrap_err();
    assert!(matches!(err, ProofError::NotIncluded { .. }), "{err}");
    // The height field must match the header's.
    let mut p = proof(&f, 7, 1);
    p.height = Height(8);
    assert!(matches!(
        p.verify(&f.genesis.chain_id),
        Err(ProofError::Height { .. })
    ));
    // The tree size must be the header's tx_count.
    let mut p = proof(&f, 7, 1);
    p.tree_size = 8;
    assert!(matches!(
        p.verify(&f.genesis.chain_id),
        Err(ProofError::TreeSize { .. })
    ));
}

#[test]
fn every_changed_byte_of_the_encoding_is_refused() {
    let f = chain(5, 8);
    let p = proof(&f, 7, 4);
    let bytes = p.encode();
    let chain = &f.genesis.chain_id;
    for position in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut changed = bytes.clone();
            changed[position] ^= mask;
            let outcome = TransactionProof::decode(&changed).and_then(|p| p.verify(chain));
            assert!(
                outcome.is_err(),
                "byte {position} of {} xor {mask:#04x} was accepted",
                bytes.len()
            );
        }
    }
    // Truncated encodings are refused too.
    for len in 0..bytes.len() {
        let outcome = TransactionProof::decode(&bytes[..len]).and_then(|p| p.verify(chain));
        assert!(outcome.is_err(), "prefix of {len} bytes was accepted");
    }
}

#[test]
fn non_canonical_encodings_and_unsorted_validators_are_refused() {
    let f = chain(6, 4);
    let p = proof(&f, 3, 1);
    let mut extra = p.encode();
    extra.extend_from_slice(&[0x48, 0x01]); // unknown field 9
    assert!(matches!(
        TransactionProof::decode(&extra),
        Err(ProofError::Decode(_))
    ));
    let mut wire = p.to_proto();
    wire.validators.swap(0, 1);
    let err = TransactionProof::decode(&wire.encode_to_vec()).unwrap_err();
    assert!(
        matches!(err, ProofError::ValidatorOrder { index: 1, .. }),
        "{err}"
    );
    let mut wire: pb::TransactionProof = p.to_proto();
    wire.header = None;
    let err = TransactionProof::decode(&wire.encode_to_vec()).unwrap_err();
    assert!(err.to_string().contains("header is missing"), "{err}");
    let big = vec![0u8; MAX_PROOF_BYTES + 1];
    assert!(matches!(
        TransactionProof::decode(&big),
        Err(ProofError::TooLarge { .. })
    ));
}

#[test]
fn too_few_signers_or_another_chain_are_refused() {
    let f = chain(7, 4);
    let (_, keys) = common::network(7);
    let mut p = proof(&f, 3, 2);
    let two: Vec<_> = keys.iter().take(2).map(|k| &k.signing).collect();
    p.certificate =
        CommitCertificate::sign(&f.genesis.chain_id, Height(3), 0, p.header.hash(), &two);
    let err = p.verify(&f.genesis.chain_id).unwrap_err();
    assert!(
        matches!(
            err,
            ProofError::Certificate {
                source: BlockError::NoQuorum { .. },
                ..
            }
        ),
        "{err}"
    );
    let p = proof(&f, 3, 2);
    let other = ChainId::new("city-other").unwrap();
    assert!(matches!(p.verify(&other), Err(ProofError::Transaction(_))));
}

#[test]
fn a_set_other_than_genesis_verifies_but_is_not_the_genesis_set() {
    let f = chain(8, 4);
    // Same chain id, other validators: a self-consistent proof whose set is not genesis'.
    let (other, keys) = common::network(99);
    let blocks = blocks_for(&other, &keys, 3);
    let p = TransactionProof::build(&blocks[2], 1, &other.validator_set()).unwrap();
    let verified = p.verify(&f.genesis.chain_id).unwrap();
    assert!(!verified.signed_by_genesis(&f.genesis));
    assert!(verified.signed_by(&other.validator_set()));
    // Swapping in the genesis set breaks the header's validators_hash.
    let mut swapped = p.clone();
    swapped.validators = f.genesis.validator_set();
    assert!(matches!(
        swapped.verify(&f.genesis.chain_id),
        Err(ProofError::ValidatorsHash { .. })
    ));
}

#[test]
fn build_refuses_a_missing_index_or_another_set() {
    let f = chain(9, 4);
    let block = &f.blocks[2];
    let err = TransactionProof::build(block, 3, &f.genesis.validator_set()).unwrap_err();
    assert!(
        matches!(
            err,
            ProofError::IndexOutOfRange {
                index: 3,
                count: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = TransactionProof::build(block, 0, &ValidatorSet::new(Vec::new())).unwrap_err();
    assert!(matches!(err, ProofError::ValidatorsHash { .. }), "{err}");
}
