//! Governance actions and transaction bodies: the typed forms of `Propose` and `Approve`, their
//! conversion from and to the wire, and the helpers clients use to build bodies.

use std::fmt;

use citychain_kernel::codec::decode_canonical;
use citychain_kernel::genesis::MAX_MEMBER_NAME;
use citychain_kernel::{EncryptionPublicKey, Member, MemberId, PublicKey, Role, TxBody};
use citychain_proto::citychain::governance::v1 as gpb;
use citychain_proto::citychain::kernel::v1 as kpb;
use prost::Message;

use crate::error::{ActionError, Rejection};
use crate::params::{RecordType, TokenPolicy, amount_from_proto};

/// The body type of a proposal.
pub const PROPOSE_TYPE_URL: &str = "citychain.governance.v1.Propose";

/// The body type of an approval.
pub const APPROVE_TYPE_URL: &str = "citychain.governance.v1.Approve";

/// The longest proposal id, in bytes.
pub const MAX_PROPOSAL_ID_BYTES: usize = 128;

/// Whether a body type is a governance transaction.
pub fn is_governance(type_url: &str) -> bool {
    type_url == PROPOSE_TYPE_URL || type_url == APPROVE_TYPE_URL
}

/// A proposal's id: 1 to 128 visible ASCII characters, unique for the life of the chain.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId(String);

impl ProposalId {
    /// Checks and wraps a proposal id.
    pub fn new(value: impl Into<String>) -> Result<Self, Rejection> {
        let value = value.into();
        let reason = if value.is_empty() {
            Some("it is empty")
        } else if value.len() > MAX_PROPOSAL_ID_BYTES {
            Some("it is longer than 128 bytes")
        } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
            Some("only visible ASCII characters are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Rejection::BadProposalId { id: value, reason }),
            None => Ok(ProposalId(value)),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a proposal changes once it passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Admit a member.
    AddMember(Member),
    /// Suspend an active member.
    SuspendMember(MemberId),
    /// Lift a member's suspension.
    ReinstateMember(MemberId),
    /// Give a member another role.
    ChangeRole {
        /// The member.
        member: MemberId,
        /// Its new role.
        role: Role,
    },
    /// Replace a member's signing key, and its encryption key when one is given.
    RotateKey {
        /// The member.
        member: MemberId,
        /// The new signing key.
        signing_key: PublicKey,
        /// The new encryption key; `None` keeps the current one.
        encryption_key: Option<EncryptionPublicKey>,
    },
    /// Revoke a member's active signing key, leaving it without one until a rotation.
    RevokeKey {
        /// The member.
        member: MemberId,
        /// Its active key.
        key: PublicKey,
    },
    /// Replace the designated validators.
    SetValidators(Vec<MemberId>),
    /// Declare or replace a record type of the licence platform.
    DeclareRecordType(RecordType),
    /// Replace the token policy.
    SetTokenPolicy(TokenPolicy),
    /// Mint tokens to a member.
    GrantTokens {
        /// The member credited.
        member: MemberId,
        /// How many, in the smallest unit.
        amount: u64,
    },
}

impl Action {
    /// A short name of the action's kind, for logs and events.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::AddMember(_) => "add_member",
            Action::SuspendMember(_) => "suspend_member",
            Action::ReinstateMember(_) => "reinstate_member",
            Action::ChangeRole { .. } => "change_role",
            Action::RotateKey { .. } => "rotate_key",
            Action::RevokeKey { .. } => "revoke_key",
            Action::SetValidators(_) => "set_validators",
            Action::DeclareRecordType(_) => "declare_record_type",
            Action::SetTokenPolicy(_) => "set_token_policy",
            Action::GrantTokens { .. } => "grant_tokens",
        }
    }

    /// The wire form.
    pub fn to_proto(&self) -> gpb::propose::Action {
        use gpb::propose::Action as A;
        match self {
            Action::AddMember(m) => A::AddMember(gpb::AddMember {
                member: Some(m.to_proto()),
            }),
            Action::SuspendMember(id) => A::SuspendMember(gpb::SuspendMember {
                member_id: id.to_string(),
            }),
            Action::ReinstateMember(id) => A::ReinstateMember(gpb::ReinstateMember {
                member_id: id.to_string(),
            }),
            Action::ChangeRole { member, role } => A::ChangeRole(gpb::ChangeRole {
                member_id: member.to_string(),
                role: role.to_proto() as i32,
            }),
            Action::RotateKey {
                member,
                signing_key,
                encryption_key,
            } => A::RotateKey(gpb::RotateKey {
                member_id: member.to_string(),
                new_signing_key: signing_key.to_bytes().to_vec(),
                new_encryption_key: encryption_key.map(|k| k.0.to_vec()).unwrap_or_default(),
            }),
            Action::RevokeKey { member, key } => A::RevokeKey(gpb::RevokeKey {
                member_id: member.to_string(),
                key: key.to_bytes().to_vec(),
            }),
            Action::SetValidators(ids) => A::SetValidators(gpb::SetValidators {
                member_ids: ids.iter().map(|id| id.to_string()).collect(),
            }),
            Action::DeclareRecordType(rt) => A::DeclareRecordType(gpb::DeclareRecordType {
                record_type: Some(rt.to_proto()),
            }),
            Action::SetTokenPolicy(p) => A::SetTokenPolicy(gpb::SetTokenPolicy {
                policy: Some(p.to_proto()),
            }),
            Action::GrantTokens { member, amount } => A::GrantTokens(gpb::GrantTokens {
                member_id: member.to_string(),
                amount: i64::try_from(*amount).unwrap_or(i64::MAX),
            }),
        }
    }

