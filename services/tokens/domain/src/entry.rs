//! Journal entries and where they came from.
//!
//! A balance is credits minus debits: a credit adds to an account, a debit takes from it.
//! Every event's entries balance (debits equal credits), so the balances of all accounts,
//! the mint's included, always sum to zero.

use citychain_kernel::TxId;

use crate::account::Account;
use crate::canon::Canon;

/// The place in the chain that caused a movement.
///
/// For a transaction: its block's height, its index in the block and its id. For a grant,
/// which takes effect when its proposal is applied at the end of a block, after the block's
/// last transaction: the block's height, `index` = the number of transactions in the block,
/// and no transaction id (the proposal id names it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainRef {
    /// The block's height.
    pub height: u64,
    /// The transaction's index in the block (the transaction count for end-of-block grants).
    pub index: u32,
    /// The transaction's id; `None` for a grant.
    pub tx_id: Option<TxId>,
}

impl ChainRef {
    /// The place of transaction `tx_id`, number `index` of block `height`.
    pub fn tx(height: u64, index: u32, tx_id: TxId) -> ChainRef {
        ChainRef {
            height,
            index,
            tx_id: Some(tx_id),
        }
    }

    /// The end of block `height`, which holds `transactions` transactions: where its
    /// governance grants take effect.
    pub fn block_end(height: u64, transactions: u32) -> ChainRef {
        ChainRef {
            height,
            index: transactions,
            tx_id: None,
        }
    }

    pub(crate) fn encode(&self, out: &mut Canon) {
        out.u64(self.height).u32(self.index);
        match &self.tx_id {
            None => out.u8(0),
            Some(id) => out.u8(1).bytes32(id.as_bytes()),
        };
    }
}

/// Which side of an account an entry is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// Takes from the account.
    Debit,
    /// Adds to the account.
    Credit,
}

impl Side {
    /// `debit` or `credit`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }
}

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The account moved.
    pub account: Account,
    /// Debit or credit.
    pub side: Side,
    /// How much, in the smallest unit; never zero (a movement of nothing has no entries).
    pub amount: u64,
    /// The account's balance after this entry. Computed (with checked arithmetic) when the
    /// entry is decided, so applying it is an assignment that cannot fail.
    pub balance_after: i64,
}

impl Entry {
    pub(crate) fn encode(&self, out: &mut Canon) {
        out.str(&self.account.text())
            .u8(match self.side {
                Side::Debit => 0,
                Side::Credit => 1,
            })
            .u64(self.amount)
            .i64(self.balance_after);
    }
}
