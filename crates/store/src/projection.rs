//! The exactly-once projection runner: applies a service's projection to each committed block,
//! in order, storing the projection's writes and the new applied height in one atomic commit.
//!
//! Because the height check, the projection's writes and the height update share one
//! serializable transaction, a crash at any moment leaves the store either before the block
//! (its height not recorded, none of its writes present) or after it (both present). Restarting
//! from `applied_height() + 1` therefore neither loses nor repeats a block, and delivering a
//! block twice (a redelivery by the bus, two replicas racing) applies it once.

use std::future::Future;

use thiserror::Error;

use crate::error::{Retryable, StoreError};
use crate::traits::{Store, Transaction};

/// Keys starting with these bytes are reserved for the runner's bookkeeping. A projection must
/// keep its own keys out of this range (and should keep them under a prefix of its own, so that
/// its scans never meet the bookkeeping).
pub const META_PREFIX: &[u8] = b"\xff\xffcitychain/meta/";

/// A deterministic projection of the chain: given the block at each height in turn, it updates
/// the service's state through a transaction.
pub trait Projection: Send + Sync {
    /// The block type the projection consumes.
    type Block: Send + Sync;
    /// Why applying a block can fail. Telling the domain's rejections apart from failures of
    /// our own is the projection's business; the runner only needs to know whether a retry may
    /// help ([`Retryable`]: forward to the [`StoreError`] if the type wraps one).
    type Error: std::error::Error + Retryable + Send + Sync + 'static;

    /// A stable name, unique among the projections sharing a store: the applied height is kept
    /// under it. Renaming a projection restarts it from the first block.
    fn name(&self) -> &str;

    /// Applies the block at `height` through `txn`. Returning an error aborts the transaction:
    /// nothing written through `txn` is kept and the applied height does not move.
    ///
    /// It must be deterministic (the same state and block give the same writes) and may run
    /// more than once for one block, when a commit conflicts and the runner retries it.
    fn apply<T: Transaction>(
        &self,
        txn: &mut T,
        height: u64,
        block: &Self::Block,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// What [`ProjectionRunner::apply_block`] did with a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The block was applied and its height recorded.
    Applied,
    /// The block had been applied before; nothing was done.
    AlreadyApplied {
        /// The applied height found.
        applied: u64,
    },
}

/// Why a block was not applied. Nothing was written in any case.
#[derive(Debug, Error)]
pub enum ApplyError<E> {
    /// The block is not the next one: blocks before it are missing.
    #[error("block {got} leaves a gap: the next block to apply is {expected}")]
    Gap {
        /// The height that must come next.
        expected: u64,
        /// The height that was offered.
        got: u64,
    },
    /// The projection refused or failed to apply the block.
    #[error("applying block {height} failed: {source}")]
    Projection {
        /// The block's height.
        height: u64,
        /// The projection's error.
        #[source]
        source: E,
    },
    /// The store failed, or the commit kept conflicting.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E: Retryable> Retryable for ApplyError<E> {
    fn is_retryable(&self) -> bool {
        match self {
            ApplyError::Gap { .. } => false,
            ApplyError::Projection { source, .. } => source.is_retryable(),
            ApplyError::Store(error) => error.is_retryable(),
        }
    }
}

/// The key under which the runner keeps the applied height of the projection `name`.
pub fn applied_height_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(META_PREFIX.len() + 15 + name.len());
    key.extend_from_slice(META_PREFIX);
    key.extend_from_slice(b"applied-height/");
    key.extend_from_slice(name.as_bytes());
    key
}

/// The height of the last block applied by the projection `name`, read in `txn` (so in the
/// same snapshot as the state it reads); 0 if none. Blocks start at height 1.
pub async fn read_applied_height<T: Transaction>(
    txn: &mut T,
    name: &str,
) -> Result<u64, StoreError> {
    let key = applied_height_key(name);
    decode_height(&key, txn.get(&key).await?)
}

fn decode_height(key: &[u8], stored: Option<Vec<u8>>) -> Result<u64, StoreError> {
    match stored {
        None => Ok(0),
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(height) => Ok(u64::from_be_bytes(height)),
            Err(_) => Err(StoreError::Corruption(format!(
                "applied height under {} is {} bytes long, not 8",
                String::from_utf8_lossy(key),
                bytes.len()
            ))),
        },
    }
}

/// Applies blocks to a projection exactly once, in order, over a store.
#[derive(Debug)]
pub struct ProjectionRunner<S, P> {
    store: S,
    projection: P,
    meta_key: Vec<u8>,
}

