//! The typed errors of governance: why a key may not sign, why a governance transaction is
//! rejected, why an action is invalid, and why a block or a stored state cannot be applied.
//!
//! A [`Refusal`] is about the signer (its key or its membership) and a committed block must
//! never contain one; a [`Rejection`] is about a governance transaction's content and is a
//! normal, recorded outcome of a committed transaction.

use citychain_kernel::{DecodeError, Height, MemberId, Role};
use thiserror::Error;

use crate::state::KeyStatus;

/// A signer that may not send this transaction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The key was rotated away or revoked.
    #[error("key {key} of member {member} is {status}")]
    KeyRetired {
        /// The signer's key, hex.
        key: String,
        /// The member it belonged to.
        member: MemberId,
        /// What became of it.
        status: KeyStatus,
    },
    /// The key is the member's active key, but the member is suspended.
    #[error("key {key} belongs to member {member}, which is suspended")]
    MemberSuspended {
        /// The signer's key, hex.
        key: String,
        /// The suspended member.
        member: MemberId,
    },
    /// The key is no member's and the body is not one a citizen may send.
    #[error("key {key} is not a member's, and citizens may not send {type_url:?}")]
    NotAMember {
        /// The signer's key, hex.
        key: String,
        /// The body's type.
        type_url: String,
    },
    /// The key is a platform service's identity, which signs events, never transactions.
    #[error("key {key} is the identity of service {member}, which signs events, not transactions")]
    ServiceIdentity {
        /// The signer's key, hex.
        key: String,
        /// The service's member id.
        member: MemberId,
    },
}

/// A signed event the registry does not vouch for.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventRefusal {
    /// The event was signed against a later registry than this one; judge it again once the
    /// chain has been applied up to `signed_at`.
    #[error("event {id} was signed at height {signed_at}, after this registry's {height}")]
    Ahead {
        /// The event's id.
        id: String,
        /// The height it claims to be signed at.
        signed_at: Height,
        /// This registry's height.
        height: Height,
    },
    /// The event names another producer than the one expected.
    #[error("event {id} is produced by {found}, not {expected}")]
    WrongProducer {
        /// The event's id.
        id: String,
        /// The producer expected.
        expected: MemberId,
        /// The producer named.
        found: MemberId,
    },
    /// The producer is not a member of role `service`.
    #[error("event {id}: {producer} is not a service identity on the chain")]
    NotAService {
        /// The event's id.
        id: String,
        /// The producer named.
        producer: MemberId,
    },
    /// The signer key was not the producer's key at the height it claims.
    #[error("event {id}: key {key} is not {producer}'s key at height {signed_at}")]
    NotProducersKey {
        /// The event's id.
        id: String,
        /// The signer key, hex.
        key: String,
        /// The producer named.
        producer: MemberId,
        /// The height it claims to be signed at.
        signed_at: Height,
    },
}

