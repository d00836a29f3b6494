//! ed25519 signing keys, X25519 encryption keys, signature verification and the key file
//! format.
//!
//! # Signature rule
//!
//! A signature `(R, S)` by key `A` on message `M` is valid when all of these hold:
//!
//! - `A` and `R` are canonical encodings of curve points: decompressing and compressing again
//!   gives back the same 32 bytes (so no `y >= p`, and no sign bit on a point with `x = 0`);
//! - neither `A` nor `R` has small order (`[8]P` is not the identity);
//! - `S`, read little-endian, is below the group order `L`;
//! - the **cofactored** equation `[8]([S]B - R - [k]A)` is the identity, where
//!   `k = SHA-512(R || A || M)` reduced mod `L` and `R`, `A` are the bytes as received.
//!
//! Keys are checked when parsed ([`PublicKey::from_bytes`]); the rest when a signature is
//! verified. [`verify_batch`] makes the same per-entry checks and then tests one linear
//! combination of the same cofactored equations, with 128-bit coefficients hashed from the
//! whole batch (no randomness is read). Multiplying by 8 removes every small-order part, so an
//! entry that is valid alone adds nothing to the combination and a batch of valid entries
//! always passes; an invalid entry leaves a nonzero point of prime order, which the
//! combination cancels only with negligible probability. When anything fails, each entry is
//! verified alone and the first invalid one is named, so the answer for an entry is the one
//! [`PublicKey::verify`] gives and does not depend on the other entries.
//!
//! (ed25519-dalek's own `verify_strict` is cofactorless, and its `verify_batch` tests a
//! cofactorless combination whose coefficients are reduced mod `L` together with `k`: for a
//! key or `R` with a small-order component the two disagree in both directions, and the
//! batch's answer depends on the coefficients, that is on the rest of the batch. So neither is
//! used here.)
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

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha512};
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

