//! The registry: members, keys, validators and proposals as of the last applied block, and
//! the read-only questions the rest of the chain asks of it (who signed, who validates).
//!
//! After block `h` is applied the registry holds exactly the state that checks block `h + 1`:
//! changes passed in block `h` were applied at the end of it with effect height `h + 1`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use citychain_kernel::{
    ChainId, EncryptionPublicKey, Genesis, Height, MemberId, PublicKey, Role, Validator,
    ValidatorSet,
};

use crate::action::{Action, ProposalId};
use crate::params::{RecordType, RecordTypeName, TokenPolicy};

/// Whether a member may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberStatus {
    /// It may sign transactions with its active key.
    Active,
    /// It may not sign anything until reinstated.
    Suspended,
}

/// What became of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyStatus {
    /// The member's current key.
    Active,
    /// Replaced by a rotation; refused from height `from` on.
    Rotated {
        /// The first height at which the key is refused.
        from: Height,
    },
    /// Revoked; refused from height `from` on.
    Revoked {
        /// The first height at which the key is refused.
        from: Height,
    },
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyStatus::Active => f.write_str("active"),
            KeyStatus::Rotated { from } => write!(f, "rotated from height {from}"),
            KeyStatus::Revoked { from } => write!(f, "revoked from height {from}"),
        }
    }
}

/// One member as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Display name.
    pub name: String,
    /// Current role.
    pub role: Role,
    /// Active signing key; `None` after a revocation until the next rotation.
    pub signing_key: Option<PublicKey>,
    /// Current X25519 key.
    pub encryption_key: EncryptionPublicKey,
    /// Active or suspended.
    pub status: MemberStatus,
}

impl MemberRecord {
    /// A member as admitted (at genesis or by governance): active, with its keys.
    pub fn admitted(m: &citychain_kernel::Member) -> MemberRecord {
        MemberRecord {
            name: m.name.clone(),
            role: m.role,
            signing_key: Some(m.signing_key),
            encryption_key: m.encryption_key,
            status: MemberStatus::Active,
        }
    }
}

/// One signing key ever used, with its owner and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The member it belongs (or belonged) to.
    pub member: MemberId,
    /// The first height at which it authorizes transactions (1 for genesis keys).
    pub since: Height,
    /// Its status.
    pub status: KeyStatus,
}

impl KeyRecord {
    /// Whether the key could sign for its member at `height` (ignoring suspensions, which
    /// the registry does not keep a history of).
    pub fn valid_at(&self, height: Height) -> bool {
        let retired = match self.status {
            KeyStatus::Active => None,
            KeyStatus::Rotated { from } | KeyStatus::Revoked { from } => Some(from),
        };
        self.since <= height && retired.is_none_or(|from| height < from)
    }
}

/// A proposal that has not passed yet (or passed in the block being applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Its id.
    pub id: ProposalId,
    /// What it changes.
    pub action: Action,
    /// The department that proposed it.
    pub proposer: MemberId,
    /// Departments that approved it, the proposer included.
    pub approvals: BTreeSet<MemberId>,
    /// The height of the block that carried the proposal.
    pub proposed_at: Height,
}

/// What became of a proposal that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Applied; in force from `effect_height`.
    Applied {
        /// The first height the change applies to.
        effect_height: Height,
    },
    /// Invalid when it was to take effect; nothing changed.
    Failed {
        /// The height at which it would have taken effect.
        effect_height: Height,
        /// Why it could not be applied.
        reason: String,
    },
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Applied { effect_height } => {
                write!(f, "applied from height {effect_height}")
            }
            Decision::Failed {
                effect_height,
                reason,
            } => write!(f, "failed at height {effect_height}: {reason}"),
        }
    }
}

