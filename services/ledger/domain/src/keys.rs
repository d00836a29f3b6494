//! The ledger's key layout. Every key starts with `l/` and a one-letter table; integers are
//! big-endian so byte order is numeric order, and variable-length parts are length-prefixed so
//! no key is a prefix of another's table.
//!
//! | key | value |
//! | --- | --- |
//! | `l/b/` height (8) piece (4) | the block's canonical encoding, in pieces |
//! | `l/k/` height (8) | the block's hash (32) |
//! | `l/h/` hash (32) | height (8) |
//! | `l/t/` tx id (32) | height (8), index (4) |
//! | `l/s/` signer (32) height (8) index (4) | tx id (32) |
//! | `l/j/` len (1) subject height (8) index (4) | tx id (32) |
//! | `l/y/` len (2) type_url height (8) index (4) | tx id (32) |
//! | `l/n/` signer (32) nonce (8) | tx id (32): the (signer, nonce) pair is used |
//! | `l/v/` validators hash (32) | that validator set ([`encode_validators`]) |
//!
//! Outside `l/`: `lt/` tx id (32) → the trace id (16) the transaction was submitted under,
//! for transactions applied from CHAIN with their trace header (operational, not rebuilt by
//! a replay, so kept out of `l/`); `lx/index-version` → [`INDEX_VERSION`] (u32), the
//! version of the indexes above that the stored blocks have been indexed with, so a ledger
//! upgraded to a version with a new index adds it for the blocks it already holds. Also in the same commits: the applied height of the projection `ledger`
//! (`\xff\xffcitychain/meta/applied-height/ledger`, kept by citychain-store's projection
//! runner) and the follower's checkpoint under `\xff\xfecitychain/follow/ledger/`: the last
//! block's header, the transaction count and the governance registry after the last applied
//! block (the layout is in citychain-follower's `checkpoint` module).

use citychain_kernel::{Block, BlockHash, Hash32, Height, MemberId, PublicKey, TxId};
use citychain_kernel::{Validator, ValidatorSet};

/// Where a committed transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// Its block's height.
    pub height: Height,
    /// Its position in the block, from 0.
    pub index: u32,
}

impl TxLocation {
    /// The 12-byte encoding: height (8) then index (4).
    pub fn encode(&self) -> [u8; 12] {
        let mut out = [0; 12];
        out[..8].copy_from_slice(&self.height.0.to_be_bytes());
        out[8..].copy_from_slice(&self.index.to_be_bytes());
        out
    }

    /// Reads [`TxLocation::encode`]'s output; `None` if it is not 12 bytes.
    pub fn decode(bytes: &[u8]) -> Option<TxLocation> {
        let bytes: &[u8; 12] = bytes.try_into().ok()?;
        let height = u64::from_be_bytes(bytes[..8].try_into().ok()?);
        let index = u32::from_be_bytes(bytes[8..].try_into().ok()?);
        Some(TxLocation {
            height: Height(height),
            index,
        })
    }
}

