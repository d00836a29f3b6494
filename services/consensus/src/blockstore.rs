//! The validator's own copy of the chain: every decided block with its certificate, the tip,
//! the replay window, and every vote or proposal this validator signed.
//!
//! Blocks are split into pieces because a store value is limited (FoundationDB's 100 kB) while
//! a block may be several megabytes; the pieces are sealed with their hash, so a block whose
//! stored bytes changed is reported damaged rather than read. The tip record keeps the tip
//! block's hash apart from its bytes, so a damaged tip block is replaced by the copy (from
//! CHAIN or a peer) with that hash.
//!
//! JetStream carries blocks to the other services, but a validator never relies on it as the
//! only copy: a block is stored here (fsynced, atomically with the replay window) before it is
//! appended to CHAIN, and validators serve blocks by height from here.
//!
//! Key layout (all integers big-endian, so byte order is numeric order):
//!
//! | key | value |
//! | --- | --- |
//! | `b/` height (8) piece (4) | the block's canonical encoding, in pieces of at most 64 KiB |
//! | `t` | the tip: height (8), hash (32), time (8), transactions so far (8) |
//! | `r/` expiry (8) signer (32) nonce (8) | empty: a (signer, nonce) pair in the replay window |
//! | `s/` height (8) round (4) kind (1) | a message this validator signed (see [`SignedRecord`]) |
//! | `g/` piece (4) | the governance registry after the tip (who may sign, who validates) |

use citychain_kernel::replay::ReplayWindow;
use citychain_kernel::{Block, BlockError, BlockHash, Hash32, Height};
use citychain_store::{Scan, Store, StoreError, Transaction, put_pieces, read_pieces};
use thiserror::Error;

/// The block store failed or holds something it cannot read.
#[derive(Debug, Error)]
pub enum BlockStoreError {
    /// The store failed.
    #[error("block store: {0}")]
    Store(#[from] StoreError),
    /// A stored block's bytes do not match their seal, or do not decode.
    #[error("stored block {height} is damaged: {what}")]
    Damaged {
        /// Its height.
        height: u64,
        /// What is wrong.
        what: String,
    },
    /// The tip record is damaged.
    #[error("stored tip record is {0} bytes, expected 56")]
    Tip(usize),
    /// A block was offered out of order.
    #[error("block {got} cannot follow the stored tip {tip}")]
    OutOfOrder {
        /// The stored tip's height.
        tip: u64,
        /// The offered block's height.
        got: u64,
    },
}

/// The last stored block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredTip {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
    /// Its time.
    pub time_unix_ms: u64,
    /// Transactions in blocks 1 to `height`.
    pub transactions: u64,
}

const TIP: &[u8] = b"t";

const REGISTRY: &[u8] = b"g/";

fn block_prefix(height: u64) -> Vec<u8> {
    let mut key = b"b/".to_vec();
    key.extend_from_slice(&height.to_be_bytes());
    key
}

async fn read_block_bytes<T: Transaction>(
    txn: &mut T,
    height: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    read_pieces(txn, &block_prefix(height)).await
}

fn replay_key(expiry: Height, signer: &[u8; 32], nonce: u64) -> Vec<u8> {
    let mut key = b"r/".to_vec();
    key.extend_from_slice(&expiry.0.to_be_bytes());
    key.extend_from_slice(signer);
    key.extend_from_slice(&nonce.to_be_bytes());
    key
}

fn signed_key(height: u64, round: u32, kind: u8) -> Vec<u8> {
    let mut key = b"s/".to_vec();
    key.extend_from_slice(&height.to_be_bytes());
    key.extend_from_slice(&round.to_be_bytes());
    key.push(kind);
    key
}

/// A message this validator signed, kept so that after a crash it never signs a different one
/// for the same height, round and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// 0 proposal, 1 prevote, 2 precommit.
    pub kind: u8,
    /// The signed message's encoding.
    pub bytes: Vec<u8>,
}

/// The validator's block store over any [`Store`].
#[derive(Debug, Clone)]
pub struct BlockStore<S> {
    store: S,
}

impl<S: Store> BlockStore<S> {
    /// Wraps a store.
    pub fn new(store: S) -> Self {
        BlockStore { store }
    }

    /// The last stored block, if any.
    pub async fn tip(&self) -> Result<Option<StoredTip>, BlockStoreError> {
        let mut txn = self.store.begin().await?;
        read_tip(&mut txn).await
    }

    /// The block at `height`, if stored.
    pub async fn block(&self, height: u64) -> Result<Option<Block>, BlockStoreError> {
        match self.block_bytes(height).await? {
            Some(bytes) => {
                Block::decode(&bytes)
                    .map(Some)
                    .map_err(|e: BlockError| BlockStoreError::Damaged {
                        height,
                        what: format!("it does not decode: {e}"),
                    })
            }
            None => Ok(None),
        }
    }

    /// The encoded block at `height`, if stored, checked against the seal written with it:
    /// damaged bytes are [`BlockStoreError::Damaged`], never returned.
    pub async fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, BlockStoreError> {
        let mut txn = self.store.begin().await?;
        read_block_bytes(&mut txn, height).await.map_err(|err| {
            if err.is_corruption() {
                BlockStoreError::Damaged {
                    height,
                    what: err.to_string(),
                }
            } else {
                err.into()
            }
        })
    }

