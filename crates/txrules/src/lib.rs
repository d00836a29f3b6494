//! Which transactions the chain admits, decided the same way at every gate: a service's
//! submission API, a validator's intake from MEMPOOL, the proposer's block assembly and every
//! validator's check of a proposed block.
//!
//! A transaction is admitted when
//! 1. its body is one of the [`CHAIN_TYPES`] and passes that type's stateless rules: it
//!    decodes canonically, every field keeps its syntax and bounds, and it declares exactly
//!    the subjects its type asks for (the record's subject for licence bodies, none for
//!    governance);
//! 2. the registry in force lets its signer send it ([`Registry::authorize`]): an active
//!    member's active key, or a key that is no member's for the types citizens may send;
//! 3. a citizen's transaction (a key that is no member's) is at most
//!    [`MAX_CITIZEN_TX_BYTES`], and a block holds at most [`CITIZEN_TXS_PER_KEY`] of one
//!    citizen key and at most [`MAX_CITIZEN_TXS_PER_BLOCK`] citizens' transactions in all, so
//!    throwaway keys cannot fill the chain.
//!
//! Everything here is stateless apart from the registry passed in, reads no clock and
//! iterates only ordered maps: every validator reaches the same answer on the same block.
//! Stateful rules (a record type that exists, a proposal that is pending) are not admission:
//! they decide a committed transaction's outcome, which the chain records.

use std::collections::BTreeMap;

use citychain_governance::{
    APPROVE_TYPE_URL, GovernanceBody, PROPOSE_TYPE_URL, Refusal, Registry, Rejection, Signer,
};
use citychain_kernel::{PublicKey, SignedTx, TxBody};
use citychain_records::{
    BIND_SUBJECT_TYPE_URL, BodyError, LicenceBody, READ_TYPE_URL, RECEIPTS_QUERY_TYPE_URL,
    UPLOAD_TYPE_URL,
};
use thiserror::Error;

/// Every body type a committed transaction may carry.
pub const CHAIN_TYPES: &[&str] = &[
    PROPOSE_TYPE_URL,
    APPROVE_TYPE_URL,
    UPLOAD_TYPE_URL,
    READ_TYPE_URL,
    BIND_SUBJECT_TYPE_URL,
];

/// The largest encoded transaction a citizen (a key that is no member's) may send, in bytes.
pub const MAX_CITIZEN_TX_BYTES: usize = 2048;

/// How many transactions of one citizen key one block may hold.
pub const CITIZEN_TXS_PER_KEY: usize = 4;

/// How many citizens' transactions one block may hold in all.
pub const MAX_CITIZEN_TXS_PER_BLOCK: usize = 256;

/// A body that is no transaction the chain carries, or breaks its type's rules.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BodyRefusal {
    /// The type is not one of [`CHAIN_TYPES`].
    #[error("body type {type_url:?} is not one the chain carries; it carries {}", CHAIN_TYPES.join(", "))]
    UnknownType {
        /// The type named.
        type_url: String,
    },
    /// The type is signed to be shown to a service, never committed.
    #[error("{type_url} is signed and shown to a service, never submitted to the chain")]
    NotATransaction {
        /// The type.
        type_url: &'static str,
    },
    /// A governance body breaks its syntax.
    #[error("{0}")]
    Governance(Rejection),
    /// A licence body breaks its syntax.
    #[error("{0}")]
    Licence(BodyError),
    /// A body that concerns no citizen declares subjects.
    #[error("{type_url} concerns no subject, but the transaction declares {count}")]
    UnexpectedSubjects {
        /// The type.
        type_url: &'static str,
        /// How many subjects it declares.
        count: usize,
    },
}

