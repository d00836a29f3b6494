//! The registry's canonical encoding (`citychain.governance.v1.RegistryState`, every list
//! sorted by its key), decoding with consistency checks, and the state hash.
//!
//! The state hash is `blake3("citychain/governance-registry/v1" || 0x00 || encoding)`, the
//! same domain-separation convention as the kernel's hashes.

use std::collections::{BTreeMap, BTreeSet};

use citychain_kernel::codec::decode_canonical;
use citychain_kernel::{
    ChainId, EncryptionPublicKey, Hash32, Height, MemberId, PublicKey, Validator, ValidatorSet,
};
use citychain_proto::citychain::governance::v1 as gpb;
use prost::Message;

use crate::action::{Action, ProposalId, propose_message, role_from_proto};
use crate::error::StateError;
use crate::params::{RecordType, TokenPolicy};
use crate::state::{
    Decision, KeyRecord, KeyStatus, MemberRecord, MemberStatus, Proposal, Registry,
};

/// The hashing domain of the registry state.
pub const REGISTRY_HASH_DOMAIN: &[u8] = b"citychain/governance-registry/v1";

fn bad(what: impl Into<String>) -> StateError {
    StateError::Inconsistent(what.into())
}

fn strictly_sorted<K: Ord + std::fmt::Debug>(what: &str, keys: &[K]) -> Result<(), StateError> {
    match keys.windows(2).find(|w| w[0] >= w[1]) {
        Some(w) => Err(bad(format!(
            "{what} {:?} is repeated or out of order",
            w[1]
        ))),
        None => Ok(()),
    }
}

fn member_id(field: &str, value: String) -> Result<MemberId, StateError> {
    MemberId::new(value).map_err(|e| bad(format!("{field}: {e}")))
}

fn signing_key(field: &'static str, bytes: &[u8]) -> Result<PublicKey, StateError> {
    PublicKey::from_slice(field, bytes).map_err(|e| bad(format!("{field}: {e}")))
}

