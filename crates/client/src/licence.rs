//! The licence platform from a member's side: upload a record with its payload, ask to read
//! one, wait for the key grant, and open what was released, checking it end to end: the key
//! unwraps only with the reader's X25519 secret, the payload opens only under that key and
//! record id, and the owning department's signature over the payload's hash must verify.

use std::time::Duration;

use citychain_kernel::{ChainId, EncryptionSecret, Height, SignedTx, TxBody, TxId};
use citychain_proto::citychain::licence::v1 as lpb;
use citychain_proto::citychain::licence::v1::licence_service_client::LicenceServiceClient;
use citychain_proto::citychain::licence::v1::read_state::State;
use citychain_records::{LicenceBody, Upload};
use citychain_seal::{WrappedKey, open_payload, reader_context, unwrap_key};
use thiserror::Error;
use tonic::transport::Channel;

use crate::{ClientError, Signer, connect_channel};

/// How often [`LicenceClient::wait_read`] asks again.
const POLL: Duration = Duration::from_millis(200);

/// A released record does not open or does not check out.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The read was not released.
    #[error("read {read} is not released (state {state:?}{reason})")]
    NotReleased {
        /// The read.
        read: String,
        /// Its state.
        state: State,
        /// Why, when known.
        reason: String,
    },
    /// A part is missing or damaged.
    #[error("{0}")]
    Damaged(String),
    /// The key or payload does not open.
    #[error("cannot open: {0}")]
    Seal(#[from] citychain_seal::SealError),
    /// The department's signature or the payload's hash does not check out.
    #[error("the record does not match its signed upload: {0}")]
    Forged(String),
}

/// A record as released to its reader, checked.
#[derive(Debug, Clone)]
pub struct OpenedRecord {
    /// The payload, byte for byte as the department uploaded it.
    pub payload: Vec<u8>,
    /// The department's signed upload, whose signature covers the payload's hash.
    pub upload: SignedTx,
}

/// What the reader asked for, which a released record must match: the server answering is
/// not trusted to say which read or record it released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The chain.
    pub chain_id: ChainId,
    /// The reader's own read transaction.
    pub read_id: TxId,
    /// The record asked for, when the read named one by id.
    pub record_id: Option<TxId>,
}

/// Opens a released read with the reader's X25519 secret and checks it against `expected`:
/// the read and record are the ones asked for, the upload is of this chain and its
/// signature verifies, and the payload is the one it signed. Whether the upload is on the
/// chain, signed by a member, is [`LedgerClient::confirm_upload`]'s to check.
///
/// [`LedgerClient::confirm_upload`]: crate::LedgerClient::confirm_upload
pub fn open_read(
    state: &lpb::ReadState,
    secret: &EncryptionSecret,
    expected: &Expected,
) -> Result<OpenedRecord, OpenError> {
    let released = State::try_from(state.state).unwrap_or(State::Unspecified);
    if released != State::Released {
        return Err(OpenError::NotReleased {
            read: state.read_id.clone(),
            state: released,
            reason: if state.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", state.reason)
            },
        });
    }
    let damaged = |what: &str| OpenError::Damaged(format!("read {}: {what}", state.read_id));
    let read: TxId = state.read_id.parse().map_err(|_| damaged("bad read id"))?;
    let record: TxId = state
        .record_id
        .parse()
        .map_err(|_| damaged("bad record id"))?;
    if read != expected.read_id {
        return Err(OpenError::Forged(format!(
            "the answer is for read {read}, not {}",
            expected.read_id
        )));
    }
    if let Some(asked) = expected.record_id
        && asked != record
    {
        return Err(OpenError::Forged(format!(
            "record {record} was released where {asked} was asked for"
        )));
    }
    let grant = state
        .grant
        .as_ref()
        .ok_or_else(|| damaged("no key grant"))?;
    let wrapped = WrappedKey::decode(&grant.wrapped_key)?;
    let key = unwrap_key(
        &wrapped,
        secret,
        &reader_context(read.as_bytes(), record.as_bytes()),
    )?;
    let payload = open_payload(&key, record.as_bytes(), &state.sealed_payload)?;
    let upload = SignedTx::decode(&state.upload).map_err(|e| damaged(&format!("upload: {e}")))?;
    upload
        .check_chain(&expected.chain_id)
        .and_then(|()| upload.verify())
        .map_err(|e| OpenError::Forged(format!("the upload: {e}")))?;
    if upload.id() != record {
        return Err(OpenError::Forged(format!(
            "the upload is transaction {}, not record {record}",
            upload.id()
        )));
    }
    let Ok(Some(LicenceBody::Upload(Upload {
        payload_hash,
        payload_size,
        ..
    }))) = LicenceBody::decode(upload.body())
    else {
        return Err(OpenError::Forged(
            "the upload's body is not an upload".into(),
        ));
    };
    let actual = blake3::hash(&payload);
    if actual.as_bytes() != payload_hash.as_bytes() || payload.len() as u64 != payload_size {
        return Err(OpenError::Forged(format!(
            "the payload hashes to {actual}, the department signed {payload_hash}"
        )));
    }
    Ok(OpenedRecord { payload, upload })
}

