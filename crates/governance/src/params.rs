//! The parameters of the platforms that governance sets: the licence platform's record types
//! (schemas with their owner, readers, read price and upload reward) and the token platform's
//! policy (the reward cap per period of heights), with their syntax rules and wire forms.
//!
//! Amounts are integers in the token's smallest unit. On the wire they are signed, so that a
//! negative amount sent by a buggy or hostile client is seen and refused by name rather than
//! silently wrapped into a huge unsigned one.

use std::collections::BTreeSet;
use std::fmt;

use citychain_kernel::{MemberId, Role};
use citychain_proto::citychain::governance::v1 as gpb;

use crate::action::role_from_proto;
use crate::error::ActionError;

/// The largest amount any single parameter or grant may carry: 10^12 smallest units.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000;

/// The most fields a record type may declare.
pub const MAX_FIELDS: usize = 64;

/// The longest record type or field name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Reads a wire amount: refused when negative or above [`MAX_AMOUNT`], naming the field.
pub fn amount_from_proto(field: &'static str, value: i64) -> Result<u64, ActionError> {
    if value < 0 {
        return Err(ActionError::NegativeAmount { field, value });
    }
    let amount = value.unsigned_abs();
    if amount > MAX_AMOUNT {
        return Err(ActionError::AmountTooLarge {
            field,
            value: amount,
            max: MAX_AMOUNT,
        });
    }
    Ok(amount)
}

/// The wire form of an amount that passed [`amount_from_proto`] (so it fits an `i64`).
fn amount_to_proto(amount: u64) -> i64 {
    i64::try_from(amount).unwrap_or(i64::MAX)
}

fn name_ok(value: &str, extra: &[u8]) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("it is empty");
    }
    if value.len() > MAX_NAME_BYTES {
        return Err("it is longer than 64 bytes");
    }
    if !value.as_bytes()[0].is_ascii_lowercase() {
        return Err("it must start with a lowercase letter");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || extra.contains(&b))
    {
        return Err("it has a character outside the allowed set");
    }
    Ok(())
}

/// A record type's name: 1 to 64 characters from `a-z`, `0-9`, `.`, `_` and `-`, starting
/// with a letter, such as `housing.filing`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordTypeName(String);

impl RecordTypeName {
    /// Checks and wraps a name; `field` names where it came from in the error.
    pub fn new(field: &'static str, value: impl Into<String>) -> Result<Self, ActionError> {
        let value = value.into();
        match name_ok(&value, b".-") {
            Ok(()) => Ok(RecordTypeName(value)),
            Err(reason) => Err(ActionError::Malformed {
                field,
                reason: format!(
                    "record type name {:?}: {reason}",
                    value.chars().take(MAX_NAME_BYTES + 1).collect::<String>()
                ),
            }),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordTypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The JSON type a field's value must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldKind {
    /// A string.
    Text,
    /// An integer in the signed 64-bit range.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A string `YYYY-MM-DD` naming a real calendar date.
    Date,
    /// A string holding a document in standard base64.
    Document,
}

impl FieldKind {
    /// Every kind, in wire order.
    pub const ALL: [FieldKind; 5] = [
        FieldKind::Text,
        FieldKind::Integer,
        FieldKind::Boolean,
        FieldKind::Date,
        FieldKind::Document,
    ];

    /// The wire value.
    pub fn to_proto(self) -> gpb::FieldKind {
        match self {
            FieldKind::Text => gpb::FieldKind::Text,
            FieldKind::Integer => gpb::FieldKind::Integer,
            FieldKind::Boolean => gpb::FieldKind::Boolean,
            FieldKind::Date => gpb::FieldKind::Date,
            FieldKind::Document => gpb::FieldKind::Document,
        }
    }

    /// Reads a wire value; unspecified and unknown values are refused.
    pub fn from_proto(field: &'static str, value: i32) -> Result<FieldKind, ActionError> {
        FieldKind::ALL
            .into_iter()
            .find(|k| k.to_proto() as i32 == value)
            .ok_or_else(|| ActionError::Malformed {
                field,
                reason: format!("field kind value {value} is not a known kind"),
            })
    }

    /// The lowercase name, as the CLI and error messages spell it.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Integer => "integer",
            FieldKind::Boolean => "boolean",
            FieldKind::Date => "date",
            FieldKind::Document => "document",
        }
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One field of a record type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// 1 to 64 characters from `a-z`, `0-9` and `_`, starting with a letter.
    pub name: String,
    /// What its value must be.
    pub kind: FieldKind,
    /// Whether every record must carry it.
    pub required: bool,
}

/// A record type of the licence platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordType {
    /// Its name.
    pub name: RecordTypeName,
    /// The department that owns it and alone uploads its records.
    pub owner: MemberId,
    /// Its fields, in declared order, names unique.
    pub fields: Vec<FieldSpec>,
    /// Roles that may read its records; the owner always may.
    pub readers: BTreeSet<Role>,
    /// What a reader pays the owner per read.
    pub read_price: u64,
    /// What the owner earns per upload.
    pub upload_reward: u64,
}

