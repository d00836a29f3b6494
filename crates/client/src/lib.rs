//! The citychain client SDK: a [`Signer`] that builds signed transactions with fresh nonces and
//! expiries, a [`LedgerClient`] that submits them to the ledger service and follows them
//! until they commit or are rejected, and a [`LicenceClient`] for the licence platform
//! ([`licence`]). The CLI, the demo and the end-to-end tests use it.
//!
//! ```no_run
//! # async fn run(
//! #     key: citychain_kernel::SigningKey,
//! #     record: citychain_kernel::TxId,
//! # ) -> Result<(), citychain_client::ClientError> {
//! use citychain_client::{LedgerClient, Signer};
//! use citychain_records::{ReadTarget, read_body};
//!
//! let mut ledger = LedgerClient::connect("http://127.0.0.1:7001").await?;
//! let signer = Signer::new(ledger.chain_id().clone(), key, 1);
//! // A read of `record`, a record about citizen:3301-0007, as a receipt on the chain.
//! let body = read_body(&ReadTarget::Record(record), "citizen:3301-0007", "loan review");
//! let committed = ledger.submit_and_wait(&signer, body).await?;
//! println!("committed at height {} index {}", committed.height, committed.index);
//! # Ok(()) }
//! ```

pub mod licence;

pub use licence::{Expected, LicenceClient, OpenError, OpenedRecord, open_read};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use citychain_kernel::{ChainId, Height, SignedTx, SigningKey, TxBody, TxError};
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_proto::citychain::ledger::v1::ledger_service_client::LedgerServiceClient;
use citychain_proto::citychain::ledger::v1::transaction_status::State;
use thiserror::Error;
use tonic::transport::Channel;

/// How many heights ahead a transaction signed by [`LedgerClient::sign`] may commit.
pub const DEFAULT_TTL: u64 = 100;

