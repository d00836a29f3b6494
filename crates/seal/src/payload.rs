//! Sealing a record's payload under its [`RecordKey`] with XChaCha20-Poly1305.
//!
//! # Layout (version 1)
//!
//! ```text
//! offset  length  field
//! 0       1       version, 0x01
//! 1       24      nonce, random per seal
//! 25      n + 16  ciphertext of the n-byte plaintext, followed by the 16-byte Poly1305 tag
//! ```
//!
//! The associated data is `version || record_id` (33 bytes): the record id binds the
//! ciphertext to its record, so a sealed payload copied under another record's id does not
//! open, and the version byte is covered so it cannot be altered either.
//!
//! The 24-byte nonce is drawn at random: with XChaCha20 that is safe for any number of seals
//! under one key, so a retried seal never risks reusing a nonce.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::error::SealError;
use crate::key::RecordKey;

/// The layout version [`seal_payload`] writes and [`open_payload`] reads.
pub const PAYLOAD_VERSION: u8 = 1;
/// Length of the XChaCha20 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed payload adds to its plaintext: version, nonce and tag.
pub const PAYLOAD_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

const WHAT: &str = "record payload";

/// Seals `plaintext` for the record `record_id` under `key`, with a fresh random nonce.
/// Returns the bytes laid out as the module documentation describes.
pub fn seal_payload(
    key: &RecordKey,
    record_id: &[u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|err| SealError::Randomness {
        what: "payload nonce",
        reason: err.to_string(),
    })?;
    Ok(seal_with_nonce(key, record_id, plaintext, &nonce))
}

/// [`seal_payload`] with the nonce given, so tests can pin the output.
pub(crate) fn seal_with_nonce(
    key: &RecordKey,
    record_id: &[u8; 32],
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.as_bytes()));
    let aad = associated_data(record_id);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // Encryption only fails for plaintexts beyond 2^38 bytes, which no record reaches
        // (a Vec that large could not have been allocated to hold the result anyway).
        .expect("XChaCha20-Poly1305 encrypts any in-memory plaintext");
    let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    sealed.push(PAYLOAD_VERSION);
    sealed.extend_from_slice(nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// Opens a payload sealed by [`seal_payload`] for `record_id` under `key`.
///
/// Fails with [`SealError::TooShort`] when the bytes cannot hold the layout,
/// [`SealError::UnknownVersion`] for another layout version, and
/// [`SealError::Authentication`] when the key or record id is wrong or any byte was altered.
pub fn open_payload(
    key: &RecordKey,
    record_id: &[u8; 32],
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    if sealed.len() < PAYLOAD_OVERHEAD {
        return Err(SealError::TooShort {
            what: WHAT,
            minimum: PAYLOAD_OVERHEAD,
            actual: sealed.len(),
        });
    }
    let (version, rest) = (sealed[0], &sealed[1..]);
    if version != PAYLOAD_VERSION {
        return Err(SealError::UnknownVersion {
            what: WHAT,
            found: version,
            supported: PAYLOAD_VERSION,
        });
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.as_bytes()));
    let aad = associated_data(record_id);
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Authentication {
            what: WHAT,
            bound_to: "record id",
        })
}

fn associated_data(record_id: &[u8; 32]) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = PAYLOAD_VERSION;
    aad[1..].copy_from_slice(record_id);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_version_nonce_ciphertext_tag() {
        let key = RecordKey::from_bytes([1; 32]);
        let nonce = [7u8; NONCE_LEN];
        let sealed = seal_with_nonce(&key, &[2; 32], b"hello", &nonce);
        assert_eq!(sealed.len(), 5 + PAYLOAD_OVERHEAD);
        assert_eq!(sealed[0], PAYLOAD_VERSION);
        assert_eq!(&sealed[1..25], &nonce);
        assert_eq!(open_payload(&key, &[2; 32], &sealed).unwrap(), b"hello");
    }

    #[test]
    fn the_same_plaintext_seals_differently_each_time() {
        let key = RecordKey::from_bytes([1; 32]);
        let a = seal_payload(&key, &[2; 32], b"same").unwrap();
        let b = seal_payload(&key, &[2; 32], b"same").unwrap();
        assert_ne!(a, b, "nonces must differ");
    }
}
