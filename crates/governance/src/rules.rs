//! The rules of governance in decide-then-evolve form: [`Registry::decide`] checks a
//! governance transaction and returns the events it causes or a [`Rejection`];
//! [`Registry::evolve`] applies one event and cannot fail. Actions are checked by
//! [`Registry::check_action`] both when proposed and again when they are to take effect.

use citychain_kernel::{Height, MemberId, Role};

use crate::action::{Action, GovernanceBody, ProposalId};
use crate::authorize::Signer;
use crate::error::{ActionError, Rejection};
use crate::state::{
    Decision, KeyRecord, KeyStatus, MemberRecord, MemberStatus, Proposal, Registry, quorum_of,
};

/// Something governance did, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A department proposed a change; its proposal counts as its approval.
    Proposed {
        /// The proposal.
        id: ProposalId,
        /// The department.
        proposer: MemberId,
        /// What it changes.
        action: Box<Action>,
        /// The height of the block carrying it.
        height: Height,
    },
    /// A department approved a pending proposal.
    Approved {
        /// The proposal.
        id: ProposalId,
        /// The department.
        by: MemberId,
        /// Approvals that count after this one.
        approvals: usize,
        /// Active departments now.
        active_departments: usize,
    },
    /// A proposal gathered enough approvals; it takes effect at `effect_height`.
    Passed {
        /// The proposal.
        id: ProposalId,
        /// The height from which it applies (the block after the one it passed in).
        effect_height: Height,
    },
    /// A passed proposal was applied; the change is in force from `effect_height`.
    Applied {
        /// The proposal.
        id: ProposalId,
        /// What it changed (platforms act on some actions, such as token grants).
        action: Box<Action>,
        /// The first height the change applies to.
        effect_height: Height,
    },
    /// A passed proposal was invalid when it was to take effect; nothing changed.
    Failed {
        /// The proposal.
        id: ProposalId,
        /// The height at which it would have taken effect.
        effect_height: Height,
        /// Why it could not be applied.
        reason: ActionError,
    },
}

impl Registry {
    fn member_or_unknown(&self, id: &MemberId) -> Result<&MemberRecord, ActionError> {
        self.members
            .get(id)
            .ok_or_else(|| ActionError::UnknownMember { member: id.clone() })
    }

    fn is_live_validator(&self, id: &MemberId) -> bool {
        self.validators.contains(id)
            && self
                .members
                .get(id)
                .is_some_and(|m| m.status == MemberStatus::Active && m.signing_key.is_some())
    }

    /// Refuses taking validator `id` out of the live set when fewer than the designated
    /// validators' quorum would remain.
    fn check_stays_above_quorum(
        &self,
        what: &'static str,
        id: &MemberId,
    ) -> Result<(), ActionError> {
        if !self.is_live_validator(id) {
            return Ok(());
        }
        let live_after = self.live_validators().len().saturating_sub(1);
        let quorum = quorum_of(self.validators.len());
        if live_after < quorum {
            return Err(ActionError::BelowQuorum {
                what,
                member: id.clone(),
                live_after,
                quorum,
                validators: self.validators.len(),
            });
        }
        Ok(())
    }

    fn check_signing_key_unused(
        &self,
        key: &citychain_kernel::PublicKey,
    ) -> Result<(), ActionError> {
        match self.keys.get(key) {
            Some(record) => Err(ActionError::KeyUsed {
                key: key.to_string(),
                owner: record.member.clone(),
                status: record.status,
            }),
            None => Ok(()),
        }
    }

