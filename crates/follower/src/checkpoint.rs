//! The follower's resume checkpoint: what [`citychain_governance::ChainAuditor::resume`] needs
//! to carry on after the last applied block without reading the chain again. The follower
//! wraps the service's projection so that the checkpoint is written in the same transaction
//! as the projection's writes and the applied height: the three never disagree after a crash.
//!
//! Key layout, for the projection named `<name>` (non-empty, no `/`):
//!
//! | key | value |
//! | --- | --- |
//! | `\xff\xfecitychain/follow/<name>/h` | the last applied block's header (canonical protobuf encoding of `citychain.kernel.v1.BlockHeader`) |
//! | `\xff\xfecitychain/follow/<name>/x` | transactions in blocks 1 to that block (8, big-endian) |
//! | `\xff\xfecitychain/follow/<name>/r/` piece (4) | the governance registry after that block ([`Registry::encode`]), in pieces |
//!
//! The applied height itself stays where the [`ProjectionRunner`](citychain_store::ProjectionRunner)
//! keeps it, under [`citychain_store::projection::META_PREFIX`], which belongs to the runner.
//! [`PREFIX`] starts with `\xff\xfe` so it sorts after any service's own keys (which are
//! printable) and before the runner's `\xff\xff`; a service scanning its own prefix never
//! meets it. A name holding `/` could make one projection's keys a prefix of another's, so
//! such names are refused.

use citychain_governance::{AuditError, ChainAuditor, Registry};
use citychain_kernel::codec::decode_canonical;
use citychain_kernel::{BlockHeader, Genesis, Height};
use citychain_proto::citychain::kernel::v1 as kpb;
use citychain_store::{
    Projection, Retryable, Store, StoreError, Transaction, put_pieces, read_applied_height,
    read_pieces,
};
use prost::Message;
use thiserror::Error;

use crate::projection::{AuditedBlock, ChainProjection};

/// The start of every key the follower keeps. Projections must not write under it.
pub const PREFIX: &[u8] = b"\xff\xfecitychain/follow/";

/// The last applied block's header, under a projection's prefix.
const HEADER: &[u8] = b"h";
/// The transaction count, under a projection's prefix.
const TRANSACTIONS: &[u8] = b"x";
/// The registry's pieces, under a projection's prefix.
const REGISTRY: &[u8] = b"r/";

/// The stored checkpoint could not be read or used.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The store failed.
    #[error("follower checkpoint: {0}")]
    Store(#[from] StoreError),
    /// The projection's name cannot name a checkpoint.
    #[error(
        "projection name {name:?} cannot name a follower checkpoint: it must be non-empty and hold no '/'"
    )]
    Name {
        /// The name.
        name: String,
    },
    /// A part of the checkpoint does not decode.
    #[error("the follower checkpoint of {name:?} is damaged: its {part} {reason}")]
    Damaged {
        /// The projection's name.
        name: String,
        /// Which part.
        part: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The projection has applied blocks but the checkpoint is missing, or part of it is.
    #[error(
        "projection {name:?} has applied block {applied} but its follower checkpoint is \
         missing or incomplete (a store written before the follower kept one?); rebuild the \
         store from CHAIN by starting from an empty one"
    )]
    Missing {
        /// The projection's name.
        name: String,
        /// Its applied height.
        applied: u64,
    },
    /// The checkpoint is for another block than the applied height.
    #[error(
        "projection {name:?} has applied block {applied} but its follower checkpoint is for \
         block {checkpoint}"
    )]
    Mismatch {
        /// The projection's name.
        name: String,
        /// Its applied height.
        applied: u64,
        /// The checkpoint's block.
        checkpoint: u64,
    },
}

impl Retryable for CheckpointError {
    fn is_retryable(&self) -> bool {
        matches!(self, CheckpointError::Store(err) if err.is_retryable())
    }
}

/// Where one projection's checkpoint lives.
#[derive(Debug, Clone)]
struct Keys {
    header: Vec<u8>,
    transactions: Vec<u8>,
    registry: Vec<u8>,
}

impl Keys {
    fn new(name: &str) -> Result<Keys, CheckpointError> {
        if name.is_empty() || name.contains('/') {
            return Err(CheckpointError::Name { name: name.into() });
        }
        let under = |part: &[u8]| {
            let mut key = PREFIX.to_vec();
            key.extend_from_slice(name.as_bytes());
            key.push(b'/');
            key.extend_from_slice(part);
            key
        };
        Ok(Keys {
            header: under(HEADER),
            transactions: under(TRANSACTIONS),
            registry: under(REGISTRY),
        })
    }
}

