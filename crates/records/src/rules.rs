//! Deciding the licence platform's transactions against the registry in force for their block
//! (the registry before the block: what authorized its signers). The licence service and the
//! token service call these same functions on the same committed transactions, so a read the
//! licence service refuses is never one the token service charges, and vice versa.

use citychain_governance::{Registry, Signer};
use citychain_kernel::{MemberId, Role};
use thiserror::Error;

use crate::body::{ReadTarget, Upload};
use crate::catalogue::RecordMeta;
use crate::payload::MAX_PAYLOAD_BYTES;

/// Why an upload is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UploadRejection {
    /// No record type of that name is declared.
    #[error("record type {record_type} is not declared")]
    UnknownRecordType {
        /// The name.
        record_type: String,
    },
    /// The signer is not the type's owner.
    #[error("record type {record_type} is owned by {owner}; {signer} may not upload it")]
    NotOwner {
        /// The type.
        record_type: String,
        /// Its owner.
        owner: MemberId,
        /// Who signed (a member id, or "a citizen").
        signer: String,
    },
    /// The declared size is above the limit.
    #[error("Upload.payload_size is {size} bytes, above the limit of {max} bytes")]
    TooLarge {
        /// Declared.
        size: u64,
        /// The limit.
        max: u64,
    },
}

/// Why a committed read releases nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadRefusal {
    /// Only members read records.
    #[error("only members read records; the signer is a citizen")]
    NotAMember,
    /// The target resolves to no record.
    #[error("no record {target}")]
    RecordNotFound {
        /// The target, described.
        target: String,
    },
    /// The record is about another subject than the read declares.
    #[error("record {record} is about {actual}, but the read declares {declared}")]
    SubjectMismatch {
        /// The record id.
        record: String,
        /// The record's subject.
        actual: String,
        /// The read's subject.
        declared: String,
    },
    /// The record's type is no longer declared.
    #[error("record type {record_type} is not declared")]
    UnknownRecordType {
        /// The name.
        record_type: String,
    },
    /// The reader's role may not read this type.
    #[error(
        "record type {record_type} may be read by its owner and {readers}; {reader} is a {role}"
    )]
    RoleNotAllowed {
        /// The type.
        record_type: String,
        /// The reader.
        reader: MemberId,
        /// Its role.
        role: Role,
        /// The roles that may read, listed.
        readers: String,
    },
}

/// Why a subject binding is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("only departments bind citizens' keys to subjects; the signer is {signer}")]
pub struct BindRefusal {
    /// Who signed.
    pub signer: String,
}

fn describe(signer: &Signer) -> String {
    match signer {
        Signer::Member { id, .. } => id.to_string(),
        Signer::Citizen => "a citizen".to_string(),
    }
}

/// Decides an upload: the type must be declared, the signer its owner, the size within the
/// limit. (The payload itself is checked by the licence service when it receives it.)
pub fn decide_upload(
    registry: &Registry,
    signer: &Signer,
    upload: &Upload,
) -> Result<(), UploadRejection> {
    let record_type = registry
        .record_type(upload.record_type.as_str())
        .ok_or_else(|| UploadRejection::UnknownRecordType {
            record_type: upload.record_type.to_string(),
        })?;
    match signer {
        Signer::Member { id, .. } if id == &record_type.owner => {}
        other => {
            return Err(UploadRejection::NotOwner {
                record_type: record_type.name.to_string(),
                owner: record_type.owner.clone(),
                signer: describe(other),
            });
        }
    }
    if upload.payload_size > MAX_PAYLOAD_BYTES {
        return Err(UploadRejection::TooLarge {
            size: upload.payload_size,
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

/// A read the policy allows: who pays whom how much for which record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAccess {
    /// The record read.
    pub record: RecordMeta,
    /// The reader.
    pub reader: MemberId,
    /// What the reader owes the record's owner: 0 for its own records.
    pub price: u64,
}

/// Decides a read whose target resolved to `record` (`None`: to nothing).
pub fn decide_read(
    registry: &Registry,
    signer: &Signer,
    target: &ReadTarget,
    declared_subject: &str,
    record: Option<&RecordMeta>,
) -> Result<ReadAccess, ReadRefusal> {
    let Signer::Member { id, role } = signer else {
        return Err(ReadRefusal::NotAMember);
    };
    let record = record.ok_or_else(|| ReadRefusal::RecordNotFound {
        target: match target {
            ReadTarget::Record(id) => id.to_string(),
            ReadTarget::Latest {
                subject,
                record_type,
            } => format!("of type {record_type} about {subject}"),
        },
    })?;
    if record.subject != declared_subject {
        return Err(ReadRefusal::SubjectMismatch {
            record: record.id.to_string(),
            actual: record.subject.clone(),
            declared: declared_subject.to_string(),
        });
    }
    let record_type = registry
        .record_type(record.record_type.as_str())
        .ok_or_else(|| ReadRefusal::UnknownRecordType {
            record_type: record.record_type.to_string(),
        })?;
    if !record_type.may_read(id, *role) {
        let readers: Vec<String> = record_type.readers.iter().map(|r| r.to_string()).collect();
        return Err(ReadRefusal::RoleNotAllowed {
            record_type: record_type.name.to_string(),
            reader: id.clone(),
            role: *role,
            readers: if readers.is_empty() {
                "no role".to_string()
            } else {
                readers.join(", ")
            },
        });
    }
    let price = if id == &record.owner {
        0
    } else {
        record_type.read_price
    };
    Ok(ReadAccess {
        record: record.clone(),
        reader: id.clone(),
        price,
    })
}

/// Decides a subject binding: only active departments vouch for citizens' keys.
pub fn decide_bind(signer: &Signer) -> Result<(), BindRefusal> {
    match signer {
        Signer::Member {
            role: Role::Department,
            ..
        } => Ok(()),
        other => Err(BindRefusal {
            signer: describe(other),
        }),
    }
}
