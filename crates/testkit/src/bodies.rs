//! A real transaction body for tests that need "some transaction": the chain admits only
//! the types it carries, so a test's filler is a licence read of a made-up record, which any
//! member may send and which commits (its outcome, an unknown record, is the licence
//! service's to record).

use citychain_kernel::{Hash32, TxBody, TxId};
use citychain_records::{ReadTarget, read_body};

/// The subject every note declares.
pub const NOTE_SUBJECT: &str = "citizen:test-notes";

/// A note carrying `text` (1 to 256 bytes without control characters) as the read's
/// purpose; different texts give different bodies and a different record id.
pub fn note(text: &str) -> TxBody {
    note_about(NOTE_SUBJECT, text)
}

/// A note as [`note`], declaring `subject` instead (1 to 128 visible ASCII characters).
pub fn note_about(subject: &str, text: &str) -> TxBody {
    let record = TxId(Hash32(*blake3::hash(text.as_bytes()).as_bytes()));
    read_body(&ReadTarget::Record(record), subject, text)
}
