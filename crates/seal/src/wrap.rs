//! Wrapping a [`RecordKey`] for the holder of an X25519 encryption key.
//!
//! # Scheme
//!
//! To wrap for recipient public key `R` under context `ctx`:
//!
//! 1. draw an ephemeral X25519 secret `e` and compute `E = e·G` and `shared = X25519(e, R)`;
//!    refuse an all-zero `shared` (`R` is a low-order point);
//! 2. derive the wrap key `k = blake3::derive_key(WRAP_KDF_CONTEXT, shared || E || R || ctx)`;
//! 3. encrypt the 32-byte record key with XChaCha20-Poly1305 under `k`, a random 24-byte
//!    nonce and `ctx` as associated data.
//!
//! The recipient recomputes `shared = X25519(r, E)` with its secret `r` and repeats steps 2
//! and 3 in reverse. Hashing both public keys into `k` ties the wrap to this exact pair, and
//! the context (a read transaction, or the service's own custody of a record) stops a wrap
//! made for one purpose from being accepted for another. Only `ctx` is variable-length and it
//! comes last, so the KDF input is unambiguous.
//!
//! # Encoded layout (version 1, [`WRAPPED_KEY_LEN`] = 105 bytes)
//!
//! ```text
//! offset  length  field
//! 0       1       version, 0x01
//! 1       32      ephemeral X25519 public key E
//! 33      24      nonce
//! 57      48      ciphertext: the 32-byte record key followed by the 16-byte Poly1305 tag
//! ```
//!
//! # Contexts
//!
//! [`reader_context`] and [`custody_context`] build the two contexts the services use. They
//! start with different labels, so a wrap made for a reader never unwraps as a custody wrap
//! and the reverse, even for the same recipient key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use citychain_kernel::{EncryptionPublicKey, EncryptionSecret};
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::error::SealError;
use crate::key::{RECORD_KEY_LEN, RecordKey};
use crate::payload::{NONCE_LEN, TAG_LEN};

/// The blake3 key-derivation context string; changing it changes every wrap key.
pub const WRAP_KDF_CONTEXT: &str = "citychain 2026 record key wrap v1";
/// The layout version [`WrappedKey::encode`] writes and [`WrappedKey::decode`] reads.
pub const WRAPPED_KEY_VERSION: u8 = 1;
/// Length of the wrapped record key's ciphertext: the key plus its tag.
pub const WRAPPED_CIPHERTEXT_LEN: usize = RECORD_KEY_LEN + TAG_LEN;
/// Length of an encoded [`WrappedKey`].
pub const WRAPPED_KEY_LEN: usize = 1 + 32 + NONCE_LEN + WRAPPED_CIPHERTEXT_LEN;

const WHAT: &str = "wrapped record key";
const READER_LABEL: &[u8] = b"citychain/wrap/reader/v1\0";
const CUSTODY_LABEL: &[u8] = b"citychain/wrap/custody/v1\0";

/// A record key wrapped for one recipient. Holds no secret: only the recipient's X25519
/// secret can recover the record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The ephemeral X25519 public key the wrap was made with.
    pub ephemeral: [u8; 32],
    /// The XChaCha20-Poly1305 nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The encrypted record key and its tag ([`WRAPPED_CIPHERTEXT_LEN`] bytes when well
    /// formed).
    pub ciphertext: Vec<u8>,
}

impl WrappedKey {
    /// The bytes in the layout the module documentation describes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 + 32 + NONCE_LEN + self.ciphertext.len());
        bytes.push(WRAPPED_KEY_VERSION);
        bytes.extend_from_slice(&self.ephemeral);
        bytes.extend_from_slice(&self.nonce);
        bytes.extend_from_slice(&self.ciphertext);
        bytes
    }

    /// Reads the layout back. The version byte is checked before the length, so bytes of a
    /// later layout are reported as [`SealError::UnknownVersion`].
    pub fn decode(bytes: &[u8]) -> Result<Self, SealError> {
        let Some(&version) = bytes.first() else {
            return Err(SealError::TooShort {
                what: WHAT,
                minimum: WRAPPED_KEY_LEN,
                actual: 0,
            });
        };
        if version != WRAPPED_KEY_VERSION {
            return Err(SealError::UnknownVersion {
                what: WHAT,
                found: version,
                supported: WRAPPED_KEY_VERSION,
            });
        }
        if bytes.len() != WRAPPED_KEY_LEN {
            return Err(SealError::Length {
                what: WHAT,
                expected: WRAPPED_KEY_LEN,
                actual: bytes.len(),
            });
        }
        let (ephemeral, rest) = bytes[1..].split_at(32);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        Ok(WrappedKey {
            ephemeral: ephemeral.try_into().expect("split at 32"),
            nonce: nonce.try_into().expect("split at NONCE_LEN"),
            ciphertext: ciphertext.to_vec(),
        })
    }
}