impl RecordType {
    /// Builds and checks a record type the way a proposal's would be checked: `fields` are
    /// (name, kind, required), in declared order.
    pub fn build(
        name: &str,
        owner: &str,
        fields: &[(&str, FieldKind, bool)],
        readers: &[Role],
        read_price: u64,
        upload_reward: u64,
    ) -> Result<RecordType, ActionError> {
        let amount = |field: &'static str, value: u64| {
            i64::try_from(value).map_err(|_| ActionError::AmountTooLarge {
                field,
                value,
                max: MAX_AMOUNT,
            })
        };
        RecordType::from_proto(gpb::RecordTypeSpec {
            name: name.to_string(),
            owner: owner.to_string(),
            fields: fields
                .iter()
                .map(|(name, kind, required)| gpb::FieldSpec {
                    name: name.to_string(),
                    kind: kind.to_proto() as i32,
                    required: *required,
                })
                .collect(),
            readers: readers.iter().map(|r| r.to_proto() as i32).collect(),
            read_price: amount("RecordTypeSpec.read_price", read_price)?,
            upload_reward: amount("RecordTypeSpec.upload_reward", upload_reward)?,
        })
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether `member` with `role` may read records of this type.
    pub fn may_read(&self, member: &MemberId, role: Role) -> bool {
        member == &self.owner || self.readers.contains(&role)
    }

    /// The wire form.
    pub fn to_proto(&self) -> gpb::RecordTypeSpec {
        gpb::RecordTypeSpec {
            name: self.name.to_string(),
            owner: self.owner.to_string(),
            fields: self
                .fields
                .iter()
                .map(|f| gpb::FieldSpec {
                    name: f.name.clone(),
                    kind: f.kind.to_proto() as i32,
                    required: f.required,
                })
                .collect(),
            readers: self.readers.iter().map(|r| r.to_proto() as i32).collect(),
            read_price: amount_to_proto(self.read_price),
            upload_reward: amount_to_proto(self.upload_reward),
        }
    }

    /// Reads the wire form, checking every field's syntax.
    pub fn from_proto(spec: gpb::RecordTypeSpec) -> Result<RecordType, ActionError> {
        let name = RecordTypeName::new("RecordTypeSpec.name", spec.name)?;
        let owner = MemberId::new(spec.owner).map_err(|e| ActionError::Malformed {
            field: "RecordTypeSpec.owner",
            reason: e.to_string(),
        })?;
        if spec.fields.is_empty() || spec.fields.len() > MAX_FIELDS {
            return Err(ActionError::Malformed {
                field: "RecordTypeSpec.fields",
                reason: format!(
                    "a record type needs 1 to {MAX_FIELDS} fields, got {}",
                    spec.fields.len()
                ),
            });
        }
        let mut fields = Vec::with_capacity(spec.fields.len());
        let mut names = BTreeSet::new();
        for f in spec.fields {
            if let Err(reason) = name_ok(&f.name, b"") {
                return Err(ActionError::Malformed {
                    field: "FieldSpec.name",
                    reason: format!("field name {:?}: {reason}", f.name),
                });
            }
            if !names.insert(f.name.clone()) {
                return Err(ActionError::Malformed {
                    field: "FieldSpec.name",
                    reason: format!("field {:?} is declared twice", f.name),
                });
            }
            fields.push(FieldSpec {
                kind: FieldKind::from_proto("FieldSpec.kind", f.kind)?,
                name: f.name,
                required: f.required,
            });
        }
        let mut readers = BTreeSet::new();
        for r in spec.readers {
            let role = role_from_proto("RecordTypeSpec.readers", r)?;
            if !readers.insert(role) {
                return Err(ActionError::Malformed {
                    field: "RecordTypeSpec.readers",
                    reason: format!("role {role} is named twice"),
                });
            }
        }
        Ok(RecordType {
            name,
            owner,
            fields,
            readers,
            read_price: amount_from_proto("RecordTypeSpec.read_price", spec.read_price)?,
            upload_reward: amount_from_proto("RecordTypeSpec.upload_reward", spec.upload_reward)?,
        })
    }
}

/// The token platform's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    /// The most a department earns in upload rewards per period; `None` for no cap.
    pub reward_cap_per_period: Option<u64>,
    /// The period's length in heights (at least 1).
    pub period_heights: u64,
}

