//! Transaction proofs: everything needed to show, without a node, that one signed transaction
//! was committed at a height: the transaction, its Merkle audit path under the block's
//! `tx_root`, the block header, the header's commit certificate and the validator set that
//! signed it.
//!
//! A proof is self-contained, so it proves commitment only relative to its validator set.
//! Whether that set is to be trusted (the genesis set, or a set the caller reached by walking
//! the chain) is the caller's decision: [`VerifiedProof::signed_by`] tells whether it is a
//! given set.

use citychain_proto::citychain::kernel::v1 as pb;
use prost::Message;
use thiserror::Error;

use crate::block::{Block, BlockError, BlockHeader, CommitCertificate};
use crate::codec::decode_canonical;
use crate::error::DecodeError;
use crate::genesis::Genesis;
use crate::hash::Hash32;
use crate::ids::{BlockHash, ChainId, Height, MemberId, TxId};
use crate::keys::PublicKey;
use crate::merkle::{InclusionProof, MerkleError, MerkleTree};
use crate::tx::{SignedTx, TxError};
use crate::validators::{Validator, ValidatorSet};

/// The largest encoded proof accepted, in bytes: a transaction (at most 64 KiB), a header, a
/// certificate and a validator set fit many times over.
pub const MAX_PROOF_BYTES: usize = 4 * 1024 * 1024;

/// A proof that is refused, naming the part that failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// The encoding is larger than [`MAX_PROOF_BYTES`].
    #[error("proof is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a canonical `TransactionProof`, or a field has the wrong shape.
    #[error("proof does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The header or the certificate inside the proof does not decode.
    #[error("proof {part} does not decode: {source}")]
    Part {
        /// `header` or `certificate`.
        part: &'static str,
        /// Why.
        source: BlockError,
    },
    /// One validator entry is malformed.
    #[error("proof validators[{index}] ({member_id:?}): {reason}")]
    Validator {
        /// Position in the list.
        index: usize,
        /// The member id as written.
        member_id: String,
        /// What is wrong.
        reason: String,
    },
    /// Validators are not strictly ascending by key (a repeat or a reordering).
    #[error("proof validators[{index}] key {key} is repeated or out of key order")]
    ValidatorOrder {
        /// Position in the list.
        index: usize,
        /// The key.
        key: String,
    },
    /// The transaction does not decode, names another chain, or its signature fails.
    #[error("proof transaction: {0}")]
    Transaction(TxError),
    /// The header is for another chain.
    #[error("proof header is for chain {found:?}, expected {expected:?}")]
    WrongChain {
        /// The chain the caller expects.
        expected: String,
        /// The chain in the header.
        found: String,
    },
    /// The proof's height is not the header's.
    #[error("proof says height {proof}, its block header is height {header}")]
    Height {
        /// The height the proof claims.
        proof: Height,
        /// The header's height.
        header: Height,
    },
    /// The audit path's tree size is not the header's transaction count.
    #[error("proof's Merkle tree has {proof} leaves, block {height} has tx_count {header}")]
    TreeSize {
        /// The block's height.
        height: Height,
        /// The tree size in the proof.
        proof: u64,
        /// The header's `tx_count`.
        header: u64,
    },
    /// The transaction is not at the claimed index under the header's `tx_root`.
    #[error(
        "transaction {tx_id} is not at index {index} under tx_root {root} of block {height}: {source}"
    )]
    NotIncluded {
        /// The transaction's id (the leaf).
        tx_id: TxId,
        /// The index claimed.
        index: u64,
        /// The block's height.
        height: Height,
        /// The header's `tx_root`.
        root: Hash32,
        /// What the Merkle check said.
        source: Box<MerkleError>,
    },
    /// The validator set is not the one the header names.
    #[error(
        "proof validator set hashes to {found}, block {height} names validators_hash {expected}"
    )]
    ValidatorsHash {
        /// The block's height.
        height: Height,
        /// The header's `validators_hash`.
        expected: Hash32,
        /// The hash of the set in the proof.
        found: Hash32,
    },
    /// The commit certificate does not certify the header with the proof's validators.
    #[error("block {height} commit certificate: {source}")]
    Certificate {
        /// The block's height.
        height: Height,
        /// Why.
        source: BlockError,
    },
    /// Building a proof for an index the block does not have.
    #[error("block {height} has {count} transactions, there is no index {index}")]
    IndexOutOfRange {
        /// The block's height.
        height: Height,
        /// The index asked for.
        index: u64,
        /// Transactions in the block.
        count: u64,
    },
}

