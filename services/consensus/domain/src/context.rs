//! Our Malachite [`Context`]: which types stand for heights, validators, values, votes and
//! proposals, who proposes in a round, and the exact bytes each consensus signature covers.
//!
//! Consensus decides block hashes: the Malachite value is a [`BlockValue`] (a block hash) and
//! the block's body travels beside the proposal as one proposal part. Every validator has
//! voting power 1 and the set is ordered by key, as in the kernel's [`KernelValidatorSet`].
//!
//! # Signed byte layouts
//!
//! `chain` below is the chain id's UTF-8 bytes, `len(chain)` one byte; integers are
//! big-endian; `round` is 4 bytes, `height` 8.
//!
//! * **Precommit for a block**: exactly the kernel's
//!   [`precommit_sign_bytes`](citychain_kernel::block::precommit_sign_bytes):
//!   `"citychain/precommit/v1" 0x00 || len(chain) || chain || height || round || block_hash`.
//!   This makes a Malachite commit certificate convert 1:1 into a kernel
//!   [`CommitCertificate`](citychain_kernel::CommitCertificate) that anyone can verify with
//!   the validator set alone.
//! * **Prevote, and precommit for nil**:
//!   `"citychain/vote/v1" 0x00 || len(chain) || chain || type || height || round || target`,
//!   where `type` is `0x01` for a prevote and `0x02` for a precommit, and `target` is `0x00` for
//!   nil or `0x01 || block_hash`.
//! * **Proposal**:
//!   `"citychain/proposal/v1" 0x00 || len(chain) || chain || height || round || pol_round ||
//!   block_hash`, where `pol_round` is `0x00` when there is none or `0x01 || round`.
//! * **Proposal part** (never sent signed, the proposal's hash covers it; Malachite's signing
//!   trait asks for it anyway):
//!   `"citychain/consensus-message/v1" 0x00 || len(chain) || chain || "part" || height || round
//!   || block_hash`.
//!
//! The signer's key is not in the bytes: a signature only verifies under that key. Every layout
//! is a function of (height, round, value, validator) alone, which Malachite relies on when it
//! re-checks certificates by rebuilding votes with `new_prevote`/`new_precommit`.

use std::fmt;

use citychain_kernel::hash::Domain;
use citychain_kernel::{
    BlockHash, ChainId, DecodeError, PublicKey, Signature, SigningKey,
    ValidatorSet as KernelValidatorSet, proposer_index,
};
use malachitebft_core_types as mt;
use mt::{NilOrVal, Round, VoteType};

/// A validator's address: its ed25519 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub PublicKey);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A key prefix is enough to tell validators apart in logs.
        let hex = self.0.to_string();
        f.write_str(&hex[..16.min(hex.len())])
    }
}

impl mt::Address for Address {}

/// A consensus height; the first block is height 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mt::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

impl From<Height> for citychain_kernel::Height {
    fn from(h: Height) -> Self {
        citychain_kernel::Height(h.0)
    }
}

/// What consensus decides: the hash of a block (its id is the same hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockValue(pub BlockHash);

impl mt::Value for BlockValue {
    type Id = BlockHash;

    fn id(&self) -> BlockHash {
        self.0
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// The height voted on.
    pub height: Height,
    /// The round voted in.
    pub round: Round,
    /// The block voted for, or nil.
    pub value: NilOrVal<BlockHash>,
    /// The voting validator.
    pub validator: Address,
}

impl mt::Vote<CityContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &NilOrVal<BlockHash> {
        &self.value
    }

    fn take_value(self) -> NilOrVal<BlockHash> {
        self.value
    }

    fn vote_type(&self) -> VoteType {
        self.vote_type
    }

    fn validator_address(&self) -> &Address {
        &self.validator
    }

    fn extension(&self) -> Option<&mt::SignedExtension<CityContext>> {
        None
    }

    fn take_extension(&mut self) -> Option<mt::SignedExtension<CityContext>> {
        None
    }

    fn extend(self, _extension: mt::SignedExtension<CityContext>) -> Self {
        // Vote extensions are not used: the chain carries everything in blocks.
        self
    }
}

/// A proposer's claim that `value` is its block for (height, round).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The height.
    pub height: Height,
    /// The round.
    pub round: Round,
    /// The proposed block's hash.
    pub value: BlockValue,
    /// The round of the polka that justifies a re-proposal, or `Round::Nil`.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: Address,
}

