//! The journal's accounts: one per member and the mint, written `member:<id>` and `mint`.
//!
//! Accounts sort by their text (so `member:…` before `mint`), which is also the order of the
//! service's store keys; the state hash lists balances in that order.

use std::cmp::Ordering;
use std::fmt;

use citychain_kernel::MemberId;
use thiserror::Error;

/// The text of the mint account.
pub const MINT: &str = "mint";

/// The prefix of a member's account.
pub const MEMBER_PREFIX: &str = "member:";

/// An account of the journal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Account {
    /// The issuer: debited for every token minted, so its balance is minus the supply and all
    /// balances sum to zero.
    Mint,
    /// A member's account; never below zero.
    Member(MemberId),
}

/// Account text that names no account.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AccountError {
    /// Nothing was given.
    #[error("an account is required: \"mint\", \"member:<id>\" or a member id")]
    Empty,
    /// The member id is not a valid one.
    #[error("{text:?} is not an account: {reason}")]
    BadMember {
        /// The text received.
        text: String,
        /// Why the member id is invalid.
        reason: String,
    },
}

impl Account {
    /// Reads `mint`, `member:<id>`, or a bare member id (so `mint` names the mint; a member
    /// whose id is `mint` is `member:mint`).
    pub fn parse(text: &str) -> Result<Account, AccountError> {
        if text.is_empty() {
            return Err(AccountError::Empty);
        }
        if text == MINT {
            return Ok(Account::Mint);
        }
        let id = text.strip_prefix(MEMBER_PREFIX).unwrap_or(text);
        MemberId::new(id)
            .map(Account::Member)
            .map_err(|err| AccountError::BadMember {
                text: text.to_string(),
                reason: err.to_string(),
            })
    }

    /// A member's account.
    pub fn member(id: &MemberId) -> Account {
        Account::Member(id.clone())
    }

    /// The member, unless this is the mint.
    pub fn member_id(&self) -> Option<&MemberId> {
        match self {
            Account::Mint => None,
            Account::Member(id) => Some(id),
        }
    }

    /// Whether this is the mint.
    pub fn is_mint(&self) -> bool {
        matches!(self, Account::Mint)
    }

    /// The account's text, as events, keys and the API write it.
    pub fn text(&self) -> String {
        self.to_string()
    }

    /// Compares by text without allocating: `member:` ‖ id against `mint`.
    fn cmp_text(&self, other: &Account) -> Ordering {
        match (self, other) {
            (Account::Mint, Account::Mint) => Ordering::Equal,
            (Account::Member(a), Account::Member(b)) => a.as_str().cmp(b.as_str()),
            // "member:" and "mint" differ at their second byte, 'e' < 'i'.
            (Account::Member(_), Account::Mint) => Ordering::Less,
            (Account::Mint, Account::Member(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Account {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Account {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_text(other)
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Mint => f.write_str(MINT),
            Account::Member(id) => write!(f, "{MEMBER_PREFIX}{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_read_and_write_their_text() {
        let tax = Account::parse("member:dept.tax").unwrap();
        assert_eq!(tax, Account::parse("dept.tax").unwrap());
        assert_eq!(tax.to_string(), "member:dept.tax");
        assert_eq!(Account::parse("mint").unwrap(), Account::Mint);
        assert_eq!(
            Account::parse("member:mint").unwrap().to_string(),
            "member:mint"
        );
        assert_eq!(Account::parse(""), Err(AccountError::Empty));
        for bad in ["member:", "Dept", "member:a b", "mint:x"] {
            let err = Account::parse(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn accounts_sort_as_their_text_does() {
        let mut accounts = [
            Account::Mint,
            Account::parse("zeta").unwrap(),
            Account::parse("alpha").unwrap(),
            Account::parse("mint-office").unwrap(),
        ];
        accounts.sort();
        let texts: Vec<String> = accounts.iter().map(Account::text).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
    }
}
