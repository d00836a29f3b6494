//! The validator's pool of transactions waiting for a block: admission, de-duplication,
//! bounded size, and selection of the next block's transactions.
//!
//! Signatures are checked before admission (in batches, by the service); here every rule
//! that needs the chain's replay state or the pool's own contents is applied. The pool is
//! bounded both in transactions and in bytes: when it is full, admission fails with `Full`,
//! and the service stops pulling from MEMPOOL until blocks drain it (back-pressure instead
//! of unbounded memory). Order is arrival order, so selection is deterministic for a given
//! sequence of arrivals.

use std::collections::{BTreeMap, BTreeSet};

use citychain_kernel::{Height, SignedTx, TxId};
use thiserror::Error;

use citychain_kernel::replay::{ReplayRejection, ReplayWindow};

/// How much the pool may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Transactions at most.
    pub max_txs: usize,
    /// Encoded bytes at most.
    pub max_bytes: usize,
}

/// How much one block may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// Transactions at most.
    pub max_txs: usize,
    /// Encoded transaction bytes at most.
    pub max_bytes: usize,
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MempoolRejection {
    /// The same transaction is already waiting.
    #[error("transaction {0} is already in the pool")]
    Duplicate(TxId),
    /// Another transaction with the same (signer, nonce) is already waiting.
    #[error("signer {signer} already has nonce {nonce} waiting in transaction {other}")]
    NonceTaken {
        /// Hex of the signer's key.
        signer: String,
        /// The nonce.
        nonce: u64,
        /// The waiting transaction.
        other: TxId,
    },
    /// The chain's replay rules refuse it.
    #[error(transparent)]
    Replay(#[from] ReplayRejection),
    /// The pool is at its limit.
    #[error(
        "mempool is full: {txs} transactions and {bytes} bytes held, limits {max_txs} and {max_bytes}"
    )]
    Full {
        /// Transactions held.
        txs: usize,
        /// Bytes held.
        bytes: usize,
        /// Transaction limit.
        max_txs: usize,
        /// Byte limit.
        max_bytes: usize,
    },
}

/// Transactions waiting for a block, in arrival order.
#[derive(Debug, Clone)]
pub struct Mempool {
    limits: PoolLimits,
    next_seq: u64,
    by_seq: BTreeMap<u64, SignedTx>,
    seq_of: BTreeMap<TxId, u64>,
    pairs: BTreeMap<([u8; 32], u64), TxId>,
    bytes: usize,
}

impl Mempool {
    /// An empty pool.
    pub fn new(limits: PoolLimits) -> Self {
        Mempool {
            limits,
            next_seq: 0,
            by_seq: BTreeMap::new(),
            seq_of: BTreeMap::new(),
            pairs: BTreeMap::new(),
            bytes: 0,
        }
    }

    /// Transactions waiting.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Encoded bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the pool can take no more.
    pub fn is_full(&self) -> bool {
        self.len() >= self.limits.max_txs || self.bytes >= self.limits.max_bytes
    }

    /// Whether the transaction is waiting.
    pub fn contains(&self, id: &TxId) -> bool {
        self.seq_of.contains_key(id)
    }

