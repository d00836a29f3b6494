//! Blocks: the header and its hash, the commit certificate and what its signatures cover,
//! canonical decoding, and the checks that make a block verifiable from genesis by anyone.
//!
//! A precommit signature covers
//! `"citychain/precommit/v1" || 0x00 || len(chain_id) as one byte || chain_id || height (8 bytes,
//! big-endian) || round (4 bytes, big-endian) || block hash`, so a certificate can be checked
//! with nothing but the validator set.

use std::collections::BTreeMap;

use citychain_proto::citychain::kernel::v1 as pb;
use prost::Message;
use thiserror::Error;

use crate::codec::decode_canonical;
use crate::error::{DecodeError, SignatureError};
use crate::genesis::Genesis;
use crate::hash::{Domain, Hash32, domain_hash};
use crate::ids::{BlockHash, ChainId, Height, TxId};
use crate::keys::{PublicKey, Signature, SigningKey, verify_batch};
use crate::merkle::MerkleTree;
use crate::tx::{SignedTx, TxError, verify_transactions};
use crate::validators::ValidatorSet;

/// A block's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    /// The chain.
    pub chain_id: ChainId,
    /// Its height, from 1.
    pub height: Height,
    /// The proposer's clock in milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// The previous block's hash; zero at height 1.
    pub prev_hash: BlockHash,
    /// Merkle root over the transaction ids.
    pub tx_root: Hash32,
    /// Number of transactions.
    pub tx_count: u64,
    /// Hash of the validator set that certifies this block.
    pub validators_hash: Hash32,
    /// The proposer's key.
    pub proposer: PublicKey,
}

impl BlockHeader {
    /// The protobuf form.
    pub fn to_proto(&self) -> pb::BlockHeader {
        pb::BlockHeader {
            chain_id: self.chain_id.to_string(),
            height: self.height.0,
            time_unix_ms: self.time_unix_ms,
            prev_hash: self.prev_hash.as_bytes().to_vec(),
            tx_root: self.tx_root.as_bytes().to_vec(),
            tx_count: self.tx_count,
            validators_hash: self.validators_hash.as_bytes().to_vec(),
            proposer: self.proposer.to_bytes().to_vec(),
        }
    }

    /// Reads the protobuf form.
    pub fn from_proto(p: pb::BlockHeader) -> Result<Self, BlockError> {
        Ok(BlockHeader {
            chain_id: ChainId::new(p.chain_id)?,
            height: Height(p.height),
            time_unix_ms: p.time_unix_ms,
            prev_hash: BlockHash(Hash32::from_slice("BlockHeader.prev_hash", &p.prev_hash)?),
            tx_root: Hash32::from_slice("BlockHeader.tx_root", &p.tx_root)?,
            tx_count: p.tx_count,
            validators_hash: Hash32::from_slice("BlockHeader.validators_hash", &p.validators_hash)?,
            proposer: PublicKey::from_slice("BlockHeader.proposer", &p.proposer)
                .map_err(|e| BlockError::Key(e.to_string()))?,
        })
    }

    /// A header for `txs` on top of `prev_hash`, with the root and count computed.
    pub fn new(
        chain_id: ChainId,
        height: Height,
        time_unix_ms: u64,
        prev_hash: BlockHash,
        txs: &[SignedTx],
        validators: &ValidatorSet,
        proposer: PublicKey,
    ) -> Self {
        BlockHeader {
            chain_id,
            height,
            time_unix_ms,
            prev_hash,
            tx_root: tx_root(txs),
            tx_count: txs.len() as u64,
            validators_hash: validators.hash(),
            proposer,
        }
    }

    /// The block hash: blake3 over the domain prefix and the header's canonical encoding.
    pub fn hash(&self) -> BlockHash {
        BlockHash(domain_hash(
            Domain::BlockHeader,
            &self.to_proto().encode_to_vec(),
        ))
    }
}

/// The bytes a validator signs to precommit `block_hash` at `height` and `round`.
pub fn precommit_sign_bytes(
    chain_id: &ChainId,
    height: Height,
    round: u32,
    block_hash: &BlockHash,
) -> Vec<u8> {
    let chain = chain_id.as_str().as_bytes();
    let mut out = Domain::Precommit.prefix();
    out.push(chain.len() as u8);
    out.extend_from_slice(chain);
    out.extend_from_slice(&height.0.to_be_bytes());
    out.extend_from_slice(&round.to_be_bytes());
    out.extend_from_slice(block_hash.as_bytes());
    out
}