/// Why a transaction is not admitted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Inadmissible {
    /// The body (the sender's mistake whoever it is).
    #[error(transparent)]
    Body(#[from] BodyRefusal),
    /// The signer may not send it.
    #[error(transparent)]
    Signer(#[from] Refusal),
    /// A citizen's transaction over the size cap.
    #[error("a citizen's transaction may be at most {limit} bytes; this one is {size}")]
    CitizenTooLarge {
        /// Its encoded size.
        size: usize,
        /// [`MAX_CITIZEN_TX_BYTES`].
        limit: usize,
    },
    /// The block already holds the quota of this citizen key.
    #[error("key {key} already has {limit} transactions in this block, a citizen key's quota")]
    CitizenKeyQuota {
        /// The key, hex.
        key: String,
        /// [`CITIZEN_TXS_PER_KEY`].
        limit: usize,
    },
    /// The block already holds the quota of all citizens.
    #[error("this block already holds {limit} citizens' transactions, the quota of a block")]
    CitizenBlockQuota {
        /// [`MAX_CITIZEN_TXS_PER_BLOCK`].
        limit: usize,
    },
}

/// Checks a body against its type's stateless rules.
pub fn check_body(body: &TxBody) -> Result<(), BodyRefusal> {
    match body.type_url.as_str() {
        PROPOSE_TYPE_URL | APPROVE_TYPE_URL => {
            let type_url = if body.type_url == PROPOSE_TYPE_URL {
                PROPOSE_TYPE_URL
            } else {
                APPROVE_TYPE_URL
            };
            GovernanceBody::decode(body).map_err(BodyRefusal::Governance)?;
            if !body.subjects.is_empty() {
                return Err(BodyRefusal::UnexpectedSubjects {
                    type_url,
                    count: body.subjects.len(),
                });
            }
            Ok(())
        }
        RECEIPTS_QUERY_TYPE_URL => Err(BodyRefusal::NotATransaction {
            type_url: RECEIPTS_QUERY_TYPE_URL,
        }),
        UPLOAD_TYPE_URL | READ_TYPE_URL | BIND_SUBJECT_TYPE_URL => {
            LicenceBody::decode(body).map_err(BodyRefusal::Licence)?;
            Ok(())
        }
        other => Err(BodyRefusal::UnknownType {
            type_url: other.to_string(),
        }),
    }
}

/// Admits one transaction on its own, against `registry` (the registry in force at the next
/// height): its body, its signer, and a citizen's size cap. Says who signed it.
pub fn admit(registry: &Registry, tx: &SignedTx) -> Result<Signer, Inadmissible> {
    check_body(tx.body())?;
    let signer = registry.authorize(tx.signer(), &tx.body().type_url)?;
    if signer == Signer::Citizen && tx.bytes().len() > MAX_CITIZEN_TX_BYTES {
        return Err(Inadmissible::CitizenTooLarge {
            size: tx.bytes().len(),
            limit: MAX_CITIZEN_TX_BYTES,
        });
    }
    Ok(signer)
}

/// The citizens' share of one block, counted as its transactions are taken in order.
#[derive(Debug, Default)]
pub struct BlockQuota {
    per_key: BTreeMap<PublicKey, usize>,
    total: usize,
}

impl BlockQuota {
    /// An empty block's quota.
    pub fn new() -> Self {
        BlockQuota::default()
    }

    /// Takes `tx` into the block: [`admit`], then [`BlockQuota::count`]. A refused
    /// transaction is not counted.
    pub fn take(&mut self, registry: &Registry, tx: &SignedTx) -> Result<Signer, Inadmissible> {
        let signer = admit(registry, tx)?;
        self.count(&signer, tx.signer())?;
        Ok(signer)
    }

    /// Counts one more admitted transaction by `signer` (whose key is `key`) against the
    /// citizens' quotas; members' transactions are not counted.
    pub fn count(&mut self, signer: &Signer, key: &PublicKey) -> Result<(), Inadmissible> {
        if *signer != Signer::Citizen {
            return Ok(());
        }
        if self.total >= MAX_CITIZEN_TXS_PER_BLOCK {
            return Err(Inadmissible::CitizenBlockQuota {
                limit: MAX_CITIZEN_TXS_PER_BLOCK,
            });
        }
        let used = self.per_key.entry(*key).or_default();
        if *used >= CITIZEN_TXS_PER_KEY {
            return Err(Inadmissible::CitizenKeyQuota {
                key: key.to_string(),
                limit: CITIZEN_TXS_PER_KEY,
            });
        }
        *used += 1;
        self.total += 1;
        Ok(())
    }
}

/// Checks a proposed block's transactions in order: the first one not admitted, by index.
pub fn check_block(registry: &Registry, txs: &[SignedTx]) -> Result<(), (usize, Inadmissible)> {
    let mut quota = BlockQuota::new();
    for (index, tx) in txs.iter().enumerate() {
        quota.take(registry, tx).map_err(|why| (index, why))?;
    }
    Ok(())
}

/// Keeps, in order, the items whose transaction (`tx_of`) a block may carry; calls
/// `refused` for each one left out.
pub fn retain_for_block<T>(
    registry: &Registry,
    items: &mut Vec<T>,
    tx_of: impl Fn(&T) -> &SignedTx,
    mut refused: impl FnMut(&SignedTx, Inadmissible),
) {
    let mut quota = BlockQuota::new();
    items.retain(|item| {
        let tx = tx_of(item);
        match quota.take(registry, tx) {
            Ok(_) => true,
            Err(why) => {
                refused(tx, why);
                false
            }
        }
    });
}

#[cfg(test)]
mod tests;
