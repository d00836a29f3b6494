//! The consensus network messages and their protobuf encoding
//! (`citychain.consensus.v1.ConsensusEnvelope`): signed proposals and votes, the proposed
//! block's bytes, polka and round certificates, and decided blocks for lagging validators.
//!
//! Decoding checks shapes only (lengths, keys, enums, that a block decodes canonically) and
//! names the field at fault; signatures and membership are the node's business. It never
//! panics, whatever the bytes.

use citychain_kernel::{
    Block, BlockHash, ChainId, CommitCertificate, Hash32, PublicKey, Signature,
};
use citychain_proto::citychain::consensus::v1 as pb;
use malachitebft_core_types::{
    self as mt, NilOrVal, PolkaSignature, Round, RoundCertificateType, RoundSignature,
    SignedMessage, VoteType,
};
use prost::Message;
use thiserror::Error;

use crate::context::{
    Address, BlockValue, CityContext, ConsensusSignature, Height, Proposal, Vote,
};

/// A vote with its signature.
pub type SignedVote = mt::SignedVote<CityContext>;
/// A proposal with its signature.
pub type SignedProposal = mt::SignedProposal<CityContext>;
/// A quorum of prevotes for one block in one round.
pub type PolkaCertificate = mt::PolkaCertificate<CityContext>;
/// Votes that let a validator enter a round.
pub type RoundCertificate = mt::RoundCertificate<CityContext>;

/// Why bytes are not a consensus message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Not protobuf at all.
    #[error("consensus message does not decode: {0}")]
    Decode(String),
    /// A required field is absent.
    #[error("consensus message lacks {field}")]
    Missing {
        /// The field, as `Message.field`.
        field: &'static str,
    },
    /// A field is present but unusable.
    #[error("consensus message field {field} is invalid: {reason}")]
    Invalid {
        /// The field, as `Message.field`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl ToString) -> WireError {
    WireError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

/// The proposed block's bytes for (height, round).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPart {
    /// The height.
    pub height: u64,
    /// The round it is (re)proposed in.
    pub round: u32,
    /// The block; its certificate is a placeholder until the block is decided.
    pub block: Block,
}

/// One consensus network message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    /// A signed proposal (names the block by hash).
    Proposal(SignedProposal),
    /// A signed prevote or precommit.
    Vote(SignedVote),
    /// The body of a proposed block.
    BlockPart(BlockPart),
    /// A polka certificate (sent with re-proposals and on locking).
    PolkaCertificate(PolkaCertificate),
    /// A round certificate (lets lagging validators catch up on rounds).
    RoundCertificate(RoundCertificate),
    /// A decided block with its commit certificate, for a validator that is behind.
    DecidedBlock(Block),
}

/// A message with the chain it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The chain.
    pub chain_id: ChainId,
    /// The message.
    pub message: WireMessage,
}

/// `block` with its certificate replaced by the placeholder a proposed block carries: the
/// block's height and hash, round 0, no signatures. A proposed block has no certificate yet,
/// and the kernel's block encoding requires one.
pub fn with_placeholder_certificate(block: &Block) -> Block {
    Block {
        header: block.header.clone(),
        txs: block.txs.clone(),
        certificate: CommitCertificate {
            height: block.header.height,
            round: 0,
            block_hash: block.hash(),
            signatures: Vec::new(),
        },
    }
}

impl Envelope {
    /// The protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        pb::ConsensusEnvelope::from(self).encode_to_vec()
    }

    /// Decodes and shape-checks an envelope.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
        let p =
            pb::ConsensusEnvelope::decode(bytes).map_err(|e| WireError::Decode(e.to_string()))?;
        Envelope::try_from(p)
    }
}

fn hash_to_bytes(hash: &BlockHash) -> Vec<u8> {
    hash.as_bytes().to_vec()
}