/// Where the follower resumes: the state after the last applied block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last applied block's header.
    pub header: BlockHeader,
    /// Transactions in blocks 1 to that block.
    pub transactions: u64,
    /// The governance registry after that block.
    pub registry: Registry,
}

impl Checkpoint {
    /// The last applied block's height.
    pub fn height(&self) -> Height {
        self.header.height
    }

    /// The auditor that carries on after the checkpoint's block.
    pub fn resume(self, genesis: &Genesis) -> Result<ChainAuditor, AuditError> {
        ChainAuditor::resume(genesis, &self.header, self.transactions, self.registry)
    }
}

/// The checkpoint of the projection `name` in `store`; `None` if it has applied no block.
pub async fn read_checkpoint<S: Store>(
    store: &S,
    name: &str,
) -> Result<Option<Checkpoint>, CheckpointError> {
    let mut txn = store.begin().await?;
    read_checkpoint_in(&mut txn, name).await
}

/// Like [`read_checkpoint`], in `txn`: in the same snapshot as whatever else `txn` reads, so
/// a service can pair its own state with the registry it was built with.
///
/// The checkpoint must be for the projection's applied height (they are written together);
/// anything else is an error rather than a guess.
pub async fn read_checkpoint_in<T: Transaction>(
    txn: &mut T,
    name: &str,
) -> Result<Option<Checkpoint>, CheckpointError> {
    let keys = Keys::new(name)?;
    let applied = read_applied_height(txn, name).await?;
    let header = txn.get(&keys.header).await?;
    let transactions = txn.get(&keys.transactions).await?;
    let registry = read_pieces(txn, &keys.registry).await?;
    let (header, transactions, registry) = match (header, transactions, registry) {
        (None, None, None) if applied == 0 => return Ok(None),
        (Some(header), Some(transactions), Some(registry)) => (header, transactions, registry),
        _ if applied == 0 => {
            // Written only together with an applied height, so this is not a state any
            // sequence of commits leaves.
            return Err(CheckpointError::Mismatch {
                name: name.into(),
                applied,
                checkpoint: 0,
            });
        }
        _ => {
            return Err(CheckpointError::Missing {
                name: name.into(),
                applied,
            });
        }
    };
    let damaged = |part, reason: String| CheckpointError::Damaged {
        name: name.into(),
        part,
        reason,
    };
    let header = decode_canonical::<kpb::BlockHeader>("BlockHeader", &header)
        .map_err(|err| damaged("header", err.to_string()))
        .and_then(|p| {
            BlockHeader::from_proto(p).map_err(|err| damaged("header", err.to_string()))
        })?;
    let transactions = <[u8; 8]>::try_from(transactions.as_slice())
        .map(u64::from_be_bytes)
        .map_err(|_| {
            damaged(
                "transaction count",
                format!("is {} bytes long, not 8", transactions.len()),
            )
        })?;
    let registry =
        Registry::decode(&registry).map_err(|err| damaged("registry", err.to_string()))?;
    if header.height.0 != applied {
        return Err(CheckpointError::Mismatch {
            name: name.into(),
            applied,
            checkpoint: header.height.0,
        });
    }
    Ok(Some(Checkpoint {
        header,
        transactions,
        registry,
    }))
}

/// Why [`Checkpointed`] could not apply a block.
#[derive(Debug, Error)]
pub(crate) enum StepError<E> {
    /// The service's projection failed.
    #[error(transparent)]
    Projection(E),
    /// Writing the checkpoint failed.
    #[error("writing the follower checkpoint: {0}")]
    Store(#[from] StoreError),
}

impl<E: Retryable> Retryable for StepError<E> {
    fn is_retryable(&self) -> bool {
        match self {
            StepError::Projection(err) => err.is_retryable(),
            StepError::Store(err) => err.is_retryable(),
        }
    }
}

/// The service's projection with the follower's checkpoint added to each block's
/// transaction: the [`Projection`] the follower hands to the
/// [`ProjectionRunner`](citychain_store::ProjectionRunner), which adds the applied height.
#[derive(Debug)]
pub(crate) struct Checkpointed<P> {
    inner: P,
    keys: Keys,
}

impl<P: ChainProjection> Checkpointed<P> {
    /// Wraps `inner`, refusing a name that cannot key a checkpoint.
    pub(crate) fn new(inner: P) -> Result<Self, CheckpointError> {
        let keys = Keys::new(inner.name())?;
        Ok(Checkpointed { inner, keys })
    }

