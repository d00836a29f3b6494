//! Replay protection as part of the chain's state: a transaction names the last height at
//! which it may commit (`expiry_height`), and the pair (signer, nonce) may commit at most once
//! while any transaction carrying it could still commit.
//!
//! Why expiry plus a seen-set rather than strictly increasing per-signer nonces: with sequential
//! nonces one lost or slow transaction blocks every later one of the same signer, and a
//! department submitting many uploads at once would have to serialise them. Here a signer
//! picks any unused nonce (a counter, or random), has as many transactions in flight as it
//! likes, and the state stays bounded: an entry is dropped once its expiry height has passed,
//! because from then on no transaction with that pair can commit anyway. `max_ttl` bounds how
//! far ahead an expiry may be, so the set holds at most `max_ttl` heights of transactions.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::Height;
use crate::keys::PublicKey;
use crate::tx::SignedTx;
use thiserror::Error;

/// Why a transaction may not commit at a height.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplayRejection {
    /// Its expiry height has passed.
    #[error("transaction expired at height {expiry}, the chain is at height {height}")]
    Expired {
        /// The transaction's expiry.
        expiry: Height,
        /// The height it would commit at.
        height: Height,
    },
    /// Its expiry is further ahead than the chain allows.
    #[error("transaction expiry {expiry} is more than {max_ttl} heights after height {height}")]
    TooFarAhead {
        /// The transaction's expiry.
        expiry: Height,
        /// The height it would commit at.
        height: Height,
        /// The largest distance allowed.
        max_ttl: u64,
    },
    /// The (signer, nonce) pair has already committed.
    #[error("signer {signer} already committed nonce {nonce} (a replay)")]
    Replayed {
        /// Hex of the signer's key.
        signer: String,
        /// The nonce.
        nonce: u64,
    },
}

/// The (signer, nonce) pairs that committed and whose expiry has not passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    max_ttl: u64,
    seen: BTreeSet<([u8; 32], u64)>,
    by_expiry: BTreeMap<Height, Vec<([u8; 32], u64)>>,
}

impl ReplayWindow {
    /// An empty window allowing expiries up to `max_ttl` heights ahead.
    pub fn new(max_ttl: u64) -> Self {
        ReplayWindow {
            max_ttl,
            seen: BTreeSet::new(),
            by_expiry: BTreeMap::new(),
        }
    }

    /// The largest distance between a commit height and an expiry.
    pub fn max_ttl(&self) -> u64 {
        self.max_ttl
    }

    /// How many pairs are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether `tx` may commit at `height`.
    pub fn check(&self, tx: &SignedTx, height: Height) -> Result<(), ReplayRejection> {
        check_expiry(tx.expiry(), height, self.max_ttl)?;
        if self.seen.contains(&key(tx.signer(), tx.nonce())) {
            return Err(ReplayRejection::Replayed {
                signer: tx.signer().to_string(),
                nonce: tx.nonce(),
            });
        }
        Ok(())
    }

    /// Records a committed transaction.
    pub fn record(&mut self, tx: &SignedTx) {
        let k = key(tx.signer(), tx.nonce());
        if self.seen.insert(k) {
            self.by_expiry.entry(tx.expiry()).or_default().push(k);
        }
    }

    /// Forgets every pair whose expiry is below `height`: none of them can commit any more.
    pub fn prune_below(&mut self, height: Height) {
        let keep = self.by_expiry.split_off(&height);
        for pairs in std::mem::replace(&mut self.by_expiry, keep).into_values() {
            for pair in pairs {
                self.seen.remove(&pair);
            }
        }
    }

    /// Checks every transaction of a block at `height` in order (a pair may not repeat within
    /// the block either) and, if all pass, records them and prunes expired pairs. On a
    /// rejection nothing changes and the index of the offending transaction is returned.
    pub fn apply_block(
        &mut self,
        txs: &[SignedTx],
        height: Height,
    ) -> Result<(), (usize, ReplayRejection)> {
        self.check_block(txs, height)?;
        for tx in txs {
            self.record(tx);
        }
        if let Some(next) = height.next() {
            self.prune_below(next);
        }
        Ok(())
    }

    /// Checks every transaction of a block at `height` in order, without changing anything:
    /// each must pass [`ReplayWindow::check`] and no (signer, nonce) pair may repeat within
    /// the block. Returns the index of the first offending transaction.
    pub fn check_block(
        &self,
        txs: &[SignedTx],
        height: Height,
    ) -> Result<(), (usize, ReplayRejection)> {
        let mut in_block = BTreeSet::new();
        for (index, tx) in txs.iter().enumerate() {
            self.check(tx, height).map_err(|e| (index, e))?;
            if !in_block.insert(key(tx.signer(), tx.nonce())) {
                return Err((
                    index,
                    ReplayRejection::Replayed {
                        signer: tx.signer().to_string(),
                        nonce: tx.nonce(),
                    },
                ));
            }
        }
        Ok(())
    }

