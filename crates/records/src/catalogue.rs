//! The record catalogue as a service keeps it in its own store: every committed upload by id,
//! and the latest record of each type about each subject, which `Read` queries resolve to.
//! Services that must agree on what a read targets (licence, tokens) write it with the same
//! functions, in the same projection step, so they resolve every read alike.
//!
//! Key layout (all under `rc/`, which no other part of a service's store may use):
//!
//! | key | value |
//! |---|---|
//! | `rc/id/` ‖ record id (32 bytes) | `citychain.licence.v1.RecordInfo` |
//! | `rc/latest/` ‖ subject ‖ `0x00` ‖ record type | record id (32 bytes) |
//!
//! Subjects are visible ASCII, so the `0x00` separator cannot occur inside one.

use citychain_governance::RecordTypeName;
use citychain_kernel::{Hash32, Height, MemberId, TxId};
use citychain_proto::citychain::licence::v1 as lpb;
use citychain_store::{Retryable, StoreError, Transaction};
use prost::Message;
use thiserror::Error;

use crate::body::ReadTarget;

/// The catalogue's key prefix.
pub const PREFIX: &[u8] = b"rc/";

/// The catalogue cannot be read or written.
#[derive(Debug, Error)]
pub enum CatalogueError {
    /// The store failed.
    #[error("record catalogue: {0}")]
    Store(#[from] StoreError),
    /// A stored entry does not decode.
    #[error("record catalogue entry {key} is damaged: {reason}")]
    Damaged {
        /// The key, printable.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl Retryable for CatalogueError {
    fn is_retryable(&self) -> bool {
        matches!(self, CatalogueError::Store(err) if err.is_retryable())
    }
}

/// A committed record's metadata (never its payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    /// The record id: its upload transaction's id.
    pub id: TxId,
    /// Its type.
    pub record_type: RecordTypeName,
    /// Whom it is about.
    pub subject: String,
    /// The owning department (the upload's signer).
    pub owner: MemberId,
    /// blake3 of the payload.
    pub payload_hash: Hash32,
    /// The payload's size.
    pub payload_size: u64,
    /// The upload's block.
    pub height: Height,
    /// The upload's index in its block.
    pub index: u32,
    /// The block's time, ms since the Unix epoch.
    pub time_ms: u64,
}

impl RecordMeta {
    /// The wire form.
    pub fn to_proto(&self) -> lpb::RecordInfo {
        lpb::RecordInfo {
            record_id: self.id.to_string(),
            record_type: self.record_type.to_string(),
            subject: self.subject.clone(),
            owner: self.owner.to_string(),
            payload_hash: self.payload_hash.to_hex(),
            payload_size: self.payload_size,
            height: self.height.0,
            index: self.index,
            time_ms: self.time_ms,
        }
    }

    /// Reads the wire form.
    pub fn from_proto(info: lpb::RecordInfo) -> Result<RecordMeta, String> {
        Ok(RecordMeta {
            id: info
                .record_id
                .parse()
                .map_err(|e| format!("record_id: {e}"))?,
            record_type: RecordTypeName::new("RecordInfo.record_type", info.record_type)
                .map_err(|e| e.to_string())?,
            subject: info.subject,
            owner: MemberId::new(info.owner).map_err(|e| format!("owner: {e}"))?,
            payload_hash: info
                .payload_hash
                .parse()
                .map_err(|e| format!("payload_hash: {e}"))?,
            payload_size: info.payload_size,
            height: Height(info.height),
            index: info.index,
            time_ms: info.time_ms,
        })
    }
}

fn id_key(id: &TxId) -> Vec<u8> {
    [b"rc/id/".as_slice(), id.as_bytes()].concat()
}

fn latest_key(subject: &str, record_type: &str) -> Vec<u8> {
    [
        b"rc/latest/".as_slice(),
        subject.as_bytes(),
        &[0],
        record_type.as_bytes(),
    ]
    .concat()
}

/// Adds a committed record; it becomes the latest of its type about its subject.
pub fn put_record<T: Transaction>(txn: &mut T, record: &RecordMeta) -> Result<(), CatalogueError> {
    txn.put(&id_key(&record.id), &record.to_proto().encode_to_vec())?;
    txn.put(
        &latest_key(&record.subject, record.record_type.as_str()),
        record.id.as_bytes(),
    )?;
    Ok(())
}

/// The record with id `id`.
pub async fn get_record<T: Transaction>(
    txn: &mut T,
    id: &TxId,
) -> Result<Option<RecordMeta>, CatalogueError> {
    let key = id_key(id);
    let Some(bytes) = txn.get(&key).await? else {
        return Ok(None);
    };
    let damaged = |reason: String| CatalogueError::Damaged {
        key: format!("rc/id/{id}"),
        reason,
    };
    let info = lpb::RecordInfo::decode(bytes.as_slice()).map_err(|e| damaged(e.to_string()))?;
    RecordMeta::from_proto(info).map(Some).map_err(damaged)
}

/// The record `target` names, as the catalogue stands.
pub async fn resolve<T: Transaction>(
    txn: &mut T,
    target: &ReadTarget,
) -> Result<Option<RecordMeta>, CatalogueError> {
    match target {
        ReadTarget::Record(id) => get_record(txn, id).await,
        ReadTarget::Latest {
            subject,
            record_type,
        } => {
            let key = latest_key(subject, record_type.as_str());
            let Some(bytes) = txn.get(&key).await? else {
                return Ok(None);
            };
            let id = Hash32::from_slice("latest record id", &bytes).map_err(|e| {
                CatalogueError::Damaged {
                    key: format!("rc/latest/{subject}/{record_type}"),
                    reason: e.to_string(),
                }
            })?;
            get_record(txn, &TxId(id)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_store::{EmbeddedStore, Store};

    fn meta(id: u8, subject: &str, height: u64) -> RecordMeta {
        RecordMeta {
            id: TxId(Hash32([id; 32])),
            record_type: RecordTypeName::new("t", "housing.filing").unwrap(),
            subject: subject.into(),
            owner: MemberId::new("dept.housing").unwrap(),
            payload_hash: Hash32([9; 32]),
            payload_size: 10,
            height: Height(height),
            index: 0,
            time_ms: 1_700_000_000_000,
        }
    }

    #[tokio::test]
    async fn the_latest_record_of_a_type_wins_and_ids_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("c.redb"))
            .await
            .unwrap();
        let mut txn = store.begin().await.unwrap();
        put_record(&mut txn, &meta(1, "citizen:a", 1)).unwrap();
        put_record(&mut txn, &meta(2, "citizen:a", 2)).unwrap();
        put_record(&mut txn, &meta(3, "citizen:b", 3)).unwrap();
        txn.commit().await.unwrap();

        let mut txn = store.begin().await.unwrap();
        let latest = ReadTarget::Latest {
            subject: "citizen:a".into(),
            record_type: RecordTypeName::new("t", "housing.filing").unwrap(),
        };
        assert_eq!(
            resolve(&mut txn, &latest).await.unwrap(),
            Some(meta(2, "citizen:a", 2))
        );
        let first = ReadTarget::Record(TxId(Hash32([1; 32])));
        assert_eq!(
            resolve(&mut txn, &first).await.unwrap(),
            Some(meta(1, "citizen:a", 1))
        );
        let none = ReadTarget::Record(TxId(Hash32([7; 32])));
        assert_eq!(resolve(&mut txn, &none).await.unwrap(), None);
    }
}
