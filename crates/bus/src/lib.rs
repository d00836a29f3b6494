//! citychain's NATS JetStream layer: how services connect to NATS, the three streams
//! (MEMPOOL, CHAIN, EVENTS) and their subjects, idempotent and conditional appends, durable pull
//! consumers, request/reply, and W3C trace-context propagation in message headers.
//!
//! Everything goes through a [`Bus`], obtained from [`connect`] with a [`BusConfig`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), citychain_bus::BusError> {
//! use citychain_bus::{BusConfig, StreamsConfig, connect, ensure_streams};
//!
//! let bus = connect(&BusConfig::default()).await?;
//! let streams = StreamsConfig::new("city-main")?;
//! ensure_streams(&bus, &streams).await?;
//! let appended = bus
//!     .publish_idempotent(&streams.mempool_subject(), "tx-id", "bytes".into(), Default::default())
//!     .await?;
//! assert!(!appended.duplicate);
//! # Ok(())
//! # }
//! ```
//!
//! JetStream carries data between services; it is not the last line of defence (DESIGN §5).
//! Consumers still check heights and hashes, and repair gaps with [`Bus::get_message`].
//!
//! * [`access`]: the permission table: one NATS user per validator and per service.
//! * [`Bus::object_store`] and [`Bus::kv`]: JetStream object store and key-value buckets, for
//!   sealed record payloads and the keys that open them.
//! * [`Bus::tail`]: a stream read in order without acknowledgements, to keep a view of it.
//! * [`trace`]: W3C trace context in message headers.
//! * [`local`]: a local nats-server process (JetStream on, free port, temporary store) for
//!   development, benchmarks and tests.

pub mod access;
mod bus;
mod config;
mod consumer;
mod error;
pub mod local;
mod objects;
mod publish;
mod read;
mod request;
mod streams;
mod tail;
pub mod trace;

pub use async_nats::HeaderMap;
pub use bus::{Bus, connect};
pub use config::{BusConfig, ReconnectBackoff};
pub use consumer::{Consumer, ConsumerSpec, Delivery, DeliveryReply, StartPosition};
pub use error::BusError;
pub use objects::{Kv, Objects};
pub use publish::Appended;
pub use read::{StoredMessage, StreamState};
pub use request::{Request, Responder};
pub use streams::{
    EnsuredStream, StreamKind, StreamSettings, StreamsConfig, StreamsUse, connect_to_chain,
    ensure_streams, wait_for_streams,
};
pub use tail::{Tail, TailMessage};

/// JetStream's de-duplication header: a message whose id was already seen within the stream's
/// duplicate window is acknowledged but not stored again.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
