//! ed25519 signing keys, X25519 encryption keys, strict signature verification and the key
//! file format.
//!
//! Verification is strict: public keys of small order are refused when parsed, and a
//! signature is refused when its S is not reduced or its R has small order. Batch verification
//! applies the same per-entry checks before the batch equation and, when the batch fails,
//! verifies each entry on its own to name the bad one.
//!
//! Key generation takes its 32 random bytes as an input: the kernel reads no randomness.
//!
//! # Key file format (`citychain-key/v1`)
//!
//! A UTF-8 JSON object; the secret halves are lower-case hex seeds:
//!
//! ```json
//! {
//!   "format": "citychain-key/v1",
//!   "member_id": "dept.tax",
//!   "signing": { "public": "<64 hex>", "secret": "<64 hex>" },
//!   "encryption": { "public": "<64 hex>", "secret": "<64 hex>" }
//! }
//! ```
//!
//! `member_id` is optional (a citizen's key has none). On load, both public halves are
//! recomputed from the secrets and must match what the file says.

use std::fmt;
use std::str::FromStr;

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{DecodeError, SignatureError};
use crate::hash::{hex_bytes, serde_as_text};

/// How many parsed keys each thread remembers.
pub const PARSED_KEYS_PER_THREAD: usize = 4_096;

/// Keys that passed [`PublicKey::from_bytes`], in insertion order for eviction.
#[derive(Default)]
struct ParsedKeys {
    keys: std::collections::BTreeMap<[u8; 32], PublicKey>,
    order: std::collections::VecDeque<[u8; 32]>,
}

impl ParsedKeys {
    fn get(&self, bytes: &[u8; 32]) -> Option<PublicKey> {
        self.keys.get(bytes).copied()
    }

    fn insert(&mut self, bytes: [u8; 32], key: PublicKey) {
        if self.keys.insert(bytes, key).is_none() {
            self.order.push_back(bytes);
            if self.order.len() > PARSED_KEYS_PER_THREAD
                && let Some(oldest) = self.order.pop_front()
            {
                self.keys.remove(&oldest);
            }
        }
    }
}

thread_local! {
    static PARSED: std::cell::RefCell<ParsedKeys> = std::cell::RefCell::default();
}

/// An ed25519 verifying key that is a valid point of large order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parses and checks 32 bytes: refuses non-points and small-order points.
    ///
    /// Decompressing a point costs about as much as a fifth of a signature check, and the
    /// same few signers' keys arrive in every transaction, so keys that passed are remembered
    /// per thread (at most [`PARSED_KEYS_PER_THREAD`], oldest forgotten first). The answer for
    /// a given 32 bytes is the same with or without the cache.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, SignatureError> {
        if let Some(key) = PARSED.with(|cache| cache.borrow().get(bytes)) {
            return Ok(key);
        }
        let key = PublicKey::parse(bytes)?;
        PARSED.with(|cache| cache.borrow_mut().insert(*bytes, key));
        Ok(key)
    }

    fn parse(bytes: &[u8; 32]) -> Result<Self, SignatureError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| {
            SignatureError::InvalidKey {
                key: hex::encode(bytes),
            }
        })?;
        if key.is_weak() {
            return Err(SignatureError::WeakKey {
                key: hex::encode(bytes),
            });
        }
        Ok(PublicKey(key))
    }

    /// Parses a key from a slice; `field` names it in the error.
    pub fn from_slice(field: &'static str, bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| DecodeError::Length {
            field,
            expected: 32,
            actual: bytes.len(),
        })?;
        Ok(PublicKey::from_bytes(&array)?)
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key's 32 bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Strict verification of one signature.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        precheck(signature)?;
        self.0
            .verify_strict(message, &signature.to_dalek())
            .map_err(|_| SignatureError::Mismatch {
                key: self.to_string(),
            })
    }
}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PublicKey::from_slice("public key", &hex_bytes("public key", s)?)
    }
}

serde_as_text!(PublicKey);

/// A 64-byte ed25519 signature, kept as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// Reads a signature from a slice; `field` names it in the error.
    pub fn from_slice(field: &'static str, bytes: &[u8]) -> Result<Self, DecodeError> {
        let array: [u8; 64] = bytes.try_into().map_err(|_| DecodeError::Length {
            field,
            expected: 64,
            actual: bytes.len(),
        })?;
        Ok(Signature(array))
    }

    /// The signature's bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    fn to_dalek(self) -> ed25519_dalek::Signature {
        ed25519_dalek::Signature::from_bytes(&self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// The order of the prime-order subgroup, little-endian: S must be below it.
const GROUP_ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
];

fn s_is_canonical(s: &[u8]) -> bool {
    // Compare little-endian numbers from the most significant byte down.
    for (a, b) in s.iter().rev().zip(GROUP_ORDER.iter().rev()) {
        if a != b {
            return a < b;
        }
    }
    false
}