/// A governance action that cannot be applied to the registry as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ActionError {
    /// A field of the action does not decode or breaks its syntax.
    #[error("{field} is malformed: {reason}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An amount is negative.
    #[error("{field} is {value}: amounts must not be negative")]
    NegativeAmount {
        /// The field.
        field: &'static str,
        /// The value sent.
        value: i64,
    },
    /// An amount is above the limit.
    #[error("{field} is {value}, above the limit of {max}")]
    AmountTooLarge {
        /// The field.
        field: &'static str,
        /// The value sent.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// A record type's owner is not an active department.
    #[error("record type {record_type} cannot be owned by {owner}: {reason}")]
    BadRecordTypeOwner {
        /// The record type.
        record_type: String,
        /// The owner named.
        owner: MemberId,
        /// Why not.
        reason: String,
    },
    /// The member to add already exists.
    #[error("member {member} already exists")]
    MemberExists {
        /// The id.
        member: MemberId,
    },
    /// The member named does not exist.
    #[error("member {member} does not exist")]
    UnknownMember {
        /// The id.
        member: MemberId,
    },
    /// The signing key was used before, by this or another member.
    #[error("signing key {key} was already used by member {owner} (now {status})")]
    KeyUsed {
        /// The key, hex.
        key: String,
        /// Who used it.
        owner: MemberId,
        /// Its status.
        status: KeyStatus,
    },
    /// The encryption key is another member's current encryption key.
    #[error("encryption key {key} is the current encryption key of member {owner}")]
    EncryptionKeyUsed {
        /// The key, hex.
        key: String,
        /// Who holds it.
        owner: MemberId,
    },
    /// Suspending a member that is already suspended.
    #[error("member {member} is already suspended")]
    AlreadySuspended {
        /// The id.
        member: MemberId,
    },
    /// Reinstating a member that is not suspended.
    #[error("member {member} is not suspended")]
    NotSuspended {
        /// The id.
        member: MemberId,
    },
    /// The role asked for is the member's role already.
    #[error("member {member} already has role {role}")]
    SameRole {
        /// The id.
        member: MemberId,
        /// Its role.
        role: Role,
    },
    /// A validator must stay a department.
    #[error(
        "member {member} is a validator and must stay a department (asked for {role}); remove it from the validators first"
    )]
    ValidatorRoleChange {
        /// The validator.
        member: MemberId,
        /// The role asked for.
        role: Role,
    },
    /// The key to revoke is not the member's key.
    #[error("key {key} is not a key of member {member}")]
    KeyNotOwned {
        /// The key, hex.
        key: String,
        /// The member named.
        member: MemberId,
    },
    /// The key to revoke is no longer active.
    #[error("key {key} of member {member} is already {status}")]
    KeyNotActive {
        /// The key, hex.
        key: String,
        /// Its owner.
        member: MemberId,
        /// Its status.
        status: KeyStatus,
    },
    /// A validator set with no validators.
    #[error("the validator set must not be empty")]
    EmptyValidatorSet,
    /// A validator named twice.
    #[error("validator {member} is named more than once")]
    DuplicateValidator {
        /// The id.
        member: MemberId,
    },
    /// A proposed validator is not a department.
    #[error("validator {member} is a {role}, only departments validate")]
    ValidatorNotDepartment {
        /// The id.
        member: MemberId,
        /// Its role.
        role: Role,
    },
    /// A proposed validator cannot sign.
    #[error("validator {member} cannot sign: {reason}")]
    ValidatorCannotSign {
        /// The id.
        member: MemberId,
        /// `is suspended` or `has no active key`.
        reason: &'static str,
    },
    /// The proposed validator set is smaller than the current set's quorum.
    #[error(
        "a set of {proposed} validators is smaller than {quorum}, the quorum of the current {current} validators"
    )]
    ValidatorSetTooSmall {
        /// Size of the proposed set.
        proposed: usize,
        /// Quorum of the current set.
        quorum: usize,
        /// Size of the current set.
        current: usize,
    },
    /// The change would leave fewer live validators than the current quorum.
    #[error(
        "{what} validator {member} would leave {live_after} live validators, fewer than the quorum {quorum} of the {validators} validators"
    )]
    BelowQuorum {
        /// `suspending` or `revoking the key of`.
        what: &'static str,
        /// The validator.
        member: MemberId,
        /// Validators that could still sign afterwards.
        live_after: usize,
        /// Quorum of the designated validators.
        quorum: usize,
        /// Designated validators.
        validators: usize,
    },
}

/// A governance transaction whose content is refused. The transaction is still committed
/// (its outcome records the reason); nothing in the registry changes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    /// Only departments govern.
    #[error("member {member} is a {role}; only active departments propose or approve")]
    NotADepartment {
        /// The signer.
        member: MemberId,
        /// Its role.
        role: Role,
    },
    /// A citizen's key signed a governance body.
    #[error("a citizen's key may not propose or approve; only active departments do")]
    Citizen,
    /// The body does not decode.
    #[error("{type_url} body is malformed: {reason}")]
    Malformed {
        /// The body's type.
        type_url: String,
        /// What is wrong.
        reason: String,
    },
    /// The proposal id breaks its syntax.
    #[error("proposal id {id:?} is invalid: {reason}")]
    BadProposalId {
        /// The id as received.
        id: String,
        /// The rule broken.
        reason: &'static str,
    },
    /// A proposal without an action.
    #[error("proposal {id} has no action")]
    MissingAction {
        /// The proposal.
        id: String,
    },
    /// The proposal id was used before.
    #[error("proposal id {id} is already used ({state})")]
    DuplicateProposal {
        /// The proposal.
        id: String,
        /// What became of the earlier one.
        state: String,
    },
    /// Approving a proposal that was never made.
    #[error("proposal {id} does not exist")]
    UnknownProposal {
        /// The proposal.
        id: String,
    },
    /// Approving a proposal that already passed.
    #[error("proposal {id} is already decided ({state})")]
    AlreadyDecided {
        /// The proposal.
        id: String,
        /// How it was decided.
        state: String,
    },
    /// Approving twice.
    #[error("member {member} already approved proposal {id}")]
    AlreadyApproved {
        /// The proposal.
        id: String,
        /// The department.
        member: MemberId,
    },
    /// The proposed action is invalid now.
    #[error("proposal {id}: {source}")]
    InvalidAction {
        /// The proposal.
        id: String,
        /// Why.
        source: ActionError,
    },
}

/// A block that cannot be applied to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// Blocks must be applied in order, each exactly once.
    #[error("the registry expects block {expected}, got block {found}")]
    Height {
        /// The next height.
        expected: Height,
        /// The height given.
        found: Height,
    },
}

/// Stored registry bytes that do not describe a consistent registry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// The bytes do not decode canonically.
    #[error("registry state does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The state decodes but breaks an invariant.
    #[error("registry state is inconsistent: {0}")]
    Inconsistent(String),
}
