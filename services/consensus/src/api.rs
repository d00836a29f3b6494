//! The consensus service's gRPC API (`citychain.consensus.v1.ConsensusService`): a read-only
//! view of one validator, answered from the [`Status`] the running validator keeps up to date.
//!
//! Errors: every failure of this API is an [`ApiError`], and [`ApiError`] becomes a
//! `tonic::Status` in one place only, its `From` implementation below.

use std::sync::{Arc, Mutex};

use citychain_kernel::{ChainId, MemberId, PublicKey};
use citychain_proto::citychain::consensus::v1 as pb;
use pb::consensus_service_server::{ConsensusService, ConsensusServiceServer};
use thiserror::Error;
use tonic::{Request, Response};

use crate::validator::Status;

/// Why a call failed.
///
/// The API takes no input that could be wrong, so every variant is a failure on our side
/// (`failed`), none is the caller's fault (`rejected`).
#[derive(Debug, Error)]
pub enum ApiError {
    /// A validator task panicked while it held the status, so what it holds may be half
    /// written.
    #[error("the validator's status is unavailable: a validator task failed while updating it")]
    StatusPoisoned,
}

/// The one mapping from this crate's API errors to gRPC status codes.
impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::StatusPoisoned => {
                tracing::error!(error = %err, "status query failed");
                tonic::Status::internal(err.to_string())
            }
        }
    }
}

/// Who the validator behind the API is: fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct ValidatorIdentity {
    /// The chain.
    pub chain_id: ChainId,
    /// The validator's key.
    pub key: PublicKey,
    /// The member the key belongs to in genesis.
    pub member_id: MemberId,
}

/// The `ConsensusService` implementation.
#[derive(Debug, Clone)]
pub struct ConsensusApi {
    identity: ValidatorIdentity,
    status: Arc<Mutex<Status>>,
}

impl ConsensusApi {
    /// An API over `status`, which the validator of `identity` updates.
    pub fn new(identity: ValidatorIdentity, status: Arc<Mutex<Status>>) -> Self {
        ConsensusApi { identity, status }
    }

    /// The generated tonic server around this API.
    pub fn into_server(self) -> ConsensusServiceServer<ConsensusApi> {
        ConsensusServiceServer::new(self)
    }

    /// The response to `GetStatus`, built from a snapshot taken under the lock.
    pub fn status(&self) -> Result<pb::GetStatusResponse, ApiError> {
        let status = self
            .status
            .lock()
            .map_err(|_| ApiError::StatusPoisoned)?
            .clone();
        Ok(status_response(&self.identity, status))
    }
}

/// The wire form of `status` for the validator `identity`.
pub fn status_response(identity: &ValidatorIdentity, status: Status) -> pb::GetStatusResponse {
    pb::GetStatusResponse {
        chain_id: identity.chain_id.to_string(),
        validator_key: identity.key.to_string(),
        member_id: identity.member_id.to_string(),
        height: status.height,
        round: status.round,
        mempool_depth: status.mempool_depth,
        committed_txs: status.committed_txs,
        validators_seen: status.validators_seen.into_iter().collect(),
        // A BTreeMap iterates in key order, so the list is sorted by reason.
        dropped: status
            .dropped
            .into_iter()
            .map(|(reason, count)| pb::DroppedCount { reason, count })
            .collect(),
        evidence: status.evidence,
    }
}

#[tonic::async_trait]
impl ConsensusService for ConsensusApi {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, tonic::Status> {
        Ok(Response::new(self.status()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ValidatorIdentity {
        let key = citychain_kernel::SigningKey::from_seed(&[7; 32]).public_key();
        ValidatorIdentity {
            chain_id: ChainId::new("city-test").unwrap(),
            key,
            member_id: MemberId::new("dept-1").unwrap(),
        }
    }

    #[test]
    fn the_response_carries_the_status_and_who_answers() {
        let mut status = Status {
            height: 12,
            round: 1,
            mempool_depth: 3,
            committed_txs: 40,
            evidence: 2,
            ..Status::default()
        };
        status.validators_seen.insert("bb".into());
        status.validators_seen.insert("aa".into());
        status.dropped.insert("wrong chain".into(), 5);
        status.dropped.insert("bad signature".into(), 1);
        let api = ConsensusApi::new(identity(), Arc::new(Mutex::new(status)));

        let response = api.status().unwrap();

        assert_eq!(response.chain_id, "city-test");
        assert_eq!(response.member_id, "dept-1");
        assert_eq!(response.validator_key, identity().key.to_string());
        assert_eq!(
            (response.height, response.round, response.mempool_depth),
            (12, 1, 3)
        );
        assert_eq!((response.committed_txs, response.evidence), (40, 2));
        assert_eq!(response.validators_seen, ["aa", "bb"]);
        let dropped: Vec<_> = response
            .dropped
            .iter()
            .map(|d| (d.reason.as_str(), d.count))
            .collect();
        assert_eq!(dropped, [("bad signature", 1), ("wrong chain", 5)]);
    }

    #[test]
    fn a_poisoned_status_is_an_internal_failure() {
        let status = Arc::new(Mutex::new(Status::default()));
        let held = status.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("a validator task fails while holding the status");
        })
        .join();
        let api = ConsensusApi::new(identity(), status);

        let err = api.status().unwrap_err();
        let grpc = tonic::Status::from(err);

        assert_eq!(grpc.code(), tonic::Code::Internal);
        assert!(grpc.message().contains("status is unavailable"));
    }
}
