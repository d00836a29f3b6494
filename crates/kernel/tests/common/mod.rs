//! Chains of real blocks for the kernel's tests: a 4-department genesis from a salted seed,
//! and certified blocks on top of it. (The kernel cannot use the test kit, which depends on
//! it.)

#![allow(dead_code)]

use citychain_kernel::block::{Block, BlockHeader, CommitCertificate};
use citychain_kernel::genesis::{build_genesis, department_plans};
use citychain_kernel::tx::{SignedTx, TxBody};
use citychain_kernel::{Genesis, Height, KeyPair};

/// Seeds from blake3 of the salt and a counter.
pub fn seeds(salt: u64) -> impl FnMut() -> [u8; 32] {
    let mut n = 0u64;
    move || {
        n += 1;
        let mut h = blake3::Hasher::new();
        h.update(&salt.to_be_bytes());
        h.update(&n.to_be_bytes());
        *h.finalize().as_bytes()
    }
}

/// A genesis of 4 validator departments and their keys.
pub fn network(salt: u64) -> (Genesis, Vec<KeyPair>) {
    build_genesis("city-test", 1_000, &department_plans(4), 4, seeds(salt)).unwrap()
}

/// How blocks are built.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Block `h` holds `h % txs_modulo` transactions.
    pub txs_modulo: u64,
    /// Whether the three signers of the certificate change from block to block.
    pub rotate_signers: bool,
}

/// `count` blocks from height 1, each certified by 3 of the 4 validators.
pub fn blocks_for(genesis: &Genesis, keys: &[KeyPair], count: u64, shape: Shape) -> Vec<Block> {
    let validators = genesis.validator_set();
    let mut blocks: Vec<Block> = Vec::new();
    for h in 1..=count {
        let txs: Vec<SignedTx> = (0..(h % shape.txs_modulo))
            .map(|i| {
                SignedTx::sign(
                    &genesis.chain_id,
                    &keys[(i % 4) as usize].signing,
                    h * 10 + i,
                    Height(h + 100),
                    TxBody::new("citychain.test.v1.Put", format!("{h}/{i}").into_bytes()),
                )
                .unwrap()
            })
            .collect();
        let prev = blocks.last().map(Block::hash).unwrap_or_default();
        let header = BlockHeader::new(
            genesis.chain_id.clone(),
            Height(h),
            1_000 + h * 500,
            prev,
            &txs,
            &validators,
            validators.proposer(Height(h), 0).key,
        );
        let skip = if shape.rotate_signers { h % 2 } else { 0 } as usize;
        let signers: Vec<_> = keys.iter().skip(skip).take(3).map(|k| &k.signing).collect();
        let certificate =
            CommitCertificate::sign(&genesis.chain_id, Height(h), 0, header.hash(), &signers);
        blocks.push(Block {
            header,
            txs,
            certificate,
        });
    }
    blocks
}
