//! The genesis document: the chain's name, its members with their roles and keys, and the
//! validators. Parsing checks every rule and names the offending entry.
//!
//! On disk genesis is JSON (see [`Genesis::to_json`]); its hash is taken over the canonical
//! protobuf encoding, with members sorted by id and validators by member id, so two files that
//! differ only in order or white space name the same chain.

use std::collections::BTreeMap;
use std::fmt;

use citychain_proto::citychain::kernel::v1 as pb;
use prost::Message;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::DecodeError;
use crate::hash::{Domain, Hash32, domain_hash};
use crate::ids::{ChainId, MemberId};
use crate::keys::{EncryptionPublicKey, PublicKey};
use crate::validators::{Validator, ValidatorSet};

/// What a member is in the consortium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A government department; only departments validate and govern.
    Department,
    /// A bank.
    Bank,
    /// A hospital.
    Hospital,
    /// An insurer.
    Insurer,
    /// An enterprise.
    Enterprise,
    /// The science and technology bureau that issues coupons.
    Bureau,
    /// An auditor: reads and verifies, never writes domain data.
    Auditor,
    /// A platform service's own identity (`service.<name>`): it signs the verdicts other
    /// services act on (see [`crate::event`]) and is rotated by governance like any key.
    Service,
}

impl Role {
    /// Every role, in protobuf order.
    pub const ALL: [Role; 8] = [
        Role::Department,
        Role::Bank,
        Role::Hospital,
        Role::Insurer,
        Role::Enterprise,
        Role::Bureau,
        Role::Auditor,
        Role::Service,
    ];

    /// The role's lower-case name as genesis files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Department => "department",
            Role::Bank => "bank",
            Role::Hospital => "hospital",
            Role::Insurer => "insurer",
            Role::Enterprise => "enterprise",
            Role::Bureau => "bureau",
            Role::Auditor => "auditor",
            Role::Service => "service",
        }
    }

    /// Parses a role name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The protobuf enum value.
    pub fn to_proto(self) -> pb::Role {
        match self {
            Role::Department => pb::Role::Department,
            Role::Bank => pb::Role::Bank,
            Role::Hospital => pb::Role::Hospital,
            Role::Insurer => pb::Role::Insurer,
            Role::Enterprise => pb::Role::Enterprise,
            Role::Bureau => pb::Role::Bureau,
            Role::Auditor => pb::Role::Auditor,
            Role::Service => pb::Role::Service,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A member of the consortium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: MemberId,
    /// Its display name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its ed25519 verifying key.
    pub signing_key: PublicKey,
    /// Its X25519 key for receiving record keys.
    pub encryption_key: EncryptionPublicKey,
}

impl Member {
    /// The protobuf form.
    pub fn to_proto(&self) -> pb::Member {
        pb::Member {
            id: self.id.to_string(),
            name: self.name.clone(),
            role: self.role.to_proto() as i32,
            signing_key: self.signing_key.to_bytes().to_vec(),
            encryption_key: self.encryption_key.0.to_vec(),
        }
    }
}

/// A genesis document that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// The chain's name.
    pub chain_id: ChainId,
    /// The chain's start, milliseconds since the Unix epoch; block 1 is not older.
    pub genesis_time_unix_ms: u64,
    /// Members sorted by id.
    pub members: Vec<Member>,
    /// Validator member ids sorted.
    pub validators: Vec<MemberId>,
}

/// The longest display name of a member.
pub const MAX_MEMBER_NAME: usize = 256;

