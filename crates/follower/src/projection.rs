//! What a service does with the chain: [`ChainProjection`], applied to each [`AuditedBlock`]
//! (a block that passed the audit, with everything the audit learnt about it), and the audit
//! step that turns the bytes of a copy into one.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use citychain_governance::{AuditError, BlockOutcome, ChainAuditor, Registry};
use citychain_kernel::{Block, BlockError, Height, ValidatorSet};
use citychain_store::{Retryable, Transaction};
use thiserror::Error;

/// A block of CHAIN that passed the audit, with what the audit learnt about it.
///
/// The registries are shared (`Arc`) because the follower hands the same one to the API
/// ([`crate::Shared`]) and keeps it for the next block; cloning an `AuditedBlock` is cheap
/// apart from the block itself.
#[derive(Debug, Clone)]
pub struct AuditedBlock {
    /// The block.
    pub block: Block,
    /// Its encoding as received (canonical: anything else fails to decode).
    pub bytes: Bytes,
    /// What governance made of it: per transaction the signer (a member with its role, or a
    /// citizen) and the governance events, plus the block's opening and closing events.
    pub outcome: BlockOutcome,
    /// The registry after the previous block: the state that authorized this block's
    /// transactions (changes passed in a block take effect at the next height).
    pub registry_before: Arc<Registry>,
    /// The registry after this block: the state that will check the next one.
    pub registry_after: Arc<Registry>,
    /// The validator set that certified the block.
    pub validators: ValidatorSet,
    /// Transactions in blocks 1 to this one.
    pub transactions: u64,
    /// The trace context of each traced transaction, by index in the block: the context of
    /// this service's `<service>.apply` span for it, which continues the transaction's trace.
    /// A projection passes it on to whatever it starts for the transaction (an event, a
    /// release). Empty for a block read without its trace header (a copy from a validator,
    /// a replay): it is not part of the block, so state derived from it must be kept apart
    /// from the state a replay rebuilds.
    pub traces: BTreeMap<usize, opentelemetry::Context>,
}

impl AuditedBlock {
    /// The block's height.
    pub fn height(&self) -> Height {
        self.block.header.height
    }

    /// Audits `bytes` as block `height` on top of `auditor`'s state (whose registry is
    /// `before`). On success returns the auditor after the block, leaving `auditor` as it was
    /// so that the caller moves on only once the block is stored.
    pub(crate) fn audit(
        auditor: &ChainAuditor,
        before: &Arc<Registry>,
        height: Height,
        bytes: Bytes,
    ) -> Result<(ChainAuditor, AuditedBlock), CopyError> {
        let block = Block::decode(&bytes).map_err(CopyError::Decode)?;
        if block.header.height != height {
            return Err(CopyError::Misplaced {
                found: block.header.height,
                expected: height,
            });
        }
        let validators = auditor.verifier().validators().clone();
        let mut next = auditor.clone();
        let outcome = next.push(&block).map_err(CopyError::Audit)?;
        let audited = AuditedBlock {
            registry_after: Arc::new(next.registry().clone()),
            registry_before: before.clone(),
            transactions: next.verifier().transactions(),
            validators,
            outcome,
            bytes,
            block,
            traces: BTreeMap::new(),
        };
        Ok((next, audited))
    }
}

/// Why a copy of a block (from CHAIN or from a validator) was not accepted. The follower
/// collects these into its alert.
#[derive(Debug, Error)]
pub(crate) enum CopyError {
    /// The bytes are not a canonical block.
    #[error("does not decode: {0}")]
    Decode(BlockError),
    /// A valid block, at the wrong height.
    #[error("holds block {} where block {} belongs", found.0, expected.0)]
    Misplaced { found: Height, expected: Height },
    /// The block fails the audit.
    #[error("{0}")]
    Audit(AuditError),
}

/// A service's deterministic view of the chain: given each audited block in height order, it
/// updates the service's state through a store transaction.
///
/// The follower runs it inside the transaction that also records the applied height and the
/// follower's checkpoint, so a block's effects, its height and the registry after it are
/// stored together or not at all.
pub trait ChainProjection: Send + Sync {
    /// Why applying a block failed. Only failures of the service's own (the store, damaged
    /// state) belong here: they stop the follower. A transaction the service's rules reject
    /// is not an error, since the block is committed whatever the service thinks of it;
    /// record the rejection as data instead. [`Retryable`] says whether the store may retry
    /// the commit (forward to the wrapped `StoreError`).
    type Error: std::error::Error + Retryable + Send + Sync + 'static;

