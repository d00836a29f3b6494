//! [`SealError`], the crate's one error type. Each variant says which operation failed and,
//! where it helps, the sizes or versions involved; none carries key material.

/// What can go wrong sealing, opening, wrapping or unwrapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The operating system's random source failed.
    #[error("cannot draw {what} from the OS random source: {reason}")]
    Randomness {
        /// What was being drawn (`record key`, `payload nonce`...).
        what: &'static str,
        /// What the random source said.
        reason: String,
    },

    /// Input is shorter than its fixed layout allows.
    #[error("{what} is {actual} bytes, shorter than the minimum {minimum}")]
    TooShort {
        /// What was being decoded.
        what: &'static str,
        /// The least number of bytes it can have.
        minimum: usize,
        /// The number of bytes received.
        actual: usize,
    },

    /// A fixed-size input has the wrong length.
    #[error("{what} must be {expected} bytes, got {actual}")]
    Length {
        /// What was being decoded.
        what: &'static str,
        /// Its required length.
        expected: usize,
        /// The length received.
        actual: usize,
    },

    /// The leading version byte names a layout this code does not know.
    #[error("{what} has version {found}, only version {supported} is supported")]
    UnknownVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version byte found.
        found: u8,
        /// The version this code reads.
        supported: u8,
    },

    /// The AEAD tag did not verify: wrong key, wrong record id or context, or altered bytes.
    #[error("{what} failed authentication: wrong key, wrong {bound_to}, or the bytes were altered")]
    Authentication {
        /// What was being opened (`record payload`, `wrapped record key`).
        what: &'static str,
        /// The associated data it is bound to (`record id`, `wrap context`).
        bound_to: &'static str,
    },

    /// A recipient's X25519 public key is not in canonical form (top bit set, or a value of
    /// at least 2^255 - 19). Its owner's secret computes the canonical form, so a wrap for
    /// these bytes could never be unwrapped.
    #[error("recipient X25519 public key {public} is not canonically encoded")]
    NonCanonicalKey {
        /// The key, lower-case hex.
        public: String,
    },

    /// The X25519 exchange gave the all-zero shared secret: the other side's public key is a
    /// low-order point, which would make the derived key predictable.
    #[error(
        "X25519 with {role} public key {public} gives an all-zero shared secret (low-order point)"
    )]
    LowOrderPoint {
        /// Whose key it was (`recipient` or `ephemeral`).
        role: &'static str,
        /// The offending public key, lower-case hex.
        public: String,
    },
}
