//! The token API's errors, and the one place they become gRPC statuses.
//!
//! "Rejected" (the request is wrong: a malformed account or page, an account nobody has, a
//! height not applied yet) maps to INVALID_ARGUMENT or NOT_FOUND with the reason; "failed"
//! (ours: the store, a damaged entry) maps to INTERNAL and is logged.

use citychain_store::PageError;
use citychain_tokens_domain::AccountError;
use thiserror::Error;
use tonic::Status;

use crate::journal::TokensStoreError;

/// Why a token call did not succeed.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The account is not written as an account.
    #[error("account: {0}")]
    Account(#[from] AccountError),
    /// No such account: not the mint, no member of that id, and no entry ever touched it.
    #[error("no account {account}: it is neither the mint nor a member's")]
    UnknownAccount {
        /// The account asked for.
        account: String,
    },
    /// The page request breaks a limit.
    #[error("{0}")]
    Page(#[from] PageError),
    /// The height asked for is not applied yet.
    #[error("height {asked} is not applied yet; the token journal is at height {applied}")]
    NotApplied {
        /// The height asked for.
        asked: u64,
        /// The last applied height.
        applied: u64,
    },
    /// The store failed or holds something unreadable.
    #[error(transparent)]
    Store(#[from] TokensStoreError),
}

impl From<citychain_store::StoreError> for ApiError {
    fn from(err: citychain_store::StoreError) -> Self {
        ApiError::Store(err.into())
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let message = citychain_runtime::grpc::short_message(err.to_string());
        match err {
            ApiError::Account(_) | ApiError::Page(_) => Status::invalid_argument(message),
            ApiError::UnknownAccount { .. } | ApiError::NotApplied { .. } => {
                Status::not_found(message)
            }
            ApiError::Store(_) => {
                tracing::error!(error = %message, "token call failed on the store");
                Status::internal(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use citychain_store::{MAX_PAGE_SIZE, StoreError};
    use citychain_tokens_domain::Account;
    use tonic::Code;

    use super::*;

    #[test]
    fn each_kind_of_error_has_its_status() {
        let cases: Vec<(ApiError, Code)> = vec![
            (
                ApiError::Account(Account::parse("Not An Id").unwrap_err()),
                Code::InvalidArgument,
            ),
            (
                ApiError::Page(PageError::TooLarge {
                    asked: 500,
                    limit: MAX_PAGE_SIZE,
                }),
                Code::InvalidArgument,
            ),
            (
                ApiError::UnknownAccount {
                    account: "member:nobody".into(),
                },
                Code::NotFound,
            ),
            (
                ApiError::NotApplied {
                    asked: 9,
                    applied: 4,
                },
                Code::NotFound,
            ),
            (
                ApiError::from(StoreError::Corruption("bad".into())),
                Code::Internal,
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
