//! The ledger API's errors, and the one place they become gRPC statuses.
//!
//! "Rejected" (the caller's request is wrong or not allowed) maps to INVALID_ARGUMENT,
//! NOT_FOUND, PERMISSION_DENIED or FAILED_PRECONDITION with the reason; "failed" (ours: the
//! store, NATS) maps to UNAVAILABLE or INTERNAL and is logged; a stored block found damaged
//! maps to DATA_LOSS (and the service reports NOT_SERVING until it is repaired).

use citychain_bus::BusError;
use citychain_follower::AdmissionError;
use citychain_store::PageError;
use thiserror::Error;
use tonic::Status;

use crate::store::LedgerStoreError;

/// Why a ledger call did not succeed.
#[derive(Debug, Error)]
pub enum ApiError {
    /// A field is missing or malformed.
    #[error("{field}: {reason}")]
    BadField {
        /// The request field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The page request breaks a limit.
    #[error("{0}")]
    Page(#[from] PageError),
    /// The transaction fails admission (encoding, signature, chain, expiry, signer).
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// The transaction's expiry is already passed or too far ahead.
    #[error("{0}")]
    Expiry(String),
    /// The thing asked for is not on the chain (yet).
    #[error("{0}")]
    NotFound(String),
    /// The ledger stopped applying blocks because of a chain violation.
    #[error("the ledger is halted on a chain violation: {0}")]
    Halted(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] LedgerStoreError),
    /// NATS failed.
    #[error("NATS: {0}")]
    Bus(#[from] BusError),
}

impl ApiError {
    /// A missing or malformed field.
    pub fn field(field: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError::BadField {
            field,
            reason: reason.into(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let message = citychain_runtime::grpc::short_message(err.to_string());
        match err {
            ApiError::BadField { .. } | ApiError::Page(_) => Status::invalid_argument(message),
            ApiError::Expiry(_) => Status::failed_precondition(message),
            ApiError::Admission(err) => err.into(),
            ApiError::NotFound(_) => Status::not_found(message),
            ApiError::Halted(_) => Status::unavailable(message),
            ApiError::Bus(_) => {
                tracing::warn!(error = %message, "ledger call failed on NATS");
                Status::unavailable(message)
            }
            // Never the damaged bytes: the caller learns the copy here is lost (another
            // replica, or this one once repaired, has it).
            ApiError::Store(err) if err.damaged_block().is_some() => {
                tracing::error!(error = %message, "ledger call found a damaged block");
                Status::data_loss(message)
            }
            ApiError::Store(_) => {
                tracing::error!(error = %message, "ledger call failed on the store");
                Status::internal(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use citychain_store::MAX_PAGE_SIZE;
    use tonic::Code;

    use super::*;

    #[test]
    fn each_kind_of_error_has_its_status() {
        let cases: Vec<(ApiError, Code)> = vec![
            (ApiError::field("id", "not hex"), Code::InvalidArgument),
            (
                ApiError::Page(PageError::TooLarge {
                    asked: 500,
                    limit: MAX_PAGE_SIZE,
                }),
                Code::InvalidArgument,
            ),
            (ApiError::Expiry("expired".into()), Code::FailedPrecondition),
            (ApiError::NotFound("no block 9".into()), Code::NotFound),
            (ApiError::Halted("block 3: bad".into()), Code::Unavailable),
            (
                ApiError::Store(LedgerStoreError::Damaged {
                    height: 4,
                    what: "it does not match its seal".into(),
                }),
                Code::DataLoss,
            ),
        ];
        for (err, code) in cases {
            let text = err.to_string();
            let status = Status::from(err);
            assert_eq!(status.code(), code, "{text}");
            assert_eq!(status.message(), text);
        }
    }
}