    /// The remembered pairs with their expiry, in a stable order (for storage).
    pub fn entries(&self) -> impl Iterator<Item = (Height, [u8; 32], u64)> + '_ {
        self.by_expiry
            .iter()
            .flat_map(|(h, pairs)| pairs.iter().map(move |(s, n)| (*h, *s, *n)))
    }

    /// Rebuilds a window from stored entries.
    pub fn from_entries(
        max_ttl: u64,
        entries: impl IntoIterator<Item = (Height, [u8; 32], u64)>,
    ) -> Self {
        let mut window = ReplayWindow::new(max_ttl);
        for (expiry, signer, nonce) in entries {
            if window.seen.insert((signer, nonce)) {
                window
                    .by_expiry
                    .entry(expiry)
                    .or_default()
                    .push((signer, nonce));
            }
        }
        window
    }
}

fn key(signer: &PublicKey, nonce: u64) -> ([u8; 32], u64) {
    (signer.to_bytes(), nonce)
}

/// The expiry rule alone: `height <= expiry <= height + max_ttl`.
pub fn check_expiry(expiry: Height, height: Height, max_ttl: u64) -> Result<(), ReplayRejection> {
    if expiry < height {
        return Err(ReplayRejection::Expired { expiry, height });
    }
    if expiry.0 - height.0 > max_ttl {
        return Err(ReplayRejection::TooFarAhead {
            expiry,
            height,
            max_ttl,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ChainId;
    use crate::keys::SigningKey;
    use crate::tx::TxBody;

    fn tx(signer: u8, nonce: u64, expiry: u64) -> SignedTx {
        SignedTx::sign(
            &ChainId::new("c").unwrap(),
            &SigningKey::from_seed(&[signer; 32]),
            nonce,
            Height(expiry),
            TxBody::new("t.v1.X", vec![]),
        )
        .unwrap()
    }

    #[test]
    fn a_replay_is_refused_while_it_could_commit() {
        let mut w = ReplayWindow::new(100);
        let a = tx(1, 7, 50);
        w.apply_block(std::slice::from_ref(&a), Height(10)).unwrap();
        assert!(matches!(
            w.check(&a, Height(11)),
            Err(ReplayRejection::Replayed { nonce: 7, .. })
        ));
        // Same nonce, other body: still the same (signer, nonce) pair.
        assert!(w.check(&tx(1, 7, 60), Height(11)).is_err());
        // Another signer with the same nonce is fine, so is another nonce.
        assert!(w.check(&tx(2, 7, 50), Height(11)).is_ok());
        assert!(w.check(&tx(1, 8, 50), Height(11)).is_ok());
    }

    #[test]
    fn expired_pairs_are_forgotten_and_cannot_commit_anyway() {
        let mut w = ReplayWindow::new(100);
        let a = tx(1, 7, 12);
        w.apply_block(std::slice::from_ref(&a), Height(10)).unwrap();
        w.apply_block(&[], Height(11)).unwrap();
        assert_eq!(
            w.len(),
            1,
            "a transaction with expiry 12 could still commit at 12"
        );
        w.apply_block(&[], Height(12)).unwrap();
        assert!(w.is_empty());
        assert!(matches!(
            w.check(&a, Height(13)),
            Err(ReplayRejection::Expired { .. })
        ));
    }

    #[test]
    fn a_pair_twice_in_one_block_is_refused_and_nothing_is_recorded() {
        let mut w = ReplayWindow::new(100);
        let err = w
            .apply_block(&[tx(1, 1, 20), tx(3, 1, 20), tx(1, 1, 30)], Height(5))
            .unwrap_err();
        assert_eq!(err.0, 2);
        assert!(w.is_empty());
    }

    #[test]
    fn expiry_too_far_ahead_is_refused_with_the_limit() {
        let w = ReplayWindow::new(100);
        let err = w.check(&tx(1, 1, 500), Height(10)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "transaction expiry 500 is more than 100 heights after height 10"
        );
    }

    #[test]
    fn entries_round_trip() {
        let mut w = ReplayWindow::new(100);
        w.apply_block(&[tx(1, 1, 20), tx(2, 5, 40)], Height(5))
            .unwrap();
        let back = ReplayWindow::from_entries(100, w.entries().collect::<Vec<_>>());
        assert_eq!(back, w);
    }
}