/// Proof that the transaction `transaction` was committed at `height`, position `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionProof {
    /// The canonical encoding of the signed transaction, as it is in the block.
    pub transaction: Vec<u8>,
    /// The block's height.
    pub height: Height,
    /// The transaction's position in the block, from 0 (its Merkle leaf index).
    pub index: u64,
    /// Leaf count of the Merkle tree (the block's `tx_count`).
    pub tree_size: u64,
    /// Sibling hashes from the leaf up to `tx_root`.
    pub audit_path: Vec<Hash32>,
    /// The block's header.
    pub header: BlockHeader,
    /// The header's commit certificate.
    pub certificate: CommitCertificate,
    /// The validator set that signed the certificate.
    pub validators: ValidatorSet,
}

/// What a proof that verified says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The transaction, decoded and with its signature checked.
    pub tx: SignedTx,
    /// The block's height.
    pub height: Height,
    /// The transaction's position in the block.
    pub index: u64,
    /// The block's hash.
    pub block_hash: BlockHash,
    /// How many validators signed the certificate.
    pub signers: usize,
    /// How many validators the set has.
    pub validators: usize,
    /// The hash of the validator set that signed.
    pub validators_hash: Hash32,
}

impl VerifiedProof {
    /// Whether the certificate was signed by exactly `set` (the caller's trusted set).
    pub fn signed_by(&self, set: &ValidatorSet) -> bool {
        self.validators_hash == set.hash()
    }

    /// Whether the certificate was signed by the validator set of `genesis`.
    pub fn signed_by_genesis(&self, genesis: &Genesis) -> bool {
        self.signed_by(&genesis.validator_set())
    }
}

impl TransactionProof {
    /// The proof for transaction `index` of `block`, whose certificate `validators` signed.
    /// Refuses an index outside the block and a set the header does not name.
    pub fn build(
        block: &Block,
        index: u64,
        validators: &ValidatorSet,
    ) -> Result<TransactionProof, ProofError> {
        let height = block.header.height;
        let count = block.txs.len() as u64;
        let Some(tx) = usize::try_from(index).ok().and_then(|i| block.txs.get(i)) else {
            return Err(ProofError::IndexOutOfRange {
                height,
                index,
                count,
            });
        };
        let found = validators.hash();
        if found != block.header.validators_hash {
            return Err(ProofError::ValidatorsHash {
                height,
                expected: block.header.validators_hash,
                found,
            });
        }
        let ids: Vec<[u8; 32]> = block.txs.iter().map(|t| *t.id().as_bytes()).collect();
        let inclusion = MerkleTree::new(&ids).inclusion_proof(index).map_err(|_| {
            ProofError::IndexOutOfRange {
                height,
                index,
                count,
            }
        })?;
        Ok(TransactionProof {
            transaction: tx.bytes().to_vec(),
            height,
            index,
            tree_size: inclusion.tree_size,
            audit_path: inclusion.path,
            header: block.header.clone(),
            certificate: block.certificate.clone(),
            validators: validators.clone(),
        })
    }