    /// A stable name, unique among the projections sharing a store, non-empty and without
    /// `/`: the applied height and the follower's checkpoint are kept under it. Renaming a
    /// projection restarts it from genesis.
    fn name(&self) -> &str;

    /// Applies `block` through `txn`. Returning an error aborts the transaction: nothing is
    /// written and the applied height does not move.
    ///
    /// It must be deterministic (the same state and block give the same writes), may run
    /// more than once for one block (a conflicting commit is retried), and must keep its keys
    /// out of [`citychain_store::projection::META_PREFIX`] and [`crate::PREFIX`].
    fn apply<T: Transaction>(
        &self,
        txn: &mut T,
        block: &AuditedBlock,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Checks, when the follower resumes after block `applied`, what the projection stored
    /// for that height against what it stored beside it (a block against its hash, the link
    /// to the block before). `Ok(Some(what))` names damage: the follower then refuses to
    /// resume on the store ([`crate::FollowerError::Damaged`]) and the service rebuilds it
    /// from CHAIN. The default checks nothing.
    fn check_applied<T: Transaction>(
        &self,
        txn: &mut T,
        applied: Height,
    ) -> impl Future<Output = Result<Option<String>, Self::Error>> + Send {
        let _ = (txn, applied);
        async { Ok(None) }
    }

    /// Rewrites what the projection stored for block `height`, reported damaged through
    /// [`crate::Shared::report_damage`], from `copy`: block `height` as CHAIN or a validator
    /// holds it, whose transactions, signatures and certificate (by the validator set in
    /// force there) the follower has verified. The projection must accept the copy only if it
    /// matches what it stored independently of the damaged bytes (the block's hash in an
    /// index); `Ok(false)` refuses the copy. The default
    /// repairs nothing, so the damage stays reported (NOT_SERVING) until the store is rebuilt.
    fn repair<T: Transaction>(
        &self,
        txn: &mut T,
        height: Height,
        copy: &Block,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        let _ = (txn, height, copy);
        async { Ok(false) }
    }
}

#[cfg(test)]
mod tests {
    use citychain_testkit::genesis::network;

    use super::*;
    use crate::testing::{audit_all, governed_chain};

    #[test]
    fn audited_blocks_carry_the_registries_around_them_and_the_certifying_set() {
        let net = network(4, 41);
        let blocks = governed_chain(&net, 3);
        let (audited, _) = audit_all(&net, &blocks);
        let genesis_set = net.genesis.validator_set();
        for (i, step) in audited.iter().enumerate() {
            let h = i as u64 + 1;
            assert_eq!(step.height(), Height(h));
            assert_eq!(step.registry_before.height(), Height(h - 1));
            assert_eq!(step.registry_after.height(), Height(h));
            assert_eq!(step.outcome.txs.len(), step.block.txs.len());
            assert_eq!(step.bytes, Bytes::from(step.block.encode()));
        }
        assert_eq!(audited[0].transactions, 1);
        assert_eq!(audited[1].transactions, 4);
        // Block 2 passes the change; it is still certified by the genesis set, block 3 by the
        // new one.
        assert!(audited[1].outcome.validators_changed);
        assert_eq!(audited[1].validators, genesis_set);
        assert_eq!(audited[2].validators.validators().len(), 3);
        assert!(Arc::ptr_eq(
            &audited[1].registry_after,
            &audited[2].registry_before
        ));
    }

    #[test]
    fn a_copy_at_the_wrong_height_or_failing_the_audit_is_refused() {
        let net = network(4, 42);
        let blocks = governed_chain(&net, 2);
        let auditor = ChainAuditor::new(&net.genesis);
        let registry = Arc::new(auditor.registry().clone());
        let encoded = |b: &Block| Bytes::from(b.encode());
        let misplaced = AuditedBlock::audit(&auditor, &registry, Height(1), encoded(&blocks[1]));
        assert!(matches!(misplaced, Err(CopyError::Misplaced { .. })));
        let mut damaged = blocks[0].encode();
        damaged[10] ^= 0x40;
        let damaged = AuditedBlock::audit(&auditor, &registry, Height(1), damaged.into());
        assert!(damaged.is_err());
        let mut forged = blocks[0].clone();
        forged.header.time_unix_ms += 1; // the certificate no longer matches
        let forged = AuditedBlock::audit(&auditor, &registry, Height(1), encoded(&forged));
        assert!(matches!(forged, Err(CopyError::Audit(_))), "{forged:?}");
    }
}