impl Default for TokenPolicy {
    /// No cap, periods of 1,000 heights.
    fn default() -> Self {
        TokenPolicy {
            reward_cap_per_period: None,
            period_heights: 1_000,
        }
    }
}

impl TokenPolicy {
    /// The period that height `height` (at least 1) falls in.
    pub fn period_of(&self, height: u64) -> u64 {
        height.saturating_sub(1) / self.period_heights.max(1)
    }

    /// The wire form.
    pub fn to_proto(&self) -> gpb::TokenPolicy {
        gpb::TokenPolicy {
            reward_cap_per_period: amount_to_proto(self.reward_cap_per_period.unwrap_or(0)),
            period_heights: self.period_heights,
        }
    }

    /// Reads the wire form, checking every field.
    pub fn from_proto(policy: gpb::TokenPolicy) -> Result<TokenPolicy, ActionError> {
        let cap = amount_from_proto(
            "TokenPolicy.reward_cap_per_period",
            policy.reward_cap_per_period,
        )?;
        if policy.period_heights == 0 {
            return Err(ActionError::Malformed {
                field: "TokenPolicy.period_heights",
                reason: "a period must be at least 1 height long".to_string(),
            });
        }
        Ok(TokenPolicy {
            reward_cap_per_period: (cap > 0).then_some(cap),
            period_heights: policy.period_heights,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> gpb::RecordTypeSpec {
        gpb::RecordTypeSpec {
            name: "housing.filing".into(),
            owner: "dept.housing".into(),
            fields: vec![gpb::FieldSpec {
                name: "price".into(),
                kind: gpb::FieldKind::Integer as i32,
                required: true,
            }],
            readers: vec![Role::Department.to_proto() as i32],
            read_price: 5,
            upload_reward: 10,
        }
    }

    #[test]
    fn record_types_round_trip() {
        let rt = RecordType::from_proto(spec()).unwrap();
        assert_eq!(rt.read_price, 5);
        assert_eq!(RecordType::from_proto(rt.to_proto()).unwrap(), rt);
        let built = RecordType::build(
            "housing.filing",
            "dept.housing",
            &[("price", FieldKind::Integer, true)],
            &[Role::Department],
            5,
            10,
        )
        .unwrap();
        assert_eq!(built, rt);
        let err = RecordType::build("x", "dept.a", &[], &[], u64::MAX, 0).unwrap_err();
        assert!(err.to_string().contains("read_price"), "{err}");
    }

    #[test]
    fn bad_record_types_name_the_field() {
        type Mutate = fn(&mut gpb::RecordTypeSpec);
        let cases: [(&str, Mutate); 8] = [
            ("RecordTypeSpec.name", |s| s.name = "Housing".into()),
            ("RecordTypeSpec.owner", |s| s.owner = String::new()),
            ("RecordTypeSpec.fields", |s| s.fields.clear()),
            ("FieldSpec.name", |s| s.fields.push(s.fields[0].clone())),
            ("FieldSpec.kind", |s| s.fields[0].kind = 0),
            ("RecordTypeSpec.readers", |s| s.readers.push(s.readers[0])),
            ("RecordTypeSpec.read_price", |s| s.read_price = -1),
            ("RecordTypeSpec.upload_reward", |s| {
                s.upload_reward = MAX_AMOUNT as i64 + 1
            }),
        ];
        for (field, mutate) in cases {
            let mut s = spec();
            mutate(&mut s);
            let err = RecordType::from_proto(s).unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn amounts_are_bounded_both_ways() {
        assert_eq!(amount_from_proto("a", 0), Ok(0));
        assert_eq!(amount_from_proto("a", MAX_AMOUNT as i64), Ok(MAX_AMOUNT));
        assert_eq!(
            amount_from_proto("a", -5),
            Err(ActionError::NegativeAmount {
                field: "a",
                value: -5
            })
        );
        assert!(matches!(
            amount_from_proto("a", i64::MAX),
            Err(ActionError::AmountTooLarge { .. })
        ));
    }

    #[test]
    fn token_policy_periods() {
        let p = TokenPolicy::from_proto(gpb::TokenPolicy {
            reward_cap_per_period: 100,
            period_heights: 10,
        })
        .unwrap();
        assert_eq!(p.reward_cap_per_period, Some(100));
        assert_eq!(
            (p.period_of(1), p.period_of(10), p.period_of(11)),
            (0, 0, 1)
        );
        assert!(
            TokenPolicy::from_proto(gpb::TokenPolicy {
                reward_cap_per_period: 0,
                period_heights: 0
            })
            .is_err()
        );
        assert_eq!(TokenPolicy::from_proto(p.to_proto()).unwrap(), p);
    }
}
