//! Encryption of department records, kept apart from any I/O so it can be reviewed and tested
//! on its own.
//!
//! A record's payload is sealed once under a fresh random [`RecordKey`]
//! ([`seal_payload`]); the record key itself is then wrapped separately for each party allowed
//! to read it ([`wrap_key`]): a member's X25519 encryption key when a read is granted, or the
//! service's own key so the record key survives restarts. Readers unwrap the record key with
//! their X25519 secret ([`unwrap_key`]) and open the payload ([`open_payload`]).
//!
//! * [`key`] holds [`RecordKey`], 32 random bytes wiped on drop.
//! * [`payload`] seals payloads and documents their byte layout.
//! * [`wrap`] wraps record keys and documents the scheme, its byte layout and the contexts.
//! * [`error`] holds [`SealError`].
//!
//! Every function that draws randomness takes it from the operating system and reports a
//! failure of that source as [`SealError::Randomness`] rather than panicking.

#![warn(missing_docs)]

pub mod error;
pub mod key;
pub mod payload;
pub mod wrap;

pub use error::SealError;
pub use key::{RECORD_KEY_LEN, RecordKey};
pub use payload::{
    NONCE_LEN, PAYLOAD_OVERHEAD, PAYLOAD_VERSION, TAG_LEN, open_payload, seal_payload,
};
pub use wrap::{
    WRAP_KDF_CONTEXT, WRAPPED_CIPHERTEXT_LEN, WRAPPED_KEY_LEN, WRAPPED_KEY_VERSION, WrappedKey,
    custody_context, reader_context, unwrap_key, wrap_key,
};
