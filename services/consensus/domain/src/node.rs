//! One validator's consensus engine as a deterministic state machine: messages, timer firings
//! and proposed blocks go in, messages to send, timers to set, value requests, decided blocks
//! with their kernel certificates and equivocation evidence come out.
//!
//! The IO shell and the simulator both drive a [`Node`]; neither sees Malachite. Inside, every
//! input passes through Malachite's `process!`, whose effects are answered synchronously here
//! (signing, verification, validator sets) or turned into [`Output`]s. Follow-ups that
//! Malachite wants as *new* inputs (the next height after a decision, the proposed value after
//! a value request) are queued and processed after `process!` returns, never from inside it.
//!
//! What the node checks before Malachite sees a message: the chain id, that the height is
//! neither decided nor too far ahead, that the signer is a validator, the signature, and that a
//! proposal comes from the round's proposer. A block is judged (height, hash link, time,
//! validator set, proposer, body, the host's [`BlockChecker`]) once both its signed proposal
//! and its bytes are present, and Malachite is told whether it is valid.
//!
//! A validator that missed a decision gets the decided block (with its certificate) from any
//! validator it keeps sending old-height votes to; the node accepts such a block only when its
//! commit certificate verifies against the validator set. The node keeps only what it needs to
//! judge the next block (the previous hash and time) and a small window of recent blocks to
//! serve laggards; the chain itself is the shell's to store.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use citychain_kernel::{
    Block, BlockError, BlockHash, ChainId, Hash32, PublicKey, SignedTx, SigningKey,
    ValidatorSet as KernelValidatorSet,
};
use malachitebft_core_consensus::{
    Effect, Input as MInput, LivenessMsg, LocallyProposedValue, Params, ProposedValue, Resumable,
    Resume, SignedConsensusMsg, State, ThresholdParams, ValuePayload, process,
};
use malachitebft_core_types::{
    self as mt, Round, SigningProvider, SigningProviderExt, Timeout, TimeoutKind, Validity,
    ValueOrigin, VoteType,
};
use thiserror::Error;

use crate::context::{
    Address, BlockValue, CityContext, ConsensusSignature, Height, Proposal, ValidatorSet,
    proposer_of, round_u32,
};
use crate::signing::{CitySigner, to_kernel_certificate};
use crate::wire::{BlockPart, Envelope, SignedProposal, SignedVote, WireMessage};

/// Timeouts and bounds of a node. Durations grow linearly with the round so that after the
/// network stabilises some round is long enough for everyone (the partial-synchrony argument).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeParams {
    /// Propose timeout at round 0, in milliseconds.
    pub propose_ms: u64,
    /// Added to the propose timeout per round.
    pub propose_delta_ms: u64,
    /// Prevote timeout at round 0.
    pub prevote_ms: u64,
    /// Added to the prevote timeout per round.
    pub prevote_delta_ms: u64,
    /// Precommit timeout at round 0.
    pub precommit_ms: u64,
    /// Added to the precommit timeout per round.
    pub precommit_delta_ms: u64,
    /// How often a stuck round re-sends its votes and round certificate.
    pub rebroadcast_ms: u64,
    /// Messages for heights more than this far ahead are dropped (they cannot be judged and
    /// would otherwise fill memory).
    pub max_future_heights: u64,
    /// Genesis time: block 1 may not be older.
    pub genesis_time_unix_ms: u64,
    /// How many distinct proposals and block bodies one height may hold (bounds what an
    /// equivocating proposer can make us store).
    pub max_proposals_per_height: usize,
    /// How many recent decided blocks are kept to serve validators that fell behind.
    pub recent_blocks: usize,
    /// Capacity of Malachite's queue of inputs for future heights.
    pub queue_capacity: usize,
}

impl Default for NodeParams {
    fn default() -> Self {
        NodeParams {
            propose_ms: 1_000,
            propose_delta_ms: 500,
            prevote_ms: 500,
            prevote_delta_ms: 250,
            precommit_ms: 500,
            precommit_delta_ms: 250,
            rebroadcast_ms: 2_000,
            max_future_heights: 16,
            genesis_time_unix_ms: 0,
            max_proposals_per_height: 64,
            recent_blocks: 16,
            queue_capacity: 4_096,
        }
    }
}

/// Which protocol step a timer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// Waiting for the proposal.
    Propose,
    /// Waiting for prevotes after seeing a quorum for anything.
    Prevote,
    /// Waiting for precommits after seeing a quorum for anything.
    Precommit,
    /// Periodic re-sending while a round is stuck.
    Rebroadcast,
}

impl From<TimeoutKind> for TimerKind {
    fn from(k: TimeoutKind) -> Self {
        match k {
            TimeoutKind::Propose => TimerKind::Propose,
            TimeoutKind::Prevote => TimerKind::Prevote,
            TimeoutKind::Precommit => TimerKind::Precommit,
            TimeoutKind::Rebroadcast => TimerKind::Rebroadcast,
        }
    }
}

impl From<TimerKind> for TimeoutKind {
    fn from(k: TimerKind) -> Self {
        match k {
            TimerKind::Propose => TimeoutKind::Propose,
            TimerKind::Prevote => TimeoutKind::Prevote,
            TimerKind::Precommit => TimeoutKind::Precommit,
            TimerKind::Rebroadcast => TimeoutKind::Rebroadcast,
        }
    }
}

/// The host's rules for block contents beyond what the kernel checks (mempool admission,
/// replay windows): `Err` makes the node prevote nil on the block.
pub trait BlockChecker {
    /// Judges a proposed block whose header and body already passed the node's checks.
    fn check(&self, block: &Block) -> Result<(), String>;

