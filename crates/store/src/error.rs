//! The store's typed errors, sorted into three classes: rejected (the caller asked for something
//! the store does not allow), retryable (a conflict or a transient condition: run the
//! transaction again) and failed (our side: I/O, corruption, a backend fault).

use thiserror::Error;

/// Which of the three kinds of outcome an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The caller's fault: the request breaks a documented rule. Retrying it cannot help.
    Rejected,
    /// The transaction lost a race or met a transient condition; running it again may succeed.
    Retryable,
    /// The store failed: I/O, corruption or a backend fault. Not the caller's fault.
    Failed,
}

/// Errors of every [`Store`](crate::Store) implementation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A key is longer than the store accepts.
    #[error("key of {size} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge {
        /// The key's length in bytes.
        size: usize,
        /// The largest key accepted, in bytes.
        limit: usize,
    },
    /// A value is longer than the store accepts.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// The value's length in bytes.
        size: usize,
        /// The largest value accepted, in bytes.
        limit: usize,
    },
    /// The transaction's writes add up to more than one transaction may carry.
    #[error("transaction write set of {size} bytes exceeds the limit of {limit} bytes")]
    TransactionTooLarge {
        /// The write set's size in bytes, counted as [`Limits`](crate::Limits) describes.
        size: usize,
        /// The largest write set accepted, in bytes.
        limit: usize,
    },
    /// An argument breaks a rule of the store, other than the size limits.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The argument.
        what: &'static str,
        /// The rule it breaks.
        reason: String,
    },
    /// Something this transaction read was changed by a transaction that committed after this
    /// one began, so committing it would not be serializable. Nothing was written.
    #[error(
        "transaction conflicts with a write committed after it began; nothing was written, retry it"
    )]
    Conflict,
    /// The commit may or may not have been applied (the connection to the store was lost while
    /// committing). Retrying is safe only for a transaction that is idempotent, such as a
    /// projection runner's block, which checks the applied height first.
    #[error("the outcome of the commit is unknown: it may or may not have been applied")]
    CommitUnknown,
    /// A transient condition of the store (a transaction that ran too long, a cluster that is
    /// recovering): nothing was written, running the transaction again should succeed.
    #[error("transient store error, retry the transaction: {reason}")]
    Transient {
        /// What the store said.
        reason: String,
    },
    /// Reading or writing the underlying storage failed.
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The stored data is not what the store wrote.
    #[error("storage is corrupted: {0}")]
    Corruption(String),
    /// Any other failure of the storage engine or of the store's own machinery.
    #[error("store failed: {0}")]
    Backend(String),
}

impl StoreError {
    /// Which class of outcome this is: rejected, retryable or failed.
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::KeyTooLarge { .. }
            | StoreError::ValueTooLarge { .. }
            | StoreError::TransactionTooLarge { .. }
            | StoreError::InvalidArgument { .. } => ErrorClass::Rejected,
            StoreError::Conflict | StoreError::CommitUnknown | StoreError::Transient { .. } => {
                ErrorClass::Retryable
            }
            StoreError::Io(_) | StoreError::Corruption(_) | StoreError::Backend(_) => {
                ErrorClass::Failed
            }
        }
    }

    /// True for an error of the caller's making ([`ErrorClass::Rejected`]).
    pub fn is_rejection(&self) -> bool {
        self.class() == ErrorClass::Rejected
    }

    /// True when stored bytes are not what was written ([`StoreError::Corruption`]): the
    /// storage is damaged, and running the transaction again cannot help.
    pub fn is_corruption(&self) -> bool {
        matches!(self, StoreError::Corruption(_))
    }
}

/// Tells a retry loop ([`Store::run`](crate::Store::run), the projection runner) whether an
/// error is worth another attempt of the whole transaction.
///
/// The default answer is "no", so an error type that never wraps a [`StoreError`] can opt in
/// with an empty `impl Retryable for MyError {}`. A type that does wrap one should forward to it.
pub trait Retryable {
    /// True if running the transaction again may succeed.
    fn is_retryable(&self) -> bool {
        false
    }
}

impl Retryable for StoreError {
    fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_keep_the_callers_fault_apart_from_ours() {
        let cases: [(StoreError, ErrorClass); 6] = [
            (
                StoreError::KeyTooLarge {
                    size: 10_001,
                    limit: 10_000,
                },
                ErrorClass::Rejected,
            ),
            (
                StoreError::TransactionTooLarge { size: 2, limit: 1 },
                ErrorClass::Rejected,
            ),
            (StoreError::Conflict, ErrorClass::Retryable),
            (StoreError::CommitUnknown, ErrorClass::Retryable),
            (
                StoreError::Io(std::io::Error::other("disk")),
                ErrorClass::Failed,
            ),
            (
                StoreError::Corruption("bad page".into()),
                ErrorClass::Failed,
            ),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{error}");
            assert_eq!(
                error.is_retryable(),
                class == ErrorClass::Retryable,
                "{error}"
            );
        }
    }

    #[test]
    fn messages_name_the_size_and_the_limit() {
        let error = StoreError::ValueTooLarge {
            size: 100_001,
            limit: 100_000,
        };
        assert_eq!(
            error.to_string(),
            "value of 100001 bytes exceeds the limit of 100000 bytes"
        );
    }
}
