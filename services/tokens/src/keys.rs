//! The token service's store layout. Every key is under `tk/`, apart from the record
//! catalogue (`rc/`, [`citychain_records::catalogue`]) and the follower's and runner's
//! bookkeeping (under `\xff`), so none of them can meet.
//!
//! | key | value |
//! |---|---|
//! | `tk/b/` ‖ account | balance (i64, 8 bytes BE) ‖ number of statement entries (u64, 8 BE) |
//! | `tk/s/` ‖ account ‖ `0x00` ‖ n (u64 BE) | the account's n-th entry: `citychain.tokens.v1.Entry` |
//! | `tk/r/` ‖ read id (32) | the height that settled the read (u64 BE) |
//! | `tk/u/` ‖ member ‖ `0x00` ‖ payload hash (32) | the first record with that payload (32) |
//! | `tk/p/` ‖ member ‖ `0x00` ‖ period (u64 BE) | the member's rewards in the period (u64 BE) |
//! | `tk/g/` ‖ proposal id | empty: the grant was handled |
//! | `tk/m/history` | events so far (u64 BE) ‖ history digest (32) |
//! | `tk/h/` ‖ height (u64 BE) | the journal's state hash after that block (32); written only for blocks that changed the journal |
//! | `tk/o/` ‖ height (u64 BE) ‖ index (u32 BE) ‖ n (u32 BE) | an event waiting to be published (the outbox): name length (1) ‖ name ‖ message |
//!
//! Accounts are written as text (`member:<id>`, `mint`); member ids are `a-z 0-9 . _ -`, so
//! `0x00` never occurs inside one, and account keys sort as the accounts do.

use citychain_kernel::{Hash32, MemberId, TxId};
use citychain_tokens_domain::Account;

/// Everything the token journal keeps.
pub const PREFIX: &[u8] = b"tk/";
/// Balances.
pub const BALANCES: &[u8] = b"tk/b/";
/// Statements.
pub const STATEMENTS: &[u8] = b"tk/s/";
/// Settled reads.
pub const READS: &[u8] = b"tk/r/";
/// Remembered uploads.
pub const UPLOADS: &[u8] = b"tk/u/";
/// Rewards per period.
pub const PERIODS: &[u8] = b"tk/p/";
/// Handled grants.
pub const GRANTS: &[u8] = b"tk/g/";
/// The history summary.
pub const HISTORY: &[u8] = b"tk/m/history";
/// State hashes by height.
pub const HASHES: &[u8] = b"tk/h/";
/// The outbox.
pub const OUTBOX: &[u8] = b"tk/o/";

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// An account's balance.
pub fn balance(account: &Account) -> Vec<u8> {
    join(&[BALANCES, account.text().as_bytes()])
}

/// The prefix of an account's statement.
pub fn statement_prefix(account: &Account) -> Vec<u8> {
    join(&[STATEMENTS, account.text().as_bytes(), &[0]])
}

/// An account's n-th statement entry.
pub fn statement(account: &Account, n: u64) -> Vec<u8> {
    join(&[&statement_prefix(account), &n.to_be_bytes()])
}

/// A settled read.
pub fn read(id: &TxId) -> Vec<u8> {
    join(&[READS, id.as_bytes()])
}

/// A remembered upload.
pub fn upload(member: &MemberId, payload_hash: &Hash32) -> Vec<u8> {
    join(&[
        UPLOADS,
        member.as_str().as_bytes(),
        &[0],
        payload_hash.as_bytes(),
    ])
}

/// A member's rewards in a period.
pub fn period(member: &MemberId, period: u64) -> Vec<u8> {
    join(&[
        PERIODS,
        member.as_str().as_bytes(),
        &[0],
        &period.to_be_bytes(),
    ])
}

/// A handled grant.
pub fn grant(proposal_id: &str) -> Vec<u8> {
    join(&[GRANTS, proposal_id.as_bytes()])
}

/// The state hash after block `height`.
pub fn state_hash(height: u64) -> Vec<u8> {
    join(&[HASHES, &height.to_be_bytes()])
}

/// An outbox slot: the `n`-th published event of the transaction at (`height`, `index`).
pub fn outbox(height: u64, index: u32, n: u32) -> Vec<u8> {
    join(&[
        OUTBOX,
        &height.to_be_bytes(),
        &index.to_be_bytes(),
        &n.to_be_bytes(),
    ])
}

/// The place an outbox key names, if it is one.
pub fn outbox_place(key: &[u8]) -> Option<(u64, u32, u32)> {
    let rest = key.strip_prefix(OUTBOX)?;
    if rest.len() != 16 {
        return None;
    }
    let height = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let index = u32::from_be_bytes(rest[8..12].try_into().ok()?);
    let n = u32::from_be_bytes(rest[12..].try_into().ok()?);
    Some((height, index, n))
}

/// The event id (and `Nats-Msg-Id`) of the event at an outbox place.
pub fn event_id(height: u64, index: u32, n: u32) -> String {
    format!("tokens.{height}.{index}.{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_keys_sort_in_chain_order_and_read_back() {
        let a = outbox(2, 9, 0);
        let b = outbox(10, 0, 0);
        let c = outbox(10, 0, 1);
        assert!(a < b && b < c);
        assert_eq!(outbox_place(&c), Some((10, 0, 1)));
        assert_eq!(outbox_place(b"tk/o/short"), None);
        assert_eq!(event_id(10, 0, 1), "tokens.10.0.1");
    }

    #[test]
    fn account_keys_sort_as_accounts_do() {
        let mint = balance(&Account::Mint);
        let member = balance(&Account::parse("zz.last").unwrap());
        assert!(member < mint);
        let s = statement(&Account::Mint, 1);
        assert!(s.starts_with(&statement_prefix(&Account::Mint)));
        // A member whose id extends another's never shares its statement prefix.
        let a = statement_prefix(&Account::parse("dept.a").unwrap());
        let ab = statement(&Account::parse("dept.ab").unwrap(), 0);
        assert!(!ab.starts_with(&a));
    }
}
