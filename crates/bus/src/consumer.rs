//! Durable pull consumers with explicit acknowledgement: [`ConsumerSpec`] says where to start
//! and how redelivery works, [`Consumer::next`] yields [`Delivery`]s in stream order (apart from
//! redeliveries), and each delivery is acked, nak'ed or kept alive explicitly.
//!
//! A durable remembers its position on the server. [`ConsumerSpec::start`] applies only when
//! the durable is first created; afterwards the server's acknowledgement floor wins, and the
//! other settings (ack wait, max deliver, filter) are updated in place. To rewind a durable,
//! delete it with [`Bus::delete_consumer`] and create it again.
//!
//! A [`Consumer`] pulls ahead in batches. Messages it had pulled but not yet handed out when it
//! is dropped count as delivered and come back only after their ack wait, so keep `ack_wait`
//! short enough for a restarted process to resume promptly.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull::{self, Stream as PullStream};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use futures::StreamExt;

use crate::MSG_ID_HEADER;
use crate::bus::Bus;
use crate::error::BusError;
use crate::trace;

/// Where a new durable starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// From the first message the stream still holds.
    #[default]
    All,
    /// From this stream sequence (e.g. the applied height's sequence + 1).
    Sequence(u64),
    /// Only messages stored after the durable is created.
    New,
}

/// How a durable pull consumer behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// The durable name; letters, digits, `_` and `-`.
    pub durable: String,
    /// Only deliver messages on subjects matching this filter (wildcards allowed).
    pub filter_subject: Option<String>,
    /// Where to start when the durable is first created.
    pub start: StartPosition,
    /// How long an unacknowledged delivery waits before it is redelivered.
    pub ack_wait: Duration,
    /// How many times a message is delivered at most; `None` for no limit.
    pub max_deliver: Option<u32>,
    /// How many deliveries may be unacknowledged at once; 1 gives strictly one at a time,
    /// `None` takes the server's default.
    pub max_ack_pending: Option<u32>,
    /// The server removes the durable once nobody has pulled from it for this long; `None`
    /// keeps it for ever. For durables named after a process that may never come back.
    pub inactive_threshold: Option<Duration>,
}

impl ConsumerSpec {
    /// A durable named `durable` reading the whole stream, with a 30 s ack wait and unlimited
    /// redelivery.
    pub fn new(durable: impl Into<String>) -> Self {
        Self {
            durable: durable.into(),
            filter_subject: None,
            start: StartPosition::All,
            ack_wait: Duration::from_secs(30),
            max_deliver: None,
            max_ack_pending: None,
            inactive_threshold: None,
        }
    }

    /// Sets the subject filter.
    pub fn filter(mut self, subject: impl Into<String>) -> Self {
        self.filter_subject = Some(subject.into());
        self
    }

    /// Sets where a new durable starts.
    pub fn start_at(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }

    /// Sets the ack wait.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Sets the delivery limit.
    pub fn max_deliver(mut self, max_deliver: u32) -> Self {
        self.max_deliver = Some(max_deliver);
        self
    }

    /// Sets the limit of unacknowledged deliveries.
    pub fn max_ack_pending(mut self, max_ack_pending: u32) -> Self {
        self.max_ack_pending = Some(max_ack_pending);
        self
    }

    /// Lets the server remove the durable after `idle` without a pull.
    pub fn inactive_after(mut self, idle: Duration) -> Self {
        self.inactive_threshold = Some(idle);
        self
    }

    fn pull_config(&self, deliver_policy: DeliverPolicy) -> pull::Config {
        pull::Config {
            durable_name: Some(self.durable.clone()),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver.map_or(-1, i64::from),
            filter_subject: self.filter_subject.clone().unwrap_or_default(),
            max_ack_pending: self.max_ack_pending.map_or(0, i64::from),
            inactive_threshold: self.inactive_threshold.unwrap_or_default(),
            ..pull::Config::default()
        }
    }
}

/// One delivery of a stream message to a durable consumer.
#[derive(Debug)]
pub struct Delivery {
    /// The subject the message was published on.
    pub subject: String,
    /// The payload.
    pub payload: Bytes,
    /// All headers.
    pub headers: HeaderMap,
    /// The message's stream sequence.
    pub stream_sequence: u64,
    /// How many times it has been delivered, this time included (1 the first time).
    pub delivered_count: u64,
    /// Messages left for this consumer after this one; 0 means it has caught up.
    pub pending: u64,
    /// Its `Nats-Msg-Id`, if it had one.
    pub msg_id: Option<String>,
    /// The trace context it was published under (empty if none), to use as a span parent.
    pub trace_context: opentelemetry::Context,
    reply: DeliveryReply,
}