    /// Whether the host has already verified this transaction's signature (its mempool
    /// intake does), so judging a block need not verify it again. Remember transactions by
    /// id AND signature: the id does not cover the signature. By default none is.
    fn already_verified(&self, _tx: &SignedTx) -> bool {
        false
    }

    /// The validator set of the height after `decided`, when `decided` changes it (the chain's
    /// governance decides that); `None` keeps the set. By default the set never changes.
    fn next_validators(&self, _decided: &Block) -> Option<KernelValidatorSet> {
        None
    }
}

impl<F> BlockChecker for F
where
    F: Fn(&Block) -> Result<(), String>,
{
    fn check(&self, block: &Block) -> Result<(), String> {
        self(block)
    }
}

/// A checker that accepts every block the kernel accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl BlockChecker for AcceptAll {
    fn check(&self, _block: &Block) -> Result<(), String> {
        Ok(())
    }
}

/// The last decided block, as far as judging the next one needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    /// Its hash.
    pub hash: BlockHash,
    /// Its time.
    pub time_unix_ms: u64,
}

/// What goes into a node.
#[derive(Debug, Clone)]
pub enum Input {
    /// A decoded network message.
    Message(Envelope),
    /// A timer the node asked for has fired.
    TimeoutElapsed {
        /// The height it was set at.
        height: u64,
        /// Its kind.
        kind: TimerKind,
        /// Its round.
        round: u32,
    },
    /// The host's answer to [`Output::NeedValue`]: the block to propose (its certificate is
    /// ignored).
    ProposeValue(Block),
}

/// What the host must put in the block it is asked to propose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueRequest {
    /// The block's height.
    pub height: u64,
    /// The round it is for (answers for an older round are dropped).
    pub round: u32,
    /// The previous block's hash (zero at height 1).
    pub prev_hash: BlockHash,
    /// The earliest acceptable block time.
    pub min_time_unix_ms: u64,
    /// The proposer (this node).
    pub proposer: PublicKey,
    /// The validator set's hash.
    pub validators_hash: Hash32,
}

/// A vote or proposal this node signed, keyed by what it may sign only once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedMessage {
    /// A prevote or precommit.
    Vote(SignedVote),
    /// A proposal.
    Proposal(SignedProposal),
}

/// What a validator may sign at most once: (height, round, kind) with kind 0 for a proposal,
/// 1 for a prevote and 2 for a precommit.
pub type SigningSlot = (u64, u32, u8);

impl SignedMessage {
    /// The slot this message fills.
    pub fn slot(&self) -> SigningSlot {
        match self {
            SignedMessage::Proposal(p) => (p.height.0, round_u32(p.round), 0),
            SignedMessage::Vote(v) => (
                v.height.0,
                round_u32(v.round),
                match v.vote_type {
                    VoteType::Prevote => 1,
                    VoteType::Precommit => 2,
                },
            ),
        }
    }

    /// The vote, if this is one.
    pub fn as_vote(&self) -> Option<&SignedVote> {
        match self {
            SignedMessage::Vote(v) => Some(v),
            SignedMessage::Proposal(_) => None,
        }
    }

    /// The proposal, if this is one.
    pub fn as_proposal(&self) -> Option<&SignedProposal> {
        match self {
            SignedMessage::Proposal(p) => Some(p),
            SignedMessage::Vote(_) => None,
        }
    }

    /// The message as it travels, for storage.
    pub fn to_wire(&self) -> WireMessage {
        match self {
            SignedMessage::Vote(v) => WireMessage::Vote(v.clone()),
            SignedMessage::Proposal(p) => WireMessage::Proposal(p.clone()),
        }
    }

    /// Reads a stored message back; other kinds of wire message are not signed messages.
    pub fn from_wire(message: WireMessage) -> Option<SignedMessage> {
        match message {
            WireMessage::Vote(v) => Some(SignedMessage::Vote(v)),
            WireMessage::Proposal(p) => Some(SignedMessage::Proposal(p)),
            _ => None,
        }
    }
}

/// Two conflicting messages signed by one validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EquivocationEvidence {
    /// Two different votes of one type for one (height, round).
    Votes {
        /// The vote seen first.
        first: SignedVote,
        /// The conflicting vote.
        second: SignedVote,
    },
    /// Two different proposals for one (height, round).
    Proposals {
        /// The proposal seen first.
        first: SignedProposal,
        /// The conflicting proposal.
        second: SignedProposal,
    },
}

/// Why an input was not passed on to the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DropReason {
    /// The message is for another chain.
    #[error("message for chain {found:?}")]
    WrongChain {
        /// The chain it names.
        found: String,
    },
    /// The signer is not a validator.
    #[error("signer {key} is not a validator")]
    NonValidator {
        /// The signer.
        key: PublicKey,
    },
    /// The signature does not verify.
    #[error("bad signature claiming to be from {key}")]
    BadSignature {
        /// The claimed signer.
        key: PublicKey,
    },
    /// The height is too far ahead to judge.
    #[error("height {height} is more than the allowed distance ahead of {current}")]
    FarFutureHeight {
        /// The message's height.
        height: u64,
        /// The node's height.
        current: u64,
    },
    /// A proposal from someone who is not the round's proposer.
    #[error("proposal for height {height} round {round} from {key}, who is not its proposer")]
    WrongProposer {
        /// The height.
        height: u64,
        /// The round.
        round: u32,
        /// The signer.
        key: PublicKey,
    },
    /// The height already holds as many proposals or bodies as allowed.
    #[error("height {height} already holds the maximum number of proposals or blocks")]
    TooManyProposals {
        /// The height.
        height: u64,
    },
    /// A block part that does not match its own height.
    #[error("block part for height {height} carries a block of height {block_height}")]
    BadBlockPart {
        /// The part's height.
        height: u64,
        /// The block's height.
        block_height: u64,
    },
    /// A proposed block failed the node's checks (Malachite is told it is invalid).
    #[error("proposed block {hash} refused: {reason}")]
    InvalidBlock {
        /// The block's hash.
        hash: BlockHash,
        /// Why.
        reason: BlockRejection,
    },
    /// A decided block from a peer that does not verify.
    #[error("decided block refused: {reason}")]
    InvalidDecidedBlock {
        /// Why.
        reason: BlockRejection,
    },
    /// An answer to a value request that is no longer open.
    #[error("proposed value for height {height} is not wanted now (open request: round {round:?})")]
    StaleValue {
        /// The block's height.
        height: u64,
        /// The round the node was asked for, if any.
        round: Option<u32>,
    },
    /// The protocol refused the input.
    #[error("consensus refused the input: {0}")]
    Refused(String),
}

