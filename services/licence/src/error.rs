//! The licence API's errors, and the one place they become gRPC statuses.
//!
//! "Rejected" (the caller's request is wrong or not allowed) maps to INVALID_ARGUMENT,
//! NOT_FOUND, PERMISSION_DENIED or FAILED_PRECONDITION with the reason; "failed" (ours: the
//! store, NATS, the vault) maps to UNAVAILABLE or INTERNAL and is logged.

use citychain_bus::BusError;
use citychain_follower::AdmissionError;
use citychain_records::catalogue::CatalogueError;
use citychain_records::{BodyError, PayloadError, ReadRefusal, UploadRejection};
use citychain_store::{PageError, StoreError};
use thiserror::Error;
use tonic::Status;

use crate::vault::VaultError;

/// Why a licence call did not succeed.
#[derive(Debug, Error)]
pub enum ApiError {
    /// A request field is missing or malformed.
    #[error("{field}: {reason}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The transaction fails admission (encoding, signature, chain, expiry, signer).
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// The transaction's body breaks the licence syntax.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The body is another platform's.
    #[error("the transaction's body is {found}, this call takes {expected}")]
    WrongBody {
        /// What the call takes.
        expected: &'static str,
        /// What came.
        found: String,
    },
    /// The upload is refused by the rules.
    #[error(transparent)]
    Upload(#[from] UploadRejection),
    /// The payload is refused.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The read is refused by policy.
    #[error(transparent)]
    Read(#[from] ReadRefusal),
    /// The page request breaks a limit.
    #[error(transparent)]
    Page(#[from] PageError),
    /// The caller may not see this.
    #[error("{0}")]
    Denied(String),
    /// Not there (yet).
    #[error("{0}")]
    NotFound(String),
    /// Known, but not in a state that allows this.
    #[error("{0}")]
    NotReady(String),
    /// The store failed.
    #[error("licence store: {0}")]
    Store(#[from] StoreError),
    /// The catalogue is damaged or its store failed.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// NATS failed.
    #[error("NATS: {0}")]
    Bus(#[from] BusError),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
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
            ApiError::BadField { .. }
            | ApiError::Body(_)
            | ApiError::WrongBody { .. }
            | ApiError::Payload(_)
            | ApiError::Page(_) => Status::invalid_argument(message),
            ApiError::Admission(err) => err.into(),
            // Bad input is INVALID_ARGUMENT and unknown names NOT_FOUND, as docs/licence.md
            // says; what policy refuses is PERMISSION_DENIED.
            ApiError::Upload(UploadRejection::TooLarge { .. })
            | ApiError::Read(ReadRefusal::SubjectMismatch { .. }) => {
                Status::invalid_argument(message)
            }
            ApiError::Upload(UploadRejection::UnknownRecordType { .. })
            | ApiError::Read(ReadRefusal::RecordNotFound { .. })
            | ApiError::Read(ReadRefusal::UnknownRecordType { .. }) => Status::not_found(message),
            ApiError::Upload(_) | ApiError::Read(_) | ApiError::Denied(_) => {
                Status::permission_denied(message)
            }
            ApiError::NotFound(_) => Status::not_found(message),
            ApiError::NotReady(_) => Status::failed_precondition(message),
            ApiError::Bus(_) => {
                tracing::warn!(error = %message, "licence call failed on NATS");
                Status::unavailable(message)
            }
            ApiError::Store(_) | ApiError::Catalogue(_) | ApiError::Vault(_) => {
                tracing::error!(error = %message, "licence call failed");
                Status::internal(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn each_kind_of_error_has_its_status() {
        let cases: Vec<(ApiError, Code)> = vec![
            (
                ApiError::field("payload", "is empty"),
                Code::InvalidArgument,
            ),
            (
                ApiError::Payload(PayloadError::TooLarge { size: 2, max: 1 }),
                Code::InvalidArgument,
            ),
            (
                ApiError::Upload(UploadRejection::UnknownRecordType {
                    record_type: "x".into(),
                }),
                Code::NotFound,
            ),
            (
                ApiError::Upload(UploadRejection::TooLarge { size: 9, max: 1 }),
                Code::InvalidArgument,
            ),
            (
                ApiError::Read(ReadRefusal::SubjectMismatch {
                    record: "r".into(),
                    actual: "citizen:1".into(),
                    declared: "citizen:2".into(),
                }),
                Code::InvalidArgument,
            ),
            (
                ApiError::Read(ReadRefusal::RecordNotFound { target: "r".into() }),
                Code::NotFound,
            ),
            (
                ApiError::Read(ReadRefusal::NotAMember),
                Code::PermissionDenied,
            ),
            (ApiError::NotFound("no read".into()), Code::NotFound),
            (
                ApiError::NotReady("awaiting payment".into()),
                Code::FailedPrecondition,
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
