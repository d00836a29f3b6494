//! Appending to streams: [`Bus::publish_idempotent`] (de-duplicated by `Nats-Msg-Id`) and
//! [`Bus::append_expected`] (additionally conditional on the stream's last sequence, so CHAIN
//! can hold neither a fork nor a gap). Both inject the current trace context.

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;

use crate::bus::Bus;
use crate::error::BusError;
use crate::trace;

/// Where an append landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stream that stored it.
    pub stream: String,
    /// Its stream sequence; for a duplicate, the sequence of the message stored first.
    pub sequence: u64,
    /// True if a message with the same id was already stored within the duplicate window, so
    /// nothing new was stored.
    pub duplicate: bool,
}

impl Bus {
    /// Appends `payload` to the stream capturing `subject`, with `Nats-Msg-Id: msg_id`. A second
    /// publish with the same id within the stream's duplicate window is stored once: its result
    /// has `duplicate: true` and the first message's sequence.
    pub async fn publish_idempotent(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
        headers: HeaderMap,
    ) -> Result<Appended, BusError> {
        self.append(subject, msg_id, None, payload, headers).await
    }

    /// Appends `payload` only if the stream's last sequence is `expected_last_sequence` (0 for
    /// an empty stream), with `Nats-Msg-Id: msg_id`.
    ///
    /// On a mismatch nothing is stored and the result is [`BusError::Conflict`] with the
    /// stream's actual last sequence. JetStream checks the sequence before the message id, so
    /// a retry of a write that did land (its ack was lost, say) also gets a conflict: the caller
    /// then reads [`Bus::last_message`] and compares its `msg_id` with its own to tell its
    /// earlier write from someone else's.
    pub async fn append_expected(
        &self,
        subject: &str,
        expected_last_sequence: u64,
        msg_id: &str,
        payload: Bytes,
        headers: HeaderMap,
    ) -> Result<Appended, BusError> {
        self.append(
            subject,
            msg_id,
            Some(expected_last_sequence),
            payload,
            headers,
        )
        .await
    }

    async fn append(
        &self,
        subject: &str,
        msg_id: &str,
        expected_last_sequence: Option<u64>,
        payload: Bytes,
        mut headers: HeaderMap,
    ) -> Result<Appended, BusError> {
        if msg_id.is_empty() || msg_id.chars().any(char::is_whitespace) {
            return Err(BusError::Publish {
                subject: subject.to_owned(),
                reason: format!("message id {msg_id:?} must be non-empty without whitespace"),
            });
        }
        trace::inject_current_if_absent(&mut headers);
        let mut message = PublishMessage::build()
            .payload(payload)
            .headers(headers)
            .message_id(msg_id);
        if let Some(expected) = expected_last_sequence {
            message = message.expected_last_sequence(expected);
        }
        let ack = async {
            self.jetstream()
                .send_publish(subject.to_owned(), message)
                .await?
                .await
        }
        .await
        .map_err(|err| publish_error(subject, expected_last_sequence, err))?;
        tracing::debug!(
            subject,
            msg_id,
            stream = %ack.stream,
            sequence = ack.sequence,
            duplicate = ack.duplicate,
            "appended"
        );
        Ok(Appended {
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }
}

fn publish_error(subject: &str, expected: Option<u64>, err: PublishError) -> BusError {
    match (err.kind(), expected) {
        (PublishErrorKind::WrongLastSequence, Some(expected)) => BusError::Conflict {
            expected,
            actual: actual_last_sequence(&err),
        },
        (PublishErrorKind::StreamNotFound, _) => BusError::NoStream {
            subject: subject.to_owned(),
        },
        _ => BusError::Publish {
            subject: subject.to_owned(),
            reason: err.to_string(),
        },
    }
}

/// The server reports a failed sequence check (error 10071) as "wrong last sequence: N".
fn actual_last_sequence(err: &PublishError) -> Option<u64> {
    let source = std::error::Error::source(err)?;
    parse_wrong_last_sequence(&source.to_string())
}

fn parse_wrong_last_sequence(description: &str) -> Option<u64> {
    let (_, rest) = description.split_once("wrong last sequence:")?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_wrong_last_sequence;

    #[test]
    fn parses_the_servers_wrong_last_sequence_description() {
        assert_eq!(
            parse_wrong_last_sequence("wrong last sequence: 42 (code 400, error code 10071)"),
            Some(42)
        );
        assert_eq!(parse_wrong_last_sequence("wrong last sequence: 0"), Some(0));
        assert_eq!(parse_wrong_last_sequence("wrong last sequence"), None);
        assert_eq!(parse_wrong_last_sequence("something else: 7"), None);
    }
}