fn key(table: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut out = table.to_vec();
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// The prefix of the block at `height` (its pieces follow).
pub fn block(height: Height) -> Vec<u8> {
    key(BLOCKS, &[&height.0.to_be_bytes()])
}

/// The version of the index layout; raise it when [`index_block`] writes a new index, and
/// the ledger re-indexes its stored blocks once when it starts. Version 2 added `l/y/`.
pub const INDEX_VERSION: u32 = 2;

/// Where the version of the indexes of the stored blocks is kept.
pub const INDEX_VERSION_KEY: &[u8] = b"lx/index-version";

/// The table of stored blocks (pieces under each height).
pub const BLOCKS: &[u8] = b"l/b/";

/// The table of committed transactions by id.
pub const TX_LOCATIONS: &[u8] = b"l/t/";

/// The table of block heights by hash.
pub const HEIGHTS_BY_HASH: &[u8] = b"l/h/";

/// The block hash at `height`.
pub fn hash_by_height(height: Height) -> Vec<u8> {
    key(b"l/k/", &[&height.0.to_be_bytes()])
}

/// The table of block hashes by height.
pub const HASHES_BY_HEIGHT: &[u8] = b"l/k/";

/// The height of the block with `hash`.
pub fn height_by_hash(hash: &BlockHash) -> Vec<u8> {
    key(HEIGHTS_BY_HASH, &[hash.0.as_bytes()])
}

/// Where transaction `id` is.
pub fn tx_location(id: &TxId) -> Vec<u8> {
    key(TX_LOCATIONS, &[id.0.as_bytes()])
}

/// The trace id a committed transaction was submitted under.
pub fn tx_trace(id: &TxId) -> Vec<u8> {
    key(b"lt/", &[id.0.as_bytes()])
}

/// Every transaction of `signer`, oldest first.
pub fn by_signer_prefix(signer: &PublicKey) -> Vec<u8> {
    key(b"l/s/", &[signer.as_bytes()])
}

/// Every transaction declaring `subject`, oldest first. Subjects are at most 128 bytes.
pub fn by_subject_prefix(subject: &str) -> Vec<u8> {
    let len = [subject.len().min(255) as u8];
    key(b"l/j/", &[&len, subject.as_bytes()])
}

/// Every transaction whose body is of `type_url`, oldest first. Type names are at most 256
/// bytes, so their length takes two bytes.
pub fn by_type_prefix(type_url: &str) -> Vec<u8> {
    let len = (type_url.len().min(usize::from(u16::MAX)) as u16).to_be_bytes();
    key(b"l/y/", &[&len, type_url.as_bytes()])
}

/// The (signer, nonce) pair's entry.
pub fn nonce(signer: &PublicKey, nonce: u64) -> Vec<u8> {
    key(b"l/n/", &[signer.as_bytes(), &nonce.to_be_bytes()])
}

/// The validator set whose hash is `hash`.
pub fn validators(hash: &Hash32) -> Vec<u8> {
    key(b"l/v/", &[hash.as_bytes()])
}

/// A validator set as stored: per validator its key (32), the member id's length (1) and
/// the member id.
pub fn encode_validators(set: &ValidatorSet) -> Vec<u8> {
    let mut out = Vec::new();
    for v in set.validators() {
        let id = v.member_id.as_str().as_bytes();
        out.extend_from_slice(v.key.as_bytes());
        out.push(id.len().min(255) as u8);
        out.extend_from_slice(&id[..id.len().min(255)]);
    }
    out
}

/// Reads [`encode_validators`]'s output; `None` if it is damaged.
pub fn decode_validators(mut bytes: &[u8]) -> Option<ValidatorSet> {
    let mut validators = Vec::new();
    while !bytes.is_empty() {
        let key: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
        let len = usize::from(*bytes.get(32)?);
        let id = std::str::from_utf8(bytes.get(33..33 + len)?).ok()?;
        validators.push(Validator {
            member_id: MemberId::new(id).ok()?,
            key: PublicKey::from_bytes(&key).ok()?,
        });
        bytes = &bytes[33 + len..];
    }
    Some(ValidatorSet::new(validators))
}

/// One write of the indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// Every index entry of `block` (not the block itself): its hash both ways, and each
/// transaction by id, signer, subject, body type and (signer, nonce).
pub fn index_block(block: &Block) -> Vec<IndexEntry> {
    let height = block.header.height;
    let hash = block.hash();
    let mut out = vec![
        IndexEntry {
            key: hash_by_height(height),
            value: hash.0.as_bytes().to_vec(),
        },
        IndexEntry {
            key: height_by_hash(&hash),
            value: height.0.to_be_bytes().to_vec(),
        },
    ];
    for (index, tx) in block.txs.iter().enumerate() {
        let location = TxLocation {
            height,
            index: index as u32,
        }
        .encode();
        let id = tx.id().0.as_bytes().to_vec();
        out.push(IndexEntry {
            key: tx_location(&tx.id()),
            value: location.to_vec(),
        });
        let mut signer = by_signer_prefix(tx.signer());
        signer.extend_from_slice(&location);
        out.push(IndexEntry {
            key: signer,
            value: id.clone(),
        });
        for subject in &tx.body().subjects {
            let mut by_subject = by_subject_prefix(subject);
            by_subject.extend_from_slice(&location);
            out.push(IndexEntry {
                key: by_subject,
                value: id.clone(),
            });
        }
        let mut by_type = by_type_prefix(&tx.body().type_url);
        by_type.extend_from_slice(&location);
        out.push(IndexEntry {
            key: by_type,
            value: id.clone(),
        });
        out.push(IndexEntry {
            key: nonce(tx.signer(), tx.nonce()),
            value: id,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_sort_by_height_then_index() {
        let a = TxLocation {
            height: Height(2),
            index: 300,
        };
        let b = TxLocation {
            height: Height(3),
            index: 0,
        };
        assert_eq!(TxLocation::decode(&a.encode()), Some(a));
        assert!(a.encode() < b.encode());
        assert_eq!(TxLocation::decode(&[0; 11]), None);
    }

    #[test]
    fn validator_sets_round_trip() {
        let set = ValidatorSet::new(
            (1..=4u8)
                .map(|i| Validator {
                    member_id: MemberId::new(format!("dept.{i}")).unwrap(),
                    key: citychain_kernel::SigningKey::from_seed(&[i; 32]).public_key(),
                })
                .collect(),
        );
        let back = decode_validators(&encode_validators(&set)).unwrap();
        assert_eq!(back, set);
        assert_eq!(decode_validators(&encode_validators(&set)[..40]), None);
    }

    #[test]
    fn a_subject_is_never_a_prefix_of_another_subjects_entries() {
        let short = by_subject_prefix("citizen:1");
        let long = by_subject_prefix("citizen:12");
        assert!(!long.starts_with(&short));
    }

    #[test]
    fn a_type_is_never_a_prefix_of_another_types_entries() {
        let short = by_type_prefix("citychain.licence.v1.Read");
        let long = by_type_prefix("citychain.licence.v1.ReadQuery");
        assert!(!long.starts_with(&short));
        // 256 bytes fit the two-byte length.
        let longest = "t".repeat(256);
        assert_eq!(&by_type_prefix(&longest)[4..6], &[1, 0]);
    }
}
