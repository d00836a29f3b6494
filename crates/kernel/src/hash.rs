//! 32-byte blake3 digests and the domain-separated hashing every other module uses.
//!
//! Every hash the chain relies on is `blake3(domain || 0x00 || bytes)` with a distinct domain
//! string, so a transaction id can never be confused with a block hash or a Merkle node.

use std::fmt;
use std::str::FromStr;

use crate::error::DecodeError;

/// A 32-byte blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The all-zero digest (the previous-hash of the first block).
    pub const ZERO: Hash32 = Hash32([0; 32]);

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads a digest from exactly 32 bytes; `field` names the input in the error.
    pub fn from_slice(field: &'static str, bytes: &[u8]) -> Result<Self, DecodeError> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| DecodeError::Length {
            field,
            expected: 32,
            actual: bytes.len(),
        })?;
        Ok(Hash32(array))
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({})", self.to_hex())
    }
}

/// Decodes hex text into bytes; `field` names the input in the error.
pub(crate) fn hex_bytes(field: &'static str, text: &str) -> Result<Vec<u8>, DecodeError> {
    hex::decode(text).map_err(|e| DecodeError::Hex {
        field,
        reason: e.to_string(),
    })
}

impl FromStr for Hash32 {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash32::from_slice("hash", &hex_bytes("hash", s)?)
    }
}

/// Serialises a type as its `Display` text and deserialises it with `FromStr`, so keys and
/// hashes read as hex in JSON and TOML.
macro_rules! serde_as_text {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_as_text;

serde_as_text!(Hash32);

/// The hashing domains of the chain. Each is hashed as its ASCII name followed by a zero byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// What a transaction's signature covers, and so its id.
    Transaction,
    /// A block header, giving the block hash.
    BlockHeader,
    /// A validator's precommit for a block.
    Precommit,
    /// The ordered validator set of a height.
    Validators,
    /// The genesis document.
    Genesis,
    /// A consensus vote other than a precommit for a block (prevotes, nil precommits).
    Vote,
    /// A consensus proposal.
    Proposal,
    /// Any other consensus message a validator signs (e.g. sync requests and replies).
    ConsensusMessage,
    /// A service's signed event ([`crate::event::SignedEvent`]).
    Event,
}

impl Domain {
    /// The domain's label.
    pub fn label(self) -> &'static [u8] {
        match self {
            Domain::Transaction => b"citychain/tx/v1",
            Domain::BlockHeader => b"citychain/block-header/v1",
            Domain::Precommit => b"citychain/precommit/v1",
            Domain::Validators => b"citychain/validators/v1",
            Domain::Genesis => b"citychain/genesis/v1",
            Domain::Vote => b"citychain/vote/v1",
            Domain::Proposal => b"citychain/proposal/v1",
            Domain::ConsensusMessage => b"citychain/consensus-message/v1",
            Domain::Event => b"citychain/event/v1",
        }
    }

    /// `label || 0x00`, the prefix put in front of the bytes of this domain.
    pub fn prefix(self) -> Vec<u8> {
        let mut out = self.label().to_vec();
        out.push(0);
        out
    }
}

/// `blake3(domain prefix || bytes)`.
pub fn domain_hash(domain: Domain, bytes: &[u8]) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(domain.label());
    hasher.update(&[0]);
    hasher.update(bytes);
    Hash32(*hasher.finalize().as_bytes())
}

/// `blake3(bytes)` for inputs that already begin with a domain prefix.
pub fn domain_hash_raw(prefixed: &[u8]) -> Hash32 {
    Hash32(*blake3::hash(prefixed).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_equal_inputs() {
        let a = domain_hash(Domain::Transaction, b"same");
        let b = domain_hash(Domain::BlockHeader, b"same");
        assert_ne!(a, b);
    }

    #[test]
    fn hex_round_trips_and_rejects_wrong_length() {
        let h = domain_hash(Domain::Genesis, b"x");
        assert_eq!(h.to_hex().parse::<Hash32>().unwrap(), h);
        let err = "abcd".parse::<Hash32>().unwrap_err();
        assert!(err.to_string().contains("32"), "{err}");
    }
}
