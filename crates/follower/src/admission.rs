//! Admission of a signed transaction at a service's API, before it goes to MEMPOOL: the
//! checks every service makes the same way (canonical encoding, chain, signature, an expiry
//! the chain can still meet and not too far ahead, and what every validator checks again
//! ([`citychain_txrules::admit`]): a body type the chain carries, passing its type's rules,
//! from a signer the registry in force lets send it), and the idempotent publish
//! (`Nats-Msg-Id` = the transaction id, so a retry is never a second copy). Services add
//! their own checks between the two. A signed query (a receipts query) gets the same checks
//! except the chain's admission, as it is never submitted.

use std::sync::Arc;

use bytes::Bytes;
use citychain_bus::{Appended, Bus, BusError, HeaderMap, StreamsConfig};
use citychain_governance::Signer;
use citychain_kernel::{ChainId, Height, SignedTx, TxError};
use citychain_txrules::Inadmissible;
use thiserror::Error;

use crate::shared::Shared;

/// Why a transaction is not admitted.
#[derive(Debug, Error)]
pub enum AdmissionError {
    /// No bytes were sent.
    #[error("transaction: it is empty")]
    Empty,
    /// The bytes fail a stateless check (encoding, chain, signature, size, subjects).
    #[error("{0}")]
    Transaction(#[from] TxError),
    /// The expiry has passed, or is further ahead than the service accepts.
    #[error("{0}")]
    Expiry(String),
    /// The chain does not carry this body, or not from this signer.
    #[error("{0}")]
    Inadmissible(#[from] Inadmissible),
    /// NATS failed while publishing.
    #[error("NATS: {0}")]
    Bus(#[from] BusError),
}

impl From<AdmissionError> for tonic::Status {
    /// The caller's faults are INVALID_ARGUMENT (bad bytes, a body the chain does not carry,
    /// an oversized citizen's transaction), FAILED_PRECONDITION (expiry) or PERMISSION_DENIED
    /// (signer); a citizens' block quota, which only block assembly counts, would be
    /// RESOURCE_EXHAUSTED. A NATS failure is ours, UNAVAILABLE, and is logged.
    fn from(err: AdmissionError) -> tonic::Status {
        let message = citychain_runtime::grpc::short_message(err.to_string());
        match err {
            AdmissionError::Empty | AdmissionError::Transaction(_) => {
                tonic::Status::invalid_argument(message)
            }
            AdmissionError::Expiry(_) => tonic::Status::failed_precondition(message),
            AdmissionError::Inadmissible(Inadmissible::Signer(_)) => {
                tonic::Status::permission_denied(message)
            }
            AdmissionError::Inadmissible(
                Inadmissible::CitizenKeyQuota { .. } | Inadmissible::CitizenBlockQuota { .. },
            ) => tonic::Status::resource_exhausted(message),
            AdmissionError::Inadmissible(_) => tonic::Status::invalid_argument(message),
            AdmissionError::Bus(_) => {
                tracing::warn!(error = %message, "submission failed on NATS");
                tonic::Status::unavailable(message)
            }
        }
    }
}

/// The admission step of one service.
#[derive(Debug, Clone)]
pub struct Admission {
    chain_id: ChainId,
    shared: Arc<Shared>,
    bus: Bus,
    streams: StreamsConfig,
    max_ttl: u64,
}

impl Admission {
    /// Admission against the follower state `shared`, publishing to `streams`' MEMPOOL;
    /// `max_ttl` is how many heights past the next block an expiry may be (keep it equal to
    /// the validators' own limit, so a transaction they would drop is refused here instead).
    pub fn new(
        chain_id: ChainId,
        shared: Arc<Shared>,
        bus: Bus,
        streams: StreamsConfig,
        max_ttl: u64,
    ) -> Self {
        Admission {
            chain_id,
            shared,
            bus,
            streams,
            max_ttl,
        }
    }

    /// Checks `bytes` and says who signed them: [`Admission::decode`] then
    /// [`Admission::admit`].
    pub fn check(&self, bytes: &[u8]) -> Result<(SignedTx, Signer), AdmissionError> {
        let tx = self.decode(bytes)?;
        let signer = self.admit(&tx)?;
        Ok((tx, signer))
    }

    /// The stateless checks: canonical encoding, chain, signature.
    pub fn decode(&self, bytes: &[u8]) -> Result<SignedTx, AdmissionError> {
        if bytes.is_empty() {
            return Err(AdmissionError::Empty);
        }
        Ok(SignedTx::decode_and_verify(bytes, &self.chain_id)?)
    }

    /// The checks against the chain as the service has applied it: an expiry the next block
    /// can meet and not too far ahead, and a body the chain admits from this signer.
    pub fn admit(&self, tx: &SignedTx) -> Result<Signer, AdmissionError> {
        self.check_expiry(tx)?;
        Ok(citychain_txrules::admit(&self.shared.registry(), tx)?)
    }

    /// Checks a signed query (a body signed to prove who asks, never submitted to the
    /// chain): the stateless checks, an expiry as for a transaction, and a signer the
    /// registry in force lets send the body.
    pub fn check_query(&self, bytes: &[u8]) -> Result<(SignedTx, Signer), AdmissionError> {
        let query = self.decode(bytes)?;
        self.check_expiry(&query)?;
        let signer = self
            .shared
            .registry()
            .authorize(query.signer(), &query.body().type_url)
            .map_err(Inadmissible::Signer)?;
        Ok((query, signer))
    }

    fn check_expiry(&self, tx: &SignedTx) -> Result<(), AdmissionError> {
        let id = tx.id();
        let next = self.shared.applied().0 + 1;
        if tx.expiry().0 < next {
            return Err(AdmissionError::Expiry(format!(
                "transaction {id} expired at height {}; the next block is {next}",
                tx.expiry().0
            )));
        }
        if tx.expiry().0 > next + self.max_ttl {
            return Err(AdmissionError::Expiry(format!(
                "transaction {id} expires at height {}, more than {} heights after the next \
                 block {next}; choose an expiry up to {}",
                tx.expiry().0,
                self.max_ttl,
                next + self.max_ttl
            )));
        }
        Ok(())
    }

    /// The last height the service has applied.
    pub fn applied(&self) -> Height {
        self.shared.applied()
    }

    /// Hands an admitted transaction to consensus.
    pub async fn publish(&self, tx: &SignedTx) -> Result<Appended, AdmissionError> {
        let id = tx.id();
        // The calling gRPC server span declares these fields; elsewhere this does nothing.
        let span = tracing::Span::current();
        span.record("tx.id", tracing::field::display(&id));
        span.record("signer", tracing::field::display(tx.signer()));
        let appended = self
            .bus
            .publish_idempotent(
                &self.streams.mempool_subject(),
                &id.to_string(),
                Bytes::copy_from_slice(tx.bytes()),
                HeaderMap::new(),
            )
            .await?;
        tracing::info!(tx = %id, signer = %tx.signer(), duplicate = appended.duplicate, "submitted");
        Ok(appended)
    }
}