fn nil_or_hash_to_bytes(value: &NilOrVal<BlockHash>) -> Vec<u8> {
    match value {
        NilOrVal::Nil => Vec::new(),
        NilOrVal::Val(hash) => hash_to_bytes(hash),
    }
}

fn vote_type_to_proto(t: VoteType) -> i32 {
    match t {
        VoteType::Prevote => pb::VoteType::Prevote as i32,
        VoteType::Precommit => pb::VoteType::Precommit as i32,
    }
}

fn round_to_proto(round: Round) -> u32 {
    crate::context::round_u32(round)
}

fn sig_bytes(sig: &ConsensusSignature) -> Vec<u8> {
    sig.0.to_bytes().to_vec()
}

fn key_bytes(address: &Address) -> Vec<u8> {
    address.0.to_bytes().to_vec()
}

fn vote_to_proto(v: &SignedVote) -> pb::SignedVote {
    pb::SignedVote {
        vote: Some(pb::Vote {
            height: v.message.height.0,
            round: round_to_proto(v.message.round),
            vote_type: vote_type_to_proto(v.message.vote_type),
            block_hash: nil_or_hash_to_bytes(&v.message.value),
            validator: key_bytes(&v.message.validator),
        }),
        signature: sig_bytes(&v.signature),
    }
}

fn proposal_to_proto(p: &SignedProposal) -> pb::SignedProposal {
    pb::SignedProposal {
        proposal: Some(pb::Proposal {
            height: p.message.height.0,
            round: round_to_proto(p.message.round),
            block_hash: hash_to_bytes(&p.message.value.0),
            pol_round: p.message.pol_round.as_u32(),
            proposer: key_bytes(&p.message.proposer),
        }),
        signature: sig_bytes(&p.signature),
    }
}

impl From<&Envelope> for pb::ConsensusEnvelope {
    fn from(e: &Envelope) -> Self {
        use pb::consensus_envelope::Message as M;
        let message = match &e.message {
            WireMessage::Proposal(p) => M::Proposal(proposal_to_proto(p)),
            WireMessage::Vote(v) => M::Vote(vote_to_proto(v)),
            WireMessage::BlockPart(part) => M::BlockPart(pb::BlockPart {
                height: part.height,
                round: part.round,
                block: with_placeholder_certificate(&part.block).encode(),
            }),
            WireMessage::PolkaCertificate(c) => M::PolkaCertificate(pb::PolkaCertificate {
                height: c.height.0,
                round: round_to_proto(c.round),
                block_hash: hash_to_bytes(&c.value_id),
                signatures: c
                    .polka_signatures
                    .iter()
                    .map(|s| pb::PolkaSignature {
                        validator: key_bytes(&s.address),
                        signature: sig_bytes(&s.signature),
                    })
                    .collect(),
            }),
            WireMessage::RoundCertificate(c) => M::RoundCertificate(pb::RoundCertificate {
                height: c.height.0,
                round: round_to_proto(c.round),
                cert_type: match c.cert_type {
                    RoundCertificateType::Precommit => pb::RoundCertificateType::Precommit as i32,
                    RoundCertificateType::Skip => pb::RoundCertificateType::Skip as i32,
                },
                signatures: c
                    .round_signatures
                    .iter()
                    .map(|s| pb::RoundSignature {
                        vote_type: vote_type_to_proto(s.vote_type),
                        block_hash: nil_or_hash_to_bytes(&s.value_id),
                        validator: key_bytes(&s.address),
                        signature: sig_bytes(&s.signature),
                    })
                    .collect(),
            }),
            WireMessage::DecidedBlock(block) => M::DecidedBlock(pb::DecidedBlock {
                block: block.encode(),
            }),
        };
        pb::ConsensusEnvelope {
            chain_id: e.chain_id.as_str().to_string(),
            message: Some(message),
        }
    }
}

fn parse_hash(field: &'static str, bytes: &[u8]) -> Result<BlockHash, WireError> {
    Hash32::from_slice(field, bytes)
        .map(BlockHash)
        .map_err(|e| invalid(field, e))
}