    /// Reads the wire form, checking every field's syntax (not the registry's rules).
    pub fn from_proto(action: gpb::propose::Action) -> Result<Action, ActionError> {
        use gpb::propose::Action as A;
        Ok(match action {
            A::AddMember(a) => {
                let member = a.member.ok_or(ActionError::Malformed {
                    field: "AddMember.member",
                    reason: "it is missing".to_string(),
                })?;
                Action::AddMember(member_from_proto(member)?)
            }
            A::SuspendMember(a) => {
                Action::SuspendMember(member_id("SuspendMember.member_id", a.member_id)?)
            }
            A::ReinstateMember(a) => {
                Action::ReinstateMember(member_id("ReinstateMember.member_id", a.member_id)?)
            }
            A::ChangeRole(a) => Action::ChangeRole {
                member: member_id("ChangeRole.member_id", a.member_id)?,
                role: role_from_proto("ChangeRole.role", a.role)?,
            },
            A::RotateKey(a) => Action::RotateKey {
                member: member_id("RotateKey.member_id", a.member_id)?,
                signing_key: signing_key("RotateKey.new_signing_key", &a.new_signing_key)?,
                encryption_key: if a.new_encryption_key.is_empty() {
                    None
                } else {
                    Some(encryption_key(
                        "RotateKey.new_encryption_key",
                        &a.new_encryption_key,
                    )?)
                },
            },
            A::RevokeKey(a) => Action::RevokeKey {
                member: member_id("RevokeKey.member_id", a.member_id)?,
                key: signing_key("RevokeKey.key", &a.key)?,
            },
            A::SetValidators(a) => Action::SetValidators(
                a.member_ids
                    .into_iter()
                    .map(|id| member_id("SetValidators.member_ids", id))
                    .collect::<Result<_, _>>()?,
            ),
            A::DeclareRecordType(a) => Action::DeclareRecordType(RecordType::from_proto(
                a.record_type.ok_or(ActionError::Malformed {
                    field: "DeclareRecordType.record_type",
                    reason: "it is missing".to_string(),
                })?,
            )?),
            A::SetTokenPolicy(a) => Action::SetTokenPolicy(TokenPolicy::from_proto(
                a.policy.ok_or(ActionError::Malformed {
                    field: "SetTokenPolicy.policy",
                    reason: "it is missing".to_string(),
                })?,
            )?),
            A::GrantTokens(a) => {
                let amount = amount_from_proto("GrantTokens.amount", a.amount)?;
                if amount == 0 {
                    return Err(ActionError::Malformed {
                        field: "GrantTokens.amount",
                        reason: "a grant must be at least 1".to_string(),
                    });
                }
                Action::GrantTokens {
                    member: member_id("GrantTokens.member_id", a.member_id)?,
                    amount,
                }
            }
        })
    }
}

fn member_id(field: &'static str, value: String) -> Result<MemberId, ActionError> {
    MemberId::new(value).map_err(|e| ActionError::Malformed {
        field,
        reason: e.to_string(),
    })
}

fn signing_key(field: &'static str, bytes: &[u8]) -> Result<PublicKey, ActionError> {
    PublicKey::from_slice(field, bytes).map_err(|e| ActionError::Malformed {
        field,
        reason: e.to_string(),
    })
}

fn encryption_key(field: &'static str, bytes: &[u8]) -> Result<EncryptionPublicKey, ActionError> {
    EncryptionPublicKey::from_slice(field, bytes).map_err(|e| ActionError::Malformed {
        field,
        reason: e.to_string(),
    })
}

/// Reads a protobuf role; `ROLE_UNSPECIFIED` and unknown values are refused.
pub fn role_from_proto(field: &'static str, value: i32) -> Result<Role, ActionError> {
    Role::ALL
        .into_iter()
        .find(|r| r.to_proto() as i32 == value)
        .ok_or_else(|| ActionError::Malformed {
            field,
            reason: format!("role value {value} is not a known role"),
        })
}