/// How long [`LedgerClient::submit_and_wait`] waits for a commit.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// What went wrong talking to the ledger.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The address is not a valid endpoint, or nothing answers there.
    #[error("cannot connect to the {service} at {addr}: {reason}")]
    Connect {
        /// The service.
        service: &'static str,
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The service refused or failed the call.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The transaction could not be signed.
    #[error("cannot sign: {0}")]
    Sign(#[from] TxError),
    /// The transaction can never commit.
    #[error("transaction {id} was rejected: {reason}")]
    Rejected {
        /// Its id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The wait ended before the transaction committed.
    #[error("transaction {id} did not commit within {waited:?}")]
    Timeout {
        /// Its id.
        id: String,
        /// How long was waited.
        waited: Duration,
    },
    /// The ledger answered something this client cannot read.
    #[error("unexpected answer from the ledger: {0}")]
    Unexpected(String),
}

/// Opens a channel to `service` at `addr` (`http://host:port`).
pub(crate) async fn connect_channel(
    service: &'static str,
    addr: &str,
) -> Result<Channel, ClientError> {
    let fail = |reason: String| ClientError::Connect {
        service,
        addr: addr.to_owned(),
        reason,
    };
    let endpoint = tonic::transport::Endpoint::from_shared(addr.to_owned())
        .map_err(|e| fail(e.to_string()))?
        .connect_timeout(Duration::from_secs(5));
    endpoint.connect().await.map_err(|e| fail(e.to_string()))
}

/// The first page of one block: the chain's first header and the ledger's tip height.
async fn first_block(
    client: &mut LedgerServiceClient<Channel>,
) -> Result<pb::ListBlocksResponse, tonic::Status> {
    let request = pb::ListBlocksRequest {
        from_height: 1,
        page_size: 1,
        page_token: String::new(),
    };
    Ok(client.list_blocks(request).await?.into_inner())
}

/// Signs transactions for one key, numbering nonces from a starting value so many can be in
/// flight at once.
#[derive(Debug)]
pub struct Signer {
    chain_id: ChainId,
    key: SigningKey,
    next_nonce: AtomicU64,
}

impl Signer {
    /// A signer for `key` on `chain_id` whose first nonce is `first_nonce`. Nonces must not
    /// repeat while a transaction can still commit: start each session above the last one
    /// (a clock reading in milliseconds is a fine start for a command-line session).
    pub fn new(chain_id: ChainId, key: SigningKey, first_nonce: u64) -> Self {
        Signer {
            chain_id,
            key,
            next_nonce: AtomicU64::new(first_nonce),
        }
    }

    /// The key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs `body` with the next nonce, committing at height `expiry` at the latest.
    pub fn sign(&self, body: TxBody, expiry: Height) -> Result<SignedTx, TxError> {
        let nonce = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        SignedTx::sign(&self.chain_id, &self.key, nonce, expiry, body)
    }
}

/// Where a transaction committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Its block's height.
    pub height: u64,
    /// Its index in the block.
    pub index: u32,
}

/// A connection to a ledger service.
#[derive(Debug, Clone)]
pub struct LedgerClient {
    inner: LedgerServiceClient<Channel>,
    chain_id: ChainId,
}

impl LedgerClient {
    /// Connects to the ledger at `addr` (`http://host:port`) and learns the chain's id.
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        let fail = |reason: String| ClientError::Connect {
            service: "ledger",
            addr: addr.to_owned(),
            reason,
        };
        let channel = connect_channel("ledger", addr).await?;
        let mut inner = LedgerServiceClient::new(channel).max_decoding_message_size(64 << 20);
        let chain = first_block(&mut inner).await?;
        let chain_id = match chain.blocks.first().and_then(|b| b.header.as_ref()) {
            Some(header) => ChainId::new(header.chain_id.clone())
                .map_err(|e| ClientError::Unexpected(e.to_string()))?,
            None => {
                return Err(fail(
                    "the ledger has no block yet; start the validators and try again".into(),
                ));
            }
        };
        Ok(LedgerClient { inner, chain_id })
    }

    /// The chain the ledger follows.
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// The generated gRPC client, for calls this SDK does not wrap.
    pub fn grpc(&mut self) -> &mut LedgerServiceClient<Channel> {
        &mut self.inner
    }

    /// The last height the ledger applied.
    pub async fn tip_height(&mut self) -> Result<u64, ClientError> {
        Ok(first_block(&mut self.inner).await?.tip_height)
    }

    /// Signs `body` with an expiry [`DEFAULT_TTL`] heights after the ledger's tip.
    pub async fn sign(&mut self, signer: &Signer, body: TxBody) -> Result<SignedTx, ClientError> {
        let tip = self.tip_height().await?;
        Ok(signer.sign(body, Height(tip + DEFAULT_TTL))?)
    }

    /// Submits a signed transaction; returns its id (hex) as the ledger reports it.
    pub async fn submit(&mut self, tx: &SignedTx) -> Result<String, ClientError> {
        let response = self
            .inner
            .submit_transaction(pb::SubmitTransactionRequest {
                transaction: tx.bytes().to_vec(),
            })
            .await?;
        Ok(response.into_inner().id)
    }

    /// Follows transaction `id` until it commits (`Ok`), is rejected, or `wait` passes.
    pub async fn wait(&mut self, id: &str, wait: Duration) -> Result<Committed, ClientError> {
        let follow = async {
            let mut stream = self
                .inner
                .watch_transaction(pb::WatchTransactionRequest { id: id.to_owned() })
                .await?
                .into_inner();
            while let Some(status) = stream.message().await? {
                match State::try_from(status.state) {
                    Ok(State::Committed) => {
                        return Ok(Committed {
                            height: status.height,
                            index: status.index,
                        });
                    }
                    Ok(State::Rejected) => {
                        return Err(ClientError::Rejected {
                            id: id.to_owned(),
                            reason: status.reason,
                        });
                    }
                    _ => {}
                }
            }
            Err(ClientError::Unexpected(format!(
                "the status stream of {id} ended before a decision"
            )))
        };
        tokio::time::timeout(wait, follow)
            .await
            .map_err(|_| ClientError::Timeout {
                id: id.to_owned(),
                waited: wait,
            })?
    }

    /// Waits until transaction `id`, submitted through any service (another ledger replica,
    /// the licence service), commits (`Ok`) or is rejected, for at most `wait`. The ledger
    /// knows every transaction waiting on MEMPOOL, but right after a submission elsewhere it
    /// may not have seen it yet: NOT_FOUND is asked again until the deadline.
    pub async fn wait_on_chain(
        &mut self,
        id: &str,
        wait: Duration,
    ) -> Result<Committed, ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.wait(id, left).await {
                Err(ClientError::Status(status)) if status.code() == tonic::Code::NotFound => {}
                decided => return decided,
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    id: id.to_owned(),
                    waited: wait,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Confirms that a released record's upload is on the chain as this ledger verified it
    /// (the same bytes, so the same signature) and returns the member that signed it. Together
    /// with [`open_read`] this checks a released record against two services, not one.
    pub async fn confirm_upload(&mut self, opened: &OpenedRecord) -> Result<String, ClientError> {
        let id = opened.upload.id().to_string();
        let found = self
            .inner
            .get_transaction(pb::GetTransactionRequest { id: id.clone() })
            .await?
            .into_inner();
        let on_chain = found.proof.map(|p| p.transaction).unwrap_or_default();
        if on_chain != opened.upload.bytes() {
            return Err(ClientError::Unexpected(format!(
                "the ledger's copy of upload {id} differs from the one released with the record"
            )));
        }
        if found.signer_member.is_empty() {
            return Err(ClientError::Unexpected(format!(
                "upload {id} was signed by a key that is no member's"
            )));
        }
        Ok(found.signer_member)
    }

    /// Signs, submits and waits up to [`DEFAULT_WAIT`] for the commit.
    pub async fn submit_and_wait(
        &mut self,
        signer: &Signer,
        body: TxBody,
    ) -> Result<Committed, ClientError> {
        let tx = self.sign(signer, body).await?;
        let id = self.submit(&tx).await?;
        self.wait(&id, DEFAULT_WAIT).await
    }
}
