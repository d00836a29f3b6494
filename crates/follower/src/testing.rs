//! Test fixtures shared by the crate's unit tests: a chain with a governance change, the
//! follower's audit of it, and a small projection that can be told to fail.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use citychain_governance::{Action, ChainAuditor, ProposalId, approve_body, propose_body};
use citychain_kernel::{
    Block, BlockHash, BlockHeader, CommitCertificate, Hash32, Height, PublicKey, SignedTx,
    SigningKey, TxBody,
};
use citychain_store::{Retryable, StoreError, Transaction};
use citychain_testkit::genesis::TestNetwork;
use thiserror::Error;

use crate::projection::{AuditedBlock, ChainProjection};

/// The test projection's name.
pub(crate) const NAME: &str = "notes";

/// Records each block's transaction count under `n/<height>`; fails (after writing) on
/// the block at `fail_at`, so the test can see that nothing of that block is kept.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub(crate) fail_at: AtomicU64,
}

#[derive(Debug, Error)]
pub(crate) enum NotesError {
    #[error("refused block {0}")]
    Refused(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Retryable for NotesError {
    fn is_retryable(&self) -> bool {
        matches!(self, NotesError::Store(err) if err.is_retryable())
    }
}

/// Where [`Notes`] records block `height`.
pub(crate) fn note_key(height: u64) -> Vec<u8> {
    let mut key = b"n/".to_vec();
    key.extend_from_slice(&height.to_be_bytes());
    key
}

impl ChainProjection for Notes {
    type Error = NotesError;

    fn name(&self) -> &str {
        NAME
    }

    async fn apply<T: Transaction>(
        &self,
        txn: &mut T,
        block: &AuditedBlock,
    ) -> Result<(), NotesError> {
        let height = block.height().0;
        txn.put(
            &note_key(height),
            &block.block.header.tx_count.to_be_bytes(),
        )?;
        if self.fail_at.load(Ordering::Relaxed) == height {
            return Err(NotesError::Refused(height));
        }
        Ok(())
    }
}

/// A chain whose block 2 passes a change of the validators to the first three
/// departments, so that blocks from 3 on are certified by another set than genesis'.
pub(crate) fn governed_chain(net: &TestNetwork, count: u64) -> Vec<Block> {
    let genesis = &net.genesis;
    let chain = &genesis.chain_id;
    let signing: BTreeMap<PublicKey, &SigningKey> = net
        .keys
        .values()
        .map(|k| (k.signing.public_key(), &k.signing))
        .collect();
    let depts = &genesis.validators;
    let key = |i: usize| &net.keys[depts[i].as_str()].signing;
    let proposal = ProposalId::new("three-validators").unwrap();
    let action = Action::SetValidators(depts[..3].to_vec());
    let mut nonce = 0;
    let mut tx = |key: &SigningKey, body: TxBody| {
        nonce += 1;
        SignedTx::sign(chain, key, nonce, Height(1_000), body).unwrap()
    };
    let mut walker = ChainAuditor::new(genesis);
    let mut prev = BlockHash(Hash32::ZERO);
    let mut blocks = Vec::new();
    for h in 1..=count {
        let txs = if h == 2 {
            vec![
                tx(key(0), propose_body(&proposal, &action)),
                tx(key(1), approve_body(&proposal)),
                tx(key(2), approve_body(&proposal)),
            ]
        } else {
            let note = TxBody::new("citychain.test.v1.Note", h.to_be_bytes().to_vec());
            vec![tx(key(h as usize % 4), note)]
        };
        let set = walker.verifier().validators().clone();
        let header = BlockHeader::new(
            chain.clone(),
            Height(h),
            genesis.genesis_time_unix_ms + h * 1_000,
            prev,
            &txs,
            &set,
            set.proposer(Height(h), 0).key,
        );
        let signers: Vec<&SigningKey> = set.validators().iter().map(|v| signing[&v.key]).collect();
        let certificate = CommitCertificate::sign(chain, Height(h), 0, header.hash(), &signers);
        let block = Block {
            header,
            txs,
            certificate,
        };
        walker.push(&block).unwrap();
        prev = block.hash();
        blocks.push(block);
    }
    blocks
}

/// Walks `blocks` from genesis as the follower does, returning each audited block and the
/// auditor after the last.
pub(crate) fn audit_all(net: &TestNetwork, blocks: &[Block]) -> (Vec<AuditedBlock>, ChainAuditor) {
    let mut auditor = ChainAuditor::new(&net.genesis);
    let mut registry = Arc::new(auditor.registry().clone());
    let mut audited = Vec::new();
    for block in blocks {
        let (next, step) = AuditedBlock::audit(
            &auditor,
            &registry,
            block.header.height,
            Bytes::from(block.encode()),
        )
        .unwrap();
        auditor = next;
        registry = step.registry_after.clone();
        audited.push(step);
    }
    (audited, auditor)
}
