//! Newtypes for the chain's identifiers and quantities, so a height is never passed where an
//! amount was meant, and ids are checked once where they enter.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::DecodeError;
use crate::hash::Hash32;

/// A block height; the first block is height 1.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Height(pub u64);

impl Height {
    /// The height after this one, or `None` at `u64::MAX`.
    pub fn next(self) -> Option<Height> {
        self.0.checked_add(1).map(Height)
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An amount of tokens in the smallest unit. Arithmetic is checked and never wraps.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Amount(pub u64);

/// Amount arithmetic that would leave the range of `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AmountError {
    /// The sum exceeds `u64::MAX`.
    #[error("{a} + {b} overflows the largest amount {max}", max = u64::MAX)]
    Overflow {
        /// Left operand.
        a: u64,
        /// Right operand.
        b: u64,
    },
    /// The difference is negative.
    #[error("{a} - {b} is negative (short by {short})", short = b - a)]
    Underflow {
        /// Left operand.
        a: u64,
        /// Right operand.
        b: u64,
    },
}

impl Amount {
    /// Zero tokens.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`, refusing overflow.
    pub fn checked_add(self, other: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_add(other.0)
            .map(Amount)
            .ok_or(AmountError::Overflow {
                a: self.0,
                b: other.0,
            })
    }

    /// `self - other`, refusing a negative result.
    pub fn checked_sub(self, other: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_sub(other.0)
            .map(Amount)
            .ok_or(AmountError::Underflow {
                a: self.0,
                b: other.0,
            })
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Hash32);

        impl $name {
            /// The id's 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = DecodeError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

hash_id!(
    /// A transaction's id: the hash of the bytes its signature covers.
    TxId
);
hash_id!(
    /// A block's hash: the hash of its encoded header.
    BlockHash
);

/// Checks an identifier's syntax: 1 to `max` characters from `a-z 0-9 . _ -`, starting with a
/// letter or digit.
fn check_ident(field: &'static str, value: &str, max: usize) -> Result<(), DecodeError> {
    // The value as the error shows it: its first characters, so a huge input is not echoed.
    let shown = |value: &str| match value.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &value[..end]),
        None => value.to_string(),
    };
    let invalid = |reason| DecodeError::Invalid {
        field,
        value: shown(value),
        reason,
    };
    if value.is_empty() {
        return Err(invalid("it is empty"));
    }
    if value.len() > max {
        return Err(invalid(if max == 64 {
            "it is longer than 64 characters"
        } else {
            "it is longer than 128 characters"
        }));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(invalid("only a-z, 0-9, '.', '_' and '-' are allowed"));
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid("it must start with a letter or a digit"));
    }
    Ok(())
}

/// The chain's name: 1 to 64 characters from `a-z 0-9 . _ -`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ChainId(String);

impl ChainId {
    /// Checks and wraps a chain id.
    pub fn new(value: impl Into<String>) -> Result<Self, DecodeError> {
        let value = value.into();
        check_ident("chain_id", &value, 64)?;
        Ok(ChainId(value))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member's id such as `dept.tax`: 1 to 128 characters from `a-z 0-9 . _ -`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct MemberId(String);

impl MemberId {
    /// Checks and wraps a member id.
    pub fn new(value: impl Into<String>) -> Result<Self, DecodeError> {
        let value = value.into();
        check_ident("member id", &value, 128)?;
        Ok(MemberId(value))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_never_wrap() {
        assert_eq!(
            Amount(u64::MAX).checked_add(Amount(1)),
            Err(AmountError::Overflow { a: u64::MAX, b: 1 })
        );
        let err = Amount(3).checked_sub(Amount(5)).unwrap_err();
        assert_eq!(err.to_string(), "3 - 5 is negative (short by 2)");
        assert_eq!(Amount(3).checked_add(Amount(4)), Ok(Amount(7)));
    }

    #[test]
    fn identifiers_are_checked() {
        assert!(ChainId::new("city-dev").is_ok());
        for bad in ["", "City", "a b", ".x", &"x".repeat(65)] {
            let err = ChainId::new(bad).unwrap_err();
            assert!(err.to_string().contains("chain_id"), "{err}");
        }
        assert!(MemberId::new("dept.tax").is_ok());
        assert!(MemberId::new("dept/tax").is_err());
    }
}
