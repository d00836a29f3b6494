//! The size limits every store enforces, and the per-transaction accounting that enforces them
//! the same way in every implementation.

use crate::error::StoreError;

/// The largest key, in bytes (FoundationDB's limit).
pub const MAX_KEY_SIZE: usize = 10_000;
/// The largest value, in bytes (FoundationDB's limit).
pub const MAX_VALUE_SIZE: usize = 100_000;
/// The largest write set of one transaction, in bytes (FoundationDB's limit).
pub const MAX_WRITE_SET_SIZE: usize = 10_000_000;

/// The size limits of a store.
///
/// A transaction's write set size is the sum, over every `put` it issued, of the key's and the
/// value's lengths, plus, over every `delete`, the key's length. Overwriting a key counts again,
/// as it does in FoundationDB, so the count depends only on the calls made, never on what is
/// stored.
///
/// An operation that would break a limit returns the matching typed error
/// ([`StoreError::KeyTooLarge`], [`StoreError::ValueTooLarge`],
/// [`StoreError::TransactionTooLarge`]) and is not applied. A `put` or `delete` that breaks one
/// also spoils its transaction: `commit` then returns the same error and writes nothing, so a
/// caller that ignores the first error still cannot commit half of what it meant to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest key accepted, in bytes.
    pub max_key_size: usize,
    /// The largest value accepted, in bytes.
    pub max_value_size: usize,
    /// The largest write set of one transaction, in bytes.
    pub max_write_set_size: usize,
}

impl Limits {
    /// FoundationDB's limits, which every implementation enforces: keys up to 10,000 bytes,
    /// values up to 100,000 bytes, write sets up to 10,000,000 bytes.
    pub const STANDARD: Limits = Limits {
        max_key_size: MAX_KEY_SIZE,
        max_value_size: MAX_VALUE_SIZE,
        max_write_set_size: MAX_WRITE_SET_SIZE,
    };

    /// Checks a key's length.
    pub fn check_key(&self, key: &[u8]) -> Result<(), StoreError> {
        if key.len() > self.max_key_size {
            return Err(StoreError::KeyTooLarge {
                size: key.len(),
                limit: self.max_key_size,
            });
        }
        Ok(())
    }

    /// Checks a value's length.
    pub fn check_value(&self, value: &[u8]) -> Result<(), StoreError> {
        if value.len() > self.max_value_size {
            return Err(StoreError::ValueTooLarge {
                size: value.len(),
                limit: self.max_value_size,
            });
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::STANDARD
    }
}

/// The limit a spoilt transaction broke, kept so `commit` can report it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    Key { size: usize, limit: usize },
    Value { size: usize, limit: usize },
    WriteSet { size: usize, limit: usize },
}

impl Broken {
    fn to_error(self) -> StoreError {
        match self {
            Broken::Key { size, limit } => StoreError::KeyTooLarge { size, limit },
            Broken::Value { size, limit } => StoreError::ValueTooLarge { size, limit },
            Broken::WriteSet { size, limit } => StoreError::TransactionTooLarge { size, limit },
        }
    }

    fn from_error(error: &StoreError) -> Option<Broken> {
        match *error {
            StoreError::KeyTooLarge { size, limit } => Some(Broken::Key { size, limit }),
            StoreError::ValueTooLarge { size, limit } => Some(Broken::Value { size, limit }),
            StoreError::TransactionTooLarge { size, limit } => {
                Some(Broken::WriteSet { size, limit })
            }
            _ => None,
        }
    }
}

/// One transaction's write accounting: checks each write against the limits, counts the write
/// set, and remembers the first broken limit so that `commit` refuses.
#[derive(Debug, Clone)]
pub(crate) struct WriteBudget {
    limits: Limits,
    used: usize,
    broken: Option<Broken>,
}

impl WriteBudget {
    pub(crate) fn new(limits: Limits) -> Self {
        WriteBudget {
            limits,
            used: 0,
            broken: None,
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The write set size so far.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// Admits a `put`, or refuses it and spoils the transaction.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let checked = self
            .limits
            .check_key(key)
            .and_then(|()| self.limits.check_value(value))
            .and_then(|()| self.grow(key.len() + value.len()));
        self.spoil_on_error(checked)
    }

    /// Admits a `delete`, or refuses it and spoils the transaction.
    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let checked = self
            .limits
            .check_key(key)
            .and_then(|()| self.grow(key.len()));
        self.spoil_on_error(checked)
    }

    /// Ok if the transaction may commit, else the limit it broke.
    pub(crate) fn check_commit(&self) -> Result<(), StoreError> {
        match self.broken {
            Some(broken) => Err(broken.to_error()),
            None => Ok(()),
        }
    }

    fn grow(&mut self, bytes: usize) -> Result<(), StoreError> {
        let size = self.used.saturating_add(bytes);
        if size > self.limits.max_write_set_size {
            return Err(StoreError::TransactionTooLarge {
                size,
                limit: self.limits.max_write_set_size,
            });
        }
        self.used = size;
        Ok(())
    }

    fn spoil_on_error(&mut self, checked: Result<(), StoreError>) -> Result<(), StoreError> {
        if let Err(error) = &checked
            && self.broken.is_none()
        {
            self.broken = Broken::from_error(error);
        }
        checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            max_key_size: 4,
            max_value_size: 8,
            max_write_set_size: 20,
        }
    }

    #[test]
    fn sizes_at_the_limit_pass_and_one_more_byte_is_refused() {
        let limits = small();
        assert!(limits.check_key(&[0; 4]).is_ok());
        assert!(matches!(
            limits.check_key(&[0; 5]),
            Err(StoreError::KeyTooLarge { size: 5, limit: 4 })
        ));
        assert!(limits.check_value(&[0; 8]).is_ok());
        assert!(matches!(
            limits.check_value(&[0; 9]),
            Err(StoreError::ValueTooLarge { size: 9, limit: 8 })
        ));
    }

    #[test]
    fn write_set_counts_every_write_and_a_refusal_spoils_the_commit() {
        let mut budget = WriteBudget::new(small());
        budget.put(b"ab", b"cdefgh").unwrap(); // 8
        budget.put(b"ab", b"cdefgh").unwrap(); // 16: overwrites count again
        budget.delete(b"abcd").unwrap(); // 20: exactly the limit
        assert_eq!(budget.used(), 20);
        assert!(budget.check_commit().is_ok());
        assert!(matches!(
            budget.delete(b"a"),
            Err(StoreError::TransactionTooLarge {
                size: 21,
                limit: 20
            })
        ));
        assert_eq!(budget.used(), 20, "a refused write is not counted");
        assert!(matches!(
            budget.check_commit(),
            Err(StoreError::TransactionTooLarge {
                size: 21,
                limit: 20
            })
        ));
    }

    #[test]
    fn the_first_broken_limit_is_the_one_reported() {
        let mut budget = WriteBudget::new(small());
        assert!(budget.put(b"toolong", b"").is_err());
        assert!(budget.put(b"k", b"far too long").is_err());
        assert!(matches!(
            budget.check_commit(),
            Err(StoreError::KeyTooLarge { size: 7, .. })
        ));
    }
}