impl mt::Proposal<CityContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &BlockValue {
        &self.value
    }

    fn take_value(self) -> BlockValue {
        self.value
    }

    fn pol_round(&self) -> Round {
        self.pol_round
    }

    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// The whole encoded block as one proposal part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockPartBytes {
    /// The height.
    pub height: Height,
    /// The round.
    pub round: Round,
    /// The block's hash.
    pub block_hash: BlockHash,
    /// The encoded block.
    pub bytes: Vec<u8>,
}

impl mt::ProposalPart<CityContext> for BlockPartBytes {
    fn is_first(&self) -> bool {
        true
    }

    fn is_last(&self) -> bool {
        true
    }
}

/// A validator with voting power 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Its address.
    pub address: Address,
    /// Its key (the same as the address, kept for Malachite's accessor).
    pub public_key: PublicKey,
}

impl mt::Validator<CityContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn voting_power(&self) -> mt::VotingPower {
        1
    }
}

/// The validators of a height in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    /// The consensus view of a kernel validator set (which is already sorted by key).
    pub fn from_kernel(set: &KernelValidatorSet) -> Self {
        ValidatorSet {
            validators: set
                .validators()
                .iter()
                .map(|v| Validator {
                    address: Address(v.key),
                    public_key: v.key,
                })
                .collect(),
        }
    }

    /// The validators in key order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Whether `key` is a validator.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.validators.iter().any(|v| v.public_key == *key)
    }
}

impl mt::ValidatorSet<CityContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }

    fn total_voting_power(&self) -> mt::VotingPower {
        self.validators.len() as mt::VotingPower
    }

    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| v.address == *address)
    }

    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// An ed25519 signature with the total order Malachite asks of signatures (byte order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConsensusSignature(pub Signature);

impl PartialOrd for ConsensusSignature {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ConsensusSignature {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.0.cmp(&other.0.0)
    }
}

/// The kernel's strict ed25519 as Malachite's signing scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

impl mt::SigningScheme for Ed25519 {
    type DecodingError = DecodeError;
    type Signature = ConsensusSignature;
    type PublicKey = PublicKey;
    type PrivateKey = SigningKey;

    fn decode_signature(bytes: &[u8]) -> Result<ConsensusSignature, DecodeError> {
        Signature::from_slice("signature", bytes).map(ConsensusSignature)
    }

    fn encode_signature(signature: &ConsensusSignature) -> Vec<u8> {
        signature.0.to_bytes().to_vec()
    }
}

/// The consensus context of one chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CityContext {
    chain_id: ChainId,
}

impl CityContext {
    /// The context of `chain_id`.
    pub fn new(chain_id: ChainId) -> Self {
        CityContext { chain_id }
    }

    /// The chain id every signature is bound to.
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    fn prefix(&self, domain: Domain) -> Vec<u8> {
        let chain = self.chain_id.as_str().as_bytes();
        let mut out = domain.prefix();
        // Chain ids are short (the kernel bounds them); the length byte keeps the layout
        // unambiguous, exactly as the kernel's precommit bytes do.
        out.push(chain.len() as u8);
        out.extend_from_slice(chain);
        out
    }

    /// The bytes a validator signs for `vote` (see the module header).
    pub fn vote_sign_bytes(&self, vote: &Vote) -> Vec<u8> {
        let round = round_u32(vote.round);
        if let (VoteType::Precommit, NilOrVal::Val(hash)) = (vote.vote_type, &vote.value) {
            return citychain_kernel::block::precommit_sign_bytes(
                &self.chain_id,
                vote.height.into(),
                round,
                hash,
            );
        }
        let mut out = self.prefix(Domain::Vote);
        out.push(match vote.vote_type {
            VoteType::Prevote => 1,
            VoteType::Precommit => 2,
        });
        out.extend_from_slice(&vote.height.0.to_be_bytes());
        out.extend_from_slice(&round.to_be_bytes());
        match &vote.value {
            NilOrVal::Nil => out.push(0),
            NilOrVal::Val(hash) => {
                out.push(1);
                out.extend_from_slice(hash.as_bytes());
            }
        }
        out
    }

    /// The bytes a proposer signs for `proposal` (see the module header).
    pub fn proposal_sign_bytes(&self, proposal: &Proposal) -> Vec<u8> {
        let mut out = self.prefix(Domain::Proposal);
        out.extend_from_slice(&proposal.height.0.to_be_bytes());
        out.extend_from_slice(&round_u32(proposal.round).to_be_bytes());
        match proposal.pol_round {
            Round::Nil => out.push(0),
            Round::Some(r) => {
                out.push(1);
                out.extend_from_slice(&r.to_be_bytes());
            }
        }
        out.extend_from_slice(proposal.value.0.as_bytes());
        out
    }