/// At least a quorum of precommits for one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitCertificate {
    /// The block's height.
    pub height: Height,
    /// The round in which it was decided.
    pub round: u32,
    /// The block's hash.
    pub block_hash: BlockHash,
    /// Precommit signatures, sorted by validator key, one per validator.
    pub signatures: Vec<(PublicKey, Signature)>,
}

impl CommitCertificate {
    /// The protobuf form.
    pub fn to_proto(&self) -> pb::CommitCertificate {
        pb::CommitCertificate {
            height: self.height.0,
            round: self.round,
            block_hash: self.block_hash.as_bytes().to_vec(),
            signatures: self
                .signatures
                .iter()
                .map(|(k, s)| pb::CommitSignature {
                    validator: k.to_bytes().to_vec(),
                    signature: s.to_bytes().to_vec(),
                })
                .collect(),
        }
    }

    /// Reads the protobuf form.
    pub fn from_proto(p: pb::CommitCertificate) -> Result<Self, BlockError> {
        let signatures = p
            .signatures
            .into_iter()
            .map(|s| {
                let key = PublicKey::from_slice("CommitSignature.validator", &s.validator)
                    .map_err(|e| BlockError::Key(e.to_string()))?;
                let sig = Signature::from_slice("CommitSignature.signature", &s.signature)?;
                Ok((key, sig))
            })
            .collect::<Result<_, BlockError>>()?;
        Ok(CommitCertificate {
            height: Height(p.height),
            round: p.round,
            block_hash: BlockHash(Hash32::from_slice(
                "CommitCertificate.block_hash",
                &p.block_hash,
            )?),
            signatures,
        })
    }

    /// Builds a certificate from validators' keys (what the consensus service does with the
    /// precommits it collected); signatures come out sorted by key.
    pub fn sign(
        chain_id: &ChainId,
        height: Height,
        round: u32,
        block_hash: BlockHash,
        signers: &[&SigningKey],
    ) -> Self {
        let message = precommit_sign_bytes(chain_id, height, round, &block_hash);
        let mut signatures: Vec<(PublicKey, Signature)> = signers
            .iter()
            .map(|k| (k.public_key(), k.sign(&message)))
            .collect();
        signatures.sort_by_key(|s| s.0);
        CommitCertificate {
            height,
            round,
            block_hash,
            signatures,
        }
    }

    /// Checks the certificate for `header` against `validators`: right height and hash,
    /// signers sorted and distinct members of the set, at least a quorum, every signature
    /// valid. Returns how many validators signed.
    pub fn verify(
        &self,
        header: &BlockHeader,
        validators: &ValidatorSet,
    ) -> Result<usize, BlockError> {
        let hash = header.hash();
        if self.height != header.height || self.block_hash != hash {
            return Err(BlockError::CertificateTarget {
                height: header.height,
                cert_height: self.height,
                cert_hash: self.block_hash,
                hash,
            });
        }
        for pair in self.signatures.windows(2) {
            if pair[0].0 >= pair[1].0 {
                return Err(BlockError::CertificateOrder {
                    key: pair[1].0.to_string(),
                });
            }
        }
        if let Some((key, _)) = self
            .signatures
            .iter()
            .find(|(k, _)| validators.get(k).is_none())
        {
            return Err(BlockError::NotAValidator {
                key: key.to_string(),
            });
        }
        if self.signatures.len() < validators.quorum() {
            return Err(BlockError::NoQuorum {
                signers: self.signatures.len(),
                quorum: validators.quorum(),
                validators: validators.len(),
            });
        }
        let message = precommit_sign_bytes(&header.chain_id, header.height, self.round, &hash);
        let messages: Vec<&[u8]> = vec![message.as_slice(); self.signatures.len()];
        let sigs: Vec<Signature> = self.signatures.iter().map(|(_, s)| *s).collect();
        let keys: Vec<PublicKey> = self.signatures.iter().map(|(k, _)| *k).collect();
        verify_batch(&messages, &sigs, &keys).map_err(BlockError::CertificateSignature)?;
        Ok(self.signatures.len())
    }
}