fn parse_nil_or_hash(field: &'static str, bytes: &[u8]) -> Result<NilOrVal<BlockHash>, WireError> {
    if bytes.is_empty() {
        Ok(NilOrVal::Nil)
    } else {
        parse_hash(field, bytes).map(NilOrVal::Val)
    }
}

fn parse_key(field: &'static str, bytes: &[u8]) -> Result<Address, WireError> {
    PublicKey::from_slice(field, bytes)
        .map(Address)
        .map_err(|e| invalid(field, e))
}

fn parse_sig(field: &'static str, bytes: &[u8]) -> Result<ConsensusSignature, WireError> {
    Signature::from_slice(field, bytes)
        .map(ConsensusSignature)
        .map_err(|e| invalid(field, e))
}

fn parse_vote_type(field: &'static str, raw: i32) -> Result<VoteType, WireError> {
    match pb::VoteType::try_from(raw) {
        Ok(pb::VoteType::Prevote) => Ok(VoteType::Prevote),
        Ok(pb::VoteType::Precommit) => Ok(VoteType::Precommit),
        _ => Err(invalid(field, format!("{raw} is not a vote type"))),
    }
}

/// Rounds are bounded so that `round + 1` and round arithmetic inside the protocol never
/// overflow; no honest network reaches a billion rounds at one height.
const MAX_ROUND: u32 = 1 << 30;

fn parse_round(field: &'static str, raw: u32) -> Result<Round, WireError> {
    if raw > MAX_ROUND {
        return Err(invalid(field, format!("round {raw} exceeds {MAX_ROUND}")));
    }
    Ok(Round::new(raw))
}

fn parse_block(field: &'static str, bytes: &[u8]) -> Result<Block, WireError> {
    Block::decode(bytes).map_err(|e| invalid(field, e))
}

/// Reads a `SignedVote` (Malachite's type is foreign, so this is a function, not `TryFrom`).
pub fn signed_vote_from_proto(p: pb::SignedVote) -> Result<SignedVote, WireError> {
    let v = p.vote.ok_or(WireError::Missing {
        field: "SignedVote.vote",
    })?;
    let vote = Vote {
        vote_type: parse_vote_type("Vote.vote_type", v.vote_type)?,
        height: Height(v.height),
        round: parse_round("Vote.round", v.round)?,
        value: parse_nil_or_hash("Vote.block_hash", &v.block_hash)?,
        validator: parse_key("Vote.validator", &v.validator)?,
    };
    Ok(SignedMessage::new(
        vote,
        parse_sig("SignedVote.signature", &p.signature)?,
    ))
}

/// Reads a `SignedProposal` (Malachite's type is foreign, so this is a function, not `TryFrom`).
pub fn signed_proposal_from_proto(p: pb::SignedProposal) -> Result<SignedProposal, WireError> {
    let q = p.proposal.ok_or(WireError::Missing {
        field: "SignedProposal.proposal",
    })?;
    let round = parse_round("Proposal.round", q.round)?;
    let pol_round = match q.pol_round {
        None => Round::Nil,
        Some(r) => parse_round("Proposal.pol_round", r)?,
    };
    if pol_round.is_defined() && pol_round >= round {
        return Err(invalid(
            "Proposal.pol_round",
            format!("pol_round {pol_round} is not before round {round}"),
        ));
    }
    let proposal = Proposal {
        height: Height(q.height),
        round,
        value: BlockValue(parse_hash("Proposal.block_hash", &q.block_hash)?),
        pol_round,
        proposer: parse_key("Proposal.proposer", &q.proposer)?,
    };
    Ok(SignedMessage::new(
        proposal,
        parse_sig("SignedProposal.signature", &p.signature)?,
    ))
}

