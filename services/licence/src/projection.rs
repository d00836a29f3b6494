//! The licence service's projection of the chain: committed uploads become records (in the
//! shared catalogue and the service's search indexes), committed reads become receipts with
//! their inclusion proofs and, when the policy allows them, join the set waiting for release;
//! subject bindings are recorded. Each block's writes share one commit with its height.
//!
//! Rejected transactions are data, not errors: an upload refused by the rules is simply not a
//! record, and a refused read is a receipt in state REFUSED with the reason.

use citychain_follower::{AuditedBlock, ChainProjection};
use citychain_governance::TxOutcome;
use citychain_kernel::SignedTx;
use citychain_kernel::proof::TransactionProof;
use citychain_licence_domain::keys::{self, RecordIndex};
use citychain_proto::citychain::licence::v1 as lpb;
use citychain_records::catalogue::{self, CatalogueError};
use citychain_records::{LicenceBody, RecordMeta, decide_bind, decide_read, decide_upload};
use citychain_store::{Retryable, StoreError, Transaction};
use prost::Message;
use thiserror::Error;

/// The name the applied height and checkpoint are kept under.
pub const PROJECTION_NAME: &str = "licence";

/// The projection's own failures (the store, damaged state). They stop the follower.
#[derive(Debug, Error)]
pub enum ProjectionError {
    /// The store failed.
    #[error("licence store: {0}")]
    Store(#[from] StoreError),
    /// The catalogue failed.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// A proof could not be built for a committed read: the block and its validator set
    /// disagree, which the audit rules out.
    #[error("cannot build the proof of transaction {index} at height {height}: {reason}")]
    Proof {
        /// The height.
        height: u64,
        /// The index.
        index: usize,
        /// Why.
        reason: String,
    },
}

impl Retryable for ProjectionError {
    fn is_retryable(&self) -> bool {
        match self {
            ProjectionError::Store(err) => err.is_retryable(),
            ProjectionError::Catalogue(err) => err.is_retryable(),
            ProjectionError::Proof { .. } => false,
        }
    }
}

/// The licence projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct LicenceProjection;

impl ChainProjection for LicenceProjection {
    type Error = ProjectionError;

    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    async fn apply<T: Transaction>(
        &self,
        txn: &mut T,
        block: &AuditedBlock,
    ) -> Result<(), ProjectionError> {
        let height = block.height();
        for (index, (tx, outcome)) in block.block.txs.iter().zip(&block.outcome.txs).enumerate() {
            let TxOutcome::Accepted { signer, .. } = outcome else {
                continue;
            };
            // A body that breaks the licence syntax was never accepted by the licence API; if
            // one commits anyway (sent through another service), it is not the platform's.
            let Ok(Some(body)) = LicenceBody::decode(tx.body()) else {
                continue;
            };
            let place = Place {
                index: index as u32,
                time_ms: block.block.header.time_unix_ms,
            };
            match body {
                LicenceBody::Upload(upload) => {
                    if let Err(reason) = decide_upload(&block.registry_before, signer, &upload) {
                        tracing::info!(tx = %tx.id(), %reason, "committed upload is not a record");
                        continue;
                    }
                    let citychain_governance::Signer::Member { id: owner, .. } = signer else {
                        continue;
                    };
                    let record = RecordMeta {
                        id: tx.id(),
                        record_type: upload.record_type,
                        subject: upload.subject,
                        owner: owner.clone(),
                        payload_hash: upload.payload_hash,
                        payload_size: upload.payload_size,
                        height,
                        index: place.index,
                        time_ms: place.time_ms,
                    };
                    add_record(txn, tx, &record)?;
                }
                LicenceBody::Read {
                    target,
                    subject,
                    purpose,
                } => {
                    let record = catalogue::resolve(txn, &target).await?;
                    let decided = decide_read(
                        &block.registry_before,
                        signer,
                        &target,
                        &subject,
                        record.as_ref(),
                    );
                    let reader = match signer {
                        citychain_governance::Signer::Member { id, .. } => id.to_string(),
                        citychain_governance::Signer::Citizen => String::new(),
                    };
                    let recipient = match signer {
                        citychain_governance::Signer::Member { id, .. } => block
                            .registry_before
                            .member(id)
                            .map(|m| m.encryption_key.0.to_vec())
                            .unwrap_or_default(),
                        citychain_governance::Signer::Citizen => Vec::new(),
                    };
                    let mut state = lpb::ReadState {
                        read_id: tx.id().to_string(),
                        record_id: record
                            .as_ref()
                            .map(|r| r.id.to_string())
                            .unwrap_or_default(),
                        reader,
                        purpose,
                        height: height.0,
                        index: place.index,
                        time_ms: place.time_ms,
                        grant: Some(lpb::KeyGrant {
                            wrapped_key: Vec::new(),
                            recipient,
                        }),
                        ..Default::default()
                    };
                    match decided {
                        Ok(access) => {
                            state.state = lpb::read_state::State::AwaitingPayment as i32;
                            state.price = access.price;
                            txn.put(&keys::pending(&tx.id()), &[])?;
                        }
                        Err(refusal) => {
                            state.state = lpb::read_state::State::Refused as i32;
                            state.reason = refusal.to_string();
                        }
                    }
                    txn.put(&keys::read(&tx.id()), &state.encode_to_vec())?;
                    txn.put(
                        &keys::receipt(&subject, height, place.index),
                        tx.id().as_bytes(),
                    )?;
                    let proof =
                        TransactionProof::build(&block.block, index as u64, &block.validators)
                            .map_err(|err| ProjectionError::Proof {
                                height: height.0,
                                index,
                                reason: err.to_string(),
                            })?;
                    txn.put(&keys::proof(&tx.id()), &proof.encode())?;
                }
                LicenceBody::BindSubject { subject, key } => {
                    if decide_bind(signer).is_ok() {
                        txn.put(&keys::binding(&subject, &key), &[])?;
                    }
                }
                // Queries are signed but never submitted; one that commits changes nothing.
                LicenceBody::ReceiptsQuery { .. } => {}
            }
        }
        Ok(())
    }
}

/// Where a transaction sits: its index in the block and the block's time.
struct Place {
    index: u32,
    time_ms: u64,
}

fn add_record<T: Transaction>(
    txn: &mut T,
    tx: &SignedTx,
    record: &RecordMeta,
) -> Result<(), ProjectionError> {
    catalogue::put_record(txn, record)?;
    txn.put(&keys::upload(&record.id), tx.bytes())?;
    let id = record.id.as_bytes();
    let (h, i) = (record.height, record.index);
    txn.put(&RecordIndex::Subject.key(&record.subject, h, i), id)?;
    txn.put(
        &RecordIndex::RecordType.key(record.record_type.as_str(), h, i),
        id,
    )?;
    txn.put(&RecordIndex::Owner.key(record.owner.as_str(), h, i), id)?;
    txn.put(&RecordIndex::All.key("", h, i), id)?;
    Ok(())
}
