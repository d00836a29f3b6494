//! Governance of the consortium: who is a member, with which role and key, who validates, and
//! the parameters of the platforms (record types, token policy).
//!
//! After genesis, members are admitted and suspended, roles changed, keys rotated and revoked
//! and the validator set replaced by governance transactions on the chain. Every service folds
//! committed blocks through the same [`Registry`] and gets the same state: the crate performs
//! no IO, reads no clock, draws no randomness and iterates only ordered maps.
//!
//! - [`action`]: the typed `Propose` / `Approve` bodies and client helpers to build them.
//! - [`state`]: the [`Registry`] and what it answers (members, keys, validator sets).
//! - [`authorize`]: who signed a transaction, and the citizen allow-list.
//! - [`params`]: the platforms' parameters governance sets (record types, token policy).
//! - [`rules`]: decide-then-evolve for governance transactions.
//! - [`apply`]: folding a block, with its exact effect-height ordering.
//! - [`codec`]: the canonical encoding and state hash.
//! - [`audit`]: [`ChainAuditor`], a chain walker that checks blocks and governance together.
//!
//! See `docs/governance.md` for the rules in prose.

pub mod action;
pub mod apply;
pub mod audit;
pub mod authorize;
pub mod codec;
pub mod error;
pub mod params;
pub mod rules;
pub mod state;

pub use action::{
    APPROVE_TYPE_URL, Action, GovernanceBody, PROPOSE_TYPE_URL, ProposalId, approve_body,
    is_governance, propose_body,
};
pub use apply::{BlockOutcome, TxOutcome};
pub use audit::{AuditError, ChainAuditor};
pub use authorize::{CITIZEN_TYPE_PREFIXES, CITIZEN_TYPE_SUFFIXES, Signer, citizen_may_send};
pub use error::{ActionError, ApplyError, EventRefusal, Refusal, Rejection, StateError};
pub use params::{
    FieldKind, FieldSpec, MAX_AMOUNT, MAX_NAME_BYTES, RecordType, RecordTypeName, TokenPolicy,
    amount_from_proto,
};
pub use rules::Event;
pub use state::{
    Decision, KeyRecord, KeyStatus, MemberRecord, MemberStatus, Proposal, Registry, quorum_of,
};
