//! A builder of valid chains for tests: blocks with signed transactions from the network's
//! members, proposed in turn and certified by a quorum of its validators, with strictly
//! increasing times, all derived from a seed so a failing test can be replayed. [`reseal`]
//! re-signs a chain after a test changed a block, so the test can show that a rule other
//! than the signatures refuses it.

use citychain_kernel::export::ExportWriter;
use citychain_kernel::tx::SignedTx;
use citychain_kernel::{
    Block, BlockHash, BlockHeader, CommitCertificate, Hash32, Height, KeyPair, SigningKey,
};

use crate::genesis::TestNetwork;

/// A small deterministic generator (splitmix64): tests need replayable, not strong, numbers.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low + 1)
    }
}

/// Builds chains of valid blocks for a [`TestNetwork`].
#[derive(Debug, Clone)]
pub struct ChainBuilder<'a> {
    network: &'a TestNetwork,
    seed: u64,
    min_txs: usize,
    max_txs: usize,
}

impl<'a> ChainBuilder<'a> {
    /// A builder for `network`; 0 to 3 transactions per block unless changed.
    pub fn new(network: &'a TestNetwork, seed: u64) -> Self {
        ChainBuilder {
            network,
            seed,
            min_txs: 0,
            max_txs: 3,
        }
    }

    /// Each block gets between `min` and `max` transactions (inclusive).
    pub fn txs_per_block(mut self, min: usize, max: usize) -> Self {
        self.min_txs = min;
        self.max_txs = max.max(min);
        self
    }

    /// Blocks 1 to `count`. Each has its transactions signed by members of the network (with
    /// per-signer increasing nonces), a validator as proposer, a time 1 ms to 2 s after the
    /// previous one (block 1 at or after genesis time), and a certificate signed by a quorum
    /// of validators chosen by the seed, at round 0 to 2.
    pub fn build(&self, count: u64) -> Vec<Block> {
        let genesis = &self.network.genesis;
        let chain = &genesis.chain_id;
        let validators = genesis.validator_set();
        let validator_keys: Vec<&SigningKey> = self
            .network
            .validator_keys()
            .into_iter()
            .map(|k| &k.signing)
            .collect();
        let members: Vec<&KeyPair> = self.network.transaction_signers().map(|(_, k)| k).collect();
        let mut nonces = vec![0u64; members.len()];
        let quorum = validators.quorum();
        let mut rng = SeededRng::new(self.seed);
        let mut prev_hash = BlockHash(Hash32::ZERO);
        let mut time = genesis.genesis_time_unix_ms + rng.range(0, 1_000);
        let mut blocks = Vec::with_capacity(count as usize);
        for h in 1..=count {
            let height = Height(h);
            if h > 1 {
                time += rng.range(1, 2_000);
            }
            let tx_count = rng.range(self.min_txs as u64, self.max_txs as u64);
            let txs: Vec<SignedTx> = (0..tx_count)
                .map(|i| {
                    let who = rng.range(0, members.len() as u64 - 1) as usize;
                    nonces[who] += 1;
                    let text = format!("block {h} tx {i} {:016x}", rng.next_u64());
                    SignedTx::sign(
                        chain,
                        &members[who].signing,
                        nonces[who],
                        Height(h + 100),
                        crate::note(&text),
                    )
                    .unwrap_or_else(|e| panic!("test transaction (seed {}): {e}", self.seed))
                })
                .collect();
            // The round that decides, and the earlier-or-same round whose proposer built it.
            let round = rng.range(0, 2) as u32;
            let built_in = rng.range(0, u64::from(round)) as u32;
            let proposer = validators.proposer(height, built_in).key;
            let header = BlockHeader::new(
                chain.clone(),
                height,
                time,
                prev_hash,
                &txs,
                &validators,
                proposer,
            );
            // A quorum starting at a seeded offset, so different validators sign over time.
            let start = rng.range(0, validator_keys.len() as u64 - 1) as usize;
            let signers: Vec<&SigningKey> = (0..quorum)
                .map(|i| validator_keys[(start + i) % validator_keys.len()])
                .collect();
            let certificate =
                CommitCertificate::sign(chain, height, round, header.hash(), &signers);
            prev_hash = header.hash();
            blocks.push(Block {
                header,
                txs,
                certificate,
            });
        }
        blocks
    }
}

