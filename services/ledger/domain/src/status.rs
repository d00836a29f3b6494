//! What a transaction's status is, from what the applied chain shows about it.
//!
//! The chain is the only witness: a transaction is committed when the ledger has indexed it;
//! it is rejected when it can no longer commit: its expiry height has been passed, or another
//! transaction with the same signer and nonce has committed (replay protection then refuses
//! it for ever). Otherwise it is pending.

use citychain_kernel::{Height, TxId};

use crate::keys::TxLocation;

/// What the ledger's indexes say about a transaction, at one applied height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The last applied height.
    pub applied: Height,
    /// Where it committed, if it did.
    pub committed: Option<TxLocation>,
    /// What is known of the transaction itself (from the submission), if anything.
    pub submitted: Option<Submitted>,
}

/// What the ledger remembers of a submitted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    /// Its last possible height.
    pub expiry: Height,
    /// The transaction that holds its (signer, nonce) pair on the chain, if any.
    pub nonce_taken_by: Option<TxId>,
}

/// A transaction's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// It may still commit.
    Pending,
    /// It committed there.
    Committed(TxLocation),
    /// It cannot commit any more.
    Rejected(String),
    /// The ledger knows nothing of it: never submitted here and not on the chain.
    Unknown,
}

/// Decides the status; `id` is the transaction asked about.
pub fn decide_status(id: &TxId, lookup: &Lookup) -> TxStatus {
    if let Some(location) = lookup.committed {
        return TxStatus::Committed(location);
    }
    let Some(submitted) = lookup.submitted else {
        return TxStatus::Unknown;
    };
    if let Some(other) = submitted.nonce_taken_by
        && other != *id
    {
        return TxStatus::Rejected(format!(
            "its signer and nonce were used by transaction {other}, which committed"
        ));
    }
    if lookup.applied > submitted.expiry {
        return TxStatus::Rejected(format!(
            "it expired: its last possible height was {}, the chain is at {}",
            submitted.expiry.0, lookup.applied.0
        ));
    }
    TxStatus::Pending
}

#[cfg(test)]
mod tests {
    use citychain_kernel::Hash32;

    use super::*;

    fn id(byte: u8) -> TxId {
        TxId(Hash32([byte; 32]))
    }

    fn lookup(applied: u64, committed: bool, expiry: u64, taken: Option<u8>) -> Lookup {
        Lookup {
            applied: Height(applied),
            committed: committed.then_some(TxLocation {
                height: Height(4),
                index: 1,
            }),
            submitted: Some(Submitted {
                expiry: Height(expiry),
                nonce_taken_by: taken.map(id),
            }),
        }
    }

    #[test]
    fn status_table() {
        let me = id(1);
        let cases = [
            (lookup(5, true, 9, None), "committed"),
            (lookup(5, false, 9, None), "pending"),
            (lookup(9, false, 9, None), "pending"),
            (lookup(10, false, 9, None), "expired"),
            (lookup(5, false, 9, Some(2)), "used by transaction"),
            (lookup(5, false, 9, Some(1)), "pending"),
        ];
        for (lookup, expected) in cases {
            let status = decide_status(&me, &lookup);
            let said = match &status {
                TxStatus::Pending => "pending".to_string(),
                TxStatus::Committed(_) => "committed".to_string(),
                TxStatus::Rejected(reason) => reason.clone(),
                TxStatus::Unknown => "unknown".to_string(),
            };
            assert!(said.contains(expected), "{lookup:?}: {said}");
        }
        let unknown = Lookup {
            applied: Height(3),
            committed: None,
            submitted: None,
        };
        assert_eq!(decide_status(&me, &unknown), TxStatus::Unknown);
    }
}