impl<S: Store, P: Projection> ProjectionRunner<S, P> {
    /// A runner for `projection` over `store`.
    pub fn new(store: S, projection: P) -> Self {
        let meta_key = applied_height_key(projection.name());
        ProjectionRunner {
            store,
            projection,
            meta_key,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The height of the last block applied; 0 if none. Resume from the height after it.
    pub async fn applied_height(&self) -> Result<u64, StoreError> {
        let mut txn = self.store.begin().await?;
        decode_height(&self.meta_key, txn.get(&self.meta_key).await?)
    }

    /// Applies the block at `height`, in one transaction that reads the applied height, lets
    /// the projection write, records `height` and commits:
    ///
    /// - `height` ≤ the applied height: nothing is done, [`ApplyOutcome::AlreadyApplied`];
    /// - `height` > the applied height + 1: [`ApplyError::Gap`];
    /// - otherwise the projection applies the block; if it fails, [`ApplyError::Projection`]
    ///   and nothing is written.
    ///
    /// A conflicting commit (another runner of the same projection on a shared store) is
    /// retried from the start, so the loser finds the block applied and skips it.
    pub async fn apply_block(
        &self,
        height: u64,
        block: &P::Block,
    ) -> Result<ApplyOutcome, ApplyError<P::Error>> {
        let projection = &self.projection;
        let meta_key = self.meta_key.as_slice();
        let outcome = self
            .store
            .run(move |txn| {
                Box::pin(async move {
                    let applied = decode_height(meta_key, txn.get(meta_key).await?)?;
                    if height <= applied {
                        return Ok(ApplyOutcome::AlreadyApplied { applied });
                    }
                    let expected = applied + 1;
                    if height != expected {
                        return Err(ApplyError::Gap {
                            expected,
                            got: height,
                        });
                    }
                    projection
                        .apply(txn.txn(), height, block)
                        .await
                        .map_err(|source| ApplyError::Projection { height, source })?;
                    txn.put(meta_key, &height.to_be_bytes())?;
                    Ok(ApplyOutcome::Applied)
                })
            })
            .await;
        match &outcome {
            Ok(ApplyOutcome::Applied) => {
                tracing::debug!(projection = projection.name(), height, "block applied");
            }
            Ok(ApplyOutcome::AlreadyApplied { applied }) => tracing::debug!(
                projection = projection.name(),
                height,
                applied,
                "block already applied, skipped"
            ),
            Err(error) => tracing::warn!(
                projection = projection.name(),
                height,
                %error,
                "block not applied"
            ),
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedStore;
    use crate::scan::Scan;

    /// Adds amounts to counters; refuses a block that says so, after writing to it.
    struct Counters;

    struct Block {
        adds: Vec<(&'static str, u64)>,
        refuse: bool,
    }

    fn block(adds: &[(&'static str, u64)]) -> Block {
        Block {
            adds: adds.to_vec(),
            refuse: false,
        }
    }

    #[derive(Debug, Error)]
    enum CountersError {
        #[error("block refused")]
        Refused,
        #[error(transparent)]
        Store(#[from] StoreError),
    }

    impl Retryable for CountersError {
        fn is_retryable(&self) -> bool {
            matches!(self, CountersError::Store(error) if error.is_retryable())
        }
    }

    impl Projection for Counters {
        type Block = Block;
        type Error = CountersError;

        fn name(&self) -> &str {
            "counters"
        }

        async fn apply<T: Transaction>(
            &self,
            txn: &mut T,
            _height: u64,
            block: &Block,
        ) -> Result<(), CountersError> {
            for (name, amount) in &block.adds {
                let key = format!("counter/{name}");
                let old = match txn.get(key.as_bytes()).await? {
                    Some(bytes) => u64::from_be_bytes(bytes.try_into().expect("8 bytes")),
                    None => 0,
                };
                txn.put(key.as_bytes(), &(old + amount).to_be_bytes())?;
            }
            if block.refuse {
                return Err(CountersError::Refused);
            }
            Ok(())
        }
    }

    async fn runner() -> ProjectionRunner<EmbeddedStore, Counters> {
        ProjectionRunner::new(EmbeddedStore::in_memory().await.unwrap(), Counters)
    }

    async fn counters(runner: &ProjectionRunner<EmbeddedStore, Counters>) -> Vec<(String, u64)> {
        let mut txn = runner.store().begin().await.unwrap();
        let entries = txn.scan(&Scan::prefix(b"counter/")).await.unwrap();
        entries
            .into_iter()
            .map(|(key, value)| {
                (
                    String::from_utf8(key).unwrap(),
                    u64::from_be_bytes(value.try_into().unwrap()),
                )
            })
            .collect()
    }

    fn owned(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), *value))
            .collect()
    }

    #[tokio::test]
    async fn blocks_apply_in_order_and_record_the_height() {
        let runner = runner().await;
        assert_eq!(runner.applied_height().await.unwrap(), 0);
        let outcome = runner.apply_block(1, &block(&[("a", 1)])).await.unwrap();
        assert_eq!(outcome, ApplyOutcome::Applied);
        runner
            .apply_block(2, &block(&[("a", 2), ("b", 5)]))
            .await
            .unwrap();
        assert_eq!(runner.applied_height().await.unwrap(), 2);
        assert_eq!(
            counters(&runner).await,
            owned(&[("counter/a", 3), ("counter/b", 5)])
        );
    }

    #[tokio::test]
    async fn a_block_applied_before_is_skipped() {
        let runner = runner().await;
        runner.apply_block(1, &block(&[("a", 1)])).await.unwrap();
        runner.apply_block(2, &block(&[("a", 1)])).await.unwrap();
        for height in [1, 2] {
            let outcome = runner
                .apply_block(height, &block(&[("a", 100)]))
                .await
                .unwrap();
            assert_eq!(outcome, ApplyOutcome::AlreadyApplied { applied: 2 });
        }
        assert_eq!(
            counters(&runner).await,
            owned(&[("counter/a", 2)]),
            "nothing applied twice"
        );
        assert_eq!(runner.applied_height().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_gap_is_an_error_and_writes_nothing() {
        let runner = runner().await;
        let first = runner.apply_block(2, &block(&[("a", 1)])).await;
        assert!(
            matches!(
                first,
                Err(ApplyError::Gap {
                    expected: 1,
                    got: 2
                })
            ),
            "{first:?}"
        );
        runner.apply_block(1, &block(&[("a", 1)])).await.unwrap();
        let skip = runner.apply_block(3, &block(&[("a", 1)])).await;
        assert!(
            matches!(
                skip,
                Err(ApplyError::Gap {
                    expected: 2,
                    got: 3
                })
            ),
            "{skip:?}"
        );
        assert_eq!(runner.applied_height().await.unwrap(), 1);
        assert_eq!(counters(&runner).await, owned(&[("counter/a", 1)]));
    }

    #[tokio::test]
    async fn a_failed_apply_writes_nothing_and_the_block_can_come_again() {
        let runner = runner().await;
        runner.apply_block(1, &block(&[("a", 1)])).await.unwrap();
        let refused = Block {
            adds: vec![("a", 10), ("b", 10)],
            refuse: true,
        };
        let outcome = runner.apply_block(2, &refused).await;
        assert!(
            matches!(
                outcome,
                Err(ApplyError::Projection {
                    height: 2,
                    source: CountersError::Refused
                })
            ),
            "{outcome:?}"
        );
        assert_eq!(runner.applied_height().await.unwrap(), 1);
        assert_eq!(counters(&runner).await, owned(&[("counter/a", 1)]));
        runner.apply_block(2, &block(&[("b", 7)])).await.unwrap();
        assert_eq!(
            counters(&runner).await,
            owned(&[("counter/a", 1), ("counter/b", 7)])
        );
    }

    #[tokio::test]
    async fn a_malformed_height_record_is_reported_as_corruption() {
        let runner = runner().await;
        let mut txn = runner.store().begin().await.unwrap();
        txn.put(&applied_height_key("counters"), b"short").unwrap();
        txn.commit().await.unwrap();
        assert!(matches!(
            runner.applied_height().await,
            Err(StoreError::Corruption(_))
        ));
        let outcome = runner.apply_block(1, &block(&[("a", 1)])).await;
        assert!(matches!(
            outcome,
            Err(ApplyError::Store(StoreError::Corruption(_)))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_runners_apply_each_block_once() {
        let store = EmbeddedStore::in_memory().await.unwrap();
        let one = std::sync::Arc::new(ProjectionRunner::new(store.clone(), Counters));
        let two = std::sync::Arc::new(ProjectionRunner::new(store, Counters));
        for height in 1..=20 {
            let (a, b) = (one.clone(), two.clone());
            let first =
                tokio::spawn(async move { a.apply_block(height, &block(&[("n", 1)])).await });
            let second =
                tokio::spawn(async move { b.apply_block(height, &block(&[("n", 1)])).await });
            let outcomes = [
                first.await.unwrap().unwrap(),
                second.await.unwrap().unwrap(),
            ];
            let applied = outcomes
                .iter()
                .filter(|o| **o == ApplyOutcome::Applied)
                .count();
            assert_eq!(applied, 1, "height {height}: {outcomes:?}");
        }
        assert_eq!(counters(&one).await, owned(&[("counter/n", 20)]));
    }

    /// Generic code over any store and projection gets `Send` futures, so it can be spawned.
    #[allow(dead_code)]
    fn apply_block_is_send<S: Store + 'static, P: Projection + 'static>(
        runner: std::sync::Arc<ProjectionRunner<S, P>>,
        block: P::Block,
    ) where
        P::Block: 'static,
    {
        fn assert_send<F: Send>(_: &F) {}
        let future = async move { runner.apply_block(1, &block).await.is_ok() };
        assert_send(&future);
    }
}