/// The governance projection of the chain. See the module docs for what "after block `h`"
/// means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    pub(crate) chain_id: ChainId,
    pub(crate) height: Height,
    pub(crate) members: BTreeMap<MemberId, MemberRecord>,
    pub(crate) keys: BTreeMap<PublicKey, KeyRecord>,
    pub(crate) validators: BTreeSet<MemberId>,
    pub(crate) proposals: BTreeMap<ProposalId, Proposal>,
    pub(crate) decided: BTreeMap<ProposalId, Decision>,
    /// The live validator set from each height at which it changed; the last entry certifies
    /// the next block.
    pub(crate) epochs: BTreeMap<Height, ValidatorSet>,
    /// Proposals that passed in the block being applied, in the order they passed. Always
    /// empty between blocks.
    pub(crate) passed: Vec<Proposal>,
    /// The licence platform's record types.
    pub(crate) record_types: BTreeMap<RecordTypeName, RecordType>,
    /// The token platform's parameters.
    pub(crate) token_policy: TokenPolicy,
}

/// Signatures a set of `n` validators needs, as [`ValidatorSet::quorum`] computes it.
pub fn quorum_of(n: usize) -> usize {
    n * 2 / 3 + 1
}

impl Registry {
    /// The registry straight after genesis: every member active with its genesis key (valid
    /// from height 1), the genesis validators, no proposals.
    pub fn from_genesis(genesis: &Genesis) -> Registry {
        let mut members = BTreeMap::new();
        let mut keys = BTreeMap::new();
        for m in &genesis.members {
            members.insert(m.id.clone(), MemberRecord::admitted(m));
            keys.insert(
                m.signing_key,
                KeyRecord {
                    member: m.id.clone(),
                    since: Height(1),
                    status: KeyStatus::Active,
                },
            );
        }
        let mut registry = Registry {
            chain_id: genesis.chain_id.clone(),
            height: Height(0),
            members,
            keys,
            validators: genesis.validators.iter().cloned().collect(),
            proposals: BTreeMap::new(),
            decided: BTreeMap::new(),
            epochs: BTreeMap::new(),
            passed: Vec::new(),
            record_types: BTreeMap::new(),
            token_policy: TokenPolicy::default(),
        };
        registry
            .epochs
            .insert(Height(1), registry.live_validator_set());
        registry
    }

    /// The record type named `name`.
    pub fn record_type(&self, name: &str) -> Option<&RecordType> {
        self.record_types
            .iter()
            .find_map(|(n, rt)| (n.as_str() == name).then_some(rt))
    }

    /// Every record type, by name.
    pub fn record_types(&self) -> impl Iterator<Item = &RecordType> {
        self.record_types.values()
    }

    /// The token policy in force.
    pub fn token_policy(&self) -> &TokenPolicy {
        &self.token_policy
    }

    /// The chain this registry belongs to.
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// The last block applied (0 right after genesis).
    pub fn height(&self) -> Height {
        self.height
    }

    /// The block the registry expects next; its state is the one that checks that block.
    pub fn next_height(&self) -> Height {
        Height(self.height.0.saturating_add(1))
    }

    /// A member by id.
    pub fn member(&self, id: &MemberId) -> Option<&MemberRecord> {
        self.members.get(id)
    }

    /// Every member, by id.
    pub fn members(&self) -> impl Iterator<Item = (&MemberId, &MemberRecord)> {
        self.members.iter()
    }

    /// Every signing key ever registered, in key order.
    pub fn keys(&self) -> impl Iterator<Item = (&PublicKey, &KeyRecord)> {
        self.keys.iter()
    }

    /// What the registry knows of a signing key.
    pub fn key(&self, key: &PublicKey) -> Option<&KeyRecord> {
        self.keys.get(key)
    }

    /// Whether `key` could sign for its member at `height` (from its first height until it
    /// was rotated or revoked; suspensions are not part of this answer).
    pub fn key_valid_at(&self, key: &PublicKey, height: Height) -> bool {
        self.keys.get(key).is_some_and(|k| k.valid_at(height))
    }

