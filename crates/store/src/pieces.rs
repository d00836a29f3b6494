//! Values larger than one store value (a block of several megabytes against FoundationDB's
//! 100 kB) kept as numbered pieces under a prefix, `prefix || piece number (4, big-endian)`,
//! and sealed: the key `prefix || ff ff ff ff` holds the value's length (8, big-endian), its
//! piece count (4) and its BLAKE3 hash (32).
//!
//! Pieces are written and read inside the caller's transaction, so a large value appears or
//! disappears atomically with everything else the transaction writes. A read checks the
//! pieces against the seal and refuses a value whose bytes, pieces or seal changed after they
//! were written ([`StoreError::Corruption`] naming the prefix): a damaged disk is reported,
//! never served. A value written before seals existed (no seal key) is read unchecked and
//! sealed the next time it is written.

use crate::error::StoreError;
use crate::scan::Scan;
use crate::traits::Transaction;

/// The largest piece stored under one key.
pub const PIECE_SIZE: usize = 64 * 1024;

/// The piece number of the seal; no value has that many pieces.
const SEAL: u32 = u32::MAX;

const SEAL_LEN: usize = 8 + 4 + 32;

fn piece_key(prefix: &[u8], piece: u32) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&piece.to_be_bytes());
    key
}

fn seal(value: &[u8], pieces: u32) -> [u8; SEAL_LEN] {
    let mut out = [0u8; SEAL_LEN];
    out[..8].copy_from_slice(&(value.len() as u64).to_be_bytes());
    out[8..12].copy_from_slice(&pieces.to_be_bytes());
    out[12..].copy_from_slice(blake3::hash(value).as_bytes());
    out
}

/// Writes `value` in pieces under `prefix`, with its seal, replacing any value stored there
/// before. The prefix must not be a prefix of another value's prefix (give them a fixed
/// length).
pub async fn put_pieces<T: Transaction>(
    txn: &mut T,
    prefix: &[u8],
    value: &[u8],
) -> Result<(), StoreError> {
    for (key, _) in txn.scan(&Scan::prefix(prefix)).await? {
        txn.delete(&key)?;
    }
    let mut pieces = 0u32;
    if value.is_empty() {
        txn.put(&piece_key(prefix, 0), &[])?;
        pieces = 1;
    }
    for (index, piece) in value.chunks(PIECE_SIZE).enumerate() {
        txn.put(&piece_key(prefix, index as u32), piece)?;
        pieces = index as u32 + 1;
    }
    txn.put(&piece_key(prefix, SEAL), &seal(value, pieces))
}