    /// The bytes signed for a proposal part (see the module header).
    pub fn part_sign_bytes(&self, part: &BlockPartBytes) -> Vec<u8> {
        let mut out = self.prefix(Domain::ConsensusMessage);
        out.extend_from_slice(b"part");
        out.extend_from_slice(&part.height.0.to_be_bytes());
        out.extend_from_slice(&round_u32(part.round).to_be_bytes());
        out.extend_from_slice(part.block_hash.as_bytes());
        out
    }
}

/// A vote or proposal always has a defined round; `Nil` (never signed by an honest node) maps
/// to `u32::MAX` so that the function is total and cannot collide with a real round in practice.
pub(crate) fn round_u32(round: Round) -> u32 {
    round.as_u32().unwrap_or(u32::MAX)
}

impl mt::Context for CityContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = BlockPartBytes;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Value = BlockValue;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    /// Round robin over the key-ordered set: `(height + round) mod n`.
    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let index = proposer_index(validator_set.validators.len(), height.0, round_u32(round));
        &validator_set.validators[index]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockValue,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockHash>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockHash>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }
}

/// The proposer of (height, round) for `set`, as a kernel key.
pub fn proposer_of(set: &ValidatorSet, height: u64, round: u32) -> PublicKey {
    set.validators[proposer_index(set.validators.len(), height, round)].public_key
}

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_kernel::Hash32;
    use malachitebft_core_types::Context as _;

    fn ctx() -> CityContext {
        CityContext::new(ChainId::new("test-chain").unwrap())
    }

    fn key(i: u8) -> SigningKey {
        SigningKey::from_seed(&[i; 32])
    }

    #[test]
    fn precommit_for_a_block_signs_the_kernel_precommit_bytes() {
        let hash = BlockHash(Hash32([7; 32]));
        let vote = ctx().new_precommit(
            Height(9),
            Round::new(3),
            NilOrVal::Val(hash),
            Address(key(1).public_key()),
        );
        let kernel = citychain_kernel::block::precommit_sign_bytes(
            ctx().chain_id(),
            citychain_kernel::Height(9),
            3,
            &hash,
        );
        assert_eq!(ctx().vote_sign_bytes(&vote), kernel);
    }

    #[test]
    fn votes_of_different_kinds_sign_different_bytes() {
        let c = ctx();
        let hash = BlockHash(Hash32([7; 32]));
        let a = Address(key(1).public_key());
        let all = [
            c.vote_sign_bytes(&c.new_prevote(Height(1), Round::new(0), NilOrVal::Nil, a)),
            c.vote_sign_bytes(&c.new_prevote(Height(1), Round::new(0), NilOrVal::Val(hash), a)),
            c.vote_sign_bytes(&c.new_precommit(Height(1), Round::new(0), NilOrVal::Nil, a)),
            c.vote_sign_bytes(&c.new_precommit(Height(1), Round::new(0), NilOrVal::Val(hash), a)),
            c.proposal_sign_bytes(&c.new_proposal(
                Height(1),
                Round::new(0),
                BlockValue(hash),
                Round::Nil,
                a,
            )),
        ];
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        // Nil prevote: prefix, chain, type 1, height, round, 0.
        let mut expected = Domain::Vote.prefix();
        expected.push(10);
        expected.extend_from_slice(b"test-chain");
        expected.push(1);
        expected.extend_from_slice(&1u64.to_be_bytes());
        expected.extend_from_slice(&0u32.to_be_bytes());
        expected.push(0);
        assert_eq!(all[0], expected);
    }

    #[test]
    fn proposers_rotate_round_robin_in_key_order() {
        let kernel = KernelValidatorSet::new(
            (1..=4)
                .map(|i| citychain_kernel::Validator {
                    member_id: citychain_kernel::MemberId::new(format!("dept.{i}")).unwrap(),
                    key: key(i).public_key(),
                })
                .collect(),
        );
        let set = ValidatorSet::from_kernel(&kernel);
        let keys: Vec<PublicKey> = kernel.validators().iter().map(|v| v.key).collect();
        for (h, r, expect) in [
            (1u64, 0u32, 1usize),
            (1, 1, 2),
            (2, 0, 2),
            (4, 3, 3),
            (3, 2, 1),
        ] {
            assert_eq!(proposer_of(&set, h, r), keys[expect], "h={h} r={r}");
            assert_eq!(
                ctx()
                    .select_proposer(&set, Height(h), Round::new(r))
                    .public_key,
                keys[expect]
            );
        }
    }
}