/// Reads a wire member with the same syntax rules genesis applies.
pub fn member_from_proto(m: kpb::Member) -> Result<Member, ActionError> {
    let id = member_id("Member.id", m.id)?;
    if m.name.is_empty() || m.name.len() > MAX_MEMBER_NAME {
        return Err(ActionError::Malformed {
            field: "Member.name",
            reason: format!(
                "name must be 1 to {MAX_MEMBER_NAME} bytes, got {}",
                m.name.len()
            ),
        });
    }
    Ok(Member {
        id,
        name: m.name,
        role: role_from_proto("Member.role", m.role)?,
        signing_key: signing_key("Member.signing_key", &m.signing_key)?,
        encryption_key: encryption_key("Member.encryption_key", &m.encryption_key)?,
    })
}

/// A decoded governance body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GovernanceBody {
    /// A new proposal.
    Propose {
        /// Its id.
        id: ProposalId,
        /// What it changes.
        action: Box<Action>,
    },
    /// An approval of a pending proposal.
    Approve {
        /// The proposal approved.
        id: ProposalId,
    },
}

impl GovernanceBody {
    /// Decodes a transaction body: `Ok(None)` for a body that is not governance, a
    /// [`Rejection`] for a governance body that does not decode canonically or breaks syntax.
    pub fn decode(body: &TxBody) -> Result<Option<GovernanceBody>, Rejection> {
        let malformed = |reason: String| Rejection::Malformed {
            type_url: body.type_url.clone(),
            reason,
        };
        match body.type_url.as_str() {
            PROPOSE_TYPE_URL => {
                let p: gpb::Propose = decode_canonical("Propose", &body.value)
                    .map_err(|e| malformed(e.to_string()))?;
                let id = ProposalId::new(p.proposal_id)?;
                let action = p
                    .action
                    .ok_or_else(|| Rejection::MissingAction { id: id.to_string() })?;
                let action =
                    Action::from_proto(action).map_err(|source| Rejection::InvalidAction {
                        id: id.to_string(),
                        source,
                    })?;
                Ok(Some(GovernanceBody::Propose {
                    id,
                    action: Box::new(action),
                }))
            }
            APPROVE_TYPE_URL => {
                let a: gpb::Approve = decode_canonical("Approve", &body.value)
                    .map_err(|e| malformed(e.to_string()))?;
                Ok(Some(GovernanceBody::Approve {
                    id: ProposalId::new(a.proposal_id)?,
                }))
            }
            _ => Ok(None),
        }
    }
}

/// The wire form of a proposal.
pub fn propose_message(proposal_id: &ProposalId, action: &Action) -> gpb::Propose {
    gpb::Propose {
        proposal_id: proposal_id.to_string(),
        action: Some(action.to_proto()),
    }
}

/// The transaction body proposing `action` under `proposal_id`.
pub fn propose_body(proposal_id: &ProposalId, action: &Action) -> TxBody {
    TxBody::new(
        PROPOSE_TYPE_URL,
        propose_message(proposal_id, action).encode_to_vec(),
    )
}

/// The transaction body approving proposal `proposal_id`.
pub fn approve_body(proposal_id: &ProposalId) -> TxBody {
    TxBody::new(
        APPROVE_TYPE_URL,
        gpb::Approve {
            proposal_id: proposal_id.to_string(),
        }
        .encode_to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_kernel::SigningKey;

    #[test]
    fn bodies_round_trip() {
        let id = ProposalId::new("p-1").unwrap();
        let action = Action::RotateKey {
            member: MemberId::new("dept.tax").unwrap(),
            signing_key: SigningKey::from_seed(&[3; 32]).public_key(),
            encryption_key: None,
        };
        let decoded = GovernanceBody::decode(&propose_body(&id, &action)).unwrap();
        assert_eq!(
            decoded,
            Some(GovernanceBody::Propose {
                id: id.clone(),
                action: Box::new(action)
            })
        );
        let decoded = GovernanceBody::decode(&approve_body(&id)).unwrap();
        assert_eq!(decoded, Some(GovernanceBody::Approve { id }));
        let other = TxBody::new("citychain.licence.v1.Upload", vec![1]);
        assert_eq!(GovernanceBody::decode(&other).unwrap(), None);
    }

    #[test]
    fn proposal_ids_are_checked() {
        for bad in ["", "a b", &"x".repeat(129)] {
            assert!(ProposalId::new(bad).is_err(), "{bad:?}");
        }
        let body = TxBody::new(PROPOSE_TYPE_URL, vec![0xff]);
        assert!(matches!(
            GovernanceBody::decode(&body),
            Err(Rejection::Malformed { .. })
        ));
    }

    #[test]
    fn unspecified_role_is_malformed() {
        let err = role_from_proto("ChangeRole.role", 0).unwrap_err();
        assert!(err.to_string().contains("ChangeRole.role"), "{err}");
        for role in Role::ALL {
            assert_eq!(role_from_proto("r", role.to_proto() as i32), Ok(role));
        }
    }
}
