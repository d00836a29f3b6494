//! The licence platform's transaction bodies in typed form: decoding checks every field's
//! syntax and that the transaction declares exactly the record's subject, and the builders
//! give clients bodies that pass those checks.

use citychain_governance::RecordTypeName;
use citychain_kernel::codec::decode_canonical;
use citychain_kernel::{Hash32, PublicKey, TxBody, TxId};
use citychain_proto::citychain::licence::v1 as lpb;
use prost::Message;
use thiserror::Error;

/// The body type of an upload.
pub const UPLOAD_TYPE_URL: &str = "citychain.licence.v1.Upload";
/// The body type of a read.
pub const READ_TYPE_URL: &str = "citychain.licence.v1.Read";
/// The body type of a subject binding.
pub const BIND_SUBJECT_TYPE_URL: &str = "citychain.licence.v1.BindSubject";
/// The body type of a citizen's receipts query (signed, never submitted).
pub const RECEIPTS_QUERY_TYPE_URL: &str = "citychain.licence.v1.ReceiptsQuery";

/// The longest purpose of a read, in bytes.
pub const MAX_PURPOSE_BYTES: usize = 256;

/// A licence body that breaks its syntax. The message names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BodyError {
    /// The body does not decode, or not canonically.
    #[error("{type_url} does not decode: {reason}")]
    Malformed {
        /// The body type.
        type_url: String,
        /// What is wrong.
        reason: String,
    },
    /// A field breaks its rule.
    #[error("{field}: {reason}")]
    Field {
        /// The field, such as `Upload.payload_hash`.
        field: &'static str,
        /// What is wrong, with the limit broken.
        reason: String,
    },
    /// The transaction's declared subjects are not exactly the record's subject.
    #[error(
        "the transaction must declare exactly the subject {expected:?}, it declares {declared:?}"
    )]
    Subjects {
        /// The subject the body names.
        expected: String,
        /// What the transaction declares.
        declared: Vec<String>,
    },
}

fn field(field: &'static str, reason: impl Into<String>) -> BodyError {
    BodyError::Field {
        field,
        reason: reason.into(),
    }
}

/// Checks a subject id: 1 to 128 visible ASCII characters (the kernel's subject rule).
fn subject(name: &'static str, value: String) -> Result<String, BodyError> {
    if value.is_empty() || value.len() > citychain_kernel::tx::MAX_SUBJECT_BYTES {
        return Err(field(
            name,
            format!(
                "a subject must be 1 to {} bytes, got {}",
                citychain_kernel::tx::MAX_SUBJECT_BYTES,
                value.len()
            ),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(field(
            name,
            "a subject must be visible ASCII without spaces",
        ));
    }
    Ok(value)
}

fn record_type(name: &'static str, value: String) -> Result<RecordTypeName, BodyError> {
    RecordTypeName::new(name, value).map_err(|e| field(name, e.to_string()))
}

/// An upload: a department's record of one of its types about a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The record type.
    pub record_type: RecordTypeName,
    /// Whom the record is about.
    pub subject: String,
    /// blake3 of the payload.
    pub payload_hash: Hash32,
    /// The payload's size in bytes.
    pub payload_size: u64,
}

/// What a read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadTarget {
    /// One record by id.
    Record(TxId),
    /// The latest record of a type about a subject, as of the read's place in the chain.
    Latest {
        /// The subject.
        subject: String,
        /// The record type.
        record_type: RecordTypeName,
    },
}

/// A decoded licence body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenceBody {
    /// An upload.
    Upload(Upload),
    /// A read of a record about `subject` (the subject the transaction declares).
    Read {
        /// What is read.
        target: ReadTarget,
        /// The subject the transaction declares: the record's subject must be this one.
        subject: String,
        /// Why.
        purpose: String,
    },
    /// A department vouches that `key` speaks for `subject`.
    BindSubject {
        /// The subject.
        subject: String,
        /// The citizen's key.
        key: PublicKey,
    },
    /// A citizen asks for the receipts of `subject`.
    ReceiptsQuery {
        /// The subject.
        subject: String,
    },
}