    /// Rewrites the stored block at `height` (at or below the tip) with `copy`, whose hash
    /// the caller checked against one stored apart from the damaged bytes.
    pub async fn rewrite(&self, height: u64, copy: &Block) -> Result<(), BlockStoreError> {
        let mut txn = self.store.begin().await?;
        let tip = read_tip(&mut txn).await?.map_or(0, |t| t.height);
        if height == 0 || height > tip || copy.header.height.0 != height {
            return Err(BlockStoreError::OutOfOrder { tip, got: height });
        }
        put_pieces(&mut txn, &block_prefix(height), &copy.encode()).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The replay window as stored.
    pub async fn replay_window(&self, max_ttl: u64) -> Result<ReplayWindow, BlockStoreError> {
        let mut txn = self.store.begin().await?;
        let entries = txn.scan(&Scan::prefix(b"r/")).await?;
        Ok(ReplayWindow::from_entries(
            max_ttl,
            entries.into_iter().filter_map(|(key, _)| {
                let rest = key.get(2..)?;
                let expiry = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
                let signer: [u8; 32] = rest.get(8..40)?.try_into().ok()?;
                let nonce = u64::from_be_bytes(rest.get(40..48)?.try_into().ok()?);
                Some((Height(expiry), signer, nonce))
            }),
        ))
    }

    /// The governance registry stored with the tip (encoded), if any block is stored.
    pub async fn registry(&self) -> Result<Option<Vec<u8>>, BlockStoreError> {
        let mut txn = self.store.begin().await?;
        Ok(read_pieces(&mut txn, REGISTRY).await?)
    }

    /// Stores the next block, the governance registry after it (encoded), and the replay
    /// window's change (its transactions added, pairs that expired removed), in one atomic
    /// commit. The caller has verified the block.
    pub async fn append(
        &self,
        block: &Block,
        registry: &[u8],
    ) -> Result<StoredTip, BlockStoreError> {
        let mut txn = self.store.begin().await?;
        let previous = read_tip(&mut txn).await?;
        let height = block.header.height.0;
        let expected = previous.map_or(1, |t| t.height + 1);
        if height != expected {
            return Err(BlockStoreError::OutOfOrder {
                tip: expected - 1,
                got: height,
            });
        }
        put_pieces(&mut txn, &block_prefix(height), &block.encode()).await?;
        put_pieces(&mut txn, REGISTRY, registry).await?;
        let expired_below = replay_key(Height(height + 1), &[0; 32], 0);
        for (key, _) in txn
            .scan(&Scan::range(b"r/".as_slice()..expired_below.as_slice()))
            .await?
        {
            txn.delete(&key)?;
        }
        for tx in &block.txs {
            txn.put(
                &replay_key(tx.expiry(), tx.signer().as_bytes(), tx.nonce()),
                &[],
            )?;
        }
        let tip = StoredTip {
            height,
            hash: block.hash(),
            time_unix_ms: block.header.time_unix_ms,
            transactions: previous.map_or(0, |t| t.transactions) + block.txs.len() as u64,
        };
        let mut value = Vec::with_capacity(56);
        value.extend_from_slice(&tip.height.to_be_bytes());
        value.extend_from_slice(tip.hash.as_bytes());
        value.extend_from_slice(&tip.time_unix_ms.to_be_bytes());
        value.extend_from_slice(&tip.transactions.to_be_bytes());
        txn.put(TIP, &value)?;
        // Signed messages of decided heights can no longer matter.
        for (key, _) in txn
            .scan(&Scan::range(
                b"s/".as_slice()..signed_key(height + 1, 0, 0).as_slice(),
            ))
            .await?
        {
            txn.delete(&key)?;
        }
        txn.commit().await?;
        Ok(tip)
    }

    /// Records a message this validator signed (before it is sent).
    pub async fn record_signed(&self, record: &SignedRecord) -> Result<(), BlockStoreError> {
        let mut txn = self.store.begin().await?;
        txn.put(
            &signed_key(record.height, record.round, record.kind),
            &record.bytes,
        )?;
        txn.commit().await?;
        Ok(())
    }

    /// Every signed message recorded for heights from `height` on.
    pub async fn signed_from(&self, height: u64) -> Result<Vec<SignedRecord>, BlockStoreError> {
        let mut txn = self.store.begin().await?;
        let start = signed_key(height, 0, 0);
        let entries = txn
            .scan(&Scan::range(start.as_slice()..b"s0".as_slice()))
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|(key, bytes)| {
                let rest = key.get(2..)?;
                Some(SignedRecord {
                    height: u64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
                    round: u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?),
                    kind: *rest.get(12)?,
                    bytes,
                })
            })
            .collect())
    }
}

async fn read_tip<T: Transaction>(txn: &mut T) -> Result<Option<StoredTip>, BlockStoreError> {
    let Some(value) = txn.get(TIP).await? else {
        return Ok(None);
    };
    if value.len() != 56 {
        return Err(BlockStoreError::Tip(value.len()));
    }
    let u64_at = |i: usize| u64::from_be_bytes(value[i..i + 8].try_into().expect("8 bytes"));
    let hash =
        Hash32::from_slice("tip hash", &value[8..40]).map_err(|_| BlockStoreError::Tip(56))?;
    Ok(Some(StoredTip {
        height: u64_at(0),
        hash: BlockHash(hash),
        time_unix_ms: u64_at(40),
        transactions: u64_at(48),
    }))
}
