//! The licence service's store layout. The record catalogue shared with the token service
//! lives under `rc/` (see `citychain_records::catalogue`); everything here is under `li/`.
//!
//! | key | value |
//! |---|---|
//! | `li/up/` ‖ record id | the upload transaction, canonical bytes |
//! | `li/ix/s/` ‖ subject ‖ `0x00` ‖ place | record id (search by subject) |
//! | `li/ix/t/` ‖ record type ‖ `0x00` ‖ place | record id (search by type) |
//! | `li/ix/o/` ‖ owner ‖ `0x00` ‖ place | record id (search by owner) |
//! | `li/ix/a/` ‖ place | record id (every record) |
//! | `li/rd/` ‖ read id | the committed read (`citychain.licence.v1.ReadState`, no grant) |
//! | `li/rs/` ‖ subject ‖ `0x00` ‖ place | read id (receipts by subject) |
//! | `li/pf/` ‖ read id | the read's inclusion proof (`TransactionProof`) |
//! | `li/pending/` ‖ read id | empty: allowed, not yet released or failed |
//! | `li/pay/` ‖ read id | the token platform's verdict (see `Payment`) |
//! | `li/gr/` ‖ read id | the key grant (`KeyGrant`), written once |
//! | `li/wh/` ‖ read id | why a paid read can never be released (UTF-8) |
//! | `li/bind/` ‖ subject ‖ `0x00` ‖ key | empty: the key speaks for the subject |
//! | `li/events` | the last EVENTS sequence whose payment was stored |
//!
//! A place is height (8 bytes) ‖ index (4 bytes), big-endian, so each index lists in chain
//! order. Ids are 32 raw bytes. Subjects, types and owner ids are visible ASCII, so the `0x00`
//! separator never occurs inside them.

use citychain_kernel::{Height, PublicKey, TxId};

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A transaction's place: height ‖ index, big-endian.
pub fn place(height: Height, index: u32) -> [u8; 12] {
    let mut out = [0; 12];
    out[..8].copy_from_slice(&height.0.to_be_bytes());
    out[8..].copy_from_slice(&index.to_be_bytes());
    out
}

/// Reads a place back from the last 12 bytes of an index key.
pub fn place_of(key: &[u8]) -> Option<(Height, u32)> {
    let tail = key.len().checked_sub(12).map(|start| &key[start..])?;
    let height = u64::from_be_bytes(tail[..8].try_into().ok()?);
    let index = u32::from_be_bytes(tail[8..].try_into().ok()?);
    Some((Height(height), index))
}

/// The upload transaction of a record.
pub fn upload(record: &TxId) -> Vec<u8> {
    join(&[b"li/up/", record.as_bytes()])
}

/// Which record index a search walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordIndex {
    /// By subject.
    Subject,
    /// By record type.
    RecordType,
    /// By owner.
    Owner,
    /// Every record.
    All,
}

impl RecordIndex {
    /// The prefix of the index for `value` (ignored for [`RecordIndex::All`]).
    pub fn prefix(self, value: &str) -> Vec<u8> {
        match self {
            RecordIndex::Subject => join(&[b"li/ix/s/", value.as_bytes(), &[0]]),
            RecordIndex::RecordType => join(&[b"li/ix/t/", value.as_bytes(), &[0]]),
            RecordIndex::Owner => join(&[b"li/ix/o/", value.as_bytes(), &[0]]),
            RecordIndex::All => b"li/ix/a/".to_vec(),
        }
    }

    /// The entry for a record at `height`/`index`.
    pub fn key(self, value: &str, height: Height, index: u32) -> Vec<u8> {
        join(&[&self.prefix(value), &place(height, index)])
    }
}

/// A committed read.
pub fn read(read: &TxId) -> Vec<u8> {
    join(&[b"li/rd/", read.as_bytes()])
}

/// The prefix of a subject's receipts.
pub fn receipts_prefix(subject: &str) -> Vec<u8> {
    join(&[b"li/rs/", subject.as_bytes(), &[0]])
}

/// A subject's receipt at `height`/`index`.
pub fn receipt(subject: &str, height: Height, index: u32) -> Vec<u8> {
    join(&[&receipts_prefix(subject), &place(height, index)])
}

/// A read's inclusion proof.
pub fn proof(read: &TxId) -> Vec<u8> {
    join(&[b"li/pf/", read.as_bytes()])
}

/// The set of reads waiting for release.
pub const PENDING_PREFIX: &[u8] = b"li/pending/";

/// A read waiting for release.
pub fn pending(read: &TxId) -> Vec<u8> {
    join(&[PENDING_PREFIX, read.as_bytes()])
}

/// The token platform's verdict on a read.
pub fn payment(read: &TxId) -> Vec<u8> {
    join(&[b"li/pay/", read.as_bytes()])
}

/// A read's key grant.
pub fn grant(read: &TxId) -> Vec<u8> {
    join(&[b"li/gr/", read.as_bytes()])
}

/// Why a paid read can never be released (its record has no stored payload).
pub fn withheld(read: &TxId) -> Vec<u8> {
    join(&[b"li/wh/", read.as_bytes()])
}

/// That `key` speaks for `subject`.
pub fn binding(subject: &str, key: &PublicKey) -> Vec<u8> {
    join(&[b"li/bind/", subject.as_bytes(), &[0], &key.to_bytes()])
}

/// The last EVENTS sequence consumed.
pub const EVENTS_POSITION: &[u8] = b"li/events";

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_kernel::Hash32;

    #[test]
    fn places_sort_in_chain_order_and_read_back() {
        let a = RecordIndex::Subject.key("citizen:a", Height(2), 7);
        let b = RecordIndex::Subject.key("citizen:a", Height(10), 0);
        assert!(a < b);
        assert_eq!(place_of(&b), Some((Height(10), 0)));
        assert!(a.starts_with(&RecordIndex::Subject.prefix("citizen:a")));
        assert!(!a.starts_with(&RecordIndex::Subject.prefix("citizen:")));
        let id = TxId(Hash32([1; 32]));
        assert_ne!(read(&id), grant(&id));
    }
}