fn single_subject(body: &TxBody, expected: &str) -> Result<(), BodyError> {
    if body.subjects.len() == 1 && body.subjects[0] == expected {
        Ok(())
    } else {
        Err(BodyError::Subjects {
            expected: expected.to_string(),
            declared: body.subjects.clone(),
        })
    }
}

impl LicenceBody {
    /// Decodes a transaction body: `Ok(None)` for a body that is not the licence platform's.
    pub fn decode(body: &TxBody) -> Result<Option<LicenceBody>, BodyError> {
        let malformed = |reason: String| BodyError::Malformed {
            type_url: body.type_url.clone(),
            reason,
        };
        let decoded = match body.type_url.as_str() {
            UPLOAD_TYPE_URL => {
                let u: lpb::Upload = decode_canonical("Upload", &body.value)
                    .map_err(|e| malformed(e.to_string()))?;
                let upload = Upload {
                    record_type: record_type("Upload.record_type", u.record_type)?,
                    subject: subject("Upload.subject", u.subject)?,
                    payload_hash: Hash32::from_slice("Upload.payload_hash", &u.payload_hash)
                        .map_err(|e| field("Upload.payload_hash", e.to_string()))?,
                    payload_size: u.payload_size,
                };
                single_subject(body, &upload.subject)?;
                LicenceBody::Upload(upload)
            }
            READ_TYPE_URL => {
                let r: lpb::Read =
                    decode_canonical("Read", &body.value).map_err(|e| malformed(e.to_string()))?;
                if r.purpose.chars().any(char::is_control) {
                    return Err(field(
                        "Read.purpose",
                        "a purpose must not contain control characters",
                    ));
                }
                if r.purpose.is_empty() || r.purpose.len() > MAX_PURPOSE_BYTES {
                    return Err(field(
                        "Read.purpose",
                        format!(
                            "a purpose must be 1 to {MAX_PURPOSE_BYTES} bytes, got {}",
                            r.purpose.len()
                        ),
                    ));
                }
                let target = match r.target {
                    Some(lpb::read::Target::RecordId(id)) => ReadTarget::Record(TxId(
                        Hash32::from_slice("Read.record_id", &id)
                            .map_err(|e| field("Read.record_id", e.to_string()))?,
                    )),
                    Some(lpb::read::Target::Query(q)) => ReadTarget::Latest {
                        subject: subject("ReadQuery.subject", q.subject)?,
                        record_type: record_type("ReadQuery.record_type", q.record_type)?,
                    },
                    None => return Err(field("Read.target", "a record id or a query is required")),
                };
                let [declared] = body.subjects.as_slice() else {
                    return Err(BodyError::Subjects {
                        expected: match &target {
                            ReadTarget::Latest { subject, .. } => subject.clone(),
                            ReadTarget::Record(_) => "the record's subject".to_string(),
                        },
                        declared: body.subjects.clone(),
                    });
                };
                if let ReadTarget::Latest { subject, .. } = &target {
                    single_subject(body, subject)?;
                }
                LicenceBody::Read {
                    subject: declared.clone(),
                    target,
                    purpose: r.purpose,
                }
            }
            BIND_SUBJECT_TYPE_URL => {
                let b: lpb::BindSubject = decode_canonical("BindSubject", &body.value)
                    .map_err(|e| malformed(e.to_string()))?;
                let subject = subject("BindSubject.subject", b.subject)?;
                single_subject(body, &subject)?;
                LicenceBody::BindSubject {
                    key: PublicKey::from_slice("BindSubject.key", &b.key)
                        .map_err(|e| field("BindSubject.key", e.to_string()))?,
                    subject,
                }
            }
            RECEIPTS_QUERY_TYPE_URL => {
                let q: lpb::ReceiptsQuery = decode_canonical("ReceiptsQuery", &body.value)
                    .map_err(|e| malformed(e.to_string()))?;
                let subject = subject("ReceiptsQuery.subject", q.subject)?;
                single_subject(body, &subject)?;
                LicenceBody::ReceiptsQuery { subject }
            }
            _ => return Ok(None),
        };
        Ok(Some(decoded))
    }
}