/// A genesis document that is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GenesisError {
    /// Not JSON, truncated, or a field of the wrong type or name.
    #[error("genesis is not valid at line {line} column {column}: {reason}")]
    Json {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What the parser said.
        reason: String,
    },
    /// The chain id breaks its rules.
    #[error("genesis chain_id: {0}")]
    ChainId(DecodeError),
    /// One member entry is wrong.
    #[error("members[{index}] ({id:?}): {problem}")]
    Member {
        /// Position in the file.
        index: usize,
        /// The entry's id as written.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// Two members share something that must be unique.
    #[error("members[{second}] ({id:?}) repeats the {what} of members[{first}]")]
    Duplicate {
        /// The first entry.
        first: usize,
        /// The repeating entry.
        second: usize,
        /// The repeating entry's id.
        id: String,
        /// `id`, `signing_key` or `encryption_key`.
        what: &'static str,
    },
    /// One validator entry is wrong.
    #[error("validators[{index}] ({id:?}): {problem}")]
    Validator {
        /// Position in the list.
        index: usize,
        /// The id as written.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// The number of validators is not 3f + 1.
    #[error("genesis names {count} validators; the count must be 3f + 1 (1, 4, 7, 10, ...)")]
    ValidatorCount {
        /// How many there are.
        count: usize,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberJson {
    id: String,
    name: String,
    role: String,
    signing_key: String,
    encryption_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisJson {
    chain_id: String,
    genesis_time_unix_ms: u64,
    members: Vec<MemberJson>,
    validators: Vec<String>,
}

fn parse_member(index: usize, raw: MemberJson) -> Result<Member, GenesisError> {
    let fail = |problem: String| GenesisError::Member {
        index,
        id: raw.id.clone(),
        problem,
    };
    let id = MemberId::new(raw.id.clone()).map_err(|e| fail(e.to_string()))?;
    if raw.name.is_empty() || raw.name.len() > MAX_MEMBER_NAME {
        return Err(fail(format!(
            "name must be 1 to {MAX_MEMBER_NAME} bytes, got {}",
            raw.name.len()
        )));
    }
    let role = Role::parse(&raw.role).ok_or_else(|| {
        let known: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
        fail(format!(
            "role {:?} is not one of {}",
            raw.role,
            known.join(", ")
        ))
    })?;
    let signing_key: PublicKey = raw
        .signing_key
        .parse()
        .map_err(|e| fail(format!("signing_key: {e}")))?;
    let enc = hex::decode(&raw.encryption_key).map_err(|e| fail(format!("encryption_key: {e}")))?;
    let encryption_key =
        EncryptionPublicKey::from_slice("encryption_key", &enc).map_err(|e| fail(e.to_string()))?;
    Ok(Member {
        id,
        name: raw.name,
        role,
        signing_key,
        encryption_key,
    })
}

/// Finds the first repeated key among `items`, returning the positions of both entries.
fn first_repeat<K: Ord>(items: impl Iterator<Item = K>) -> Option<(usize, usize)> {
    let mut seen = BTreeMap::new();
    for (index, key) in items.enumerate() {
        if let Some(first) = seen.insert(key, index) {
            return Some((first, index));
        }
    }
    None
}

impl Genesis {
    /// Parses and checks a genesis document.
    pub fn from_json(text: &str) -> Result<Genesis, GenesisError> {
        let raw: GenesisJson = serde_json::from_str(text).map_err(|e| GenesisError::Json {
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        let chain_id = ChainId::new(raw.chain_id).map_err(GenesisError::ChainId)?;
        let members: Vec<Member> = raw
            .members
            .into_iter()
            .enumerate()
            .map(|(i, m)| parse_member(i, m))
            .collect::<Result<_, _>>()?;
        let checks: [(&'static str, Option<(usize, usize)>); 3] = [
            ("id", first_repeat(members.iter().map(|m| m.id.clone()))),
            (
                "signing_key",
                first_repeat(members.iter().map(|m| m.signing_key)),
            ),
            (
                "encryption_key",
                first_repeat(members.iter().map(|m| m.encryption_key)),
            ),
        ];
        for (what, repeat) in checks {
            if let Some((first, second)) = repeat {
                return Err(GenesisError::Duplicate {
                    first,
                    second,
                    id: members[second].id.to_string(),
                    what,
                });
            }
        }
        let by_id: BTreeMap<&str, &Member> = members.iter().map(|m| (m.id.as_str(), m)).collect();
        let mut validators = Vec::with_capacity(raw.validators.len());
        let mut seen = BTreeMap::new();
        for (index, id) in raw.validators.iter().enumerate() {
            let fail = |problem: String| GenesisError::Validator {
                index,
                id: id.clone(),
                problem,
            };
            let member = by_id
                .get(id.as_str())
                .ok_or_else(|| fail("is not a member".to_string()))?;
            if member.role != Role::Department {
                return Err(fail(format!(
                    "is a {}, only departments validate",
                    member.role
                )));
            }
            if let Some(first) = seen.insert(id.as_str(), index) {
                return Err(fail(format!("repeats validators[{first}]")));
            }
            validators.push(member.id.clone());
        }
        if validators.len() % 3 != 1 {
            return Err(GenesisError::ValidatorCount {
                count: validators.len(),
            });
        }
        let mut members = members;
        members.sort_by(|a, b| a.id.cmp(&b.id));
        validators.sort();
        Ok(Genesis {
            chain_id,
            genesis_time_unix_ms: raw.genesis_time_unix_ms,
            members,
            validators,
        })
    }

    /// The document as pretty JSON, members and validators in canonical order.
    pub fn to_json(&self) -> String {
        let raw = GenesisJson {
            chain_id: self.chain_id.to_string(),
            genesis_time_unix_ms: self.genesis_time_unix_ms,
            members: self
                .members
                .iter()
                .map(|m| MemberJson {
                    id: m.id.to_string(),
                    name: m.name.clone(),
                    role: m.role.name().to_string(),
                    signing_key: m.signing_key.to_string(),
                    encryption_key: m.encryption_key.to_string(),
                })
                .collect(),
            validators: self.validators.iter().map(|v| v.to_string()).collect(),
        };
        let mut text = serde_json::to_string_pretty(&raw).expect("plain values serialise");
        text.push('\n');
        text
    }

    /// The protobuf form, in canonical order.
    pub fn to_proto(&self) -> pb::Genesis {
        pb::Genesis {
            chain_id: self.chain_id.to_string(),
            genesis_time_unix_ms: self.genesis_time_unix_ms,
            members: self.members.iter().map(Member::to_proto).collect(),
            validators: self.validators.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// The genesis hash, over the canonical protobuf encoding.
    pub fn hash(&self) -> Hash32 {
        domain_hash(Domain::Genesis, &self.to_proto().encode_to_vec())
    }

    /// The member with this id.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members
            .binary_search_by(|m| m.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.members[i])
    }

    /// The validator set that signs block 1.
    pub fn validator_set(&self) -> ValidatorSet {
        let validators = self
            .validators
            .iter()
            .filter_map(|id| self.member(id.as_str()))
            .map(|m| Validator {
                member_id: m.id.clone(),
                key: m.signing_key,
            })
            .collect();
        ValidatorSet::new(validators)
    }
}

/// A member to create keys for in a new genesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPlan {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Names of the first departments a new genesis gets, after the reference platform's
/// licence-sharing departments; further ones are numbered.
const DEPARTMENTS: [(&str, &str); 8] = [
    ("dept.public-security", "Public Security Bureau"),
    ("dept.tax", "Tax Bureau"),
    ("dept.civil-affairs", "Civil Affairs Bureau"),
    ("dept.real-estate", "Real Estate Registration Centre"),
    (
        "dept.social-security",
        "Human Resources and Social Security Bureau",
    ),
    ("dept.surveying", "Surveying and Mapping Institute"),
    ("dept.housing", "Housing Transaction Filing Office"),
    ("dept.market-regulation", "Market Regulation Bureau"),
];

/// `count` departments: the named ones first, then `dept.9`, `dept.10`, ...
pub fn department_plans(count: usize) -> Vec<MemberPlan> {
    (0..count)
        .map(|i| match DEPARTMENTS.get(i) {
            Some((id, name)) => MemberPlan {
                id: id.to_string(),
                name: name.to_string(),
                role: Role::Department,
            },
            None => MemberPlan {
                id: format!("dept.{}", i + 1),
                name: format!("Department {}", i + 1),
                role: Role::Department,
            },
        })
        .collect()
}

/// Creates keys for every planned member and the genesis naming them, with the first
/// `validators` departments as validators. Seeds come from `seed` (the OS's random source in
/// the binary, a deterministic generator in tests). The result passes every check of
/// [`Genesis::from_json`].
pub fn build_genesis(
    chain_id: &str,
    genesis_time_unix_ms: u64,
    members: &[MemberPlan],
    validators: usize,
    mut seed: impl FnMut() -> [u8; 32],
) -> Result<(Genesis, Vec<crate::keys::KeyPair>), GenesisError> {
    let keys: Vec<crate::keys::KeyPair> = members
        .iter()
        .map(|m| crate::keys::KeyPair::from_seeds(Some(m.id.clone()), &seed(), &seed()))
        .collect();
    let raw = GenesisJson {
        chain_id: chain_id.to_string(),
        genesis_time_unix_ms,
        members: members
            .iter()
            .zip(&keys)
            .map(|(m, k)| MemberJson {
                id: m.id.clone(),
                name: m.name.clone(),
                role: m.role.name().to_string(),
                signing_key: k.signing.public_key().to_string(),
                encryption_key: k.encryption.public_key().to_string(),
            })
            .collect(),
        validators: members
            .iter()
            .filter(|m| m.role == Role::Department)
            .take(validators)
            .map(|m| m.id.clone())
            .collect(),
    };
    let text = serde_json::to_string(&raw).expect("plain values serialise");
    let genesis = Genesis::from_json(&text)?;
    Ok((genesis, keys))
}

/// The other members a demonstration network has beside its departments: two banks, a
/// hospital, an insurer, an enterprise, the science and technology bureau and an auditor.
pub fn sample_member_plans() -> Vec<MemberPlan> {
    [
        ("bank.city-commercial", "City Commercial Bank", Role::Bank),
        (
            "bank.rural-credit",
            "Rural Credit Cooperative Bank",
            Role::Bank,
        ),
        (
            "hospital.peoples-first",
            "First People's Hospital",
            Role::Hospital,
        ),
        (
            "insurer.city-health",
            "City Health Insurance",
            Role::Insurer,
        ),
        (
            "enterprise.lab-instruments",
            "Lab Instruments Co.",
            Role::Enterprise,
        ),
        (
            "bureau.science-tech",
            "Science and Technology Bureau",
            Role::Bureau,
        ),
        ("auditor.city-audit", "City Audit Office", Role::Auditor),
    ]
    .into_iter()
    .map(|(id, name, role)| MemberPlan {
        id: id.to_string(),
        name: name.to_string(),
        role,
    })
    .collect()
}

/// The member id of platform service `name`'s identity: `service.<name>`.
pub fn service_member_id(name: &str) -> String {
    format!("service.{name}")
}

/// The identities of the platform services that sign verdicts (today the token service),
/// which every genesis needs.
pub fn service_member_plans() -> Vec<MemberPlan> {
    [("tokens", "Token service")]
        .into_iter()
        .map(|(service, name)| MemberPlan {
            id: service_member_id(service),
            name: name.to_string(),
            role: Role::Service,
        })
        .collect()
}