    /// Checks every link of the proof for chain `chain`: the transaction decodes, is for this
    /// chain and its signature verifies; its id is the leaf at `index` under the header's
    /// `tx_root` in a tree of `tx_count` leaves; the heights agree; the validator set hashes to
    /// the header's `validators_hash`; and the certificate carries a quorum of valid precommits
    /// of distinct validators of that set for this header.
    pub fn verify(&self, chain: &ChainId) -> Result<VerifiedProof, ProofError> {
        let tx = SignedTx::decode(&self.transaction).map_err(ProofError::Transaction)?;
        tx.check_chain(chain).map_err(ProofError::Transaction)?;
        tx.verify().map_err(ProofError::Transaction)?;
        let header = &self.header;
        if &header.chain_id != chain {
            return Err(ProofError::WrongChain {
                expected: chain.to_string(),
                found: header.chain_id.to_string(),
            });
        }
        if self.height != header.height {
            return Err(ProofError::Height {
                proof: self.height,
                header: header.height,
            });
        }
        if self.tree_size != header.tx_count {
            return Err(ProofError::TreeSize {
                height: header.height,
                proof: self.tree_size,
                header: header.tx_count,
            });
        }
        let inclusion = InclusionProof {
            leaf_index: self.index,
            tree_size: self.tree_size,
            path: self.audit_path.clone(),
        };
        inclusion
            .verify(tx.id().as_bytes(), &header.tx_root)
            .map_err(|source| ProofError::NotIncluded {
                tx_id: tx.id(),
                index: self.index,
                height: header.height,
                root: header.tx_root,
                source: Box::new(source),
            })?;
        let validators_hash = self.validators.hash();
        if validators_hash != header.validators_hash {
            return Err(ProofError::ValidatorsHash {
                height: header.height,
                expected: header.validators_hash,
                found: validators_hash,
            });
        }
        let signers = self
            .certificate
            .verify(header, &self.validators)
            .map_err(|source| ProofError::Certificate {
                height: header.height,
                source,
            })?;
        Ok(VerifiedProof {
            tx,
            height: header.height,
            index: self.index,
            block_hash: header.hash(),
            signers,
            validators: self.validators.len(),
            validators_hash,
        })
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb::TransactionProof {
        pb::TransactionProof {
            transaction: self.transaction.clone(),
            height: self.height.0,
            index: self.index,
            tree_size: self.tree_size,
            audit_path: self
                .audit_path
                .iter()
                .map(|h| h.as_bytes().to_vec())
                .collect(),
            header: Some(self.header.to_proto()),
            certificate: Some(self.certificate.to_proto()),
            validators: self
                .validators
                .validators()
                .iter()
                .map(|v| pb::ProofValidator {
                    member_id: v.member_id.to_string(),
                    key: v.key.to_bytes().to_vec(),
                })
                .collect(),
        }
    }

    /// Reads the protobuf form. Validators must be strictly ascending by key, as
    /// [`TransactionProof::to_proto`] writes them, so one proof has one encoding.
    pub fn from_proto(p: pb::TransactionProof) -> Result<TransactionProof, ProofError> {
        let audit_path = p
            .audit_path
            .iter()
            .map(|h| Hash32::from_slice("TransactionProof.audit_path", h))
            .collect::<Result<Vec<_>, _>>()?;
        let header = BlockHeader::from_proto(p.header.ok_or(DecodeError::Missing {
            what: "TransactionProof",
            field: "header",
        })?)
        .map_err(|source| ProofError::Part {
            part: "header",
            source,
        })?;
        let certificate =
            CommitCertificate::from_proto(p.certificate.ok_or(DecodeError::Missing {
                what: "TransactionProof",
                field: "certificate",
            })?)
            .map_err(|source| ProofError::Part {
                part: "certificate",
                source,
            })?;
        let mut validators = Vec::with_capacity(p.validators.len());
        for (index, v) in p.validators.into_iter().enumerate() {
            let fail = |reason: String| ProofError::Validator {
                index,
                member_id: v.member_id.clone(),
                reason,
            };
            let member_id = MemberId::new(v.member_id.clone()).map_err(|e| fail(e.to_string()))?;
            let key = PublicKey::from_slice("ProofValidator.key", &v.key)
                .map_err(|e| fail(e.to_string()))?;
            if let Some(previous) = validators.last().map(|p: &Validator| p.key)
                && previous >= key
            {
                return Err(ProofError::ValidatorOrder {
                    index,
                    key: key.to_string(),
                });
            }
            validators.push(Validator { member_id, key });
        }
        Ok(TransactionProof {
            transaction: p.transaction,
            height: Height(p.height),
            index: p.index,
            tree_size: p.tree_size,
            audit_path,
            header,
            certificate,
            validators: ValidatorSet::new(validators),
        })
    }

    /// The canonical encoding (protobuf `citychain.kernel.v1.TransactionProof`).
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes a proof, refusing anything larger than [`MAX_PROOF_BYTES`] and any encoding
    /// other than the canonical one.
    pub fn decode(bytes: &[u8]) -> Result<TransactionProof, ProofError> {
        if bytes.len() > MAX_PROOF_BYTES {
            return Err(ProofError::TooLarge {
                size: bytes.len(),
                limit: MAX_PROOF_BYTES,
            });
        }
        let p: pb::TransactionProof = decode_canonical("TransactionProof", bytes)?;
        TransactionProof::from_proto(p)
    }
}