/// Re-signs `blocks[from..]` of `network` as they now are: each header's transaction root,
/// count and link to the block before are recomputed, and a certificate from the first quorum
/// of validators (at the block's round) replaces the old one. Heights, times, proposers,
/// rounds and transactions are kept, so a changed block reaches every rule but the
/// signatures' and the links'.
pub fn reseal(network: &TestNetwork, blocks: &mut [Block], from: usize) {
    let genesis = &network.genesis;
    let validators = genesis.validator_set();
    let keys: Vec<&SigningKey> = network
        .validator_keys()
        .into_iter()
        .map(|k| &k.signing)
        .take(validators.quorum())
        .collect();
    for i in from..blocks.len() {
        let prev_hash = match i {
            0 => BlockHash(Hash32::ZERO),
            _ => blocks[i - 1].hash(),
        };
        let block = &mut blocks[i];
        let old = &block.header;
        let header = BlockHeader::new(
            old.chain_id.clone(),
            old.height,
            old.time_unix_ms,
            prev_hash,
            &block.txs,
            &validators,
            old.proposer,
        );
        block.certificate = CommitCertificate::sign(
            &genesis.chain_id,
            header.height,
            block.certificate.round,
            header.hash(),
            &keys,
        );
        block.header = header;
    }
}

/// `blocks` of `network` as an export file's bytes.
pub fn export_bytes(network: &TestNetwork, blocks: &[Block]) -> Vec<u8> {
    let mut writer = ExportWriter::new(Vec::new(), &network.genesis)
        .unwrap_or_else(|e| panic!("export header: {e}"));
    for block in blocks {
        writer
            .push(block)
            .unwrap_or_else(|e| panic!("export block {}: {e}", block.header.height));
    }
    writer
        .finish()
        .unwrap_or_else(|e| panic!("export trailer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::network;
    use citychain_kernel::ChainVerifier;

    #[test]
    fn built_chains_verify_and_repeat_with_the_seed() {
        let net = network(4, 3);
        let blocks = ChainBuilder::new(&net, 11).build(50);
        let mut verifier = ChainVerifier::new(&net.genesis);
        for block in &blocks {
            verifier
                .push(block)
                .unwrap_or_else(|e| panic!("block {}: {e}", block.header.height));
        }
        assert_eq!(blocks, ChainBuilder::new(&net, 11).build(50));
        assert_ne!(blocks, ChainBuilder::new(&net, 12).build(50));
        assert!(blocks.iter().any(|b| !b.txs.is_empty()));
    }

    #[test]
    fn transaction_counts_follow_the_bounds() {
        let net = network(4, 3);
        let blocks = ChainBuilder::new(&net, 1).txs_per_block(2, 4).build(20);
        assert!(blocks.iter().all(|b| (2..=4).contains(&b.txs.len())));
    }

    #[test]
    fn a_resealed_chain_verifies_and_a_changed_block_reaches_the_rules() {
        let net = network(4, 3);
        let mut blocks = ChainBuilder::new(&net, 5).txs_per_block(1, 2).build(12);
        let verify = |blocks: &[Block]| {
            let mut verifier = ChainVerifier::new(&net.genesis);
            blocks.iter().try_for_each(|b| verifier.push(b))
        };
        reseal(&net, &mut blocks, 0);
        verify(&blocks).unwrap();
        // The same transaction twice in block 6: the signatures are fine, the rule is not.
        let again = blocks[5].txs[0].clone();
        blocks[5].txs.push(again);
        reseal(&net, &mut blocks, 5);
        assert!(matches!(
            verify(&blocks),
            Err(citychain_kernel::BlockError::RepeatedInBlock { .. })
        ));
    }
}
