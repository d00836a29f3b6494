//! [`ChainAuditor`]: walks a chain from genesis (or from a stored registry), checking each
//! block with the validator set governance puts in force for its height, requiring every
//! transaction's signer to be authorized, refusing replays of earlier blocks' transactions
//! (the full audit, [`ChainAuditor::checking_replays`]), and folding governance so that the
//! next block is checked against the next validator set.

use citychain_kernel::replay::{ReplayRejection, ReplayWindow};
use citychain_kernel::{
    Block, BlockError, BlockHeader, ChainVerifier, Genesis, Hash32, Height, TxId,
};
use thiserror::Error;

use crate::apply::{BlockOutcome, TxOutcome};
use crate::error::{ApplyError, Refusal};
use crate::state::Registry;

/// A chain that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuditError {
    /// The block itself is bad (height, link, time, validators, certificate, signatures).
    #[error("block {height}: {source}")]
    Block {
        /// The block's height.
        height: Height,
        /// What the kernel verifier said.
        source: BlockError,
    },
    /// A committed transaction's signer may not send it.
    #[error("block {height} transaction {index} ({tx}) is refused: {reason}")]
    Refused {
        /// The block's height.
        height: Height,
        /// The transaction's position in the block.
        index: usize,
        /// Its id.
        tx: TxId,
        /// Why.
        reason: Refusal,
    },
    /// A committed transaction repeats the (signer, nonce) pair of a transaction an earlier
    /// block committed, while that one's expiry has not passed.
    #[error("block {height} transaction {index} ({tx}) may not commit: {reason}")]
    Replay {
        /// The block's height.
        height: Height,
        /// The transaction's position in the block.
        index: usize,
        /// Its id.
        tx: TxId,
        /// What the replay window says.
        reason: ReplayRejection,
    },
    /// The registry cannot take the block.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A stored registry does not match the chain it is resumed on.
    #[error("cannot resume: {reason}")]
    Resume {
        /// What does not match.
        reason: String,
    },
}

/// The kernel's [`ChainVerifier`] and the governance [`Registry`] walking a chain together,
/// with the replay window of the chain walked so far.
#[derive(Debug, Clone)]
pub struct ChainAuditor {
    verifier: ChainVerifier,
    registry: Registry,
    replay: Option<ReplayWindow>,
}

impl ChainAuditor {
    /// Starts at genesis, expecting block 1. Replays across blocks are not checked (see
    /// [`ChainAuditor::checking_replays`]): a service following CHAIN relies on the
    /// validators' replay window for that, and keeps no window of its own to copy per block.
    pub fn new(genesis: &Genesis) -> Self {
        let registry = Registry::from_genesis(genesis);
        let mut verifier = ChainVerifier::new(genesis);
        verifier.set_validators(registry.next_validator_set());
        ChainAuditor {
            verifier,
            registry,
            replay: None,
        }
    }

    /// Starts at genesis like [`ChainAuditor::new`], and also refuses a block that commits a
    /// (signer, nonce) pair again while the first transaction with it could still commit: the
    /// full audit `citychain verify` runs.
    ///
    /// The window is the chain's rule, not a validator's admission policy: how far ahead an
    /// expiry may be (`max_ttl`) is each validator's setting, so no limit applies here and a
    /// pair is remembered until its own expiry passes.
    pub fn checking_replays(genesis: &Genesis) -> Self {
        ChainAuditor {
            replay: Some(ReplayWindow::new(u64::MAX)),
            ..ChainAuditor::new(genesis)
        }
    }

