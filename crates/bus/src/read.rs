//! Reading what a stream holds without a consumer: its state, one message by sequence (gap
//! repair) and its last message (resolving a conditional-append conflict).

use async_nats::HeaderMap;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use bytes::Bytes;

use crate::MSG_ID_HEADER;
use crate::bus::Bus;
use crate::error::BusError;
use crate::trace;

/// A message as the stream stores it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// The subject it was published on.
    pub subject: String,
    /// Its stream sequence.
    pub sequence: u64,
    /// Its `Nats-Msg-Id`, if it had one.
    pub msg_id: Option<String>,
    /// All its headers.
    pub headers: HeaderMap,
    /// Its payload.
    pub payload: Bytes,
}

impl StoredMessage {
    /// The trace context it was published under.
    pub fn trace_context(&self) -> opentelemetry::Context {
        trace::extract(&self.headers)
    }
}

/// Counters of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamState {
    /// Messages stored.
    pub messages: u64,
    /// Sequence of the oldest stored message (0 if none was ever stored).
    pub first_sequence: u64,
    /// Sequence of the newest stored message (0 if none was ever stored).
    pub last_sequence: u64,
}

impl Bus {
    /// Looks a stream up, telling a missing stream apart from a failed look-up.
    pub(crate) async fn stream_with_info(
        &self,
        stream: &str,
    ) -> Result<async_nats::jetstream::stream::Stream, BusError> {
        self.jetstream()
            .get_stream(stream)
            .await
            .map_err(|err| match err.kind() {
                GetStreamErrorKind::JetStream(e)
                    if e.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    BusError::StreamNotFound {
                        stream: stream.to_owned(),
                    }
                }
                _ => BusError::Stream {
                    stream: stream.to_owned(),
                    reason: err.to_string(),
                },
            })
    }

    /// The stream's message count and first and last sequences.
    pub async fn stream_state(&self, stream: &str) -> Result<StreamState, BusError> {
        let handle = self.stream_with_info(stream).await?;
        let state = &handle.cached_info().state;
        Ok(StreamState {
            messages: state.messages,
            first_sequence: state.first_sequence,
            last_sequence: state.last_sequence,
        })
    }

    /// The message at `sequence`, read from the stream leader (so a write acknowledged before is
    /// always visible). For repairing a gap a consumer detected.
    pub async fn get_message(
        &self,
        stream: &str,
        sequence: u64,
    ) -> Result<StoredMessage, BusError> {
        let handle = self.stream_handle(stream).await?;
        get_raw(&handle, stream, sequence).await
    }

    /// The stream's last message, or `None` if it is empty. A writer whose conditional append
    /// conflicted compares the `msg_id` with its own to tell its earlier write from another's.
    pub async fn last_message(&self, stream: &str) -> Result<Option<StoredMessage>, BusError> {
        let state = self.stream_state(stream).await?;
        if state.messages == 0 {
            return Ok(None);
        }
        let handle = self.stream_handle(stream).await?;
        get_raw(&handle, stream, state.last_sequence)
            .await
            .map(Some)
    }

    async fn stream_handle(&self, stream: &str) -> Result<Stream<()>, BusError> {
        self.jetstream()
            .get_stream_no_info(stream)
            .await
            .map_err(|err| BusError::Stream {
                stream: stream.to_owned(),
                reason: err.to_string(),
            })
    }
}

async fn get_raw(
    handle: &Stream<()>,
    stream: &str,
    sequence: u64,
) -> Result<StoredMessage, BusError> {
    let message = handle
        .get_raw_message(sequence)
        .await
        .map_err(|err| match err.kind() {
            LastRawMessageErrorKind::NoMessageFound => BusError::MessageNotFound {
                stream: stream.to_owned(),
                sequence,
            },
            LastRawMessageErrorKind::JetStream(e)
                if e.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                BusError::StreamNotFound {
                    stream: stream.to_owned(),
                }
            }
            _ => BusError::Stream {
                stream: stream.to_owned(),
                reason: format!("reading sequence {sequence}: {err}"),
            },
        })?;
    let msg_id = message
        .headers
        .get(MSG_ID_HEADER)
        .map(|value| value.as_str().to_owned());
    Ok(StoredMessage {
        subject: message.subject.to_string(),
        sequence: message.sequence,
        msg_id,
        headers: message.headers,
        payload: message.payload,
    })
}
