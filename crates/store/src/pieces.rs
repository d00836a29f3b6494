//! Values larger than one store value (a block of several megabytes against FoundationDB's
//! 100 kB) kept as numbered pieces under a prefix: `prefix || piece number (4, big-endian)`.
//!
//! Pieces are written and read inside the caller's transaction, so a large value appears or
//! disappears atomically with everything else the transaction writes.

use crate::error::StoreError;
use crate::scan::Scan;
use crate::traits::Transaction;

/// The largest piece stored under one key.
pub const PIECE_SIZE: usize = 64 * 1024;

fn piece_key(prefix: &[u8], piece: u32) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&piece.to_be_bytes());
    key
}

/// Writes `value` in pieces under `prefix`, replacing any value stored there before. The
/// prefix must not be a prefix of another value's prefix (give them a fixed length).
pub async fn put_pieces<T: Transaction>(
    txn: &mut T,
    prefix: &[u8],
    value: &[u8],
) -> Result<(), StoreError> {
    for (key, _) in txn.scan(&Scan::prefix(prefix)).await? {
        txn.delete(&key)?;
    }
    if value.is_empty() {
        return txn.put(&piece_key(prefix, 0), &[]);
    }
    for (index, piece) in value.chunks(PIECE_SIZE).enumerate() {
        txn.put(&piece_key(prefix, index as u32), piece)?;
    }
    Ok(())
}

/// Reads the value stored in pieces under `prefix`, if any.
pub async fn read_pieces<T: Transaction>(
    txn: &mut T,
    prefix: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let pieces = txn.scan(&Scan::prefix(prefix)).await?;
    if pieces.is_empty() {
        return Ok(None);
    }
    Ok(Some(pieces.into_iter().flat_map(|(_, v)| v).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedStore;
    use crate::traits::Store;

    #[tokio::test]
    async fn a_value_larger_than_a_piece_round_trips_and_replaces_a_longer_one() {
        let store = EmbeddedStore::in_memory().await.unwrap();
        let value: Vec<u8> = (0..PIECE_SIZE * 3 + 17).map(|i| (i % 251) as u8).collect();
        let mut txn = store.begin().await.unwrap();
        put_pieces(&mut txn, b"v/\x00\x01", &[9; PIECE_SIZE * 5])
            .await
            .unwrap();
        put_pieces(&mut txn, b"v/\x00\x01", &value).await.unwrap();
        put_pieces(&mut txn, b"v/\x00\x02", b"").await.unwrap();
        txn.commit().await.unwrap();

        let mut txn = store.begin().await.unwrap();
        assert_eq!(
            read_pieces(&mut txn, b"v/\x00\x01").await.unwrap(),
            Some(value)
        );
        assert_eq!(
            read_pieces(&mut txn, b"v/\x00\x02").await.unwrap(),
            Some(vec![])
        );
        assert_eq!(read_pieces(&mut txn, b"v/\x00\x03").await.unwrap(), None);
    }
}