/// The per-signature checks strict verification makes, done before a batch too.
fn precheck(signature: &Signature) -> Result<(), SignatureError> {
    if !s_is_canonical(&signature.0[32..]) {
        return Err(SignatureError::NonCanonicalS);
    }
    let r_bytes: [u8; 32] = signature.0[..32].try_into().expect("64 = 32 + 32");
    match CompressedEdwardsY(r_bytes).decompress() {
        Some(point) if !point.is_small_order() => Ok(()),
        Some(_) => Err(SignatureError::SmallOrderR),
        None => Err(SignatureError::Mismatch {
            key: "(R is not a curve point)".to_string(),
        }),
    }
}

/// Verifies many signatures at once. On failure it verifies each entry alone and names the
/// first bad one, so the result is exactly what one-by-one strict verification would say.
pub fn verify_batch(
    messages: &[&[u8]],
    signatures: &[Signature],
    keys: &[PublicKey],
) -> Result<(), SignatureError> {
    if messages.len() != signatures.len() || messages.len() != keys.len() {
        return Err(SignatureError::BatchShape {
            messages: messages.len(),
            signatures: signatures.len(),
            keys: keys.len(),
        });
    }
    for (index, signature) in signatures.iter().enumerate() {
        precheck(signature).map_err(|reason| SignatureError::BatchEntry {
            index,
            reason: Box::new(reason),
        })?;
    }
    let sigs: Vec<ed25519_dalek::Signature> = signatures.iter().map(|s| s.to_dalek()).collect();
    let vks: Vec<ed25519_dalek::VerifyingKey> = keys.iter().map(|k| k.0).collect();
    if ed25519_dalek::verify_batch(messages, &sigs, &vks).is_ok() {
        return Ok(());
    }
    for (index, ((message, signature), key)) in
        messages.iter().zip(signatures).zip(keys).enumerate()
    {
        key.verify(message, signature)
            .map_err(|reason| SignatureError::BatchEntry {
                index,
                reason: Box::new(reason),
            })?;
    }
    // The batch equation failed but every entry verifies alone: treat the batch as bad
    // rather than accept something the batch equation refused.
    Err(SignatureError::BatchEntry {
        index: 0,
        reason: Box::new(SignatureError::Mismatch {
            key: "(batch equation failed although each entry verified)".to_string(),
        }),
    })
}

/// An ed25519 signing key. Its seed is wiped from memory when dropped.
#[derive(Clone, ZeroizeOnDrop)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// Builds the key from a 32-byte seed (generate the seed from the OS's random source).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The seed, for the key file.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message` as it is (callers add their domain prefix).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key())
    }
}

/// An X25519 public key on which record keys are wrapped for its owner.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EncryptionPublicKey(pub [u8; 32]);

impl EncryptionPublicKey {
    /// Reads a key from a slice; refuses the all-zero key, which no secret produces.
    pub fn from_slice(field: &'static str, bytes: &[u8]) -> Result<Self, DecodeError> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| DecodeError::Length {
            field,
            expected: 32,
            actual: bytes.len(),
        })?;
        if array == [0; 32] {
            return Err(DecodeError::Invalid {
                field,
                value: hex::encode(array),
                reason: "the all-zero X25519 key is refused",
            });
        }
        Ok(EncryptionPublicKey(array))
    }
}

impl fmt::Display for EncryptionPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for EncryptionPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionPublicKey({self})")
    }
}

/// An X25519 secret key. Wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EncryptionSecret([u8; 32]);

impl EncryptionSecret {
    /// Builds the secret from 32 random bytes.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        EncryptionSecret(*seed)
    }

    /// The secret's bytes, for the key file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The matching public key.
    pub fn public_key(&self) -> EncryptionPublicKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        EncryptionPublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }
}

impl fmt::Debug for EncryptionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionSecret(public {})", self.public_key())
    }
}

/// A key file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A field did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A key did not pass the strict checks.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The text is not a key file.
    #[error("key file is not valid JSON at line {line} column {column}: {reason}")]
    Json {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What the parser said.
        reason: String,
    },
    /// The `format` field names another format.
    #[error("key file format is {found:?}, expected \"citychain-key/v1\"")]
    Format {
        /// The format found.
        found: String,
    },
    /// A public half does not match its secret.
    #[error("key file {which}.public does not match {which}.secret")]
    PublicMismatch {
        /// `signing` or `encryption`.
        which: &'static str,
    },
}

/// A member's or citizen's keys: one to sign, one to receive wrapped record keys.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// The member id the keys belong to, if any.
    pub member_id: Option<String>,
    /// The ed25519 signing key.
    pub signing: SigningKey,
    /// The X25519 secret.
    pub encryption: EncryptionSecret,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileHalf {
    public: String,
    secret: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileJson {
    format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member_id: Option<String>,
    signing: KeyFileHalf,
    encryption: KeyFileHalf,
}

/// The key file's format tag.
pub const KEY_FILE_FORMAT: &str = "citychain-key/v1";

fn seed_from_hex(field: &'static str, text: &str) -> Result<[u8; 32], DecodeError> {
    let bytes = hex_bytes(field, text)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| DecodeError::Length {
            field,
            expected: 32,
            actual: bytes.len(),
        })
}

