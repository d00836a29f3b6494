//! A chain of real blocks verifies from genesis, and each kind of tampering is found at the
//! right height.

mod common;

use citychain_kernel::block::{Block, BlockError, ChainVerifier, CommitCertificate};
use citychain_kernel::tx::SignedTx;
use citychain_kernel::{Genesis, Height, KeyPair};

struct Fixture {
    genesis: Genesis,
    keys: Vec<KeyPair>,
    blocks: Vec<Block>,
}

/// Builds `count` blocks, each with a few transactions, certified by 3 of the 4 validators.
fn chain(count: u64) -> Fixture {
    let (genesis, keys) = common::network(0);
    let shape = common::Shape {
        txs_modulo: 4,
        rotate_signers: true,
    };
    let blocks = common::blocks_for(&genesis, &keys, count, shape);
    Fixture {
        genesis,
        keys,
        blocks,
    }
}

fn verify_all(genesis: &Genesis, blocks: &[Block]) -> Result<(), (u64, BlockError)> {
    let mut verifier = ChainVerifier::new(genesis);
    for block in blocks {
        verifier
            .push(block)
            .map_err(|e| (verifier.next_height().0, e))?;
    }
    Ok(())
}

#[test]
fn an_untouched_chain_verifies_and_round_trips_through_bytes() {
    let f = chain(30);
    verify_all(&f.genesis, &f.blocks).unwrap();
    let decoded: Vec<Block> = f
        .blocks
        .iter()
        .map(|b| Block::decode(&b.encode()).unwrap())
        .collect();
    assert_eq!(decoded, f.blocks);
}

#[test]
fn every_flipped_byte_of_a_block_is_found_at_its_height() {
    let f = chain(6);
    for target in [2usize, 5] {
        let bytes = f.blocks[target].encode();
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            let outcome = match Block::decode(&damaged) {
                Err(_) => continue,
                Ok(block) => {
                    let mut blocks = f.blocks.clone();
                    blocks[target] = block;
                    verify_all(&f.genesis, &blocks)
                }
            };
            match outcome {
                Err((height, _)) => assert_eq!(height, target as u64 + 1, "byte {i}"),
                Ok(()) => panic!("flipping byte {i} of block {} went unnoticed", target + 1),
            }
        }
    }
}

#[test]
fn deleted_duplicated_and_reordered_blocks_are_refused() {
    let f = chain(8);
    let mut deleted = f.blocks.clone();
    deleted.remove(3);
    assert!(matches!(
        verify_all(&f.genesis, &deleted),
        Err((4, BlockError::Height { .. }))
    ));
    let mut duplicated = f.blocks.clone();
    duplicated.insert(3, f.blocks[2].clone());
    assert!(matches!(
        verify_all(&f.genesis, &duplicated),
        Err((4, BlockError::Height { .. }))
    ));
    let mut reordered = f.blocks.clone();
    reordered.swap(4, 5);
    assert!(verify_all(&f.genesis, &reordered).is_err());
}

#[test]
fn a_certificate_below_quorum_or_from_outsiders_is_refused() {
    let f = chain(3);
    let mut blocks = f.blocks.clone();
    let b = &mut blocks[1];
    let two: Vec<_> = f.keys.iter().take(2).map(|k| &k.signing).collect();
    b.certificate = CommitCertificate::sign(&f.genesis.chain_id, Height(2), 0, b.hash(), &two);
    assert!(matches!(
        verify_all(&f.genesis, &blocks),
        Err((
            2,
            BlockError::NoQuorum {
                signers: 2,
                quorum: 3,
                ..
            }
        ))
    ));
    let outsider = citychain_kernel::SigningKey::from_seed(&[0xee; 32]);
    let mut signers: Vec<_> = f.keys.iter().take(2).map(|k| &k.signing).collect();
    signers.push(&outsider);
    blocks[1].certificate = CommitCertificate::sign(
        &f.genesis.chain_id,
        Height(2),
        0,
        blocks[1].hash(),
        &signers,
    );
    assert!(matches!(
        verify_all(&f.genesis, &blocks),
        Err((2, BlockError::NotAValidator { .. }))
    ));
}

#[test]
fn a_certificate_for_another_round_does_not_verify() {
    let f = chain(2);
    let mut blocks = f.blocks.clone();
    blocks[0].certificate.round = 1;
    assert!(matches!(
        verify_all(&f.genesis, &blocks),
        Err((1, BlockError::CertificateSignature(_)))
    ));
}

#[test]
fn skipping_known_signatures_still_catches_a_swapped_signature() {
    let f = chain(4);
    let mut block = f.blocks[2].clone(); // height 3 carries 3 transactions
    let original = block.txs[1].clone();
    // Same intent (same id), damaged signature: the last byte of the encoding is in it.
    let mut bytes = original.bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let forged = SignedTx::decode(&bytes).unwrap();
    assert_eq!(forged.id(), original.id());
    block.txs[1] = forged;
    let known = |t: &SignedTx| t.id() == original.id() && t.signature() == original.signature();
    match block.verify_body_skipping(&f.genesis.chain_id, known) {
        Err(BlockError::Tx(citychain_kernel::TxError::InList { index, .. })) => {
            assert_eq!(index, 1)
        }
        other => panic!("forged signature accepted: {other:?}"),
    }
    // With every signature known, only the structure is checked.
    assert!(
        f.blocks[2]
            .verify_body_skipping(&f.genesis.chain_id, |_| true)
            .is_ok()
    );
}