    /// The designated validators' member ids (whether or not they can sign now).
    pub fn validators(&self) -> &BTreeSet<MemberId> {
        &self.validators
    }

    /// A pending proposal.
    pub fn proposal(&self, id: &ProposalId) -> Option<&Proposal> {
        self.proposals.get(id)
    }

    /// Every pending proposal, by id.
    pub fn proposals(&self) -> impl Iterator<Item = &Proposal> {
        self.proposals.values()
    }

    /// What became of a proposal that passed.
    pub fn decision(&self, id: &ProposalId) -> Option<&Decision> {
        self.decided.get(id)
    }

    /// Whether `id` is an active department with an active key: who may propose and approve,
    /// and whose approvals count.
    pub fn is_active_department(&self, id: &MemberId) -> bool {
        self.members.get(id).is_some_and(|m| {
            m.role == Role::Department
                && m.status == MemberStatus::Active
                && m.signing_key.is_some()
        })
    }

    /// How many active departments there are (the denominator of the two-thirds rule).
    pub fn active_departments(&self) -> usize {
        self.members
            .keys()
            .filter(|id| self.is_active_department(id))
            .count()
    }

    /// Approvals of `proposal` that count now: those of active departments.
    pub fn counted_approvals(&self, proposal: &Proposal) -> usize {
        proposal
            .approvals
            .iter()
            .filter(|id| self.is_active_department(id))
            .count()
    }

    /// Whether a proposal has enough approvals: at least one, and approvals * 3 >= active
    /// departments * 2.
    pub fn has_quorum(&self, proposal: &Proposal) -> bool {
        let approvals = self.counted_approvals(proposal);
        approvals >= 1 && approvals * 3 >= self.active_departments() * 2
    }

    /// The designated validators that can sign now: active members with an active key.
    pub(crate) fn live_validators(&self) -> Vec<Validator> {
        self.validators
            .iter()
            .filter_map(|id| {
                let m = self.members.get(id)?;
                let key = m.signing_key?;
                (m.status == MemberStatus::Active).then(|| Validator {
                    member_id: id.clone(),
                    key,
                })
            })
            .collect()
    }

    fn live_validator_set(&self) -> ValidatorSet {
        ValidatorSet::new(self.live_validators())
    }

    /// The validator set that certifies block [`Registry::next_height`]: after block `h` is
    /// applied, the set that signs block `h + 1`. It holds the designated validators that are
    /// active and have an active key, each with its current key.
    pub fn next_validator_set(&self) -> ValidatorSet {
        self.live_validator_set()
    }

    /// The validator set that certified (or will certify) block `height`, for any height from
    /// 1 to [`Registry::next_height`]; `None` outside that range.
    pub fn validator_set_for(&self, height: Height) -> Option<ValidatorSet> {
        if height.0 == 0 || height > self.next_height() {
            return None;
        }
        if height == self.next_height() {
            return Some(self.next_validator_set());
        }
        self.epochs
            .range(..=height)
            .next_back()
            .map(|(_, set)| set.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_kernel::SigningKey;

    #[test]
    fn quorum_of_matches_the_kernel() {
        for n in 1..=13u8 {
            let set = ValidatorSet::new(
                (0..n)
                    .map(|i| Validator {
                        member_id: MemberId::new(format!("dept.{i}")).unwrap(),
                        key: SigningKey::from_seed(&[i + 1; 32]).public_key(),
                    })
                    .collect(),
            );
            assert_eq!(quorum_of(n as usize), set.quorum(), "n = {n}");
        }
    }

    #[test]
    fn key_validity_window() {
        let record = KeyRecord {
            member: MemberId::new("dept.tax").unwrap(),
            since: Height(3),
            status: KeyStatus::Rotated { from: Height(7) },
        };
        let valid: Vec<u64> = (0..10).filter(|h| record.valid_at(Height(*h))).collect();
        assert_eq!(valid, vec![3, 4, 5, 6]);
    }
}