impl Registry {
    /// The canonical wire form.
    pub fn to_proto(&self) -> gpb::RegistryState {
        gpb::RegistryState {
            chain_id: self.chain_id.to_string(),
            height: self.height.0,
            members: self
                .members
                .iter()
                .map(|(id, m)| gpb::MemberState {
                    id: id.to_string(),
                    name: m.name.clone(),
                    role: m.role.to_proto() as i32,
                    signing_key: m
                        .signing_key
                        .map(|k| k.to_bytes().to_vec())
                        .unwrap_or_default(),
                    encryption_key: m.encryption_key.0.to_vec(),
                    status: match m.status {
                        MemberStatus::Active => gpb::MemberStatus::Active,
                        MemberStatus::Suspended => gpb::MemberStatus::Suspended,
                    } as i32,
                })
                .collect(),
            keys: self
                .keys
                .iter()
                .map(|(key, k)| {
                    let (status, retired) = match k.status {
                        KeyStatus::Active => (gpb::KeyStatus::Active, 0),
                        KeyStatus::Rotated { from } => (gpb::KeyStatus::Rotated, from.0),
                        KeyStatus::Revoked { from } => (gpb::KeyStatus::Revoked, from.0),
                    };
                    gpb::KeyState {
                        key: key.to_bytes().to_vec(),
                        member_id: k.member.to_string(),
                        since_height: k.since.0,
                        status: status as i32,
                        retired_from_height: retired,
                    }
                })
                .collect(),
            validators: self.validators.iter().map(|v| v.to_string()).collect(),
            proposals: self
                .proposals
                .values()
                .map(|p| gpb::ProposalState {
                    proposal: Some(propose_message(&p.id, &p.action)),
                    proposer: p.proposer.to_string(),
                    approvals: p.approvals.iter().map(|a| a.to_string()).collect(),
                    proposed_height: p.proposed_at.0,
                })
                .collect(),
            decided: self
                .decided
                .iter()
                .map(|(id, d)| {
                    let (effect, failure) = match d {
                        Decision::Applied { effect_height } => (*effect_height, String::new()),
                        Decision::Failed {
                            effect_height,
                            reason,
                        } => (*effect_height, reason.clone()),
                    };
                    gpb::DecidedProposal {
                        proposal_id: id.to_string(),
                        effect_height: effect.0,
                        failure,
                    }
                })
                .collect(),
            validator_epochs: self
                .epochs
                .iter()
                .map(|(from, set)| {
                    let mut validators: Vec<gpb::ValidatorEntry> = set
                        .validators()
                        .iter()
                        .map(|v| gpb::ValidatorEntry {
                            member_id: v.member_id.to_string(),
                            key: v.key.to_bytes().to_vec(),
                        })
                        .collect();
                    validators.sort_by(|a, b| a.member_id.cmp(&b.member_id));
                    gpb::ValidatorEpoch {
                        from_height: from.0,
                        validators,
                    }
                })
                .collect(),
            record_types: self
                .record_types
                .values()
                .map(RecordType::to_proto)
                .collect(),
            token_policy: Some(self.token_policy.to_proto()),
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// The state hash: equal registries, and only those, have equal hashes.
    pub fn state_hash(&self) -> Hash32 {
        let mut hasher = blake3::Hasher::new();
        hasher.update(REGISTRY_HASH_DOMAIN);
        hasher.update(&[0]);
        hasher.update(&self.encode());
        Hash32(*hasher.finalize().as_bytes())
    }

    /// Decodes a stored registry, refusing non-canonical bytes and inconsistent states.
    pub fn decode(bytes: &[u8]) -> Result<Registry, StateError> {
        let state: gpb::RegistryState = decode_canonical("RegistryState", bytes)?;
        Registry::from_proto(state)
    }

    /// Reads the wire form, checking order and consistency.
    pub fn from_proto(state: gpb::RegistryState) -> Result<Registry, StateError> {
        let chain_id = ChainId::new(state.chain_id)?;
        let height = Height(state.height);

        strictly_sorted(
            "member",
            &state.members.iter().map(|m| &m.id).collect::<Vec<_>>(),
        )?;
        let mut members = BTreeMap::new();
        for m in state.members {
            let id = member_id("MemberState.id", m.id)?;
            let role = role_from_proto("MemberState.role", m.role)
                .map_err(|e| bad(format!("member {id}: {e}")))?;
            let status = match gpb::MemberStatus::try_from(m.status) {
                Ok(gpb::MemberStatus::Active) => MemberStatus::Active,
                Ok(gpb::MemberStatus::Suspended) => MemberStatus::Suspended,
                _ => return Err(bad(format!("member {id} has status value {}", m.status))),
            };
            let signing_key = if m.signing_key.is_empty() {
                None
            } else {
                Some(signing_key("MemberState.signing_key", &m.signing_key)?)
            };
            let encryption_key =
                EncryptionPublicKey::from_slice("MemberState.encryption_key", &m.encryption_key)?;
            members.insert(
                id,
                MemberRecord {
                    name: m.name,
                    role,
                    signing_key,
                    encryption_key,
                    status,
                },
            );
        }

        strictly_sorted(
            "key",
            &state.keys.iter().map(|k| &k.key).collect::<Vec<_>>(),
        )?;
        let mut keys = BTreeMap::new();
        for k in state.keys {
            let key = signing_key("KeyState.key", &k.key)?;
            let member = member_id("KeyState.member_id", k.member_id)?;
            let owner = members
                .get(&member)
                .ok_or_else(|| bad(format!("key {key} belongs to unknown member {member}")))?;
            let from = Height(k.retired_from_height);
            let status = match gpb::KeyStatus::try_from(k.status) {
                Ok(gpb::KeyStatus::Active) if from.0 == 0 => KeyStatus::Active,
                Ok(gpb::KeyStatus::Rotated) if from.0 > 0 => KeyStatus::Rotated { from },
                Ok(gpb::KeyStatus::Revoked) if from.0 > 0 => KeyStatus::Revoked { from },
                _ => {
                    return Err(bad(format!(
                        "key {key} has status value {} retired from {from}",
                        k.status
                    )));
                }
            };
            if (status == KeyStatus::Active) != (owner.signing_key == Some(key)) {
                return Err(bad(format!(
                    "key {key} is {status} but member {member}'s active key is {:?}",
                    owner.signing_key
                )));
            }
            keys.insert(
                key,
                KeyRecord {
                    member,
                    since: Height(k.since_height),
                    status,
                },
            );
        }
        if let Some((id, _)) = members
            .iter()
            .find(|(_, m)| m.signing_key.is_some_and(|k| !keys.contains_key(&k)))
        {
            return Err(bad(format!(
                "member {id}'s active key is not in the key index"
            )));
        }

        strictly_sorted("validator", &state.validators)?;
        let mut validators = BTreeSet::new();
        for v in state.validators {
            let id = member_id("RegistryState.validators", v)?;
            if !members.contains_key(&id) {
                return Err(bad(format!("validator {id} is not a member")));
            }
            validators.insert(id);
        }

        let mut proposals = BTreeMap::new();
        let mut previous: Option<ProposalId> = None;
        for p in state.proposals {
            let propose = p
                .proposal
                .ok_or_else(|| bad("a pending proposal has no Propose message"))?;
            let id = ProposalId::new(propose.proposal_id).map_err(|e| bad(e.to_string()))?;
            if previous.as_ref().is_some_and(|prev| prev >= &id) {
                return Err(bad(format!("proposal {id} is repeated or out of order")));
            }
            previous = Some(id.clone());
            let action = propose
                .action
                .ok_or_else(|| bad(format!("proposal {id} has no action")))
                .and_then(|a| {
                    Action::from_proto(a).map_err(|e| bad(format!("proposal {id}: {e}")))
                })?;
            let proposer = member_id("ProposalState.proposer", p.proposer)?;
            strictly_sorted("approval", &p.approvals)?;
            let approvals = p
                .approvals
                .into_iter()
                .map(|a| member_id("ProposalState.approvals", a))
                .collect::<Result<BTreeSet<_>, _>>()?;
            if let Some(stranger) = std::iter::once(&proposer)
                .chain(&approvals)
                .find(|a| !members.contains_key(*a))
            {
                return Err(bad(format!(
                    "proposal {id} names unknown member {stranger}"
                )));
            }
            proposals.insert(
                id.clone(),
                Proposal {
                    id,
                    action,
                    proposer,
                    approvals,
                    proposed_at: Height(p.proposed_height),
                },
            );
        }

        let mut decided = BTreeMap::new();
        let mut previous: Option<ProposalId> = None;
        for d in state.decided {
            let id = ProposalId::new(d.proposal_id).map_err(|e| bad(e.to_string()))?;
            if previous.as_ref().is_some_and(|prev| prev >= &id) {
                return Err(bad(format!(
                    "decided proposal {id} is repeated or out of order"
                )));
            }
            previous = Some(id.clone());
            if proposals.contains_key(&id) {
                return Err(bad(format!("proposal {id} is both pending and decided")));
            }
            let effect_height = Height(d.effect_height);
            let decision = if d.failure.is_empty() {
                Decision::Applied { effect_height }
            } else {
                Decision::Failed {
                    effect_height,
                    reason: d.failure,
                }
            };
            decided.insert(id, decision);
        }

        let mut epochs = BTreeMap::new();
        let mut last_from = 0u64;
        for e in state.validator_epochs {
            if e.from_height <= last_from || e.from_height > height.0.saturating_add(1) {
                return Err(bad(format!(
                    "validator epoch from height {} is out of order or after the next block",
                    e.from_height
                )));
            }
            last_from = e.from_height;
            let set = e
                .validators
                .into_iter()
                .map(|v| {
                    Ok(Validator {
                        member_id: member_id("ValidatorEntry.member_id", v.member_id)?,
                        key: signing_key("ValidatorEntry.key", &v.key)?,
                    })
                })
                .collect::<Result<Vec<_>, StateError>>()?;
            epochs.insert(Height(e.from_height), ValidatorSet::new(set));
        }
        if epochs.keys().next() != Some(&Height(1)) {
            return Err(bad("no validator epoch starts at height 1"));
        }

        strictly_sorted(
            "record type",
            &state
                .record_types
                .iter()
                .map(|r| &r.name)
                .collect::<Vec<_>>(),
        )?;
        let mut record_types = BTreeMap::new();
        for spec in state.record_types {
            let rt = RecordType::from_proto(spec).map_err(|e| bad(e.to_string()))?;
            record_types.insert(rt.name.clone(), rt);
        }
        let token_policy = TokenPolicy::from_proto(
            state
                .token_policy
                .ok_or_else(|| bad("the token policy is missing"))?,
        )
        .map_err(|e| bad(e.to_string()))?;

        let registry = Registry {
            chain_id,
            height,
            members,
            keys,
            validators,
            proposals,
            decided,
            epochs,
            passed: Vec::new(),
            record_types,
            token_policy,
        };
        let live = registry.next_validator_set();
        if registry.epochs.values().next_back() != Some(&live) {
            return Err(bad(
                "the last validator epoch is not the set of live validators",
            ));
        }
        Ok(registry)
    }
}