/// Reads a `PolkaCertificate` (Malachite's type is foreign, so this is a function, not `TryFrom`).
pub fn polka_certificate_from_proto(
    p: pb::PolkaCertificate,
) -> Result<PolkaCertificate, WireError> {
    Ok(mt::PolkaCertificate {
        height: Height(p.height),
        round: parse_round("PolkaCertificate.round", p.round)?,
        value_id: parse_hash("PolkaCertificate.block_hash", &p.block_hash)?,
        polka_signatures: p
            .signatures
            .into_iter()
            .map(|s| {
                Ok(PolkaSignature::new(
                    parse_key("PolkaSignature.validator", &s.validator)?,
                    parse_sig("PolkaSignature.signature", &s.signature)?,
                ))
            })
            .collect::<Result<_, WireError>>()?,
    })
}

/// Reads a `RoundCertificate` (Malachite's type is foreign, so this is a function, not `TryFrom`).
pub fn round_certificate_from_proto(
    p: pb::RoundCertificate,
) -> Result<RoundCertificate, WireError> {
    let cert_type = match pb::RoundCertificateType::try_from(p.cert_type) {
        Ok(pb::RoundCertificateType::Precommit) => RoundCertificateType::Precommit,
        Ok(pb::RoundCertificateType::Skip) => RoundCertificateType::Skip,
        _ => {
            return Err(invalid(
                "RoundCertificate.cert_type",
                format!("{} is not a certificate type", p.cert_type),
            ));
        }
    };
    Ok(mt::RoundCertificate {
        height: Height(p.height),
        round: parse_round("RoundCertificate.round", p.round)?,
        cert_type,
        round_signatures: p
            .signatures
            .into_iter()
            .map(|s| {
                Ok(RoundSignature::new(
                    parse_vote_type("RoundSignature.vote_type", s.vote_type)?,
                    parse_nil_or_hash("RoundSignature.block_hash", &s.block_hash)?,
                    parse_key("RoundSignature.validator", &s.validator)?,
                    parse_sig("RoundSignature.signature", &s.signature)?,
                ))
            })
            .collect::<Result<_, WireError>>()?,
    })
}

impl TryFrom<pb::ConsensusEnvelope> for Envelope {
    type Error = WireError;