/// The context for handing a record key to a reader: binds the wrap to the read transaction
/// that granted it and to the record read.
pub fn reader_context(read_tx_id: &[u8; 32], record_id: &[u8; 32]) -> Vec<u8> {
    [READER_LABEL, read_tx_id, record_id].concat()
}

/// The context under which a service keeps a record key wrapped for its own X25519 key, so
/// the key survives restarts: binds the wrap to the record.
pub fn custody_context(record_id: &[u8; 32]) -> Vec<u8> {
    [CUSTODY_LABEL, record_id].concat()
}

/// Wraps `record_key` for the holder of `recipient`'s secret, bound to `context` (see the
/// module documentation). Fails with [`SealError::LowOrderPoint`] when `recipient` is a
/// low-order point, [`SealError::NonCanonicalKey`] when it is not encoded as its owner's
/// secret would encode it, and [`SealError::Randomness`] when the OS random source fails.
pub fn wrap_key(
    record_key: &RecordKey,
    recipient: &EncryptionPublicKey,
    context: &[u8],
) -> Result<WrappedKey, SealError> {
    let mut ephemeral_seed = Zeroizing::new([0u8; 32]);
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(ephemeral_seed.as_mut()).map_err(|err| SealError::Randomness {
        what: "ephemeral X25519 secret",
        reason: err.to_string(),
    })?;
    getrandom::fill(&mut nonce).map_err(|err| SealError::Randomness {
        what: "wrap nonce",
        reason: err.to_string(),
    })?;
    wrap_with(record_key, recipient, context, &ephemeral_seed, &nonce)
}

/// [`wrap_key`] with the ephemeral secret and nonce given, so tests can pin them.
pub(crate) fn wrap_with(
    record_key: &RecordKey,
    recipient: &EncryptionPublicKey,
    context: &[u8],
    ephemeral_seed: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
) -> Result<WrappedKey, SealError> {
    // The recipient hashes its public key as its secret computes it, which is always the
    // canonical encoding; a wrap hashing another encoding of the same point would never
    // unwrap, so refuse it here rather than store an unreadable key.
    if !is_canonical_u(&recipient.0) {
        return Err(SealError::NonCanonicalKey {
            public: hex::encode(recipient.0),
        });
    }
    let ephemeral_secret = StaticSecret::from(*ephemeral_seed);
    let ephemeral = PublicKey::from(&ephemeral_secret).to_bytes();
    let shared = ephemeral_secret.diffie_hellman(&PublicKey::from(recipient.0));
    let wrap_key = derive_wrap_key(
        &shared,
        &ephemeral,
        &recipient.0,
        context,
        ("recipient", &recipient.0),
    )?;
    let ciphertext = XChaCha20Poly1305::new(Key::from_slice(wrap_key.as_ref()))
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: record_key.as_bytes(),
                aad: context,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts a 32-byte key");
    Ok(WrappedKey {
        ephemeral,
        nonce: *nonce,
        ciphertext,
    })
}