    /// The service's projection.
    pub(crate) fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P: ChainProjection> Projection for Checkpointed<P> {
    type Block = AuditedBlock;
    type Error = StepError<P::Error>;

    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn apply<T: Transaction>(
        &self,
        txn: &mut T,
        height: u64,
        block: &AuditedBlock,
    ) -> Result<(), Self::Error> {
        // The runner checks `height` against the applied height; the follower only offers a
        // block at the height it was audited for, so the two cannot differ.
        debug_assert_eq!(block.height().0, height);
        self.inner
            .apply(txn, block)
            .await
            .map_err(StepError::Projection)?;
        txn.put(
            &self.keys.header,
            &block.block.header.to_proto().encode_to_vec(),
        )?;
        txn.put(&self.keys.transactions, &block.transactions.to_be_bytes())?;
        // The registry changes with every block (it records its height), so it is rewritten
        // each time; in pieces, as it grows with members and decided proposals.
        put_pieces(txn, &self.keys.registry, &block.registry_after.encode()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use citychain_store::projection::META_PREFIX;
    use citychain_store::{
        ApplyError, ApplyOutcome, EmbeddedStore, ProjectionRunner, Scan, applied_height_key,
    };
    use citychain_testkit::genesis::network;

    use crate::testing::{NAME, Notes, NotesError, audit_all, governed_chain, note_key};

    use super::*;

    async fn keys_of(store: &EmbeddedStore) -> Vec<Vec<u8>> {
        let mut txn = store.begin().await.unwrap();
        let all = txn.scan(&Scan::range(&b""[..]..)).await.unwrap();
        all.into_iter().map(|(key, _)| key).collect()
    }

    #[tokio::test]
    async fn the_checkpoint_is_committed_with_the_projections_writes_or_not_at_all() {
        let net = network(4, 43);
        let blocks = governed_chain(&net, 3);
        let (audited, _) = audit_all(&net, &blocks);
        let store = EmbeddedStore::in_memory().await.unwrap();
        let notes = Notes::default();
        notes.fail_at.store(3, Ordering::Relaxed);
        let runner = ProjectionRunner::new(store.clone(), Checkpointed::new(notes).unwrap());
        assert_eq!(read_checkpoint(&store, NAME).await.unwrap(), None);

        for step in &audited[..2] {
            let outcome = runner.apply_block(step.height().0, step).await.unwrap();
            assert_eq!(outcome, ApplyOutcome::Applied);
        }
        let checkpoint = read_checkpoint(&store, NAME).await.unwrap().unwrap();
        assert_eq!(checkpoint.header, blocks[1].header);
        assert_eq!(checkpoint.transactions, 4);
        assert_eq!(&checkpoint.registry, audited[1].registry_after.as_ref());

        // Block 3's projection fails after writing: neither its note nor the checkpoint moves.
        let refused = runner.apply_block(3, &audited[2]).await;
        assert!(
            matches!(
                refused,
                Err(ApplyError::Projection {
                    source: StepError::Projection(NotesError::Refused(3)),
                    ..
                })
            ),
            "{refused:?}"
        );
        assert_eq!(runner.applied_height().await.unwrap(), 2);
        let after_refusal = read_checkpoint(&store, NAME).await.unwrap().unwrap();
        assert_eq!(after_refusal, checkpoint);
        let keys = keys_of(&store).await;
        assert!(!keys.contains(&note_key(3)));

        runner
            .projection()
            .inner
            .fail_at
            .store(0, Ordering::Relaxed);
        runner.apply_block(3, &audited[2]).await.unwrap();
        let checkpoint = read_checkpoint(&store, NAME).await.unwrap().unwrap();
        assert_eq!(checkpoint.height(), Height(3));
        assert_eq!(&checkpoint.registry, audited[2].registry_after.as_ref());

        // Every key is the projection's, the runner's height, or the checkpoint's (four of
        // them for a registry this small: header, count, one piece and its seal).
        let keys = keys_of(&store).await;
        let under = |prefix: &[u8]| keys.iter().filter(|k| k.starts_with(prefix)).count();
        assert_eq!(under(b"n/"), 3);
        assert_eq!(under(META_PREFIX), 1);
        assert!(keys.contains(&applied_height_key(NAME)));
        assert_eq!(under(PREFIX), 4, "{keys:?}");
        assert_eq!(keys.len(), 3 + 1 + 4);
    }

    #[tokio::test]
    async fn resuming_from_the_checkpoint_gives_the_auditor_that_walked_the_chain() {
        let net = network(4, 44);
        let blocks = governed_chain(&net, 6);
        let (audited, _) = audit_all(&net, &blocks);
        let store = EmbeddedStore::in_memory().await.unwrap();
        let runner =
            ProjectionRunner::new(store.clone(), Checkpointed::new(Notes::default()).unwrap());
        for step in &audited[..4] {
            runner.apply_block(step.height().0, step).await.unwrap();
        }
        let (_, mut walked) = audit_all(&net, &blocks[..4]);
        let mut resumed = read_checkpoint(&store, NAME)
            .await
            .unwrap()
            .unwrap()
            .resume(&net.genesis)
            .unwrap();

        assert_eq!(resumed.next_height(), walked.next_height());
        assert_eq!(resumed.registry(), walked.registry());
        assert_eq!(
            resumed.verifier().transactions(),
            walked.verifier().transactions()
        );
        assert_eq!(
            resumed.verifier().last_hash(),
            walked.verifier().last_hash()
        );
        // The set in force is governance's, not genesis'.
        assert_eq!(
            resumed.verifier().validators(),
            walked.verifier().validators()
        );
        assert_ne!(
            resumed.verifier().validators(),
            &net.genesis.validator_set()
        );
        for block in &blocks[4..] {
            assert_eq!(resumed.push(block).unwrap(), walked.push(block).unwrap());
        }
        assert_eq!(resumed.registry(), walked.registry());
    }

    #[tokio::test]
    async fn a_checkpoint_that_does_not_fit_the_applied_height_is_refused() {
        let net = network(4, 45);
        let blocks = governed_chain(&net, 2);
        let (audited, _) = audit_all(&net, &blocks);
        let store = EmbeddedStore::in_memory().await.unwrap();

        // A height with no checkpoint: a store written before the follower kept one.
        let mut txn = store.begin().await.unwrap();
        txn.put(&applied_height_key(NAME), &1u64.to_be_bytes())
            .unwrap();
        txn.commit().await.unwrap();
        let missing = read_checkpoint(&store, NAME).await;
        assert!(
            matches!(missing, Err(CheckpointError::Missing { applied: 1, .. })),
            "{missing:?}"
        );

        // Block 1 applied properly, then the height moved on its own.
        let store = EmbeddedStore::in_memory().await.unwrap();
        let runner =
            ProjectionRunner::new(store.clone(), Checkpointed::new(Notes::default()).unwrap());
        runner.apply_block(1, &audited[0]).await.unwrap();
        let mut txn = store.begin().await.unwrap();
        txn.put(&applied_height_key(NAME), &2u64.to_be_bytes())
            .unwrap();
        txn.commit().await.unwrap();
        let mismatch = read_checkpoint(&store, NAME).await;
        assert!(
            matches!(
                mismatch,
                Err(CheckpointError::Mismatch {
                    applied: 2,
                    checkpoint: 1,
                    ..
                })
            ),
            "{mismatch:?}"
        );

        // A damaged part is named.
        let keys = Keys::new(NAME).unwrap();
        let mut txn = store.begin().await.unwrap();
        txn.put(&applied_height_key(NAME), &1u64.to_be_bytes())
            .unwrap();
        txn.put(&keys.transactions, b"short").unwrap();
        txn.commit().await.unwrap();
        let damaged = read_checkpoint(&store, NAME).await;
        assert!(
            matches!(
                damaged,
                Err(CheckpointError::Damaged {
                    part: "transaction count",
                    ..
                })
            ),
            "{damaged:?}"
        );
    }

    #[test]
    fn names_that_could_overlap_another_projections_keys_are_refused() {
        for name in ["", "a/b", "notes/"] {
            assert!(
                matches!(Keys::new(name), Err(CheckpointError::Name { .. })),
                "{name:?}"
            );
        }
        let a = Keys::new("a").unwrap();
        let ab = Keys::new("ab").unwrap();
        assert!(!ab.registry.starts_with(&a.registry));
        assert!(!ab.header.starts_with(&a.header));
        assert!(a.header.starts_with(PREFIX) && !a.header.starts_with(META_PREFIX));
    }
}
