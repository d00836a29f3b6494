//! [`RecordKey`]: the symmetric key one record's payload is sealed under.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::SealError;

/// Length of a record key in bytes.
pub const RECORD_KEY_LEN: usize = 32;

/// A 32-byte XChaCha20-Poly1305 key for one record. Wiped from memory when dropped; its
/// `Debug` output never shows the bytes.
///
/// Deliberately not `Copy`: copies made behind the caller's back would escape the wipe.
// No `PartialEq`: comparing keys with `==` would not be constant-time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RecordKey([u8; RECORD_KEY_LEN]);

impl RecordKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, SealError> {
        let mut key = RecordKey([0; RECORD_KEY_LEN]);
        getrandom::fill(&mut key.0).map_err(|err| SealError::Randomness {
            what: "record key",
            reason: err.to_string(),
        })?;
        Ok(key)
    }

    /// A key from bytes the caller already holds (say, just unwrapped).
    pub fn from_bytes(bytes: [u8; RECORD_KEY_LEN]) -> Self {
        RecordKey(bytes)
    }

    /// The key's bytes, borrowed so no unwiped copy is made.
    pub fn as_bytes(&self) -> &[u8; RECORD_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_bytes() {
        let key = RecordKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "RecordKey(<redacted>)");
        assert!(!shown.contains("ab"), "{shown}");
    }

    #[test]
    fn generated_keys_differ() {
        let a = RecordKey::generate().unwrap();
        let b = RecordKey::generate().unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), &[0; 32]);
    }
}