/// Reads the value stored in pieces under `prefix`, if any, checked against its seal.
pub async fn read_pieces<T: Transaction>(
    txn: &mut T,
    prefix: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut pieces = txn.scan(&Scan::prefix(prefix)).await?;
    if pieces.is_empty() {
        return Ok(None);
    }
    let damaged = |what: String| {
        StoreError::Corruption(format!(
            "the value stored under {} is damaged: {what}",
            hex(prefix)
        ))
    };
    let sealed = pieces
        .last()
        .is_some_and(|(key, _)| key.as_slice() == piece_key(prefix, SEAL).as_slice());
    let stored_seal = if sealed {
        pieces.pop().map(|(_, v)| v)
    } else {
        None
    };
    let count = pieces.len() as u32;
    let mut value = Vec::with_capacity(pieces.iter().map(|(_, v)| v.len()).sum());
    for (expected, (key, piece)) in pieces.into_iter().enumerate() {
        if key != piece_key(prefix, expected as u32) {
            return Err(damaged(format!(
                "piece {expected} is missing (found key {})",
                hex(&key)
            )));
        }
        value.extend_from_slice(&piece);
    }
    if let Some(stored) = stored_seal
        && stored.as_slice() != seal(&value, count).as_slice()
    {
        return Err(damaged(format!(
            "its {count} pieces ({} bytes) do not match the seal written with them",
            value.len()
        )));
    }
    Ok(Some(value))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedStore;
    use crate::traits::Store;

    const PREFIX: &[u8] = b"v/\x00\x01";

    async fn stored(value: &[u8]) -> EmbeddedStore {
        let store = EmbeddedStore::in_memory().await.unwrap();
        let mut txn = store.begin().await.unwrap();
        put_pieces(&mut txn, PREFIX, value).await.unwrap();
        txn.commit().await.unwrap();
        store
    }

    async fn read(store: &EmbeddedStore) -> Result<Option<Vec<u8>>, StoreError> {
        let mut txn = store.begin().await.unwrap();
        read_pieces(&mut txn, PREFIX).await
    }

    /// Overwrites the raw value under `key`, as a damaged disk would.
    async fn overwrite(store: &EmbeddedStore, key: &[u8], value: Option<&[u8]>) {
        let mut txn = store.begin().await.unwrap();
        match value {
            Some(v) => txn.put(key, v).unwrap(),
            None => txn.delete(key).unwrap(),
        }
        txn.commit().await.unwrap();
    }

    fn value() -> Vec<u8> {
        (0..PIECE_SIZE * 3 + 17).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn a_value_larger_than_a_piece_round_trips_and_replaces_a_longer_one() {
        let store = EmbeddedStore::in_memory().await.unwrap();
        let value = value();
        let mut txn = store.begin().await.unwrap();
        put_pieces(&mut txn, PREFIX, &[9; PIECE_SIZE * 5])
            .await
            .unwrap();
        put_pieces(&mut txn, PREFIX, &value).await.unwrap();
        put_pieces(&mut txn, b"v/\x00\x02", b"").await.unwrap();
        txn.commit().await.unwrap();

        let mut txn = store.begin().await.unwrap();
        assert_eq!(read_pieces(&mut txn, PREFIX).await.unwrap(), Some(value));
        assert_eq!(
            read_pieces(&mut txn, b"v/\x00\x02").await.unwrap(),
            Some(vec![])
        );
        assert_eq!(read_pieces(&mut txn, b"v/\x00\x03").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_flipped_bit_in_any_piece_or_in_the_seal_is_refused_naming_the_prefix() {
        let value = value();
        let store = stored(&value).await;
        for (piece, offset) in [(0u32, 0usize), (1, 4_000), (3, 16), (SEAL, 3), (SEAL, 40)] {
            let key = piece_key(PREFIX, piece);
            let mut txn = store.begin().await.unwrap();
            let original = txn.get(&key).await.unwrap().unwrap();
            drop(txn);
            let mut damaged = original.clone();
            damaged[offset] ^= 0x10;
            overwrite(&store, &key, Some(&damaged)).await;
            let err = read(&store).await.unwrap_err();
            assert!(
                matches!(&err, StoreError::Corruption(m) if m.contains("762f0001")),
                "piece {piece} byte {offset}: {err}"
            );
            overwrite(&store, &key, Some(&original)).await;
            assert_eq!(read(&store).await.unwrap(), Some(value.clone()));
        }
    }

    #[tokio::test]
    async fn a_missing_or_added_piece_is_refused() {
        let value = value();
        let store = stored(&value).await;
        overwrite(&store, &piece_key(PREFIX, 1), None).await;
        let err = read(&store).await.unwrap_err();
        assert!(err.to_string().contains("piece 1 is missing"), "{err}");

        let store = stored(&value).await;
        overwrite(&store, &piece_key(PREFIX, 4), Some(b"extra")).await;
        let err = read(&store).await.unwrap_err();
        assert!(err.to_string().contains("do not match the seal"), "{err}");

        // Cut at a piece boundary: the last piece gone and nothing else changed.
        let store = stored(&value).await;
        overwrite(&store, &piece_key(PREFIX, 3), None).await;
        assert!(read(&store).await.is_err());
    }

    #[tokio::test]
    async fn a_value_written_without_a_seal_is_still_read() {
        let store = EmbeddedStore::in_memory().await.unwrap();
        overwrite(&store, &piece_key(PREFIX, 0), Some(b"before seals")).await;
        assert_eq!(read(&store).await.unwrap(), Some(b"before seals".to_vec()));
    }
}
