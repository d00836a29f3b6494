//! [`Replayer`]: applies blocks that come from somewhere other than CHAIN (a chain export, a
//! test's blocks) to a service's [`ChainProjection`], exactly as the [`Follower`] does: each
//! block is audited from genesis with the same [`AuditedBlock::audit`] and applied through
//! the same checkpointed runner, so the store it builds is the one the follower would have
//! built from the same chain (and the follower can carry on from it).
//!
//! Audits of a service's state (`citychain tokens audit GENESIS EXPORT`, say) rebuild it
//! from an export into an empty store with this, then compare.
//!
//! [`Follower`]: crate::Follower

use std::sync::Arc;

use bytes::Bytes;
use citychain_governance::{ChainAuditor, Registry};
use citychain_kernel::{Block, Genesis, Height};
use citychain_store::{ApplyError, ApplyOutcome, ProjectionRunner, Store};
use thiserror::Error;

use crate::checkpoint::{Checkpointed, StepError, read_checkpoint_in};
use crate::follower::FollowerError;
use crate::projection::{AuditedBlock, ChainProjection};

/// Why a block was not applied by a [`Replayer`].
#[derive(Debug, Error)]
pub enum ReplayError<E> {
    /// The block fails the audit (or is not the next one): the source is not a valid
    /// continuation of the chain.
    #[error("block {height}: {reason}")]
    Refused {
        /// The height the block was offered at.
        height: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The store, the checkpoint or the projection failed.
    #[error(transparent)]
    Follower(#[from] FollowerError<E>),
}

/// Applies audited blocks from any source to a projection, with the follower's checkpoint.
#[derive(Debug)]
pub struct Replayer<S, P> {
    runner: ProjectionRunner<S, Checkpointed<P>>,
    auditor: ChainAuditor,
    registry: Arc<Registry>,
}

impl<S: Store, P: ChainProjection> Replayer<S, P> {
    /// Resumes after the projection's applied height in `store` (from genesis on an empty
    /// store), from the follower's checkpoint.
    pub async fn resume(
        genesis: &Genesis,
        store: S,
        projection: P,
    ) -> Result<Self, FollowerError<P::Error>> {
        let name = projection.name().to_string();
        let runner = ProjectionRunner::new(store, Checkpointed::new(projection)?);
        let mut txn = runner.store().begin().await?;
        let auditor = match read_checkpoint_in(&mut txn, &name).await? {
            None => ChainAuditor::new(genesis),
            Some(checkpoint) => checkpoint.resume(genesis).map_err(FollowerError::Resume)?,
        };
        drop(txn);
        let registry = Arc::new(auditor.registry().clone());
        Ok(Replayer {
            runner,
            auditor,
            registry,
        })
    }

    /// The height the next block must have.
    pub fn next_height(&self) -> Height {
        self.auditor.next_height()
    }

    /// The registry after the last applied block.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The store.
    pub fn store(&self) -> &S {
        self.runner.store()
    }

    /// Audits and applies `block` as the next block.
    pub async fn apply_block(&mut self, block: &Block) -> Result<Height, ReplayError<P::Error>> {
        self.apply_bytes(Bytes::from(block.encode())).await
    }

    /// Audits and applies the encoded block `bytes` as the next block.
    pub async fn apply_bytes(&mut self, bytes: Bytes) -> Result<Height, ReplayError<P::Error>> {
        let height = self.auditor.next_height();
        let (auditor, audited) = AuditedBlock::audit(&self.auditor, &self.registry, height, bytes)
            .map_err(|problem| ReplayError::Refused {
                height: height.0,
                reason: problem.to_string(),
            })?;
        match self.runner.apply_block(height.0, &audited).await {
            Ok(ApplyOutcome::Applied) | Ok(ApplyOutcome::AlreadyApplied { .. }) => {}
            Err(ApplyError::Gap { expected, got }) => {
                return Err(FollowerError::OutOfStep {
                    expected,
                    audited: got,
                }
                .into());
            }
            Err(ApplyError::Projection { source, .. }) => {
                return Err(match source {
                    StepError::Projection(err) => FollowerError::Projection(err),
                    StepError::Store(err) => FollowerError::Store(err),
                }
                .into());
            }
            Err(ApplyError::Store(err)) => return Err(FollowerError::Store(err).into()),
        }
        self.auditor = auditor;
        self.registry = audited.registry_after;
        Ok(height)
    }
}

#[cfg(test)]
mod tests {
    use citychain_store::EmbeddedStore;
    use citychain_testkit::genesis::network;

    use super::*;
    use crate::checkpoint::read_checkpoint;
    use crate::testing::{NAME, Notes, governed_chain};

    #[tokio::test]
    async fn a_replay_builds_the_checkpoint_the_follower_would_and_resumes_from_it() {
        let net = network(4, 61);
        let blocks = governed_chain(&net, 4);
        let store = EmbeddedStore::in_memory().await.unwrap();
        let mut replayer = Replayer::resume(&net.genesis, store.clone(), Notes::default())
            .await
            .unwrap();
        for block in &blocks[..2] {
            replayer.apply_block(block).await.unwrap();
        }
        drop(replayer);
        // A new replayer on the same store carries on after block 2.
        let mut replayer = Replayer::resume(&net.genesis, store.clone(), Notes::default())
            .await
            .unwrap();
        assert_eq!(replayer.next_height(), Height(3));
        let refused = replayer.apply_block(&blocks[3]).await;
        assert!(
            matches!(refused, Err(ReplayError::Refused { height: 3, .. })),
            "{refused:?}"
        );
        for block in &blocks[2..] {
            replayer.apply_block(block).await.unwrap();
        }
        let checkpoint = read_checkpoint(&store, NAME).await.unwrap().unwrap();
        assert_eq!(checkpoint.header, blocks[3].header);
        assert_eq!(&checkpoint.registry, replayer.registry().as_ref());
    }
}
