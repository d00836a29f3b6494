//! The crate's one error type, [`BusError`]: each variant carries the values involved so the
//! message alone says what failed where.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong talking to NATS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The configuration is inconsistent (say, a client certificate without its key).
    #[error("invalid bus configuration: {0}")]
    Config(String),

    /// A credentials, nkey or TLS file could not be read.
    #[error("cannot use {what} file {}: {reason}", path.display())]
    CredentialsFile {
        /// Which file it was (`creds`, `nkey seed`...).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },

    /// No server could be reached within the connect timeout.
    #[error("cannot reach NATS at {url}: {reason}")]
    Unreachable {
        /// The server URL (or comma-separated URLs) that was tried.
        url: String,
        /// What failed.
        reason: String,
    },

    /// The server rejected the credentials.
    #[error("NATS at {url} rejected the credentials: {reason}")]
    Unauthorized {
        /// The server URL (or URLs).
        url: String,
        /// The server's or client's reason.
        reason: String,
    },

    /// A stream does not exist.
    #[error("stream {stream} does not exist")]
    StreamNotFound {
        /// The stream name.
        stream: String,
    },

    /// Creating, updating or reading a stream failed.
    #[error("stream {stream}: {reason}")]
    Stream {
        /// The stream name.
        stream: String,
        /// What failed.
        reason: String,
    },

    /// A stream has no message at the requested sequence (never written, or deleted).
    #[error("stream {stream} has no message at sequence {sequence}")]
    MessageNotFound {
        /// The stream name.
        stream: String,
        /// The requested sequence.
        sequence: u64,
    },

    /// No stream captures the subject a message was published on.
    #[error("no stream captures subject {subject}")]
    NoStream {
        /// The subject.
        subject: String,
    },

    /// A conditional append found the stream's last sequence different from the expected one;
    /// nothing was stored.
    #[error(
        "conditional append conflict: expected last sequence {expected}, stream is at {}",
        actual.map_or_else(|| "an unknown sequence".to_owned(), |seq| seq.to_string())
    )]
    Conflict {
        /// The last sequence the caller expected.
        expected: u64,
        /// The stream's actual last sequence, when the server reported it.
        actual: Option<u64>,
    },

    /// A publish failed for another reason (timeout, size limit, connection...).
    #[error("publish on {subject} failed: {reason}")]
    Publish {
        /// The subject.
        subject: String,
        /// What failed.
        reason: String,
    },

    /// Creating, updating or using a consumer failed.
    #[error("consumer {consumer} on stream {stream}: {reason}")]
    Consumer {
        /// The stream name.
        stream: String,
        /// The durable name.
        consumer: String,
        /// What failed.
        reason: String,
    },

    /// Acknowledging a delivery failed.
    #[error("{action} of stream sequence {sequence} failed: {reason}")]
    Ack {
        /// `ack`, `nak`, `in-progress` or `term`.
        action: &'static str,
        /// The delivery's stream sequence.
        sequence: u64,
        /// What failed.
        reason: String,
    },

    /// A request got no reply in time (someone listens, but did not answer).
    #[error("no reply on {subject} within {timeout:?}")]
    RequestTimeout {
        /// The subject.
        subject: String,
        /// The timeout used.
        timeout: Duration,
    },

    /// Nobody listens on a request's subject.
    #[error("no responders on {subject}")]
    NoResponders {
        /// The subject.
        subject: String,
    },

    /// A request failed for another reason.
    #[error("request on {subject} failed: {reason}")]
    Request {
        /// The subject.
        subject: String,
        /// What failed.
        reason: String,
    },

    /// Getting or creating an object store or key-value bucket failed.
    #[error("{store} bucket {bucket}: {reason}")]
    Bucket {
        /// `object store` or `key-value`.
        store: &'static str,
        /// The bucket name.
        bucket: String,
        /// What failed.
        reason: String,
    },

    /// Reading or writing one object of an object store bucket failed.
    #[error("{action} of object {name:?} in bucket {bucket} failed: {reason}")]
    Object {
        /// `put`, `get`, `look-up` or `list`.
        action: &'static str,
        /// The bucket name.
        bucket: String,
        /// The object name (empty for `list`).
        name: String,
        /// What failed.
        reason: String,
    },

    /// Reading or writing one key of a key-value bucket failed.
    #[error("{action} of key {key:?} in bucket {bucket} failed: {reason}")]
    KeyValue {
        /// `create` or `get`.
        action: &'static str,
        /// The bucket name.
        bucket: String,
        /// The key.
        key: String,
        /// What failed.
        reason: String,
    },

    /// Subscribing failed.
    #[error("subscribe to {subject} failed: {reason}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// What failed.
        reason: String,
    },
}