    /// Admits a signature-checked transaction that could commit at `next_height`.
    pub fn admit(
        &mut self,
        tx: SignedTx,
        replay: &ReplayWindow,
        next_height: Height,
    ) -> Result<(), MempoolRejection> {
        if self.seq_of.contains_key(&tx.id()) {
            return Err(MempoolRejection::Duplicate(tx.id()));
        }
        let pair = (tx.signer().to_bytes(), tx.nonce());
        if let Some(other) = self.pairs.get(&pair) {
            return Err(MempoolRejection::NonceTaken {
                signer: tx.signer().to_string(),
                nonce: tx.nonce(),
                other: *other,
            });
        }
        replay.check(&tx, next_height)?;
        let size = tx.bytes().len();
        if self.len() + 1 > self.limits.max_txs || self.bytes + size > self.limits.max_bytes {
            return Err(MempoolRejection::Full {
                txs: self.len(),
                bytes: self.bytes,
                max_txs: self.limits.max_txs,
                max_bytes: self.limits.max_bytes,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pairs.insert(pair, tx.id());
        self.seq_of.insert(tx.id(), seq);
        self.bytes += size;
        self.by_seq.insert(seq, tx);
        Ok(())
    }

    /// The next block's transactions: in arrival order, those the replay rules allow at
    /// `height`, until a limit would be passed.
    pub fn select(
        &self,
        limits: BlockLimits,
        replay: &ReplayWindow,
        height: Height,
    ) -> Vec<SignedTx> {
        let mut chosen = Vec::new();
        let mut bytes = 0;
        for tx in self.by_seq.values() {
            if chosen.len() == limits.max_txs {
                break;
            }
            let size = tx.bytes().len();
            if bytes + size > limits.max_bytes {
                break;
            }
            if replay.check(tx, height).is_ok() {
                bytes += size;
                chosen.push(tx.clone());
            }
        }
        chosen
    }

    /// Removes what a committed block carried, and everything that can no longer commit at
    /// `next_height` (expired, or its (signer, nonce) pair now used), and returns the ids of
    /// what it removed, in arrival order.
    pub fn after_commit(
        &mut self,
        committed: &[SignedTx],
        replay: &ReplayWindow,
        next_height: Height,
    ) -> Vec<TxId> {
        let committed: BTreeSet<TxId> = committed.iter().map(SignedTx::id).collect();
        let stale: Vec<u64> = self
            .by_seq
            .iter()
            .filter(|(_, tx)| {
                committed.contains(&tx.id()) || replay.check(tx, next_height).is_err()
            })
            .map(|(seq, _)| *seq)
            .collect();
        let mut removed = Vec::with_capacity(stale.len());
        for seq in stale {
            if let Some(tx) = self.by_seq.remove(&seq) {
                self.seq_of.remove(&tx.id());
                self.pairs.remove(&(tx.signer().to_bytes(), tx.nonce()));
                self.bytes -= tx.bytes().len();
                removed.push(tx.id());
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_kernel::{ChainId, SigningKey, TxBody};

    fn tx(signer: u8, nonce: u64, expiry: u64, size: usize) -> SignedTx {
        SignedTx::sign(
            &ChainId::new("c").unwrap(),
            &SigningKey::from_seed(&[signer; 32]),
            nonce,
            Height(expiry),
            TxBody::new("t.v1.Put", vec![0; size]),
        )
        .unwrap()
    }

    fn pool(max_txs: usize, max_bytes: usize) -> Mempool {
        Mempool::new(PoolLimits { max_txs, max_bytes })
    }

    #[test]
    fn duplicates_and_taken_nonces_are_refused() {
        let w = ReplayWindow::new(100);
        let mut p = pool(10, 1 << 20);
        let a = tx(1, 1, 50, 10);
        p.admit(a.clone(), &w, Height(1)).unwrap();
        assert_eq!(
            p.admit(a.clone(), &w, Height(1)),
            Err(MempoolRejection::Duplicate(a.id()))
        );
        assert!(matches!(
            p.admit(tx(1, 1, 60, 10), &w, Height(1)),
            Err(MempoolRejection::NonceTaken { nonce: 1, .. })
        ));
        p.admit(tx(1, 2, 50, 10), &w, Height(1)).unwrap();
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn a_full_pool_pushes_back_and_names_its_limits() {
        let w = ReplayWindow::new(100);
        let mut p = pool(2, 1 << 20);
        p.admit(tx(1, 1, 50, 1), &w, Height(1)).unwrap();
        p.admit(tx(1, 2, 50, 1), &w, Height(1)).unwrap();
        let err = p.admit(tx(1, 3, 50, 1), &w, Height(1)).unwrap_err();
        assert!(err.to_string().contains("limits 2 and"), "{err}");
        let mut small = pool(100, 300);
        small.admit(tx(2, 1, 50, 100), &w, Height(1)).unwrap();
        assert!(matches!(
            small.admit(tx(2, 2, 50, 200), &w, Height(1)),
            Err(MempoolRejection::Full { .. })
        ));
    }

    #[test]
    fn selection_respects_order_and_limits_and_commit_drains() {
        let mut w = ReplayWindow::new(100);
        let mut p = pool(100, 1 << 20);
        let txs: Vec<SignedTx> = (0..10).map(|n| tx(3, n, 50, 20)).collect();
        for t in &txs {
            p.admit(t.clone(), &w, Height(1)).unwrap();
        }
        let limits = BlockLimits {
            max_txs: 4,
            max_bytes: 1 << 20,
        };
        let block = p.select(limits, &w, Height(1));
        assert_eq!(block, txs[..4].to_vec());
        w.apply_block(&block, Height(1)).unwrap();
        let removed = p.after_commit(&block, &w, Height(2));
        assert_eq!(removed, block.iter().map(SignedTx::id).collect::<Vec<_>>());
        assert_eq!(p.len(), 6);
        assert_eq!(p.select(limits, &w, Height(2)), txs[4..8].to_vec());
    }

    #[test]
    fn expired_transactions_leave_the_pool() {
        let w = ReplayWindow::new(100);
        let mut p = pool(100, 1 << 20);
        let expiring = tx(4, 1, 3, 1);
        p.admit(expiring.clone(), &w, Height(1)).unwrap();
        p.admit(tx(4, 2, 30, 1), &w, Height(1)).unwrap();
        assert_eq!(p.after_commit(&[], &w, Height(4)), vec![expiring.id()]);
        assert_eq!(p.len(), 1);
        assert!(p.bytes() > 0);
    }
}