/// Recovers the record key from `wrapped` with the recipient's secret, under the `context`
/// it was wrapped with.
///
/// Fails with [`SealError::LowOrderPoint`] when the ephemeral key is a low-order point,
/// [`SealError::Length`] when the ciphertext is not [`WRAPPED_CIPHERTEXT_LEN`] bytes, and
/// [`SealError::Authentication`] when the secret or context is wrong or any byte was altered.
pub fn unwrap_key(
    wrapped: &WrappedKey,
    recipient_secret: &EncryptionSecret,
    context: &[u8],
) -> Result<RecordKey, SealError> {
    if wrapped.ciphertext.len() != WRAPPED_CIPHERTEXT_LEN {
        return Err(SealError::Length {
            what: "wrapped record key ciphertext",
            expected: WRAPPED_CIPHERTEXT_LEN,
            actual: wrapped.ciphertext.len(),
        });
    }
    // The kernel hands out a copy of the secret's bytes; wipe that copy once the x25519
    // secret (itself wiped on drop) is built.
    let secret_bytes = Zeroizing::new(recipient_secret.to_bytes());
    let secret = StaticSecret::from(*secret_bytes);
    let recipient = PublicKey::from(&secret).to_bytes();
    let shared = secret.diffie_hellman(&PublicKey::from(wrapped.ephemeral));
    let wrap_key = derive_wrap_key(
        &shared,
        &wrapped.ephemeral,
        &recipient,
        context,
        ("ephemeral", &wrapped.ephemeral),
    )?;
    let plaintext = Zeroizing::new(
        XChaCha20Poly1305::new(Key::from_slice(wrap_key.as_ref()))
            .decrypt(
                XNonce::from_slice(&wrapped.nonce),
                Payload {
                    msg: &wrapped.ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Authentication {
                what: WHAT,
                bound_to: "wrap context",
            })?,
    );
    let mut bytes: [u8; RECORD_KEY_LEN] = plaintext
        .as_slice()
        .try_into()
        .expect("the ciphertext length was checked, so the plaintext is 32 bytes");
    let key = RecordKey::from_bytes(bytes);
    bytes.zeroize();
    Ok(key)
}

/// Whether `u` is the canonical encoding of a Montgomery u-coordinate: below 2^255 - 19 (so
/// also with the top bit clear). X25519 public keys computed from a secret always are.
fn is_canonical_u(u: &[u8; 32]) -> bool {
    // Compare the little-endian number with p = 2^255 - 19 = 0x7fff…ffed from the most
    // significant byte down.
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    for (a, b) in u.iter().rev().zip(p.iter().rev()) {
        if a != b {
            return a < b;
        }
    }
    false
}

/// Step 2 of the scheme. `peer` names the public key the other side contributed (the
/// recipient's when wrapping, the ephemeral one when unwrapping), to blame when `shared` is
/// all zero.
fn derive_wrap_key(
    shared: &SharedSecret,
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
    context: &[u8],
    peer: (&'static str, &[u8; 32]),
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    if !shared.was_contributory() {
        return Err(SealError::LowOrderPoint {
            role: peer.0,
            public: hex::encode(peer.1),
        });
    }
    let mut hasher = blake3::Hasher::new_derive_key(WRAP_KDF_CONTEXT);
    hasher.update(shared.as_bytes());
    hasher.update(ephemeral);
    hasher.update(recipient);
    hasher.update(context);
    let key = Zeroizing::new(*hasher.finalize().as_bytes());
    // The hasher's state was computed from the shared secret.
    hasher.zeroize();
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(n: u8) -> EncryptionSecret {
        EncryptionSecret::from_seed(&[n; 32])
    }

    #[test]
    fn encoded_layout_is_fixed() {
        let key = RecordKey::from_bytes([9; 32]);
        let wrapped = wrap_with(&key, &secret(1).public_key(), b"ctx", &[3; 32], &[4; 24]).unwrap();
        let bytes = wrapped.encode();
        assert_eq!(bytes.len(), WRAPPED_KEY_LEN);
        assert_eq!(bytes.len(), 105);
        assert_eq!(bytes[0], WRAPPED_KEY_VERSION);
        assert_eq!(&bytes[1..33], &wrapped.ephemeral);
        assert_eq!(&bytes[33..57], &[4; 24]);
        assert_eq!(&bytes[57..], wrapped.ciphertext.as_slice());
        assert_eq!(WrappedKey::decode(&bytes).unwrap(), wrapped);
    }

    #[test]
    fn the_same_inputs_give_the_same_wrap() {
        // Pins determinism given the randomness, so the KDF input order cannot drift silently.
        let key = RecordKey::from_bytes([9; 32]);
        let recipient = secret(1).public_key();
        let a = wrap_with(&key, &recipient, b"ctx", &[3; 32], &[4; 24]).unwrap();
        let b = wrap_with(&key, &recipient, b"ctx", &[3; 32], &[4; 24]).unwrap();
        assert_eq!(a, b);
        let c = wrap_with(&key, &recipient, b"ctx2", &[3; 32], &[4; 24]).unwrap();
        assert_ne!(a.ciphertext, c.ciphertext);
    }

    #[test]
    fn the_bit_x25519_ignores_still_breaks_the_wrap() {
        // X25519 masks the top bit of a public key, so flipping it leaves the shared secret
        // as it was; the wrap must still fail because the encoded ephemeral key is hashed
        // into the wrap key.
        let reader = secret(1);
        let key = RecordKey::from_bytes([9; 32]);
        let mut wrapped =
            wrap_with(&key, &reader.public_key(), b"ctx", &[3; 32], &[4; 24]).unwrap();
        let mut flipped = wrapped.ephemeral;
        flipped[31] ^= 0x80;
        let r = StaticSecret::from(reader.to_bytes());
        assert_eq!(
            r.diffie_hellman(&PublicKey::from(wrapped.ephemeral))
                .to_bytes(),
            r.diffie_hellman(&PublicKey::from(flipped)).to_bytes(),
        );
        wrapped.ephemeral = flipped;
        assert!(matches!(
            unwrap_key(&wrapped, &reader, b"ctx"),
            Err(SealError::Authentication { .. })
        ));
    }

    #[test]
    fn canonical_u_boundary() {
        let mut p_minus_one = [0xffu8; 32];
        p_minus_one[0] = 0xec;
        p_minus_one[31] = 0x7f;
        assert!(is_canonical_u(&p_minus_one));
        let mut p = p_minus_one;
        p[0] = 0xed;
        assert!(!is_canonical_u(&p));
        let mut top_bit = [0u8; 32];
        top_bit[31] = 0x80;
        assert!(!is_canonical_u(&top_bit));
        for n in 0..=255 {
            assert!(is_canonical_u(&secret(n).public_key().0), "seed {n}");
        }
    }

    #[test]
    fn reader_and_custody_contexts_never_coincide() {
        let id = [5u8; 32];
        assert_ne!(reader_context(&id, &id), custody_context(&id));
        assert!(!reader_context(&id, &id).starts_with(CUSTODY_LABEL));
        assert!(!custody_context(&id).starts_with(READER_LABEL));
    }
}
