//! The licence platform's shared rules, used alike by the licence service (which stores and
//! releases records) and the token service (which rewards uploads and charges reads), so both
//! reach the same decision about every committed transaction:
//!
//! - [`body`]: the typed `Upload`, `Read`, `BindSubject` and `ReceiptsQuery` bodies.
//! - [`payload`]: checking a payload against its record type's schema, and the size limit.
//! - [`rules`]: deciding an upload and a read against the registry in force.
//! - [`catalogue`]: the record catalogue in a service's store (by id, and the latest record
//!   of each type about each subject), which read targets resolve against.
//!
//! Everything but [`catalogue`] is pure: no IO, no clock, no randomness, ordered maps only.

#![warn(missing_docs)]

pub mod body;
pub mod catalogue;
pub mod payload;
pub mod rules;

pub use body::{
    BIND_SUBJECT_TYPE_URL, BodyError, LicenceBody, MAX_PURPOSE_BYTES, READ_TYPE_URL,
    RECEIPTS_QUERY_TYPE_URL, ReadTarget, UPLOAD_TYPE_URL, Upload, bind_subject_body, read_body,
    receipts_query_body, upload_body,
};
pub use catalogue::{CatalogueError, RecordMeta};
pub use payload::{MAX_PAYLOAD_BYTES, PayloadError, check_payload};
pub use rules::{
    BindRefusal, ReadAccess, ReadRefusal, UploadRejection, decide_bind, decide_read, decide_upload,
};
