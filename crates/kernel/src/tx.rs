//! Signed transactions: how they are signed, named, decoded and checked without state.
//!
//! What the signature covers ("signing bytes") is
//! `"citychain/tx/v1" || 0x00 || len(chain_id) as one byte || chain_id || unsigned`, where
//! `unsigned` is the canonical encoding of `UnsignedTransaction`. The transaction id is
//! `blake3` of exactly those bytes, so it names the signed intent and does not change with the
//! signature's encoding. Decoding refuses any transaction whose canonical re-encoding differs
//! from the bytes received, at both levels of the envelope.

use citychain_proto::citychain::kernel::v1 as pb;
use prost::Message;
use thiserror::Error;

use crate::codec::decode_canonical;
use crate::error::{DecodeError, SignatureError};
use crate::hash::{Domain, Hash32};
use crate::ids::{ChainId, Height, TxId};
use crate::keys::{PublicKey, Signature, SigningKey, verify_batch};

/// The largest encoded transaction accepted, in bytes. Large data travels by hash through the
/// object store, never inside a transaction.
pub const MAX_TX_BYTES: usize = 64 * 1024;

/// The longest `type_url` of a transaction body.
pub const MAX_TYPE_URL_BYTES: usize = 256;

/// How many subjects one transaction may declare.
pub const MAX_SUBJECTS: usize = 16;

/// The longest subject, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 128;

/// A transaction that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxError {
    /// The bytes are not a canonical transaction.
    #[error("transaction does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The encoding is larger than [`MAX_TX_BYTES`].
    #[error("transaction is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body's type name is empty or too long.
    #[error("transaction body type_url {type_url:?} must be 1 to {limit} bytes")]
    BadTypeUrl {
        /// The type name received.
        type_url: String,
        /// The limit.
        limit: usize,
    },
    /// The transaction names another chain.
    #[error("transaction is for chain {found:?}, this is chain {expected:?}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The chain named in the transaction.
        found: String,
    },
    /// The signer's key or the signature is invalid.
    #[error("transaction {id} signature: {source}")]
    Signature {
        /// The transaction's id.
        id: TxId,
        /// Why it failed.
        source: SignatureError,
    },
    /// A declared subject breaks the rules of [`TxBody::subjects`].
    #[error(
        "transaction body subject {subject:?}: {reason} (at most {MAX_SUBJECTS} subjects, sorted \
         and unique, each 1 to {MAX_SUBJECT_BYTES} visible ASCII characters)"
    )]
    BadSubject {
        /// The subject (shortened if long).
        subject: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Entry `index` of a list of transactions is bad.
    #[error("transaction {index} of the list: {source}")]
    InList {
        /// Position in the list.
        index: usize,
        /// Why it failed.
        source: Box<TxError>,
    },
}

/// The domain message a transaction carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxBody {
    /// Fully qualified protobuf type name of `value`.
    pub type_url: String,
    /// The encoded domain message.
    pub value: Vec<u8>,
    /// Whom or what it is about (a citizen, an enterprise, a record), sorted and unique, so
    /// the ledger can index every transaction by subject. The service that owns the body
    /// checks that they match it.
    pub subjects: Vec<String>,
}

impl TxBody {
    /// Wraps a domain message, naming it by its protobuf full name.
    pub fn new(type_url: impl Into<String>, value: Vec<u8>) -> Self {
        TxBody {
            type_url: type_url.into(),
            value,
            subjects: Vec::new(),
        }
    }

    /// The same body declaring `subjects` (sorted and deduplicated here).
    pub fn with_subjects<S: Into<String>>(mut self, subjects: impl IntoIterator<Item = S>) -> Self {
        self.subjects = subjects.into_iter().map(Into::into).collect();
        self.subjects.sort();
        self.subjects.dedup();
        self
    }
}

/// What makes `subject` not one a transaction may declare (1 to [`MAX_SUBJECT_BYTES`] visible
/// ASCII characters), if anything: a search for it could never match.
pub fn subject_problem(subject: &str) -> Option<&'static str> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        Some("wrong length")
    } else if !subject.bytes().all(|b| b.is_ascii_graphic()) {
        Some("not visible ASCII")
    } else {
        None
    }
}

/// Checks the subject rules: at most [`MAX_SUBJECTS`], strictly ascending, each 1 to
/// [`MAX_SUBJECT_BYTES`] visible ASCII characters.
fn check_subjects(subjects: &[String]) -> Result<(), TxError> {
    let bad = |subject: &str, reason| TxError::BadSubject {
        subject: subject.chars().take(MAX_SUBJECT_BYTES).collect(),
        reason,
    };
    if subjects.len() > MAX_SUBJECTS {
        return Err(bad(&subjects[MAX_SUBJECTS], "too many subjects"));
    }
    for (i, subject) in subjects.iter().enumerate() {
        if let Some(reason) = subject_problem(subject) {
            return Err(bad(subject, reason));
        }
        if i > 0 && subjects[i - 1] >= *subject {
            return Err(bad(subject, "not sorted or repeated"));
        }
    }
    Ok(())
}

/// A decoded, canonically encoded signed transaction. Its signature is checked by
/// [`SignedTx::verify`] or [`verify_transactions`], not by decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    bytes: Vec<u8>,
    chain_id: ChainId,
    signer: PublicKey,
    nonce: u64,
    expiry: Height,
    body: TxBody,
    signature: Signature,
    signing_bytes: Vec<u8>,
    id: TxId,
}

fn signing_bytes(chain_id: &ChainId, unsigned: &[u8]) -> Vec<u8> {
    let chain = chain_id.as_str().as_bytes();
    let mut out = Domain::Transaction.prefix();
    out.reserve(1 + chain.len() + unsigned.len());
    // Chain ids are at most 64 bytes, so one length byte suffices.
    out.push(chain.len() as u8);
    out.extend_from_slice(chain);
    out.extend_from_slice(unsigned);
    out
}

