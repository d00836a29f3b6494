//! [`TokensProjection`]: what a block of the chain means to the token journal. For each
//! accepted transaction, in block order:
//!
//! - an `Upload` that passes [`decide_upload`] (against the registry in force for the
//!   block) becomes a record in the catalogue, as the licence service records it, and earns
//!   its department the type's reward, under the token policy in force;
//! - a `Read` is resolved against the catalogue as it stands at that point of the block
//!   (uploads earlier in the same block included) and decided by [`decide_read`]; a read
//!   the licence rules refuse is neither charged nor reported, one they allow is charged;
//!
//! then, after the last transaction, each `GrantTokens` proposal that governance applied in
//! the block mints its grant. A grant's chain place is the block's height with `index` = the
//! number of transactions in the block (it happens after all of them) and no transaction id;
//! several grants of one block are told apart by their event number.
//!
//! Everything goes through the follower's store transaction, with the applied height and
//! its checkpoint, so a block counts entirely or not at all.

use citychain_follower::{AuditedBlock, ChainProjection};
use citychain_governance::Signer;
use citychain_governance::{Action, Event, TxOutcome};
use citychain_records::catalogue::{put_record, resolve};
use citychain_records::{LicenceBody, RecordMeta, decide_read, decide_upload};
use citychain_store::Transaction;
use citychain_tokens_domain::{ChainRef, Input};

use crate::journal::{self, OutboxCursor, TokensStoreError};

/// The name the applied height and the follower's checkpoint are kept under.
pub const PROJECTION_NAME: &str = "tokens";

/// The token journal as a projection of the chain.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokensProjection;

impl ChainProjection for TokensProjection {
    type Error = TokensStoreError;

    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    async fn apply<T: Transaction>(
        &self,
        txn: &mut T,
        audited: &AuditedBlock,
    ) -> Result<(), TokensStoreError> {
        let height = audited.height().0;
        let registry = &audited.registry_before;
        let start = journal::history(txn).await?;
        let mut cursor = OutboxCursor::default();
        for (index, (tx, outcome)) in audited
            .block
            .txs
            .iter()
            .zip(&audited.outcome.txs)
            .enumerate()
        {
            let TxOutcome::Accepted { signer, .. } = outcome else {
                continue;
            };
            // A body that is not the licence platform's, or breaks its syntax, moves nothing
            // (the licence service ignores it too).
            let Ok(Some(body)) = LicenceBody::decode(tx.body()) else {
                continue;
            };
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let source = ChainRef::tx(height, index, tx.id());
            let input = match body {
                LicenceBody::Upload(upload) => {
                    if decide_upload(registry, signer, &upload).is_err() {
                        continue;
                    }
                    let (Signer::Member { id: owner, .. }, Some(record_type)) =
                        (signer, registry.record_type(upload.record_type.as_str()))
                    else {
                        // decide_upload passed, so neither can happen.
                        continue;
                    };
                    put_record(
                        txn,
                        &RecordMeta {
                            id: tx.id(),
                            record_type: upload.record_type.clone(),
                            subject: upload.subject.clone(),
                            owner: owner.clone(),
                            payload_hash: upload.payload_hash,
                            payload_size: upload.payload_size,
                            height: audited.height(),
                            index,
                            time_ms: audited.block.header.time_unix_ms,
                        },
                    )?;
                    Input::Upload {
                        record_id: tx.id(),
                        member: owner.clone(),
                        payload_hash: upload.payload_hash,
                        reward: record_type.upload_reward,
                        policy: *registry.token_policy(),
                    }
                }
                LicenceBody::Read {
                    target, subject, ..
                } => {
                    let record = resolve(txn, &target).await?;
                    match decide_read(registry, signer, &target, &subject, record.as_ref()) {
                        Ok(access) => Input::Read {
                            read_id: tx.id(),
                            record_id: access.record.id,
                            owner: access.record.owner.clone(),
                            reader: access.reader,
                            price: access.price,
                        },
                        Err(refusal) => {
                            tracing::debug!(read = %tx.id(), %refusal, "read refused; not charged");
                            continue;
                        }
                    }
                }
                LicenceBody::BindSubject { .. } | LicenceBody::ReceiptsQuery { .. } => continue,
            };
            journal::settle(txn, &input, &source, &mut cursor).await?;
        }

        let end = ChainRef::block_end(
            height,
            u32::try_from(audited.block.txs.len()).unwrap_or(u32::MAX),
        );
        for event in &audited.outcome.closing {
            if let Event::Applied { id, action, .. } = event
                && let Action::GrantTokens { member, amount } = action.as_ref()
            {
                let input = Input::Grant {
                    proposal_id: id.as_str().to_string(),
                    member: member.clone(),
                    amount: *amount,
                };
                journal::settle(txn, &input, &end, &mut cursor).await?;
            }
        }
        journal::seal_block(txn, height, &start).await
    }
}