impl DropReason {
    /// A short stable label, for counting.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::WrongChain { .. } => "wrong_chain",
            DropReason::NonValidator { .. } => "non_validator",
            DropReason::BadSignature { .. } => "bad_signature",
            DropReason::FarFutureHeight { .. } => "far_future_height",
            DropReason::WrongProposer { .. } => "wrong_proposer",
            DropReason::TooManyProposals { .. } => "too_many_proposals",
            DropReason::BadBlockPart { .. } => "bad_block_part",
            DropReason::InvalidBlock { .. } => "invalid_block",
            DropReason::InvalidDecidedBlock { .. } => "invalid_decided_block",
            DropReason::StaleValue { .. } => "stale_value",
            DropReason::Refused(_) => "refused",
        }
    }
}

/// Why a block is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockRejection {
    /// The kernel refuses it (body, chain id, certificate).
    #[error(transparent)]
    Kernel(#[from] Box<BlockError>),
    /// Not the height being decided.
    #[error("block height {found}, expected {expected}")]
    Height {
        /// The node's height.
        expected: u64,
        /// The block's.
        found: u64,
    },
    /// Does not link to the last decided block.
    #[error("prev_hash {found}, the last decided block is {expected}")]
    PrevHash {
        /// The last decided block's hash.
        expected: BlockHash,
        /// The header's.
        found: BlockHash,
    },
    /// Not later than the previous block (or older than genesis).
    #[error("time {time} ms is before the earliest allowed {min} ms")]
    Time {
        /// The block's time.
        time: u64,
        /// The earliest allowed.
        min: u64,
    },
    /// Names another validator set.
    #[error("validators_hash {found}, the set in force hashes to {expected}")]
    ValidatorsHash {
        /// The set in force.
        expected: Hash32,
        /// The header's.
        found: Hash32,
    },
    /// The header's proposer is wrong for the proposal.
    #[error("header proposer {found} does not match the proposal's {expected}")]
    Proposer {
        /// Who signed the proposal (hex key).
        expected: String,
        /// Who the header names (hex key).
        found: String,
    },
    /// The host's checker refused it.
    #[error("refused by the host: {0}")]
    Host(String),
}

/// What comes out of a node.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send to every validator.
    Broadcast(Envelope),
    /// Send to one validator.
    SendTo {
        /// The recipient.
        to: PublicKey,
        /// The message.
        message: Envelope,
    },
    /// Set a timer; when it fires, feed [`Input::TimeoutElapsed`] with the same fields.
    ScheduleTimeout {
        /// The height.
        height: u64,
        /// The kind.
        kind: TimerKind,
        /// The round.
        round: u32,
        /// The delay.
        after_ms: u64,
    },
    /// A timer is no longer needed (firing it anyway is harmless).
    CancelTimeout {
        /// The height.
        height: u64,
        /// The kind.
        kind: TimerKind,
        /// The round.
        round: u32,
    },
    /// No timer set so far is needed any more.
    CancelAllTimeouts,
    /// This node proposes: build a block and feed it back with [`Input::ProposeValue`].
    NeedValue(ValueRequest),
    /// A block is decided; its certificate is the kernel's and verifies.
    Decided {
        /// The block with its commit certificate.
        block: Block,
        /// The round of its precommits.
        round: u32,
    },
    /// This node signed a vote or proposal. The host must store it durably BEFORE it sends
    /// anything that follows in the same batch of outputs, and give it back with
    /// [`Node::restore_signed`] after a restart, so the node never signs a different message
    /// for the same height, round and kind.
    Signed(SignedMessage),
    /// A validator signed conflicting messages.
    Evidence(EquivocationEvidence),
    /// An input was dropped.
    Dropped {
        /// Why.
        reason: DropReason,
    },
}

/// A step of the node's internal work list: Malachite inputs, and re-checking which stored
/// proposals are now complete.
enum Step {
    Consensus(Box<MInput<CityContext>>),
    CompleteProposals,
}

fn consensus(input: MInput<CityContext>) -> Step {
    Step::Consensus(Box::new(input))
}

/// What effects asked for that must happen after `process!` returns.
#[derive(Default)]
struct Followups {
    decided: Option<mt::CommitCertificate<CityContext>>,
    need_value: Option<(u64, u32)>,
    restream: Vec<(u64, u32, BlockHash)>,
}

/// Verified (sign bytes, signature, key) triples of the current height, so Malachite's own
/// re-verification of a message the node already checked costs a lookup, not a curve operation.
type SignatureCache = BTreeSet<(Vec<u8>, [u8; 64], [u8; 32])>;

