//! The kernel's typed errors. Every message names the field or entry and the value or limit
//! involved, so a caller can show it to a user as it is.

use thiserror::Error;

/// A value that could not be decoded from bytes or text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// A fixed-size field had the wrong length.
    #[error("{field} must be {expected} bytes, got {actual}")]
    Length {
        /// The field.
        field: &'static str,
        /// Its required length.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// Text that should be hex was not.
    #[error("{field} is not valid hex: {reason}")]
    Hex {
        /// The field.
        field: &'static str,
        /// What the hex decoder said.
        reason: String,
    },
    /// Bytes that are not a valid protobuf message of the expected type.
    #[error("{what} is not a valid protobuf encoding: {reason}")]
    Protobuf {
        /// The message type.
        what: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// A message decoded, but re-encoding it gives other bytes: it is not in canonical form.
    #[error(
        "{what} is not canonically encoded ({received} bytes received, canonical form is {canonical} bytes)"
    )]
    NonCanonical {
        /// The message type.
        what: &'static str,
        /// Bytes received.
        received: usize,
        /// Bytes of the canonical re-encoding.
        canonical: usize,
    },
    /// A required field was absent.
    #[error("{what}.{field} is missing")]
    Missing {
        /// The message type.
        what: &'static str,
        /// The field.
        field: &'static str,
    },
    /// An identifier broke its syntax rules.
    #[error("{field} {value:?} is invalid: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The value received.
        value: String,
        /// The rule it broke.
        reason: &'static str,
    },
}

/// A key or signature that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The public key bytes are not a point on the curve.
    #[error("public key {key} is not a valid ed25519 point")]
    InvalidKey {
        /// Hex of the key.
        key: String,
    },
    /// The public key has small order, so any signature could be forged for it.
    #[error("public key {key} has small order and is refused")]
    WeakKey {
        /// Hex of the key.
        key: String,
    },
    /// The public key bytes decode to a point but are not its canonical encoding.
    #[error("public key {key} is not the canonical encoding of its point and is refused")]
    NonCanonicalKey {
        /// Hex of the key.
        key: String,
    },
    /// The signature's R component decodes to a point but is not its canonical encoding.
    #[error("signature R component is not the canonical encoding of its point and is refused")]
    NonCanonicalR,
    /// The signature's R component has small order.
    #[error("signature R component has small order and is refused")]
    SmallOrderR,
    /// The signature's S component is not reduced modulo the group order.
    #[error("signature S component is not canonical (not reduced modulo the group order)")]
    NonCanonicalS,
    /// The signature does not match the message and key.
    #[error("signature does not verify for key {key}")]
    Mismatch {
        /// Hex of the key.
        key: String,
    },
    /// One entry of a batch failed; `index` is its position in the batch.
    #[error("signature {index} of the batch is bad: {reason}")]
    BatchEntry {
        /// Position in the batch.
        index: usize,
        /// Why it failed.
        reason: Box<SignatureError>,
    },
    /// A batch whose slices had different lengths.
    #[error("batch has {messages} messages, {signatures} signatures and {keys} keys")]
    BatchShape {
        /// Messages given.
        messages: usize,
        /// Signatures given.
        signatures: usize,
        /// Keys given.
        keys: usize,
    },
}