impl KeyPair {
    /// Builds a key pair from two independent 32-byte random seeds.
    pub fn from_seeds(
        member_id: Option<String>,
        signing: &[u8; 32],
        encryption: &[u8; 32],
    ) -> Self {
        KeyPair {
            member_id,
            signing: SigningKey::from_seed(signing),
            encryption: EncryptionSecret::from_seed(encryption),
        }
    }

    /// The key file's text (see the module docs).
    pub fn to_key_file(&self) -> String {
        let json = KeyFileJson {
            format: KEY_FILE_FORMAT.to_string(),
            member_id: self.member_id.clone(),
            signing: KeyFileHalf {
                public: self.signing.public_key().to_string(),
                secret: hex::encode(self.signing.seed()),
            },
            encryption: KeyFileHalf {
                public: self.encryption.public_key().to_string(),
                secret: hex::encode(self.encryption.to_bytes()),
            },
        };
        let mut text = serde_json::to_string_pretty(&json).expect("plain strings serialise");
        text.push('\n');
        text
    }

    /// Reads a key file's text, checking both public halves against their secrets.
    pub fn from_key_file(text: &str) -> Result<Self, KeyError> {
        let json: KeyFileJson = serde_json::from_str(text).map_err(|e| KeyError::Json {
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        if json.format != KEY_FILE_FORMAT {
            return Err(KeyError::Format { found: json.format });
        }
        let signing =
            SigningKey::from_seed(&seed_from_hex("signing.secret", &json.signing.secret)?);
        let public: PublicKey = json.signing.public.parse()?;
        if public != signing.public_key() {
            return Err(KeyError::PublicMismatch { which: "signing" });
        }
        let encryption = EncryptionSecret::from_seed(&seed_from_hex(
            "encryption.secret",
            &json.encryption.secret,
        )?);
        let enc_public = seed_from_hex("encryption.public", &json.encryption.public)?;
        if enc_public != encryption.public_key().0 {
            return Err(KeyError::PublicMismatch {
                which: "encryption",
            });
        }
        Ok(KeyPair {
            member_id: json.member_id,
            signing,
            encryption,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: u8) -> KeyPair {
        KeyPair::from_seeds(
            Some(format!("dept.{n}")),
            &[n; 32],
            &[n.wrapping_add(100); 32],
        )
    }

    #[test]
    fn remembered_keys_answer_as_parsing_does_and_the_cache_stays_bounded() {
        let keys: Vec<[u8; 32]> = (0..PARSED_KEYS_PER_THREAD as u32 + 10)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&i.to_be_bytes());
                SigningKey::from_seed(&seed).public_key().to_bytes()
            })
            .collect();
        for bytes in keys.iter().chain(keys.iter()) {
            let cached = PublicKey::from_bytes(bytes).unwrap();
            assert_eq!(cached, PublicKey::parse(bytes).unwrap());
        }
        let remembered = PARSED.with(|c| c.borrow().keys.len());
        assert!(remembered <= PARSED_KEYS_PER_THREAD, "{remembered}");
        // A refused key is refused every time (small order: the identity point).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for _ in 0..2 {
            assert!(PublicKey::from_bytes(&identity).is_err());
        }
    }

    #[test]
    fn key_file_round_trips() {
        let keys = pair(7);
        let back = KeyPair::from_key_file(&keys.to_key_file()).unwrap();
        assert_eq!(back.signing.public_key(), keys.signing.public_key());
        assert_eq!(back.encryption.public_key(), keys.encryption.public_key());
        assert_eq!(back.member_id.as_deref(), Some("dept.7"));
    }

    #[test]
    fn key_file_with_swapped_public_half_is_refused() {
        let text = pair(1).to_key_file();
        let other = pair(2).signing.public_key().to_string();
        let own = pair(1).signing.public_key().to_string();
        let err = KeyPair::from_key_file(&text.replace(&own, &other)).unwrap_err();
        assert_eq!(err, KeyError::PublicMismatch { which: "signing" });
    }

    #[test]
    fn truncated_key_file_names_the_position() {
        let text = pair(1).to_key_file();
        let err = KeyPair::from_key_file(&text[..40]).unwrap_err();
        assert!(matches!(err, KeyError::Json { line: 3, .. }), "{err}");
    }

    #[test]
    fn s_canonical_boundary() {
        let mut order = GROUP_ORDER;
        assert!(!s_is_canonical(&order));
        order[0] -= 1;
        assert!(s_is_canonical(&order));
        assert!(s_is_canonical(&[0; 32]));
        assert!(!s_is_canonical(&[0xff; 32]));
    }
}