    /// Resumes after block `last`, already verified, with the registry stored after it and
    /// the number of transactions verified so far. The registry must be for the same chain
    /// and height, and its validator set for `last` must be the one `last` names.
    ///
    /// Like [`ChainAuditor::new`] it does not check replays across blocks;
    /// `citychain verify` always walks from genesis with [`ChainAuditor::checking_replays`].
    pub fn resume(
        genesis: &Genesis,
        last: &BlockHeader,
        transactions: u64,
        registry: Registry,
    ) -> Result<Self, AuditError> {
        let fail = |reason: String| AuditError::Resume { reason };
        if registry.chain_id() != &genesis.chain_id {
            return Err(fail(format!(
                "the registry is for chain {}, genesis names chain {}",
                registry.chain_id(),
                genesis.chain_id
            )));
        }
        if registry.height() != last.height {
            return Err(fail(format!(
                "the registry is after block {}, the last block is {}",
                registry.height(),
                last.height
            )));
        }
        let expected = registry
            .validator_set_for(last.height)
            .map(|s| s.hash())
            .unwrap_or(Hash32::ZERO);
        if expected != last.validators_hash {
            return Err(fail(format!(
                "block {} names validators {}, the registry's set for it hashes to {expected}",
                last.height, last.validators_hash
            )));
        }
        let mut verifier = ChainVerifier::resume(genesis, last, transactions);
        verifier.set_validators(registry.next_validator_set());
        Ok(ChainAuditor {
            verifier,
            registry,
            replay: None,
        })
    }

    /// Verifies `block` as the next block with the validator set in force, requires every
    /// transaction to be authorized, applies governance, and puts in force the validator set
    /// of the following height. On error nothing changes.
    pub fn push(&mut self, block: &Block) -> Result<BlockOutcome, AuditError> {
        self.push_checking(block, true)
    }

    /// Like [`ChainAuditor::push`] for a block whose transaction signatures the caller has
    /// already verified; everything else is still checked.
    pub fn push_with_verified_body(&mut self, block: &Block) -> Result<BlockOutcome, AuditError> {
        self.push_checking(block, false)
    }

    fn push_checking(
        &mut self,
        block: &Block,
        signatures: bool,
    ) -> Result<BlockOutcome, AuditError> {
        let height = block.header.height;
        let mut verifier = self.verifier.clone();
        let verified = if signatures {
            verifier.push(block)
        } else {
            verifier.push_with_verified_body(block)
        };
        verified.map_err(|source| AuditError::Block { height, source })?;
        if height != self.registry.next_height() {
            return Err(ApplyError::Height {
                expected: self.registry.next_height(),
                found: height,
            }
            .into());
        }
        // No transaction of a block changes who may sign in it (changes take effect at the
        // next height), so checking every signer first keeps a failed push side-effect free.
        for (index, tx) in block.txs.iter().enumerate() {
            self.registry
                .authorize(tx.signer(), &tx.body().type_url)
                .map_err(|reason| AuditError::Refused {
                    height,
                    index,
                    tx: tx.id(),
                    reason,
                })?;
        }
        if let Some(replay) = &self.replay {
            replay
                .check_block(&block.txs, height)
                .map_err(|(index, reason)| AuditError::Replay {
                    height,
                    index,
                    tx: block.txs[index].id(),
                    reason,
                })?;
        }
        let outcome = self.registry.apply_block(height, &block.txs)?;
        if let Some(replay) = &mut self.replay {
            // Checked above; recording cannot fail.
            let recorded = replay.apply_block(&block.txs, height);
            debug_assert!(recorded.is_ok());
        }
        debug_assert!(
            !outcome
                .txs
                .iter()
                .any(|t| matches!(t, TxOutcome::Refused(_)))
        );
        verifier.set_validators(self.registry.next_validator_set());
        self.verifier = verifier;
        Ok(outcome)
    }

    /// The height the next block must have.
    pub fn next_height(&self) -> Height {
        self.verifier.next_height()
    }

    /// The registry after the last block.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The kernel verifier (its validator set is the one for the next block).
    pub fn verifier(&self) -> &ChainVerifier {
        &self.verifier
    }

    /// The registry, to store it.
    pub fn into_registry(self) -> Registry {
        self.registry
    }
}