    fn try_from(p: pb::ConsensusEnvelope) -> Result<Self, WireError> {
        use pb::consensus_envelope::Message as M;
        let chain_id =
            ChainId::new(p.chain_id).map_err(|e| invalid("ConsensusEnvelope.chain_id", e))?;
        let message = match p.message.ok_or(WireError::Missing {
            field: "ConsensusEnvelope.message",
        })? {
            M::Proposal(x) => WireMessage::Proposal(signed_proposal_from_proto(x)?),
            M::Vote(x) => WireMessage::Vote(signed_vote_from_proto(x)?),
            M::BlockPart(x) => WireMessage::BlockPart(BlockPart {
                height: x.height,
                round: parse_round("BlockPart.round", x.round).map(crate::context::round_u32)?,
                block: parse_block("BlockPart.block", &x.block)?,
            }),
            M::PolkaCertificate(x) => {
                WireMessage::PolkaCertificate(polka_certificate_from_proto(x)?)
            }
            M::RoundCertificate(x) => {
                WireMessage::RoundCertificate(round_certificate_from_proto(x)?)
            }
            M::DecidedBlock(x) => {
                WireMessage::DecidedBlock(parse_block("DecidedBlock.block", &x.block)?)
            }
        };
        Ok(Envelope { chain_id, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_kernel::{BlockHeader, MemberId, SignedTx, SigningKey, TxBody, ValidatorSet};
    use malachitebft_core_types::{Context as _, SigningProvider};
    use proptest::prelude::*;

    use crate::signing::CitySigner;

    fn chain() -> ChainId {
        ChainId::new("test-chain").unwrap()
    }

    fn samples() -> Vec<Envelope> {
        let ctx = CityContext::new(chain());
        let key = SigningKey::from_seed(&[3; 32]);
        let signer = CitySigner::new(ctx.clone(), key.clone());
        let me = Address(key.public_key());
        let set = ValidatorSet::new(vec![citychain_kernel::Validator {
            member_id: MemberId::new("dept.tax").unwrap(),
            key: key.public_key(),
        }]);
        let tx = SignedTx::sign(
            &chain(),
            &key,
            1,
            citychain_kernel::Height(10),
            TxBody::new("t", vec![1, 2]),
        )
        .unwrap();
        let header = BlockHeader::new(
            chain(),
            citychain_kernel::Height(2),
            5,
            Default::default(),
            std::slice::from_ref(&tx),
            &set,
            key.public_key(),
        );
        let block = with_placeholder_certificate(&Block {
            header,
            txs: vec![tx],
            certificate: CommitCertificate {
                height: citychain_kernel::Height(2),
                round: 0,
                block_hash: Default::default(),
                signatures: vec![],
            },
        });
        let hash = block.hash();
        let prevote =
            signer.sign_vote(ctx.new_prevote(Height(2), Round::new(1), NilOrVal::Val(hash), me));
        let nil = signer.sign_vote(ctx.new_precommit(Height(2), Round::new(1), NilOrVal::Nil, me));
        let proposal = signer.sign_proposal(ctx.new_proposal(
            Height(2),
            Round::new(3),
            BlockValue(hash),
            Round::new(1),
            me,
        ));
        let polka = mt::PolkaCertificate {
            height: Height(2),
            round: Round::new(1),
            value_id: hash,
            polka_signatures: vec![PolkaSignature::new(me, prevote.signature)],
        };
        let round_cert = mt::RoundCertificate::new_from_votes(
            Height(2),
            Round::new(1),
            RoundCertificateType::Skip,
            vec![prevote.clone(), nil.clone()],
        );
        let mut decided = block.clone();
        decided.certificate.round = 4;
        [
            WireMessage::Vote(prevote),
            WireMessage::Vote(nil),
            WireMessage::Proposal(proposal),
            WireMessage::BlockPart(BlockPart {
                height: 2,
                round: 3,
                block,
            }),
            WireMessage::PolkaCertificate(polka),
            WireMessage::RoundCertificate(round_cert),
            WireMessage::DecidedBlock(decided),
        ]
        .into_iter()
        .map(|message| Envelope {
            chain_id: chain(),
            message,
        })
        .collect()
    }

    #[test]
    fn every_message_round_trips() {
        for envelope in samples() {
            let bytes = envelope.encode();
            assert_eq!(Envelope::decode(&bytes), Ok(envelope));
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        let p = pb::ConsensusEnvelope {
            chain_id: "test-chain".into(),
            message: None,
        };
        assert_eq!(
            Envelope::try_from(p),
            Err(WireError::Missing {
                field: "ConsensusEnvelope.message"
            })
        );
        let p = pb::ConsensusEnvelope {
            chain_id: "test-chain".into(),
            message: Some(pb::consensus_envelope::Message::Vote(pb::SignedVote {
                vote: None,
                signature: vec![0; 64],
            })),
        };
        assert_eq!(
            Envelope::try_from(p),
            Err(WireError::Missing {
                field: "SignedVote.vote"
            })
        );
        let bad_type = pb::SignedVote {
            vote: Some(pb::Vote {
                vote_type: 9,
                ..Default::default()
            }),
            signature: vec![0; 64],
        };
        assert!(matches!(
            signed_vote_from_proto(bad_type),
            Err(WireError::Invalid {
                field: "Vote.vote_type",
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Envelope::decode(&bytes);
        }

        #[test]
        fn corrupted_messages_never_panic(which in 0usize..7, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = samples()[which].encode();
            for (at, x) in flips {
                let i = at % bytes.len();
                bytes[i] ^= x;
            }
            let _ = Envelope::decode(&bytes);
        }
    }
}