/// A connection to a licence service.
#[derive(Debug, Clone)]
pub struct LicenceClient {
    inner: LicenceServiceClient<Channel>,
}

impl LicenceClient {
    /// Connects to the licence service at `addr` (`http://host:port`).
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        let channel = connect_channel("licence service", addr).await?;
        Ok(LicenceClient {
            inner: LicenceServiceClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        })
    }

    /// The generated gRPC client, for calls this SDK does not wrap.
    pub fn grpc(&mut self) -> &mut LicenceServiceClient<Channel> {
        &mut self.inner
    }

    /// The last height the service has applied.
    pub async fn applied_height(&mut self) -> Result<u64, ClientError> {
        Ok(self
            .inner
            .get_info(lpb::GetInfoRequest {})
            .await?
            .into_inner()
            .applied_height)
    }

    /// Waits until the service has applied block `height`, for at most `wait`.
    pub async fn wait_applied(&mut self, height: u64, wait: Duration) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        while self.applied_height().await? < height {
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    id: format!("height {height}"),
                    waited: wait,
                });
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Signs and uploads a record of `record_type` about `subject`; returns the record id.
    pub async fn upload(
        &mut self,
        signer: &Signer,
        expiry: Height,
        record_type: &str,
        subject: &str,
        payload: &[u8],
    ) -> Result<String, ClientError> {
        let body = citychain_records::upload_body(record_type, subject, payload);
        let tx = signer.sign(body, expiry)?;
        let reply = self
            .inner
            .upload(lpb::UploadRequest {
                transaction: tx.bytes().to_vec(),
                payload: payload.to_vec(),
            })
            .await?;
        Ok(reply.into_inner().record_id)
    }

    /// Signs and submits a read; the reply names the record it resolves to and the price.
    pub async fn submit_read(
        &mut self,
        signer: &Signer,
        expiry: Height,
        body: TxBody,
    ) -> Result<lpb::SubmitReadResponse, ClientError> {
        let tx = signer.sign(body, expiry)?;
        Ok(self
            .inner
            .submit_read(lpb::SubmitReadRequest {
                transaction: tx.bytes().to_vec(),
            })
            .await?
            .into_inner())
    }

    /// Asks for a read's state until it is released, refused or unpaid, or `wait` passes.
    pub async fn wait_read(
        &mut self,
        read_id: &str,
        wait: Duration,
    ) -> Result<lpb::ReadState, ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let asked = self
                .inner
                .get_read(lpb::GetReadRequest {
                    read_id: read_id.to_owned(),
                })
                .await;
            match asked {
                Ok(reply) => {
                    let state = reply.into_inner();
                    if state.state != State::AwaitingPayment as i32 {
                        return Ok(state);
                    }
                }
                // Not committed yet.
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => return Err(status.into()),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    id: read_id.to_owned(),
                    waited: wait,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A citizen's receipts for `subject`, signed with the citizen's key (never submitted).
    pub async fn receipts(
        &mut self,
        citizen: &Signer,
        expiry: Height,
        subject: &str,
        page_token: &str,
    ) -> Result<lpb::ListReceiptsResponse, ClientError> {
        let query = citizen.sign(citychain_records::receipts_query_body(subject), expiry)?;
        Ok(self
            .inner
            .list_receipts(lpb::ListReceiptsRequest {
                query: query.bytes().to_vec(),
                page_size: 100,
                page_token: page_token.to_owned(),
            })
            .await?
            .into_inner())
    }
}