/// A block that is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockError {
    /// The bytes do not decode canonically.
    #[error("block does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// A key in the block is invalid.
    #[error("block contains an invalid key: {0}")]
    Key(String),
    /// A transaction in the block is bad.
    #[error("block transaction: {0}")]
    Tx(#[from] TxError),
    /// The block is for another chain.
    #[error("block is for chain {found:?}, expected {expected:?}")]
    WrongChain {
        /// Expected chain.
        expected: String,
        /// Chain named.
        found: String,
    },
    /// Not the next height.
    #[error("block has height {found}, expected {expected}")]
    Height {
        /// The expected height.
        expected: Height,
        /// The height found.
        found: Height,
    },
    /// `prev_hash` does not link to the previous block.
    #[error("block {height} prev_hash is {found}, the previous block's hash is {expected}")]
    PrevHash {
        /// The block's height.
        height: Height,
        /// The previous block's hash.
        expected: BlockHash,
        /// The hash written in the header.
        found: BlockHash,
    },
    /// Block time is not after the previous block's.
    #[error("block {height} time {time} ms is not after the previous {previous} ms")]
    Time {
        /// The block's height.
        height: Height,
        /// Its time.
        time: u64,
        /// The previous time.
        previous: u64,
    },
    /// The header's transaction root or count do not match the body.
    #[error(
        "block {height} tx_root/tx_count say {header_root} over {header_count}, the body gives {body_root} over {body_count}"
    )]
    TxRoot {
        /// The block's height.
        height: Height,
        /// Root in the header.
        header_root: Hash32,
        /// Count in the header.
        header_count: u64,
        /// Root of the body.
        body_root: Hash32,
        /// Count in the body.
        body_count: u64,
    },
    /// The header names another validator set than the one in force.
    #[error(
        "block {height} validators_hash is {found}, the validator set in force hashes to {expected}"
    )]
    ValidatorsHash {
        /// The block's height.
        height: Height,
        /// Hash of the set in force.
        expected: Hash32,
        /// Hash in the header.
        found: Hash32,
    },
    /// The block's proposer is not a validator.
    #[error("block {height} proposer {key} is not a validator")]
    Proposer {
        /// The block's height.
        height: Height,
        /// The proposer's key.
        key: String,
    },
    /// The block's proposer had no turn in the rounds up to the one that decided it.
    #[error(
        "block {height} names proposer {key}, who has no turn in rounds 0 to {round} of this height (round 0's proposer is {first})"
    )]
    ProposerTurn {
        /// The block's height.
        height: Height,
        /// The round its certificate was signed in.
        round: u32,
        /// The proposer the header names.
        key: String,
        /// Round 0's proposer.
        first: String,
    },
    /// A transaction's expiry height is below the block's height.
    #[error(
        "block {height} transaction {index} ({tx}) expired at height {expiry} and may not commit at {height}"
    )]
    Expired {
        /// The block's height.
        height: Height,
        /// The transaction's position in the block.
        index: usize,
        /// Its id.
        tx: TxId,
        /// Its expiry height.
        expiry: Height,
    },
    /// A block carries the same transaction, or the same (signer, nonce) pair, twice.
    #[error(
        "block {height} transaction {index} ({tx}) repeats signer {signer} nonce {nonce} of transaction {earlier} in the same block"
    )]
    RepeatedInBlock {
        /// The block's height.
        height: Height,
        /// The later transaction's position.
        index: usize,
        /// The earlier one's position.
        earlier: usize,
        /// The later transaction's id.
        tx: TxId,
        /// The signer.
        signer: String,
        /// The nonce both carry.
        nonce: u64,
    },
    /// The block carries no certificate.
    #[error("block has no commit certificate")]
    NoCertificate,
    /// The certificate is for another block.
    #[error(
        "certificate is for height {cert_height} hash {cert_hash}, the block is height {height} hash {hash}"
    )]
    CertificateTarget {
        /// The block's height.
        height: Height,
        /// The certificate's height.
        cert_height: Height,
        /// The certificate's hash.
        cert_hash: BlockHash,
        /// The block's hash.
        hash: BlockHash,
    },
    /// Certificate signers are not strictly sorted (a repeat or a reordering).
    #[error("certificate signer {key} is repeated or out of order")]
    CertificateOrder {
        /// The offending key.
        key: String,
    },
    /// A certificate signer is not in the validator set.
    #[error("certificate signer {key} is not a validator")]
    NotAValidator {
        /// The signer's key.
        key: String,
    },
    /// Too few signatures.
    #[error(
        "certificate has {signers} signatures, a quorum of {validators} validators is {quorum}"
    )]
    NoQuorum {
        /// Signatures present.
        signers: usize,
        /// Signatures needed.
        quorum: usize,
        /// Validators in the set.
        validators: usize,
    },
    /// A certificate signature does not verify.
    #[error("certificate signature: {0}")]
    CertificateSignature(SignatureError),
}

/// A block: header, transactions and commit certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions in order.
    pub txs: Vec<SignedTx>,
    /// The commit certificate.
    pub certificate: CommitCertificate,
}