/// An ed25519 verifying key: the canonical encoding of a valid point of large order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parses and checks 32 bytes: refuses non-points, non-canonical encodings and small-order
    /// points.
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
        // dalek decompresses without asking for the canonical encoding (it reduces y >= p and
        // keeps a sign bit on x = 0), so the encoding is checked here.
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| {
            SignatureError::InvalidKey {
                key: hex::encode(bytes),
            }
        })?;
        let point = EdwardsPoint::from(key);
        if point.compress().as_bytes() != bytes {
            return Err(SignatureError::NonCanonicalKey {
                key: hex::encode(bytes),
            });
        }
        if point.is_small_order() {
            return Err(SignatureError::WeakKey {
                key: hex::encode(bytes),
            });
        }
        Ok(PublicKey(key))
    }

    fn point(&self) -> EdwardsPoint {
        EdwardsPoint::from(self.0)
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

    /// Verifies one signature under the module's signature rule (`S` reduced, `R` a canonical
    /// encoding of a point not of small order, cofactored equation).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let entry = Prepared::new(self, message, signature)?;
        if entry.r.compress().to_bytes() != signature.r_bytes() {
            return Err(SignatureError::NonCanonicalR);
        }
        if entry.holds() {
            Ok(())
        } else {
            Err(SignatureError::Mismatch {
                key: self.to_string(),
            })
        }
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

    fn r_bytes(&self) -> [u8; 32] {
        self.0[..32].try_into().expect("64 = 32 + 32")
    }

    fn s_bytes(&self) -> [u8; 32] {
        self.0[32..].try_into().expect("64 = 32 + 32")
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

/// One signature's values for the equation, once `S` and `R` have been decoded.
struct Prepared {
    /// The signer's key `A`.
    a: EdwardsPoint,
    /// The nonce point `R`.
    r: EdwardsPoint,
    /// `S`, below the group order.
    s: Scalar,
    /// `k = SHA-512(R || A || M) mod L`.
    k: Scalar,
}

impl Prepared {
    /// Checks that S is reduced and that R is a point not of small order, and computes the
    /// challenge. The caller checks that R's encoding is canonical (alone, or for a whole
    /// batch at once); the key's checks were made when it was parsed.
    fn new(key: &PublicKey, message: &[u8], signature: &Signature) -> Result<Self, SignatureError> {
        let s_bytes = signature.s_bytes();
        if !s_is_canonical(&s_bytes) {
            return Err(SignatureError::NonCanonicalS);
        }
        let r_bytes = signature.r_bytes();
        let r =
            CompressedEdwardsY(r_bytes)
                .decompress()
                .ok_or_else(|| SignatureError::Mismatch {
                    key: "(R is not a curve point)".to_string(),
                })?;
        if r.is_small_order() {
            return Err(SignatureError::SmallOrderR);
        }
        let mut hash = Sha512::new();
        hash.update(r_bytes);
        hash.update(key.as_bytes());
        hash.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        Ok(Prepared {
            a: key.point(),
            r,
            s: Scalar::from_bytes_mod_order(s_bytes),
            k,
        })
    }

    /// The cofactored equation `[8]([S]B - R - [k]A) == identity`.
    fn holds(&self) -> bool {
        let sb_minus_ka =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &-self.a, &self.s);
        (sb_minus_ka - self.r).mul_by_cofactor().is_identity()
    }
}

/// Domain of the hash that derives a batch's coefficients from its entries.
const BATCH_COEFFICIENTS_CONTEXT: &str = "citychain-kernel 2025 ed25519 batch coefficients v1";

/// One 128-bit coefficient per entry, derived from every entry's R, S, A and k (so from the
/// messages too): whoever chose the entries cannot know the coefficients before choosing them.
/// Forcing the low bit makes each nonzero. No randomness is read.
fn batch_coefficients(
    signatures: &[Signature],
    keys: &[PublicKey],
    prepared: &[Prepared],
) -> Vec<Scalar> {
    let mut transcript = blake3::Hasher::new_derive_key(BATCH_COEFFICIENTS_CONTEXT);
    transcript.update(&(prepared.len() as u64).to_le_bytes());
    for ((signature, key), entry) in signatures.iter().zip(keys).zip(prepared) {
        transcript.update(&signature.0);
        transcript.update(key.as_bytes());
        transcript.update(entry.k.as_bytes());
    }
    let mut stream = transcript.finalize_xof();
    prepared
        .iter()
        .map(|_| {
            let mut z = [0u8; 16];
            stream.fill(&mut z);
            Scalar::from(u128::from_le_bytes(z) | 1)
        })
        .collect()
}

/// Whether every entry's R is canonically encoded (one shared inversion for all of them) and
/// the combination `[8](sum z_i ([S_i]B - R_i - [k_i]A_i))` is the identity (one multiscalar
/// multiplication).
fn batch_holds(signatures: &[Signature], keys: &[PublicKey], prepared: &[Prepared]) -> bool {
    let rs: Vec<EdwardsPoint> = prepared.iter().map(|entry| entry.r).collect();
    let canonical = EdwardsPoint::compress_batch_alloc(&rs)
        .iter()
        .zip(signatures)
        .all(|(compressed, signature)| compressed.to_bytes() == signature.r_bytes());
    if !canonical {
        return false;
    }
    let z = batch_coefficients(signatures, keys, prepared);
    let b_coefficient: Scalar = prepared.iter().zip(&z).map(|(entry, z)| z * entry.s).sum();
    let scalars = std::iter::once(b_coefficient)
        .chain(z.iter().map(|z| -z))
        .chain(prepared.iter().zip(&z).map(|(entry, z)| -(z * entry.k)));
    let points = std::iter::once(ED25519_BASEPOINT_POINT)
        .chain(rs)
        .chain(prepared.iter().map(|entry| entry.a));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

/// Verifies many signatures at once under the same rule as [`PublicKey::verify`], and gives
/// the same answer as verifying them one by one in order: `Ok` when every entry verifies,
/// otherwise the first entry that does not, with the reason [`PublicKey::verify`] gives.
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
    let prepared: Result<Vec<Prepared>, SignatureError> = messages
        .iter()
        .zip(signatures)
        .zip(keys)
        .map(|((message, signature), key)| Prepared::new(key, message, signature))
        .collect();
    if let Ok(prepared) = prepared
        && batch_holds(signatures, keys, &prepared)
    {
        return Ok(());
    }
    // Something failed: the answer is the first entry that fails alone. (An entry valid alone
    // adds the identity to the combination, so if every entry verifies alone the combination
    // held; answering Ok then is still the per-entry answer.)
    for (index, ((message, signature), key)) in
        messages.iter().zip(signatures).zip(keys).enumerate()
    {
        key.verify(message, signature)
            .map_err(|reason| SignatureError::BatchEntry {
                index,
                reason: Box::new(reason),
            })?;
    }
    Ok(())
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
