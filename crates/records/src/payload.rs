//! Checking an uploaded payload against its upload body and its record type's schema, before
//! anything is stored or submitted.
//!
//! A payload is a JSON object (UTF-8) whose members are the record type's fields: every
//! required field present, no undeclared field, each value of its field's kind. It is kept
//! byte for byte as uploaded (never re-serialised), so the department's signature over its hash
//! can always be checked.

use base64::Engine;
use citychain_governance::{FieldKind, RecordType};
use serde_json::Value;
use thiserror::Error;

use crate::body::Upload;

/// The largest payload accepted: 1 MiB. Payloads travel to the licence service in one gRPC
/// message and are stored in the object store, never through consensus.
pub const MAX_PAYLOAD_BYTES: u64 = 1024 * 1024;

/// Why a payload is refused. Each message names the field or limit broken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    /// Larger than [`MAX_PAYLOAD_BYTES`].
    #[error("the payload is {size} bytes, above the limit of {max} bytes")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Its size differs from the size the signed upload declares.
    #[error("the payload is {actual} bytes but Upload.payload_size says {declared}")]
    SizeMismatch {
        /// Declared.
        declared: u64,
        /// Found.
        actual: u64,
    },
    /// Its hash differs from the hash the signed upload declares.
    #[error("the payload's blake3 hash {actual} differs from Upload.payload_hash {declared}")]
    HashMismatch {
        /// Declared, hex.
        declared: String,
        /// Found, hex.
        actual: String,
    },
    /// Not a JSON object.
    #[error("the payload is not a JSON object: {reason}")]
    NotJson {
        /// What is wrong.
        reason: String,
    },
    /// A member named twice: parsers disagree on which value counts, so the signed bytes
    /// would not mean one thing.
    #[error("field {field:?} appears more than once")]
    DuplicateField {
        /// The field.
        field: String,
    },
    /// A member the record type does not declare.
    #[error("field {field:?} is not a field of record type {record_type}")]
    UnknownField {
        /// The field.
        field: String,
        /// The record type.
        record_type: String,
    },
    /// A required field is absent.
    #[error("required field {field:?} of record type {record_type} is missing")]
    MissingField {
        /// The field.
        field: String,
        /// The record type.
        record_type: String,
    },
    /// A value of the wrong kind.
    #[error("field {field:?} must be {expected}: {reason}")]
    WrongKind {
        /// The field.
        field: String,
        /// The kind declared.
        expected: FieldKind,
        /// What was found instead.
        reason: String,
    },
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first member name that appears twice in the top-level object of `payload`, if any
/// (serde_json's own map keeps the last value silently). Values are skipped unread.
fn duplicate_member(payload: &[u8]) -> Option<String> {
    struct Names(Option<String>);

    impl<'de> serde::Deserialize<'de> for Names {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Names, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Names;

                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }

                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Names, A::Error> {
                    let mut seen = std::collections::BTreeSet::new();
                    let mut repeated = None;
                    while let Some(name) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        if !seen.insert(name.clone()) && repeated.is_none() {
                            repeated = Some(name);
                        }
                    }
                    Ok(Names(repeated))
                }
            }
            d.deserialize_map(Visit)
        }
    }

    serde_json::from_slice::<Names>(payload)
        .ok()
        .and_then(|n| n.0)
}

/// Whether `text` is `YYYY-MM-DD` naming a real date of the proleptic Gregorian calendar.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        text.get(r.clone())
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

fn check_value(kind: FieldKind, value: &Value) -> Result<(), String> {
    let found = || format!("found {}", json_type(value));
    match (kind, value) {
        (FieldKind::Text, Value::String(_)) | (FieldKind::Boolean, Value::Bool(_)) => Ok(()),
        (FieldKind::Integer, Value::Number(n)) if n.is_i64() => Ok(()),
        (FieldKind::Integer, Value::Number(n)) => {
            Err(format!("{n} is not an integer in the signed 64-bit range"))
        }
        (FieldKind::Date, Value::String(s)) if is_date(s) => Ok(()),
        (FieldKind::Date, Value::String(s)) => Err(format!("{s:?} is not a date YYYY-MM-DD")),
        (FieldKind::Document, Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|_| ())
            .map_err(|e| format!("not standard base64: {e}")),
        _ => Err(found()),
    }
}

