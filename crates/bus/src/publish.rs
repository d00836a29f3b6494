//! Appending to streams: [`Bus::publish_idempotent`] (de-duplicated by `Nats-Msg-Id`) and
//! [`Bus::append_expected`] (additionally conditional on the stream's last sequence, so CHAIN
//! can hold neither a fork nor a gap). Both inject the current trace context.
//!
//! # Latency metrics
//!
//! Every append records two OpenTelemetry histograms (unit `s`, buckets
//! [`citychain_telemetry::LATENCY_BOUNDARIES`]) on the global meter `citychain-bus`, or on the
//! meter given to [`Bus::with_meter`]:
//!
//! - `jetstream.publish.duration`: from the call until the client has taken the message for
//!   sending and handed back the future of its acknowledgement;
//! - `jetstream.ack.duration`: from then until JetStream's PubAck (or its refusal, or the
//!   timeout) arrives. Not recorded when the message could not be sent at all.
//!
//! Both carry `stream` and `outcome`. The stream is the one the PubAck names; a failed append
//! gets no PubAck, so it is labelled with the stream that last acknowledged the same subject
//! through this [`Bus`], or `unknown` when none has yet. The outcome is `ok`, `duplicate`
//! (acknowledged, stored earlier), `conflict` (the expected last sequence did not match) or
//! `error`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};

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
        let started = Instant::now();
        let sent = self
            .jetstream()
            .send_publish(subject.to_owned(), message)
            .await;
        let handed_over = Instant::now();
        let (result, ack_wait) = match sent {
            Ok(pending) => (pending.await, Some(handed_over.elapsed())),
            Err(err) => (Err(err), None),
        };
        let result = result.map_err(|err| publish_error(subject, expected_last_sequence, err));
        self.publish_metrics().record(
            subject,
            &result,
            handed_over.duration_since(started),
            ack_wait,
        );
        let ack = result?;
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

/// The name of the global meter a [`Bus`] records publish latencies with by default.
pub(crate) const METER_NAME: &str = "citychain-bus";

/// The publish and acknowledgement latency histograms of a [`Bus`] (see the module docs), and
/// which stream last acknowledged each subject it published on.
#[derive(Debug)]
pub(crate) struct PublishMetrics {
    publish: Histogram<f64>,
    ack: Histogram<f64>,
    /// Subject to stream, learnt from PubAcks. Its size is bounded by the set of subjects the
    /// process publishes on.
    streams: Mutex<HashMap<String, String>>,
}

impl PublishMetrics {
    /// Creates the instruments on `meter`, once per [`Bus`].
    pub(crate) fn new(meter: &Meter) -> Self {
        let histogram = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(citychain_telemetry::LATENCY_BOUNDARIES.to_vec())
                .build()
        };
        PublishMetrics {
            publish: histogram(
                "jetstream.publish.duration",
                "Time for the client to take a JetStream append for sending, by stream and outcome",
            ),
            ack: histogram(
                "jetstream.ack.duration",
                "Time from handing a JetStream append over until its PubAck, by stream and outcome",
            ),
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// Records one append on `subject`: `publish` to hand it over, then `ack` (if it was sent)
    /// waiting for the answer that ended as `result`.
    fn record(
        &self,
        subject: &str,
        result: &Result<PublishAck, BusError>,
        publish: Duration,
        ack: Option<Duration>,
    ) {
        let outcome = match result {
            Ok(ack) if ack.duplicate => "duplicate",
            Ok(_) => "ok",
            Err(BusError::Conflict { .. }) => "conflict",
            Err(_) => "error",
        };
        let stream = self.stream_of(subject, result.as_ref().ok().map(|ack| ack.stream.as_str()));
        let attributes = [
            KeyValue::new("stream", stream),
            KeyValue::new("outcome", outcome),
        ];
        self.publish.record(publish.as_secs_f64(), &attributes);
        if let Some(ack) = ack {
            self.ack.record(ack.as_secs_f64(), &attributes);
        }
    }

    /// The stream to label an append on `subject` with: the one that acknowledged it, learnt
    /// for later failures, or else the one learnt earlier.
    fn stream_of(&self, subject: &str, acknowledged_by: Option<&str>) -> String {
        // A poisoned map only ever held complete entries, so it is still good to use.
        let mut streams = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match acknowledged_by {
            Some(stream) => {
                if streams.get(subject).is_none_or(|known| known != stream) {
                    streams.insert(subject.to_owned(), stream.to_owned());
                }
                stream.to_owned()
            }
            None => streams
                .get(subject)
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned()),
        }
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