/// The body uploading a record whose payload is `payload`.
pub fn upload_body(record_type: &str, subject: &str, payload: &[u8]) -> TxBody {
    TxBody::new(
        UPLOAD_TYPE_URL,
        lpb::Upload {
            record_type: record_type.to_string(),
            subject: subject.to_string(),
            payload_hash: blake3::hash(payload).as_bytes().to_vec(),
            payload_size: payload.len() as u64,
        }
        .encode_to_vec(),
    )
    .with_subjects([subject])
}

/// The body reading `target` about `subject` for `purpose`.
pub fn read_body(target: &ReadTarget, subject: &str, purpose: &str) -> TxBody {
    let target = match target {
        ReadTarget::Record(id) => lpb::read::Target::RecordId(id.as_bytes().to_vec()),
        ReadTarget::Latest {
            subject,
            record_type,
        } => lpb::read::Target::Query(lpb::ReadQuery {
            subject: subject.clone(),
            record_type: record_type.to_string(),
        }),
    };
    TxBody::new(
        READ_TYPE_URL,
        lpb::Read {
            target: Some(target),
            purpose: purpose.to_string(),
        }
        .encode_to_vec(),
    )
    .with_subjects([subject])
}

/// The body binding `key` to `subject`.
pub fn bind_subject_body(subject: &str, key: &PublicKey) -> TxBody {
    TxBody::new(
        BIND_SUBJECT_TYPE_URL,
        lpb::BindSubject {
            subject: subject.to_string(),
            key: key.to_bytes().to_vec(),
        }
        .encode_to_vec(),
    )
    .with_subjects([subject])
}

/// The body of a citizen's query for `subject`'s receipts.
pub fn receipts_query_body(subject: &str) -> TxBody {
    TxBody::new(
        RECEIPTS_QUERY_TYPE_URL,
        lpb::ReceiptsQuery {
            subject: subject.to_string(),
        }
        .encode_to_vec(),
    )
    .with_subjects([subject])
}

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_kernel::SigningKey;

    const CITIZEN: &str = "citizen:330102-19900101-0042";

    #[test]
    fn bodies_round_trip() {
        let upload = upload_body("housing.filing", CITIZEN, b"{}");
        let Some(LicenceBody::Upload(u)) = LicenceBody::decode(&upload).unwrap() else {
            panic!("not an upload")
        };
        assert_eq!(u.payload_hash, Hash32(*blake3::hash(b"{}").as_bytes()));
        assert_eq!(u.payload_size, 2);

        let target = ReadTarget::Latest {
            subject: CITIZEN.into(),
            record_type: RecordTypeName::new("t", "housing.filing").unwrap(),
        };
        let read = read_body(&target, CITIZEN, "tax assessment");
        assert_eq!(
            LicenceBody::decode(&read).unwrap(),
            Some(LicenceBody::Read {
                target,
                subject: CITIZEN.into(),
                purpose: "tax assessment".into()
            })
        );
        let key = SigningKey::from_seed(&[1; 32]).public_key();
        assert_eq!(
            LicenceBody::decode(&bind_subject_body(CITIZEN, &key)).unwrap(),
            Some(LicenceBody::BindSubject {
                subject: CITIZEN.into(),
                key
            })
        );
        assert_eq!(
            LicenceBody::decode(&TxBody::new("citychain.other.v1.X", vec![])).unwrap(),
            None
        );
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let mut wrong_subject = upload_body("housing.filing", CITIZEN, b"{}");
        wrong_subject.subjects = vec!["citizen:other".into()];
        let long_purpose = read_body(
            &ReadTarget::Record(TxId::default()),
            CITIZEN,
            &"p".repeat(MAX_PURPOSE_BYTES + 1),
        );
        let bad_type = upload_body("Housing", CITIZEN, b"{}");
        let no_subjects = TxBody {
            subjects: vec![],
            ..read_body(&ReadTarget::Record(TxId::default()), CITIZEN, "x")
        };
        for (body, needle) in [
            (wrong_subject, "exactly the subject"),
            (long_purpose, "Read.purpose"),
            (bad_type, "Upload.record_type"),
            (no_subjects, "the record's subject"),
        ] {
            let err = LicenceBody::decode(&body).unwrap_err();
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }
}
