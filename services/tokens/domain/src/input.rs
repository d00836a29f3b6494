//! What the service hands the rules, already decided by the licence platform's shared rules
//! and governance: an upload that became a record, a read the policy allows, a grant that
//! governance applied. And [`Needs`]: exactly the part of the journal the rules read to
//! decide one input, so a service keeping its journal in a store loads only that.

use citychain_governance::TokenPolicy;
use citychain_kernel::{Hash32, MemberId, TxId};

use crate::account::Account;
use crate::entry::ChainRef;

/// One thing that may move tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// An upload that passed the licence rules and became record `record_id`.
    Upload {
        /// The record (the upload transaction's id).
        record_id: TxId,
        /// The uploading department (the record type's owner).
        member: MemberId,
        /// The payload's hash.
        payload_hash: Hash32,
        /// The record type's `upload_reward`, as governance set it for the upload's block.
        reward: u64,
        /// The token policy in force for the upload's block.
        policy: TokenPolicy,
    },
    /// A read the licence rules allow, of a record `owner` owns, at `price`.
    Read {
        /// The read transaction's id.
        read_id: TxId,
        /// The record read.
        record_id: TxId,
        /// Who reads.
        reader: MemberId,
        /// Who owns the record.
        owner: MemberId,
        /// The price the licence rules computed (0 for one's own record).
        price: u64,
    },
    /// A grant governance applied.
    Grant {
        /// The proposal.
        proposal_id: String,
        /// The member credited.
        member: MemberId,
        /// How many tokens.
        amount: u64,
    },
}

/// The parts of the journal that deciding one input reads. Anything not named here is never
/// looked at, so a journal holding only these (see [`crate::Journal::window`]) decides the
/// same events as the whole journal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Balances read.
    pub accounts: Vec<Account>,
    /// Whether this read was settled.
    pub read: Option<TxId>,
    /// Which record first brought this (department, payload hash).
    pub upload: Option<(MemberId, Hash32)>,
    /// The department's rewards in this period.
    pub period: Option<(MemberId, u64)>,
    /// Whether this proposal's grant was already handled.
    pub grant: Option<String>,
}

impl Input {
    /// What deciding this input at `source` reads.
    pub fn needs(&self, source: &ChainRef) -> Needs {
        match self {
            Input::Upload {
                member,
                payload_hash,
                policy,
                ..
            } => Needs {
                accounts: vec![Account::Mint, Account::member(member)],
                upload: Some((member.clone(), *payload_hash)),
                period: Some((member.clone(), policy.period_of(source.height))),
                ..Needs::default()
            },
            Input::Read {
                read_id,
                reader,
                owner,
                ..
            } => Needs {
                accounts: vec![Account::member(reader), Account::member(owner)],
                read: Some(*read_id),
                ..Needs::default()
            },
            Input::Grant {
                proposal_id,
                member,
                ..
            } => Needs {
                accounts: vec![Account::Mint, Account::member(member)],
                grant: Some(proposal_id.clone()),
                ..Needs::default()
            },
        }
    }
}