/// One validator's consensus engine.
pub struct Node<C> {
    ctx: CityContext,
    signer: CitySigner,
    address: Address,
    kernel_validators: KernelValidatorSet,
    validators: ValidatorSet,
    params: NodeParams,
    checker: C,
    state: Option<State<CityContext>>,
    height: u64,
    tip: Option<Tip>,
    /// Timers set at the current height, so stale firings are ignored.
    timers: BTreeSet<(TimerKind, u32)>,
    /// Verified proposals by (height, round).
    proposals: BTreeMap<(u64, u32), Vec<SignedProposal>>,
    /// Block bodies by hash, with their height.
    bodies: BTreeMap<BlockHash, Block>,
    bodies_per_height: BTreeMap<u64, usize>,
    /// (height, round, hash) already judged and handed to Malachite.
    fed: BTreeSet<(u64, u32, BlockHash)>,
    /// The round a value was requested for, if the request is open.
    pending_value: Option<(u64, u32)>,
    recent: VecDeque<Block>,
    /// Old-height messages seen per (peer, height), to answer them with exponential backoff.
    laggards: BTreeMap<(PublicKey, u64), u64>,
    sig_cache: SignatureCache,
    drops: BTreeMap<&'static str, u64>,
    /// Everything this node signed at the current and later heights: it signs each slot
    /// once, and answers a second request for a slot with the first signature.
    signed: BTreeMap<SigningSlot, SignedMessage>,
}

impl<C> std::fmt::Debug for Node<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("address", &self.address)
            .field("height", &self.height)
            .field("tip", &self.tip)
            .field("drops", &self.drops)
            .finish_non_exhaustive()
    }
}

struct EffectEnv<'a> {
    ctx: &'a CityContext,
    signer: &'a CitySigner,
    validators: &'a ValidatorSet,
    params: &'a NodeParams,
    height: u64,
    timers: &'a mut BTreeSet<(TimerKind, u32)>,
    sig_cache: &'a mut SignatureCache,
    signed: &'a mut BTreeMap<SigningSlot, SignedMessage>,
    out: &'a mut Vec<Output>,
    followups: &'a mut Followups,
}

impl EffectEnv<'_> {
    fn broadcast(&mut self, message: WireMessage) {
        self.out.push(Output::Broadcast(Envelope {
            chain_id: self.ctx.chain_id().clone(),
            message,
        }));
    }

    /// Returns what this node already signed for the slot of `fresh`, or records `fresh` and
    /// tells the host to store it before anything is sent. A restarted validator that is
    /// given back its records therefore cannot equivocate.
    fn sign_once<T: Clone>(
        &mut self,
        fresh: T,
        wrap: fn(T) -> SignedMessage,
        unwrap: fn(&SignedMessage) -> Option<&T>,
    ) -> T {
        let message = wrap(fresh.clone());
        let slot = message.slot();
        if let Some(earlier) = self.signed.get(&slot).and_then(unwrap) {
            return earlier.clone();
        }
        self.signed.insert(slot, message.clone());
        self.out.push(Output::Signed(message));
        fresh
    }

    fn duration(&self, kind: TimerKind, round: u32) -> u64 {
        let r = u64::from(round);
        let p = self.params;
        match kind {
            TimerKind::Propose => p
                .propose_ms
                .saturating_add(p.propose_delta_ms.saturating_mul(r)),
            TimerKind::Prevote => p
                .prevote_ms
                .saturating_add(p.prevote_delta_ms.saturating_mul(r)),
            TimerKind::Precommit => p
                .precommit_ms
                .saturating_add(p.precommit_delta_ms.saturating_mul(r)),
            TimerKind::Rebroadcast => p.rebroadcast_ms,
        }
    }

    fn handle(&mut self, effect: Effect<CityContext>) -> Result<Resume<CityContext>, String> {
        Ok(match effect {
            Effect::ResetTimeouts(r) => r.resume_with(()),
            Effect::CancelAllTimeouts(r) => {
                self.timers.clear();
                self.out.push(Output::CancelAllTimeouts);
                r.resume_with(())
            }
            Effect::CancelTimeout(t, r) => {
                let (kind, round) = (TimerKind::from(t.kind), round_u32(t.round));
                self.timers.remove(&(kind, round));
                self.out.push(Output::CancelTimeout {
                    height: self.height,
                    kind,
                    round,
                });
                r.resume_with(())
            }
            Effect::ScheduleTimeout(t, r) => {
                let (kind, round) = (TimerKind::from(t.kind), round_u32(t.round));
                self.timers.insert((kind, round));
                let after_ms = self.duration(kind, round);
                self.out.push(Output::ScheduleTimeout {
                    height: self.height,
                    kind,
                    round,
                    after_ms,
                });
                r.resume_with(())
            }
            Effect::GetValidatorSet(_, r) => r.resume_with(Some(self.validators.clone())),
            Effect::StartRound(_, _, _, _, r) => r.resume_with(()),
            Effect::PublishConsensusMsg(msg, r) => {
                match msg {
                    SignedConsensusMsg::Vote(v) => self.broadcast(WireMessage::Vote(v)),
                    SignedConsensusMsg::Proposal(p) => self.broadcast(WireMessage::Proposal(p)),
                }
                r.resume_with(())
            }
            Effect::PublishLivenessMsg(msg, r) => {
                match msg {
                    LivenessMsg::Vote(v) => self.broadcast(WireMessage::Vote(v)),
                    LivenessMsg::PolkaCertificate(c) => {
                        self.broadcast(WireMessage::PolkaCertificate(c))
                    }
                    LivenessMsg::SkipRoundCertificate(c) => {
                        self.broadcast(WireMessage::RoundCertificate(c))
                    }
                }
                r.resume_with(())
            }
            Effect::RepublishVote(v, r) => {
                self.broadcast(WireMessage::Vote(v));
                r.resume_with(())
            }
            Effect::RepublishRoundCertificate(c, r) => {
                self.broadcast(WireMessage::RoundCertificate(c));
                r.resume_with(())
            }
            Effect::GetValue(h, round, _, r) => {
                self.followups.need_value = Some((h.0, round_u32(round)));
                r.resume_with(())
            }
            Effect::RestreamProposal(h, round, _, _, value_id, r) => {
                self.followups
                    .restream
                    .push((h.0, round_u32(round), value_id));
                r.resume_with(())
            }
            Effect::SyncValue(_, r) => r.resume_with(()),
            Effect::Decide(cert, _, r) => {
                self.followups.decided = Some(cert);
                r.resume_with(())
            }
            Effect::SignVote(v, r) => {
                let fresh = self.signer.sign_vote(v);
                r.resume_with(self.sign_once(fresh, SignedMessage::Vote, SignedMessage::as_vote))
            }
            Effect::SignProposal(p, r) => {
                let fresh = self.signer.sign_proposal(p);
                r.resume_with(self.sign_once(
                    fresh,
                    SignedMessage::Proposal,
                    SignedMessage::as_proposal,
                ))
            }
            Effect::VerifySignature(msg, key, r) => {
                let bytes = match &msg.message {
                    malachitebft_core_consensus::ConsensusMsg::Vote(v) => {
                        self.ctx.vote_sign_bytes(v)
                    }
                    malachitebft_core_consensus::ConsensusMsg::Proposal(p) => {
                        self.ctx.proposal_sign_bytes(p)
                    }
                };
                r.resume_with(verify_cached(self.sig_cache, bytes, &msg.signature, &key))
            }
            Effect::VerifyCommitCertificate(c, set, th, r) => r.resume_with(
                self.signer
                    .verify_commit_certificate(self.ctx, &c, &set, th),
            ),
            Effect::VerifyPolkaCertificate(c, set, th, r) => {
                r.resume_with(self.signer.verify_polka_certificate(self.ctx, &c, &set, th))
            }
            Effect::VerifyRoundCertificate(c, set, th, r) => {
                r.resume_with(self.signer.verify_round_certificate(self.ctx, &c, &set, th))
            }
            // Malachite's own log is not kept: what must survive a crash is what this node
            // signed (see `sign_once`), which the host stores from `Output::Signed`.
            Effect::WalAppend(_, r) => r.resume_with(()),
            Effect::ExtendVote(_, _, _, r) => r.resume_with(None),
            Effect::VerifyVoteExtension(.., r) => r.resume_with(Ok(())),
        })
    }
}