impl SignedTx {
    /// Signs a new transaction.
    pub fn sign(
        chain_id: &ChainId,
        key: &SigningKey,
        nonce: u64,
        expiry: Height,
        body: TxBody,
    ) -> Result<SignedTx, TxError> {
        let unsigned = pb::UnsignedTransaction {
            chain_id: chain_id.as_str().to_string(),
            signer: key.public_key().to_bytes().to_vec(),
            nonce,
            expiry_height: expiry.0,
            body: Some(pb::TxBody {
                type_url: body.type_url,
                value: body.value,
                subjects: body.subjects,
            }),
        }
        .encode_to_vec();
        let to_sign = signing_bytes(chain_id, &unsigned);
        let signature = key.sign(&to_sign);
        let bytes = pb::Transaction {
            unsigned,
            signature: signature.to_bytes().to_vec(),
        }
        .encode_to_vec();
        SignedTx::decode(&bytes)
    }

    /// Decodes and checks structure: size, canonical encoding, field lengths, key validity.
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, TxError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::TooLarge {
                size: bytes.len(),
                limit: MAX_TX_BYTES,
            });
        }
        let envelope: pb::Transaction = decode_canonical("Transaction", bytes)?;
        let unsigned: pb::UnsignedTransaction =
            decode_canonical("UnsignedTransaction", &envelope.unsigned)?;
        let chain_id = ChainId::new(unsigned.chain_id)?;
        let signature = Signature::from_slice("Transaction.signature", &envelope.signature)?;
        let body = unsigned.body.ok_or(DecodeError::Missing {
            what: "UnsignedTransaction",
            field: "body",
        })?;
        if body.type_url.is_empty() || body.type_url.len() > MAX_TYPE_URL_BYTES {
            return Err(TxError::BadTypeUrl {
                type_url: body.type_url,
                limit: MAX_TYPE_URL_BYTES,
            });
        }
        check_subjects(&body.subjects)?;
        let signing_bytes = signing_bytes(&chain_id, &envelope.unsigned);
        let id = TxId(crate::hash::domain_hash_raw(&signing_bytes));
        let signer_bytes: [u8; 32] =
            unsigned
                .signer
                .as_slice()
                .try_into()
                .map_err(|_| DecodeError::Length {
                    field: "UnsignedTransaction.signer",
                    expected: 32,
                    actual: unsigned.signer.len(),
                })?;
        let signer = PublicKey::from_bytes(&signer_bytes)
            .map_err(|source| TxError::Signature { id, source })?;
        Ok(SignedTx {
            bytes: bytes.to_vec(),
            chain_id,
            signer,
            nonce: unsigned.nonce,
            expiry: Height(unsigned.expiry_height),
            body: TxBody {
                type_url: body.type_url,
                value: body.value,
                subjects: body.subjects,
            },
            signature,
            signing_bytes,
            id,
        })
    }

    /// Decodes, then checks the chain id and the signature: every check that needs no state.
    pub fn decode_and_verify(bytes: &[u8], chain_id: &ChainId) -> Result<SignedTx, TxError> {
        let tx = SignedTx::decode(bytes)?;
        tx.check_chain(chain_id)?;
        tx.verify()?;
        Ok(tx)
    }

    /// Refuses a transaction meant for another chain.
    pub fn check_chain(&self, chain_id: &ChainId) -> Result<(), TxError> {
        if &self.chain_id != chain_id {
            return Err(TxError::WrongChain {
                expected: chain_id.to_string(),
                found: self.chain_id.to_string(),
            });
        }
        Ok(())
    }

    /// Strictly verifies the signature.
    pub fn verify(&self) -> Result<(), TxError> {
        self.signer
            .verify(&self.signing_bytes, &self.signature)
            .map_err(|source| TxError::Signature {
                id: self.id,
                source,
            })
    }

    /// The canonical encoded transaction.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes the signature covers.
    pub fn signing_bytes(&self) -> &[u8] {
        &self.signing_bytes
    }

    /// The transaction id.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// The chain it is for.
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// The signer's key.
    pub fn signer(&self) -> &PublicKey {
        &self.signer
    }

    /// The signer's nonce.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The last height at which it may commit.
    pub fn expiry(&self) -> Height {
        self.expiry
    }

    /// The domain message.
    pub fn body(&self) -> &TxBody {
        &self.body
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

/// Verifies every transaction's signature in one batch; on failure names the first bad one.
pub fn verify_transactions(txs: &[SignedTx]) -> Result<(), TxError> {
    verify_transaction_refs(&txs.iter().collect::<Vec<_>>())
}

/// [`verify_transactions`] over borrowed transactions; an error's index is into `txs`.
pub fn verify_transaction_refs(txs: &[&SignedTx]) -> Result<(), TxError> {
    let messages: Vec<&[u8]> = txs.iter().map(|t| t.signing_bytes.as_slice()).collect();
    let signatures: Vec<Signature> = txs.iter().map(|t| t.signature).collect();
    let keys: Vec<PublicKey> = txs.iter().map(|t| t.signer).collect();
    verify_batch(&messages, &signatures, &keys).map_err(|e| match e {
        SignatureError::BatchEntry { index, reason } => TxError::InList {
            index,
            source: Box::new(TxError::Signature {
                id: txs[index].id,
                source: *reason,
            }),
        },
        other => TxError::InList {
            index: 0,
            source: Box::new(TxError::Signature {
                id: txs.first().map(|t| t.id).unwrap_or(TxId(Hash32::ZERO)),
                source: other,
            }),
        },
    })
}