impl Delivery {
    fn from_message(message: Message) -> Result<Self, String> {
        let info = message
            .info()
            .map_err(|err| format!("not a JetStream delivery: {err}"))?;
        let (stream_sequence, delivered, pending) =
            (info.stream_sequence, info.delivered, info.pending);
        let (message, acker) = message.split();
        let headers = message.headers.unwrap_or_default();
        let msg_id = headers
            .get(MSG_ID_HEADER)
            .map(|value| value.as_str().to_owned());
        Ok(Self {
            subject: message.subject.to_string(),
            payload: message.payload,
            trace_context: trace::extract(&headers),
            headers,
            stream_sequence,
            delivered_count: u64::try_from(delivered).unwrap_or(0),
            pending,
            msg_id,
            reply: DeliveryReply {
                acker,
                stream_sequence,
            },
        })
    }

    /// How to answer this delivery later, without keeping its payload: for a consumer that
    /// acknowledges a message only once its effect is durable elsewhere.
    pub fn into_reply(self) -> DeliveryReply {
        self.reply
    }

    /// Acknowledges it: it will not be delivered again. Fire-and-forget; see
    /// [`ack_confirmed`](Self::ack_confirmed).
    pub async fn ack(&self) -> Result<(), BusError> {
        self.reply.ack().await
    }

    /// Acknowledges it and waits for the server to confirm it recorded the acknowledgement.
    pub async fn ack_confirmed(&self) -> Result<(), BusError> {
        self.reply.ack_confirmed().await
    }

    /// Asks for redelivery, after `delay` if given, else at once.
    pub async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError> {
        self.reply.nak(delay).await
    }

    /// Says it is still being worked on, restarting its ack wait.
    pub async fn in_progress(&self) -> Result<(), BusError> {
        self.reply.in_progress().await
    }

    /// Stops redelivery without acknowledging success (a message that can never be handled).
    pub async fn term(&self) -> Result<(), BusError> {
        self.reply.term().await
    }
}

/// The answer channel of one [`Delivery`]: ack, nak, in-progress or term, kept apart from the
/// message so that a consumer can hold many of them cheaply until it knows the outcome.
pub struct DeliveryReply {
    acker: Acker,
    stream_sequence: u64,
}

impl std::fmt::Debug for DeliveryReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryReply")
            .field("stream_sequence", &self.stream_sequence)
            .finish_non_exhaustive()
    }
}

impl DeliveryReply {
    /// The delivered message's stream sequence.
    pub fn stream_sequence(&self) -> u64 {
        self.stream_sequence
    }

    /// Acknowledges the delivery (fire-and-forget).
    pub async fn ack(&self) -> Result<(), BusError> {
        self.send(AckKind::Ack, "ack").await
    }

    /// Acknowledges the delivery and waits for the server to confirm it.
    pub async fn ack_confirmed(&self) -> Result<(), BusError> {
        self.acker
            .double_ack()
            .await
            .map_err(|err| self.ack_error("ack", &*err))
    }

    /// Asks for redelivery, after `delay` if given, else at once.
    pub async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError> {
        self.send(AckKind::Nak(delay), "nak").await
    }

    /// Restarts the delivery's ack wait.
    pub async fn in_progress(&self) -> Result<(), BusError> {
        self.send(AckKind::Progress, "in-progress").await
    }

    /// Stops redelivery without acknowledging success.
    pub async fn term(&self) -> Result<(), BusError> {
        self.send(AckKind::Term, "term").await
    }

    async fn send(&self, kind: AckKind, action: &'static str) -> Result<(), BusError> {
        self.acker
            .ack_with(kind)
            .await
            .map_err(|err| self.ack_error(action, &*err))
    }

    fn ack_error(&self, action: &'static str, err: &dyn std::error::Error) -> BusError {
        BusError::Ack {
            action,
            sequence: self.stream_sequence,
            reason: err.to_string(),
        }
    }
}

/// A durable pull consumer bound to one stream.
pub struct Consumer {
    stream: String,
    durable: String,
    consumer: PullConsumer,
    messages: Option<PullStream>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("stream", &self.stream)
            .field("durable", &self.durable)
            .field("pulling", &self.messages.is_some())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// The stream it reads.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Its durable name.
    pub fn durable(&self) -> &str {
        &self.durable
    }

