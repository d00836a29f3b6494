//! Following a stream without acknowledging anything: [`Bus::tail`] reads from a stream
//! sequence onwards through an ordered consumer (an ephemeral, unacknowledged, single-replica
//! consumer that the client recreates whenever it sees a gap), for services that keep a view
//! of what is on a stream without taking part in its delivery (the ledger's index of pending
//! transactions on MEMPOOL).

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use bytes::Bytes;
use futures::StreamExt;

use crate::bus::Bus;
use crate::error::BusError;

/// A stream read from one sequence on, in order, with nothing acknowledged.
pub struct Tail {
    stream: String,
    messages: Ordered,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("stream", &self.stream)
            .finish()
    }
}

/// One message of a [`Tail`].
#[derive(Debug, Clone)]
pub struct TailMessage {
    /// Its stream sequence.
    pub sequence: u64,
    /// Its payload.
    pub payload: Bytes,
}

impl Bus {
    /// Reads `stream` from `from_sequence` on (the first message it still holds if that one is
    /// gone) until the [`Tail`] is dropped.
    pub async fn tail(&self, stream: &str, from_sequence: u64) -> Result<Tail, BusError> {
        let failed = |reason: String| BusError::Stream {
            stream: stream.to_owned(),
            reason,
        };
        let handle = self.stream_with_info(stream).await?;
        let consumer = handle
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from_sequence.max(1),
                },
                ..OrderedConfig::default()
            })
            .await
            .map_err(|err| failed(format!("cannot create an ordered consumer: {err}")))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|err| failed(format!("cannot read: {err}")))?;
        Ok(Tail {
            stream: stream.to_owned(),
            messages,
        })
    }
}

impl Tail {
    /// The next message; `None` when the connection is closed for good.
    pub async fn next(&mut self) -> Option<Result<TailMessage, BusError>> {
        let message = self.messages.next().await?;
        Some(
            message
                .map_err(|err| BusError::Stream {
                    stream: self.stream.clone(),
                    reason: format!("ordered consumer: {err}"),
                })
                .and_then(|message| {
                    let sequence = message
                        .info()
                        .map_err(|err| BusError::Stream {
                            stream: self.stream.clone(),
                            reason: format!("a message without its stream info: {err}"),
                        })?
                        .stream_sequence;
                    Ok(TailMessage {
                        sequence,
                        payload: message.payload.clone(),
                    })
                }),
        )
    }
}