    fn check_encryption_key_free(
        &self,
        key: &citychain_kernel::EncryptionPublicKey,
        except: Option<&MemberId>,
    ) -> Result<(), ActionError> {
        match self
            .members
            .iter()
            .find(|(id, m)| &m.encryption_key == key && Some(*id) != except)
        {
            Some((owner, _)) => Err(ActionError::EncryptionKeyUsed {
                key: key.to_string(),
                owner: owner.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Checks an action against the registry as it stands. Called when the action is proposed
    /// and again, against the state of that moment, when it is to take effect.
    pub fn check_action(&self, action: &Action) -> Result<(), ActionError> {
        match action {
            Action::AddMember(m) => {
                if self.members.contains_key(&m.id) {
                    return Err(ActionError::MemberExists {
                        member: m.id.clone(),
                    });
                }
                self.check_signing_key_unused(&m.signing_key)?;
                self.check_encryption_key_free(&m.encryption_key, None)
            }
            Action::SuspendMember(id) => {
                if self.member_or_unknown(id)?.status == MemberStatus::Suspended {
                    return Err(ActionError::AlreadySuspended { member: id.clone() });
                }
                self.check_stays_above_quorum("suspending", id)
            }
            Action::ReinstateMember(id) => {
                if self.member_or_unknown(id)?.status == MemberStatus::Active {
                    return Err(ActionError::NotSuspended { member: id.clone() });
                }
                Ok(())
            }
            Action::ChangeRole { member, role } => {
                let record = self.member_or_unknown(member)?;
                if record.role == *role {
                    return Err(ActionError::SameRole {
                        member: member.clone(),
                        role: *role,
                    });
                }
                if self.validators.contains(member) && *role != Role::Department {
                    return Err(ActionError::ValidatorRoleChange {
                        member: member.clone(),
                        role: *role,
                    });
                }
                Ok(())
            }
            Action::RotateKey {
                member,
                signing_key,
                encryption_key,
            } => {
                self.member_or_unknown(member)?;
                self.check_signing_key_unused(signing_key)?;
                match encryption_key {
                    Some(key) => self.check_encryption_key_free(key, Some(member)),
                    None => Ok(()),
                }
            }
            Action::RevokeKey { member, key } => {
                self.member_or_unknown(member)?;
                let record = self
                    .keys
                    .get(key)
                    .filter(|r| &r.member == member)
                    .ok_or_else(|| ActionError::KeyNotOwned {
                        key: key.to_string(),
                        member: member.clone(),
                    })?;
                if record.status != KeyStatus::Active {
                    return Err(ActionError::KeyNotActive {
                        key: key.to_string(),
                        member: member.clone(),
                        status: record.status,
                    });
                }
                self.check_stays_above_quorum("revoking the key of", member)
            }
            Action::SetValidators(ids) => {
                if ids.is_empty() {
                    return Err(ActionError::EmptyValidatorSet);
                }
                let mut seen = std::collections::BTreeSet::new();
                for id in ids {
                    if !seen.insert(id) {
                        return Err(ActionError::DuplicateValidator { member: id.clone() });
                    }
                    let m = self.member_or_unknown(id)?;
                    if m.role != Role::Department {
                        return Err(ActionError::ValidatorNotDepartment {
                            member: id.clone(),
                            role: m.role,
                        });
                    }
                    if m.status != MemberStatus::Active {
                        return Err(ActionError::ValidatorCannotSign {
                            member: id.clone(),
                            reason: "it is suspended",
                        });
                    }
                    if m.signing_key.is_none() {
                        return Err(ActionError::ValidatorCannotSign {
                            member: id.clone(),
                            reason: "it has no active key",
                        });
                    }
                }
                let current = self.validators.len();
                let quorum = quorum_of(current);
                if ids.len() < quorum {
                    return Err(ActionError::ValidatorSetTooSmall {
                        proposed: ids.len(),
                        quorum,
                        current,
                    });
                }
                Ok(())
            }
            Action::DeclareRecordType(rt) => {
                let reason = match self.members.get(&rt.owner) {
                    None => Some("it is not a member".to_string()),
                    Some(m) if m.role != Role::Department => Some(format!(
                        "it is a {}, only departments own record types",
                        m.role
                    )),
                    Some(m) if m.status != MemberStatus::Active => {
                        Some("it is suspended".to_string())
                    }
                    Some(_) => None,
                };
                match reason {
                    Some(reason) => Err(ActionError::BadRecordTypeOwner {
                        record_type: rt.name.to_string(),
                        owner: rt.owner.clone(),
                        reason,
                    }),
                    None => Ok(()),
                }
            }
            Action::SetTokenPolicy(_) => Ok(()),
            Action::GrantTokens { member, .. } => self.member_or_unknown(member).map(|_| ()),
        }
    }

    /// Applies an action that passed [`Registry::check_action`], in force from `effect`.
    fn apply_action(&mut self, action: &Action, effect: Height) {
        match action {
            Action::AddMember(m) => {
                self.members.insert(m.id.clone(), MemberRecord::admitted(m));
                self.keys.insert(
                    m.signing_key,
                    KeyRecord {
                        member: m.id.clone(),
                        since: effect,
                        status: KeyStatus::Active,
                    },
                );
            }
            Action::SuspendMember(id) => {
                if let Some(m) = self.members.get_mut(id) {
                    m.status = MemberStatus::Suspended;
                }
            }
            Action::ReinstateMember(id) => {
                if let Some(m) = self.members.get_mut(id) {
                    m.status = MemberStatus::Active;
                }
            }
            Action::ChangeRole { member, role } => {
                if let Some(m) = self.members.get_mut(member) {
                    m.role = *role;
                }
            }
            Action::RotateKey {
                member,
                signing_key,
                encryption_key,
            } => {
                let Some(m) = self.members.get_mut(member) else {
                    return;
                };
                let old = m.signing_key.replace(*signing_key);
                if let Some(key) = encryption_key {
                    m.encryption_key = *key;
                }
                if let Some(record) = old.and_then(|k| self.keys.get_mut(&k)) {
                    record.status = KeyStatus::Rotated { from: effect };
                }
                self.keys.insert(
                    *signing_key,
                    KeyRecord {
                        member: member.clone(),
                        since: effect,
                        status: KeyStatus::Active,
                    },
                );
            }
            Action::RevokeKey { member, key } => {
                if let Some(record) = self.keys.get_mut(key) {
                    record.status = KeyStatus::Revoked { from: effect };
                }
                if let Some(m) = self.members.get_mut(member)
                    && m.signing_key == Some(*key)
                {
                    m.signing_key = None;
                }
            }
            Action::SetValidators(ids) => {
                self.validators = ids.iter().cloned().collect();
            }
            Action::DeclareRecordType(rt) => {
                self.record_types.insert(rt.name.clone(), rt.clone());
            }
            Action::SetTokenPolicy(policy) => self.token_policy = *policy,
            // Grants change no registry state: the token platform mints them when it sees the
            // proposal applied.
            Action::GrantTokens { .. } => {}
        }
    }

    fn proposal_state(&self, id: &ProposalId) -> Option<String> {
        if self.proposals.contains_key(id) {
            return Some("pending".to_string());
        }
        if self.passed.iter().any(|p| &p.id == id) {
            return Some(format!(
                "passed at height {}, takes effect at height {}",
                self.next_height(),
                Height(self.next_height().0.saturating_add(1))
            ));
        }
        self.decided.get(id).map(Decision::to_string)
    }

    /// Decides a governance transaction signed by `signer` in the block being applied (at
    /// [`Registry::next_height`]): every rule is checked here, and the events returned are
    /// what [`Registry::evolve`] applies.
    pub fn decide(&self, signer: &Signer, body: &GovernanceBody) -> Result<Vec<Event>, Rejection> {
        let member = match signer {
            Signer::Member { id, role } if *role == Role::Department => id,
            Signer::Member { id, role } => {
                return Err(Rejection::NotADepartment {
                    member: id.clone(),
                    role: *role,
                });
            }
            Signer::Citizen => return Err(Rejection::Citizen),
        };
        let height = self.next_height();
        let effect_height = Height(height.0.saturating_add(1));
        match body {
            GovernanceBody::Propose { id, action } => {
                if let Some(state) = self.proposal_state(id) {
                    return Err(Rejection::DuplicateProposal {
                        id: id.to_string(),
                        state,
                    });
                }
                self.check_action(action)
                    .map_err(|source| Rejection::InvalidAction {
                        id: id.to_string(),
                        source,
                    })?;
                let candidate = Proposal {
                    id: id.clone(),
                    action: (**action).clone(),
                    proposer: member.clone(),
                    approvals: [member.clone()].into(),
                    proposed_at: height,
                };
                let mut events = vec![Event::Proposed {
                    id: id.clone(),
                    proposer: member.clone(),
                    action: action.clone(),
                    height,
                }];
                if self.has_quorum(&candidate) {
                    events.push(Event::Passed {
                        id: id.clone(),
                        effect_height,
                    });
                }
                Ok(events)
            }
            GovernanceBody::Approve { id } => {
                let Some(proposal) = self.proposals.get(id) else {
                    return Err(match self.proposal_state(id) {
                        Some(state) => Rejection::AlreadyDecided {
                            id: id.to_string(),
                            state,
                        },
                        None => Rejection::UnknownProposal { id: id.to_string() },
                    });
                };
                if proposal.approvals.contains(member) {
                    return Err(Rejection::AlreadyApproved {
                        id: id.to_string(),
                        member: member.clone(),
                    });
                }
                let mut candidate = proposal.clone();
                candidate.approvals.insert(member.clone());
                let mut events = vec![Event::Approved {
                    id: id.clone(),
                    by: member.clone(),
                    approvals: self.counted_approvals(&candidate),
                    active_departments: self.active_departments(),
                }];
                if self.has_quorum(&candidate) {
                    events.push(Event::Passed {
                        id: id.clone(),
                        effect_height,
                    });
                }
                Ok(events)
            }
        }
    }

    /// Applies one event. Never fails: an event that does not fit the state (which
    /// [`Registry::decide`] never produces) changes nothing.
    pub fn evolve(&mut self, event: &Event) {
        match event {
            Event::Proposed {
                id,
                proposer,
                action,
                height,
            } => {
                self.proposals.insert(
                    id.clone(),
                    Proposal {
                        id: id.clone(),
                        action: (**action).clone(),
                        proposer: proposer.clone(),
                        approvals: [proposer.clone()].into(),
                        proposed_at: *height,
                    },
                );
            }
            Event::Approved { id, by, .. } => {
                if let Some(p) = self.proposals.get_mut(id) {
                    p.approvals.insert(by.clone());
                }
            }
            Event::Passed { id, .. } => {
                if let Some(p) = self.proposals.remove(id) {
                    self.passed.push(p);
                }
            }
            Event::Applied {
                id, effect_height, ..
            } => {
                if let Some(p) = self.take_passed(id) {
                    self.apply_action(&p.action, *effect_height);
                    self.decided.insert(
                        p.id,
                        Decision::Applied {
                            effect_height: *effect_height,
                        },
                    );
                }
            }
            Event::Failed {
                id,
                effect_height,
                reason,
            } => {
                if let Some(p) = self.take_passed(id) {
                    self.decided.insert(
                        p.id,
                        Decision::Failed {
                            effect_height: *effect_height,
                            reason: reason.to_string(),
                        },
                    );
                }
            }
        }
    }

    fn take_passed(&mut self, id: &ProposalId) -> Option<Proposal> {
        let index = self.passed.iter().position(|p| &p.id == id)?;
        Some(self.passed.remove(index))
    }
}