    /// The next delivery, waiting as long as it takes. Deliveries come in stream order, except
    /// that a redelivered message comes back when its ack wait expires.
    pub async fn next(&mut self) -> Result<Delivery, BusError> {
        let messages = match &mut self.messages {
            Some(messages) => messages,
            None => {
                let messages = self
                    .consumer
                    .messages()
                    .await
                    .map_err(|err| self.error(format!("cannot start pulling: {err}")))?;
                self.messages.insert(messages)
            }
        };
        loop {
            match messages.next().await {
                Some(Ok(message)) => match Delivery::from_message(message) {
                    Ok(delivery) => return Ok(delivery),
                    Err(reason) => tracing::warn!(
                        stream = %self.stream,
                        consumer = %self.durable,
                        %reason,
                        "skipping a message that is not a delivery"
                    ),
                },
                Some(Err(err)) => {
                    return Err(BusError::Consumer {
                        stream: self.stream.clone(),
                        consumer: self.durable.clone(),
                        reason: err.to_string(),
                    });
                }
                None => {
                    self.messages = None;
                    return Err(self.error("the message stream ended".to_owned()));
                }
            }
        }
    }

    /// The next delivery, or `None` if none arrives within `timeout`. Cancel-safe: a delivery
    /// that arrives later is returned by the next call.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Delivery>, BusError> {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(result) => result.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Messages the server has not yet delivered to this consumer.
    pub async fn num_pending(&mut self) -> Result<u64, BusError> {
        match self.consumer.info().await {
            Ok(info) => Ok(info.num_pending),
            Err(err) => Err(self.error(format!("info failed: {err}"))),
        }
    }

    fn error(&self, reason: String) -> BusError {
        BusError::Consumer {
            stream: self.stream.clone(),
            consumer: self.durable.clone(),
            reason,
        }
    }
}

impl Bus {
    /// Creates the durable pull consumer `spec.durable` on `stream`, or binds to it if it exists
    /// (updating ack wait, max deliver, max ack pending and filter; keeping its position).
    pub async fn durable_consumer(
        &self,
        stream: &str,
        spec: &ConsumerSpec,
    ) -> Result<Consumer, BusError> {
        let consumer_error = |reason: String| BusError::Consumer {
            stream: stream.to_owned(),
            consumer: spec.durable.clone(),
            reason,
        };
        let handle = self.stream_with_info(stream).await?;

        // An existing durable keeps its deliver policy (the server refuses to change it) and
        // its acknowledgement floor.
        let deliver_policy = match handle.consumer_info(&spec.durable).await {
            Ok(info) => info.config.deliver_policy,
            Err(err)
                if err.kind()
                    == async_nats::jetstream::context::ConsumerInfoErrorKind::NotFound =>
            {
                match spec.start {
                    StartPosition::All => DeliverPolicy::All,
                    StartPosition::New => DeliverPolicy::New,
                    StartPosition::Sequence(start_sequence) => {
                        DeliverPolicy::ByStartSequence { start_sequence }
                    }
                }
            }
            Err(err) => return Err(consumer_error(format!("look-up failed: {err}"))),
        };
        let consumer = handle
            .create_consumer(spec.pull_config(deliver_policy))
            .await
            .map_err(|err| consumer_error(format!("create failed: {err}")))?;
        Ok(Consumer {
            stream: stream.to_owned(),
            durable: spec.durable.clone(),
            consumer,
            messages: None,
        })
    }

    /// Deletes a durable consumer; `Ok(false)` if it did not exist.
    pub async fn delete_consumer(&self, stream: &str, durable: &str) -> Result<bool, BusError> {
        let consumer_error = |reason: String| BusError::Consumer {
            stream: stream.to_owned(),
            consumer: durable.to_owned(),
            reason,
        };
        let handle = self
            .jetstream()
            .get_stream_no_info(stream)
            .await
            .map_err(|err| consumer_error(err.to_string()))?;
        match handle.consumer_info(durable).await {
            Ok(_) => {}
            Err(err)
                if err.kind()
                    == async_nats::jetstream::context::ConsumerInfoErrorKind::NotFound =>
            {
                return Ok(false);
            }
            Err(err) => return Err(consumer_error(format!("look-up failed: {err}"))),
        }
        handle
            .delete_consumer(durable)
            .await
            .map(|_| true)
            .map_err(|err| consumer_error(format!("delete failed: {err}")))
    }
}