/// Checks `payload` against the signed `upload` (size, hash) and `record_type`'s schema.
pub fn check_payload(
    record_type: &RecordType,
    upload: &Upload,
    payload: &[u8],
) -> Result<(), PayloadError> {
    let size = payload.len() as u64;
    if size > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::TooLarge {
            size,
            max: MAX_PAYLOAD_BYTES,
        });
    }
    if size != upload.payload_size {
        return Err(PayloadError::SizeMismatch {
            declared: upload.payload_size,
            actual: size,
        });
    }
    let actual = blake3::hash(payload);
    if actual.as_bytes() != upload.payload_hash.as_bytes() {
        return Err(PayloadError::HashMismatch {
            declared: upload.payload_hash.to_hex(),
            actual: actual.to_hex().to_string(),
        });
    }
    let object = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(object)) => object,
        Ok(other) => {
            return Err(PayloadError::NotJson {
                reason: format!("found {}", json_type(&other)),
            });
        }
        Err(err) => {
            return Err(PayloadError::NotJson {
                reason: err.to_string(),
            });
        }
    };
    if let Some(field) = duplicate_member(payload) {
        return Err(PayloadError::DuplicateField { field });
    }
    // Walk the object in key order (serde_json's map is ordered) so the first error reported
    // is the same on every replica.
    for (name, value) in &object {
        let spec = record_type
            .field(name)
            .ok_or_else(|| PayloadError::UnknownField {
                field: name.clone(),
                record_type: record_type.name.to_string(),
            })?;
        check_value(spec.kind, value).map_err(|reason| PayloadError::WrongKind {
            field: name.clone(),
            expected: spec.kind,
            reason,
        })?;
    }
    if let Some(missing) = record_type
        .fields
        .iter()
        .find(|f| f.required && !object.contains_key(&f.name))
    {
        return Err(PayloadError::MissingField {
            field: missing.name.clone(),
            record_type: record_type.name.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_governance::{FieldSpec, RecordTypeName};
    use citychain_kernel::{Hash32, MemberId};

    fn record_type() -> RecordType {
        let field = |name: &str, kind, required| FieldSpec {
            name: name.into(),
            kind,
            required,
        };
        RecordType {
            name: RecordTypeName::new("t", "housing.filing").unwrap(),
            owner: MemberId::new("dept.housing").unwrap(),
            fields: vec![
                field("address", FieldKind::Text, true),
                field("price", FieldKind::Integer, true),
                field("signed_on", FieldKind::Date, false),
                field("mortgage", FieldKind::Boolean, false),
                field("contract", FieldKind::Document, false),
            ],
            readers: Default::default(),
            read_price: 0,
            upload_reward: 0,
        }
    }

    fn check(payload: &str) -> Result<(), PayloadError> {
        let upload = Upload {
            record_type: record_type().name,
            subject: "s".into(),
            payload_hash: Hash32(*blake3::hash(payload.as_bytes()).as_bytes()),
            payload_size: payload.len() as u64,
        };
        check_payload(&record_type(), &upload, payload.as_bytes())
    }

    #[test]
    fn a_payload_matching_the_schema_passes() {
        check(r#"{"address":"1 Lake Rd","price":3200000,"signed_on":"2024-02-29","mortgage":true,"contract":"aGVsbG8="}"#)
            .unwrap();
        check(r#"{"address":"1 Lake Rd","price":-1}"#).unwrap();
    }

    #[test]
    fn schema_violations_name_the_field() {
        for (payload, needle) in [
            (r#"{"address":"x"}"#, "required field \"price\""),
            (
                r#"{"address":"x","price":1.5}"#,
                "field \"price\" must be integer",
            ),
            (r#"{"address":"x","price":"1"}"#, "found a string"),
            (
                r#"{"address":"x","price":1,"colour":"red"}"#,
                "\"colour\" is not a field",
            ),
            (
                r#"{"address":"x","price":1,"signed_on":"2023-02-29"}"#,
                "\"signed_on\" must be date",
            ),
            (
                r#"{"address":"x","price":1,"contract":"***"}"#,
                "\"contract\" must be document",
            ),
            (r#"[1,2]"#, "not a JSON object: found an array"),
            (
                r#"{"address":"x","price":"lots","price":1}"#,
                "\"price\" appears more than once",
            ),
            (r#"{"address":"#, "not a JSON object"),
        ] {
            let err = check(payload).unwrap_err().to_string();
            assert!(err.contains(needle), "{payload}: {err}");
        }
    }

    #[test]
    fn hash_size_and_limit_are_checked() {
        let rt = record_type();
        let payload = br#"{"address":"x","price":1}"#;
        let mut upload = Upload {
            record_type: rt.name.clone(),
            subject: "s".into(),
            payload_hash: Hash32(*blake3::hash(payload).as_bytes()),
            payload_size: payload.len() as u64,
        };
        upload.payload_size += 1;
        assert!(matches!(
            check_payload(&rt, &upload, payload),
            Err(PayloadError::SizeMismatch { .. })
        ));
        upload.payload_size -= 1;
        upload.payload_hash = Hash32([0; 32]);
        assert!(matches!(
            check_payload(&rt, &upload, payload),
            Err(PayloadError::HashMismatch { .. })
        ));
        let big = vec![b' '; MAX_PAYLOAD_BYTES as usize + 1];
        let err = check_payload(&rt, &upload, &big).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the payload is 1048577 bytes, above the limit of 1048576 bytes"
        );
    }

    #[test]
    fn dates_follow_the_calendar() {
        for (d, ok) in [
            ("2024-02-29", true),
            ("2000-02-29", true),
            ("1900-02-29", false),
            ("2023-13-01", false),
            ("2023-04-31", false),
            ("2023-4-01", false),
            ("+023-04-01", false),
        ] {
            assert_eq!(is_date(d), ok, "{d}");
        }
    }
}