fn verify_cached(
    cache: &mut SignatureCache,
    bytes: Vec<u8>,
    signature: &ConsensusSignature,
    key: &PublicKey,
) -> bool {
    let entry = (bytes, signature.0.to_bytes(), key.to_bytes());
    if cache.contains(&entry) {
        return true;
    }
    let ok = key.verify(&entry.0, &signature.0).is_ok();
    if ok {
        cache.insert(entry);
    }
    ok
}

impl<C: BlockChecker> Node<C> {
    /// A node for `key` on `chain_id` with the genesis validator set.
    pub fn new(
        chain_id: ChainId,
        validators: KernelValidatorSet,
        key: SigningKey,
        params: NodeParams,
        checker: C,
    ) -> Self {
        let ctx = CityContext::new(chain_id);
        let address = Address(key.public_key());
        Node {
            signer: CitySigner::new(ctx.clone(), key),
            ctx,
            address,
            validators: ValidatorSet::from_kernel(&validators),
            kernel_validators: validators,
            params,
            checker,
            state: None,
            height: 0,
            tip: None,
            timers: BTreeSet::new(),
            proposals: BTreeMap::new(),
            bodies: BTreeMap::new(),
            bodies_per_height: BTreeMap::new(),
            fed: BTreeSet::new(),
            pending_value: None,
            recent: VecDeque::new(),
            laggards: BTreeMap::new(),
            sig_cache: BTreeSet::new(),
            drops: BTreeMap::new(),
            signed: BTreeMap::new(),
        }
    }

    /// Gives back what this node signed before a restart (from [`Output::Signed`]); call it
    /// before [`Node::start`]. Messages of other validators are ignored.
    pub fn restore_signed(&mut self, messages: impl IntoIterator<Item = SignedMessage>) {
        for message in messages {
            let own = match &message {
                SignedMessage::Vote(v) => v.validator == self.address,
                SignedMessage::Proposal(p) => p.proposer == self.address,
            };
            if own {
                self.signed.insert(message.slot(), message);
            }
        }
    }

    /// This node's key.
    pub fn public_key(&self) -> PublicKey {
        self.address.0
    }

    /// The validator set in force.
    pub fn kernel_validators(&self) -> &KernelValidatorSet {
        &self.kernel_validators
    }

    /// The height being decided (0 before [`Node::start`]).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The round being played at the current height.
    pub fn round(&self) -> Option<u32> {
        self.state.as_ref().and_then(|s| s.round().as_u32())
    }

    /// The last decided block, if any.
    pub fn tip(&self) -> Option<Tip> {
        self.tip
    }