/// The Merkle root over transaction ids, in block order.
pub fn tx_root(txs: &[SignedTx]) -> Hash32 {
    let ids: Vec<[u8; 32]> = txs.iter().map(|t| *t.id().as_bytes()).collect();
    MerkleTree::new(&ids).root()
}

impl Block {
    /// The block's hash.
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb::Block {
        pb::Block {
            header: Some(self.header.to_proto()),
            transactions: self
                .txs
                .iter()
                .map(|t| {
                    pb::Transaction::decode(t.bytes()).expect("a SignedTx holds canonical bytes")
                })
                .collect(),
            certificate: Some(self.certificate.to_proto()),
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes a block, refusing non-canonical bytes at every level.
    pub fn decode(bytes: &[u8]) -> Result<Block, BlockError> {
        let p: pb::Block = decode_canonical("Block", bytes)?;
        let header = BlockHeader::from_proto(p.header.ok_or(DecodeError::Missing {
            what: "Block",
            field: "header",
        })?)?;
        let certificate =
            CommitCertificate::from_proto(p.certificate.ok_or(BlockError::NoCertificate)?)?;
        let txs = p
            .transactions
            .iter()
            .enumerate()
            .map(|(index, t)| {
                SignedTx::decode(&t.encode_to_vec()).map_err(|e| TxError::InList {
                    index,
                    source: Box::new(e),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Block {
            header,
            txs,
            certificate,
        })
    }

    /// Checks what the block says about itself: chain ids, the transaction root and count, and
    /// every transaction signature (one batch).
    pub fn verify_body(&self, chain_id: &ChainId) -> Result<(), BlockError> {
        self.verify_structure(chain_id)?;
        verify_transactions(&self.txs)?;
        Ok(())
    }

    /// [`Block::verify_body`] that skips the signatures of transactions for which
    /// `already_verified` says the caller verified them before (a validator's mempool
    /// intake, for instance). The caller must key what it remembers by the signature too:
    /// a transaction's id does not cover its signature. The others are verified in one batch; an error names the
    /// transaction's index in the block.
    pub fn verify_body_skipping(
        &self,
        chain_id: &ChainId,
        already_verified: impl Fn(&SignedTx) -> bool,
    ) -> Result<(), BlockError> {
        self.verify_structure(chain_id)?;
        let (positions, rest): (Vec<usize>, Vec<&SignedTx>) = self
            .txs
            .iter()
            .enumerate()
            .filter(|(_, tx)| !already_verified(tx))
            .unzip();
        crate::tx::verify_transaction_refs(&rest).map_err(|e| match e {
            TxError::InList { index, source } => BlockError::Tx(TxError::InList {
                index: positions.get(index).copied().unwrap_or(index),
                source,
            }),
            other => BlockError::Tx(other),
        })
    }

    /// [`Block::verify_body`] without the signatures: chain ids, root and count.
    pub fn verify_structure(&self, chain_id: &ChainId) -> Result<(), BlockError> {
        if &self.header.chain_id != chain_id {
            return Err(BlockError::WrongChain {
                expected: chain_id.to_string(),
                found: self.header.chain_id.to_string(),
            });
        }
        let body_root = tx_root(&self.txs);
        if body_root != self.header.tx_root || self.txs.len() as u64 != self.header.tx_count {
            return Err(BlockError::TxRoot {
                height: self.header.height,
                header_root: self.header.tx_root,
                header_count: self.header.tx_count,
                body_root,
                body_count: self.txs.len() as u64,
            });
        }
        for (index, tx) in self.txs.iter().enumerate() {
            tx.check_chain(chain_id).map_err(|e| TxError::InList {
                index,
                source: Box::new(e),
            })?;
        }
        self.check_commit_rules()
    }

    /// The rules a block's transactions obey at its height, whoever built it: none has
    /// expired, and no (signer, nonce) pair (so no transaction) appears twice. Replays of
    /// earlier blocks need the chain's history; see `ReplayWindow`.
    pub fn check_commit_rules(&self) -> Result<(), BlockError> {
        let height = self.header.height;
        let mut seen: BTreeMap<(&PublicKey, u64), usize> = BTreeMap::new();
        for (index, tx) in self.txs.iter().enumerate() {
            if tx.expiry() < height {
                return Err(BlockError::Expired {
                    height,
                    index,
                    tx: tx.id(),
                    expiry: tx.expiry(),
                });
            }
            if let Some(&earlier) = seen.get(&(tx.signer(), tx.nonce())) {
                return Err(BlockError::RepeatedInBlock {
                    height,
                    index,
                    earlier,
                    tx: tx.id(),
                    signer: tx.signer().to_string(),
                    nonce: tx.nonce(),
                });
            }
            seen.insert((tx.signer(), tx.nonce()), index);
        }
        Ok(())
    }
}

/// Walks a chain from genesis and checks each block against the one before: height, hash link,
/// time, body, validator set and commit certificate.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    chain_id: ChainId,
    validators: ValidatorSet,
    next_height: Height,
    prev_hash: BlockHash,
    prev_time: Option<u64>,
    genesis_time: u64,
    transactions: u64,
}

impl ChainVerifier {
    /// Starts at genesis, expecting block 1 next.
    pub fn new(genesis: &Genesis) -> Self {
        ChainVerifier {
            chain_id: genesis.chain_id.clone(),
            validators: genesis.validator_set(),
            next_height: Height(1),
            prev_hash: BlockHash(Hash32::ZERO),
            prev_time: None,
            genesis_time: genesis.genesis_time_unix_ms,
            transactions: 0,
        }
    }

    /// Resumes after a block already verified and stored: `last` is its header.
    pub fn resume(genesis: &Genesis, last: &BlockHeader, transactions: u64) -> Self {
        let mut verifier = ChainVerifier::new(genesis);
        verifier.next_height = Height(last.height.0.saturating_add(1));
        verifier.prev_hash = last.hash();
        verifier.prev_time = Some(last.time_unix_ms);
        verifier.transactions = transactions;
        verifier
    }

    /// The height the next block must have.
    pub fn next_height(&self) -> Height {
        self.next_height
    }

    /// The hash of the last verified block (zero before block 1).
    pub fn last_hash(&self) -> BlockHash {
        self.prev_hash
    }

    /// Transactions verified so far.
    pub fn transactions(&self) -> u64 {
        self.transactions
    }

    /// The validator set in force.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// Replaces the validator set that must certify the next block. Governance calls this
    /// after a block whose committed changes take effect at the following height.
    pub fn set_validators(&mut self, set: ValidatorSet) {
        self.validators = set;
    }

    /// Verifies `block` as the next block and advances.
    pub fn push(&mut self, block: &Block) -> Result<(), BlockError> {
        self.push_checking(block, true)
    }

    /// Like [`ChainVerifier::push`] for a block whose transaction signatures the caller has
    /// already verified: everything else (height, links, time, root, validators, certificate)
    /// is still checked.
    pub fn push_with_verified_body(&mut self, block: &Block) -> Result<(), BlockError> {
        self.push_checking(block, false)
    }

    fn push_checking(&mut self, block: &Block, signatures: bool) -> Result<(), BlockError> {
        let h = &block.header;
        if h.chain_id != self.chain_id {
            return Err(BlockError::WrongChain {
                expected: self.chain_id.to_string(),
                found: h.chain_id.to_string(),
            });
        }
        if h.height != self.next_height {
            return Err(BlockError::Height {
                expected: self.next_height,
                found: h.height,
            });
        }
        if h.prev_hash != self.prev_hash {
            return Err(BlockError::PrevHash {
                height: h.height,
                expected: self.prev_hash,
                found: h.prev_hash,
            });
        }
        let time_ok = match self.prev_time {
            Some(previous) => h.time_unix_ms > previous,
            None => h.time_unix_ms >= self.genesis_time,
        };
        if !time_ok {
            return Err(BlockError::Time {
                height: h.height,
                time: h.time_unix_ms,
                previous: self.prev_time.unwrap_or(self.genesis_time),
            });
        }
        let expected_validators = self.validators.hash();
        if h.validators_hash != expected_validators {
            return Err(BlockError::ValidatorsHash {
                height: h.height,
                expected: expected_validators,
                found: h.validators_hash,
            });
        }
        if self.validators.get(&h.proposer).is_none() {
            return Err(BlockError::Proposer {
                height: h.height,
                key: h.proposer.to_string(),
            });
        }
        if signatures {
            block.verify_body(&self.chain_id)?;
        } else {
            block.verify_structure(&self.chain_id)?;
        }
        block.certificate.verify(h, &self.validators)?;
        let round = block.certificate.round;
        if !self.validators.may_have_built(&h.proposer, h.height, round) {
            return Err(BlockError::ProposerTurn {
                height: h.height,
                round,
                key: h.proposer.to_string(),
                first: self.validators.proposer(h.height, 0).key.to_string(),
            });
        }
        self.prev_hash = block.hash();
        self.prev_time = Some(h.time_unix_ms);
        self.next_height = h.height.next().ok_or(BlockError::Height {
            expected: h.height,
            found: h.height,
        })?;
        self.transactions += block.txs.len() as u64;
        Ok(())
    }
}