    /// How many inputs were dropped, by [`DropReason::label`].
    pub fn drop_counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.drops
    }

    /// Starts deciding `height`; `previous` is the block before it (`None` at height 1).
    /// Calling it again has no effect.
    pub fn start(&mut self, height: u64, previous: Option<Tip>) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state.is_some() {
            return out;
        }
        let params = Params {
            initial_height: Height(height),
            initial_validator_set: self.validators.clone(),
            address: self.address,
            threshold_params: ThresholdParams::default(),
            value_payload: ValuePayload::ProposalAndParts,
        };
        self.state = Some(State::new(
            self.ctx.clone(),
            params,
            self.params.queue_capacity,
        ));
        self.height = height;
        self.tip = previous;
        let start = MInput::StartHeight(Height(height), self.validators.clone());
        self.run(VecDeque::from([consensus(start)]), &mut out);
        out
    }

    /// Handles one input.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state.is_none() {
            return out;
        }
        let mut steps = VecDeque::new();
        match input {
            Input::Message(envelope) => self.on_message(envelope, &mut steps, &mut out),
            Input::TimeoutElapsed {
                height,
                kind,
                round,
            } => {
                // Timers of past heights and cancelled timers are stale: the host need not
                // track cancellations precisely.
                if height == self.height && self.timers.remove(&(kind, round)) {
                    steps.push_back(consensus(MInput::TimeoutElapsed(Timeout::new(
                        Round::new(round),
                        kind.into(),
                    ))));
                }
            }
            Input::ProposeValue(block) => self.on_own_value(block, &mut steps, &mut out),
        }
        self.run(steps, &mut out);
        out
    }

    fn drop(&mut self, reason: DropReason, out: &mut Vec<Output>) {
        *self.drops.entry(reason.label()).or_default() += 1;
        out.push(Output::Dropped { reason });
    }

    fn envelope(&self, message: WireMessage) -> Envelope {
        Envelope {
            chain_id: self.ctx.chain_id().clone(),
            message,
        }
    }

    /// Runs the work list to exhaustion: each Malachite input through `process!`, then the
    /// follow-ups it produced.
    fn run(&mut self, mut steps: VecDeque<Step>, out: &mut Vec<Output>) {
        while let Some(step) = steps.pop_front() {
            let input = match step {
                Step::Consensus(input) => *input,
                Step::CompleteProposals => {
                    self.complete_proposals(&mut steps, out);
                    continue;
                }
            };
            let mut followups = Followups::default();
            let Some(state) = self.state.as_mut() else {
                return;
            };
            let mut env = EffectEnv {
                ctx: &self.ctx,
                signer: &self.signer,
                validators: &self.validators,
                params: &self.params,
                height: self.height,
                timers: &mut self.timers,
                sig_cache: &mut self.sig_cache,
                signed: &mut self.signed,
                out,
                followups: &mut followups,
            };
            let result: Result<(), malachitebft_core_consensus::Error<CityContext>> = process!(
                input: input,
                state: state,
                metrics: &(),
                with: effect => env.handle(effect)
            );
            if let Err(e) = result {
                self.drop(DropReason::Refused(e.to_string()), out);
            }
            for (h, round, hash) in followups.restream {
                if let Some(block) = self.bodies.get(&hash) {
                    let part = WireMessage::BlockPart(BlockPart {
                        height: h,
                        round,
                        block: block.clone(),
                    });
                    out.push(Output::Broadcast(self.envelope(part)));
                }
            }
            if let Some((height, round)) = followups.need_value {
                self.pending_value = Some((height, round));
                out.push(Output::NeedValue(ValueRequest {
                    height,
                    round,
                    prev_hash: self.tip.map(|t| t.hash).unwrap_or_default(),
                    min_time_unix_ms: self.min_time(),
                    proposer: self.address.0,
                    validators_hash: self.kernel_validators.hash(),
                }));
            }
            if let Some(cert) = followups.decided {
                self.on_decide(cert, &mut steps, out);
            }
        }
    }

    fn min_time(&self) -> u64 {
        match self.tip {
            Some(t) => t.time_unix_ms.saturating_add(1),
            None => self.params.genesis_time_unix_ms,
        }
    }

    /// Checks that a message's signer is a validator and its signature holds.
    fn authenticate(
        &mut self,
        key: PublicKey,
        bytes: Vec<u8>,
        signature: &ConsensusSignature,
        out: &mut Vec<Output>,
    ) -> bool {
        if !self.validators.contains(&key) {
            self.drop(DropReason::NonValidator { key }, out);
            return false;
        }
        if !verify_cached(&mut self.sig_cache, bytes, signature, &key) {
            self.drop(DropReason::BadSignature { key }, out);
            return false;
        }
        true
    }

    /// Whether `height` is one to act on now or soon; drops far-future heights.
    fn height_in_window(&mut self, height: u64, out: &mut Vec<Output>) -> bool {
        if height > self.height.saturating_add(self.params.max_future_heights) {
            self.drop(
                DropReason::FarFutureHeight {
                    height,
                    current: self.height,
                },
                out,
            );
            return false;
        }
        true
    }

    fn on_message(
        &mut self,
        envelope: Envelope,
        steps: &mut VecDeque<Step>,
        out: &mut Vec<Output>,
    ) {
        if envelope.chain_id != *self.ctx.chain_id() {
            self.drop(
                DropReason::WrongChain {
                    found: envelope.chain_id.to_string(),
                },
                out,
            );
            return;
        }
        match envelope.message {
            WireMessage::Proposal(sp) => {
                let p = &sp.message;
                let (height, round, key) = (p.height.0, round_u32(p.round), p.proposer.0);
                if !self.height_in_window(height, out) {
                    return;
                }
                let bytes = self.ctx.proposal_sign_bytes(p);
                if !self.authenticate(key, bytes, &sp.signature, out) {
                    return;
                }
                if height < self.height {
                    self.serve_laggard(key, height, out);
                    return;
                }
                if proposer_of(&self.validators, height, round) != key {
                    self.drop(DropReason::WrongProposer { height, round, key }, out);
                    return;
                }
                let held: usize = self
                    .proposals
                    .range((height, 0)..=(height, u32::MAX))
                    .map(|(_, v)| v.len())
                    .sum();
                let entry = self.proposals.entry((height, round)).or_default();
                if entry.contains(&sp) {
                    return;
                }
                if held >= self.params.max_proposals_per_height {
                    self.drop(DropReason::TooManyProposals { height }, out);
                    return;
                }
                entry.push(sp.clone());
                steps.push_back(consensus(MInput::Proposal(sp)));
                if height == self.height {
                    steps.push_back(Step::CompleteProposals);
                }
            }
            WireMessage::Vote(sv) => {
                let v = &sv.message;
                let (height, key) = (v.height.0, v.validator.0);
                if !self.height_in_window(height, out) {
                    return;
                }
                let bytes = self.ctx.vote_sign_bytes(v);
                if !self.authenticate(key, bytes, &sv.signature, out) {
                    return;
                }
                if height < self.height {
                    self.serve_laggard(key, height, out);
                    return;
                }
                steps.push_back(consensus(MInput::Vote(sv)));
            }
            WireMessage::BlockPart(part) => {
                let height = part.height;
                if height < self.height || !self.height_in_window(height, out) {
                    return;
                }
                if part.block.header.height.0 != height {
                    self.drop(
                        DropReason::BadBlockPart {
                            height,
                            block_height: part.block.header.height.0,
                        },
                        out,
                    );
                    return;
                }
                let hash = part.block.hash();
                if self.bodies.contains_key(&hash) {
                    return;
                }
                let count = self.bodies_per_height.entry(height).or_default();
                if *count >= self.params.max_proposals_per_height {
                    self.drop(DropReason::TooManyProposals { height }, out);
                    return;
                }
                *count += 1;
                self.bodies.insert(hash, part.block);
                if height == self.height {
                    steps.push_back(Step::CompleteProposals);
                }
            }
            WireMessage::PolkaCertificate(c) => {
                let height = c.height.0;
                if height >= self.height && self.height_in_window(height, out) {
                    // Malachite verifies every signature through VerifyPolkaCertificate.
                    steps.push_back(consensus(MInput::PolkaCertificate(c)));
                }
            }
            WireMessage::RoundCertificate(c) => {
                let height = c.height.0;
                if height >= self.height && self.height_in_window(height, out) {
                    steps.push_back(consensus(MInput::RoundCertificate(c)));
                }
            }
            WireMessage::DecidedBlock(block) => {
                if block.header.height.0 != self.height {
                    return;
                }
                match self.judge_decided(&block) {
                    Ok(()) => {
                        let round = block.certificate.round;
                        self.read_evidence(out);
                        self.advance(block, round, steps, out);
                    }
                    Err(reason) => self.drop(DropReason::InvalidDecidedBlock { reason }, out),
                }
            }
        }
    }

    /// Answers a validator still voting on a decided height with the decided block, on its
    /// 1st, 2nd, 4th, 8th... such message: enough to survive lost replies, without answering
    /// every rebroadcast.
    fn serve_laggard(&mut self, key: PublicKey, height: u64, out: &mut Vec<Output>) {
        if key == self.address.0 {
            return;
        }
        let Some(block) = self
            .recent
            .iter()
            .find(|b| b.header.height.0 == height)
            .cloned()
        else {
            return;
        };
        let seen = self.laggards.entry((key, height)).or_default();
        *seen += 1;
        if seen.is_power_of_two() {
            out.push(Output::SendTo {
                to: key,
                message: self.envelope(WireMessage::DecidedBlock(block)),
            });
        }
    }

    fn on_own_value(&mut self, block: Block, steps: &mut VecDeque<Step>, out: &mut Vec<Output>) {
        let height = block.header.height.0;
        let Some((want_height, round)) = self.pending_value.filter(|(h, _)| *h == height) else {
            let round = self.pending_value.map(|(_, r)| r);
            self.drop(DropReason::StaleValue { height, round }, out);
            return;
        };
        debug_assert_eq!(want_height, height);
        let hash = block.hash();
        let proposal = Proposal {
            height: Height(height),
            round: Round::new(round),
            value: BlockValue(hash),
            pol_round: Round::Nil,
            proposer: self.address,
        };
        if let Err(reason) = self.judge_proposed(&block, &proposal) {
            self.drop(DropReason::InvalidBlock { hash, reason }, out);
            return;
        }
        self.pending_value = None;
        let part = WireMessage::BlockPart(BlockPart {
            height,
            round,
            block: block.clone(),
        });
        out.push(Output::Broadcast(self.envelope(part)));
        self.bodies.insert(hash, block);
        steps.push_back(consensus(MInput::Propose(LocallyProposedValue::new(
            Height(height),
            Round::new(round),
            BlockValue(hash),
        ))));
    }

    /// Judges every stored proposal of the current height whose body is present and hands
    /// the verdict to Malachite, once per (round, block).
    fn complete_proposals(&mut self, steps: &mut VecDeque<Step>, out: &mut Vec<Output>) {
        let height = self.height;
        let candidates: Vec<SignedProposal> = self
            .proposals
            .range((height, 0)..=(height, u32::MAX))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        for sp in candidates {
            let p = &sp.message;
            let hash = p.value.0;
            let key = (height, round_u32(p.round), hash);
            if self.fed.contains(&key) {
                continue;
            }
            let Some(block) = self.bodies.get(&hash) else {
                continue;
            };
            let validity = match self.judge_proposed(block, p) {
                Ok(()) => Validity::Valid,
                Err(reason) => {
                    self.drop(DropReason::InvalidBlock { hash, reason }, out);
                    Validity::Invalid
                }
            };
            self.fed.insert(key);
            // Malachite does not check who proposed a value in this mode; the proposal was
            // checked against `select_proposer` on arrival, and the value carries its signer.
            steps.push_back(consensus(MInput::ProposedValue(
                ProposedValue {
                    height: p.height,
                    round: p.round,
                    valid_round: p.pol_round,
                    proposer: p.proposer,
                    value: p.value,
                    validity,
                },
                ValueOrigin::Consensus,
            )));
        }
    }

    /// The header checks shared by proposed and decided blocks.
    fn judge_header(&self, block: &Block) -> Result<(), BlockRejection> {
        let h = &block.header;
        if h.height.0 != self.height {
            return Err(BlockRejection::Height {
                expected: self.height,
                found: h.height.0,
            });
        }
        let prev = self.tip.map(|t| t.hash).unwrap_or_default();
        if h.prev_hash != prev {
            return Err(BlockRejection::PrevHash {
                expected: prev,
                found: h.prev_hash,
            });
        }
        let min = self.min_time();
        if h.time_unix_ms < min {
            return Err(BlockRejection::Time {
                time: h.time_unix_ms,
                min,
            });
        }
        let expected = self.kernel_validators.hash();
        if h.validators_hash != expected {
            return Err(BlockRejection::ValidatorsHash {
                expected,
                found: h.validators_hash,
            });
        }
        if !self.validators.contains(&h.proposer) {
            return Err(BlockRejection::Kernel(Box::new(BlockError::Proposer {
                height: h.height,
                key: h.proposer.to_string(),
            })));
        }
        Ok(())
    }

    /// Judges a proposed block against its signed proposal.
    fn judge_proposed(&self, block: &Block, proposal: &Proposal) -> Result<(), BlockRejection> {
        self.judge_header(block)?;
        // A fresh block is built by the round's proposer. A re-proposal (with a polka round)
        // carries a block built in an earlier round by that round's proposer; the polka that
        // justifies it already shows a quorum judged it, so only membership (checked above)
        // is required of its header's proposer.
        if proposal.pol_round.is_nil() && block.header.proposer != proposal.proposer.0 {
            return Err(BlockRejection::Proposer {
                expected: proposal.proposer.0.to_string(),
                found: block.header.proposer.to_string(),
            });
        }
        block
            .verify_body_skipping(self.ctx.chain_id(), |tx| self.checker.already_verified(tx))
            .map_err(Box::new)?;
        self.checker.check(block).map_err(BlockRejection::Host)
    }

    /// Judges a decided block from a peer: header, body and commit certificate. The host's
    /// checker is not asked: a certified block is final whatever a local mempool thinks.
    fn judge_decided(&self, block: &Block) -> Result<(), BlockRejection> {
        self.judge_header(block)?;
        block
            .verify_body_skipping(self.ctx.chain_id(), |tx| self.checker.already_verified(tx))
            .map_err(Box::new)?;
        block
            .certificate
            .verify(&block.header, &self.kernel_validators)
            .map_err(Box::new)?;
        Ok(())
    }

    /// Malachite decided: build the kernel block with the converted certificate, report it and
    /// the height's evidence, and queue the next height.
    fn on_decide(
        &mut self,
        cert: mt::CommitCertificate<CityContext>,
        steps: &mut VecDeque<Step>,
        out: &mut Vec<Output>,
    ) {
        let Some(body) = self.bodies.get(&cert.value_id) else {
            // Malachite decides only on a full proposal, which the node feeds only with the
            // body present; reaching this is a bug worth surfacing rather than hiding.
            self.drop(
                DropReason::Refused(format!("decided block {} has no body", cert.value_id)),
                out,
            );
            return;
        };
        let certificate = to_kernel_certificate(&cert);
        let round = certificate.round;
        let block = Block {
            header: body.header.clone(),
            txs: body.txs.clone(),
            certificate,
        };
        // Evidence lives in the height's state, which the next StartHeight wipes.
        self.read_evidence(out);
        self.advance(block, round, steps, out);
    }

    fn read_evidence(&self, out: &mut Vec<Output>) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        // The evidence maps have no iterator; every equivocator is a validator.
        for v in self.validators.validators() {
            if let Some(list) = state.driver.votes().evidence().get(&v.address) {
                for (first, second) in list {
                    out.push(Output::Evidence(EquivocationEvidence::Votes {
                        first: first.clone(),
                        second: second.clone(),
                    }));
                }
            }
            if let Some(list) = state.driver.evidence().get(&v.address) {
                for (first, second) in list {
                    out.push(Output::Evidence(EquivocationEvidence::Proposals {
                        first: first.clone(),
                        second: second.clone(),
                    }));
                }
            }
        }
    }

    /// Records `block` as decided and queues the next height.
    fn advance(
        &mut self,
        block: Block,
        round: u32,
        steps: &mut VecDeque<Step>,
        out: &mut Vec<Output>,
    ) {
        let height = block.header.height.0;
        if height != self.height {
            return;
        }
        self.tip = Some(Tip {
            hash: block.hash(),
            time_unix_ms: block.header.time_unix_ms,
        });
        if let Some(next_set) = self.checker.next_validators(&block) {
            self.validators = ValidatorSet::from_kernel(&next_set);
            self.kernel_validators = next_set;
        }
        self.recent.push_back(block.clone());
        while self.recent.len() > self.params.recent_blocks {
            self.recent.pop_front();
        }
        out.push(Output::Decided { block, round });

        self.height = height + 1;
        self.pending_value = None;
        self.timers.clear();
        self.sig_cache.clear();
        self.signed = self.signed.split_off(&(height + 1, 0, 0));
        self.proposals = self.proposals.split_off(&(self.height, 0));
        self.bodies_per_height = self.bodies_per_height.split_off(&self.height);
        let next = self.height;
        self.bodies.retain(|_, b| b.header.height.0 >= next);
        self.fed = self.fed.split_off(&(next, 0, BlockHash::default()));
        let oldest = next.saturating_sub(self.params.recent_blocks as u64);
        self.laggards.retain(|(_, h), _| *h >= oldest);

        // The new height comes before anything still queued; queued inputs of the decided
        // height are then ignored by Malachite as old.
        steps.push_front(Step::CompleteProposals);
        steps.push_front(consensus(MInput::StartHeight(
            Height(next),
            self.validators.clone(),
        )));
    }
}
