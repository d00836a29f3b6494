//! The token platform's verdicts on reads, taken from EVENTS (`tokens.ReadPaid` and
//! `tokens.ReadPaymentFailed`) into the licence store, with the stream position they were read
//! up to in the same commit. A redelivered event finds its sequence already stored and
//! changes nothing, so each verdict is stored once whatever the bus does.
//!
//! The durable consumer is re-created at start from the stored position (not the server's
//! memory of it), so a store rebuilt from nothing reads every verdict again.
//!
//! A verdict published under a trace (the token service's `tokens.publish` span) is stored in
//! a `licence.payment` span, its child.

use std::sync::Arc;
use std::time::Duration;

use citychain_bus::{Bus, BusError, ConsumerSpec, StartPosition, StreamKind, StreamsConfig};
use citychain_kernel::TxId;
use citychain_licence_domain::Payment;
use citychain_licence_domain::keys;
use citychain_proto::citychain::tokens::v1 as tpb;
use citychain_store::{Store, StoreError, Transaction};
use opentelemetry::trace::TraceContextExt as _;
use prost::Message;
use tokio::sync::Notify;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// How long to wait for an event before checking `stop` again.
const POLL: Duration = Duration::from_secs(1);

/// After this long without a pull, the server removes the durable: a replica pulls every
/// [`POLL`], so only the consumer of a replica that is gone (a replaced pod, whose name the
/// durable carries) is removed. A replica that comes back creates its durable again from the
/// stored position, so nothing is lost either way.
const ABANDONED: Duration = Duration::from_secs(3_600);

/// A verdict read from an event.
fn verdict(subject: &str, payload: &[u8]) -> Option<(TxId, Payment)> {
    let kind = subject.rsplit('.').next()?;
    match kind {
        "ReadPaid" => {
            let paid = tpb::ReadPaid::decode(payload).ok()?;
            Some((
                paid.read_id.parse().ok()?,
                Payment::Paid {
                    amount: paid.amount,
                },
            ))
        }
        "ReadPaymentFailed" => {
            let failed = tpb::ReadPaymentFailed::decode(payload).ok()?;
            Some((
                failed.read_id.parse().ok()?,
                Payment::Failed {
                    price: failed.price,
                    balance: failed.balance,
                    shortfall: failed.shortfall,
                },
            ))
        }
        _ => None,
    }
}

fn position(bytes: Option<Vec<u8>>) -> u64 {
    bytes
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// Why the payments reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// NATS failed.
    #[error("reading payments: NATS: {0}")]
    Bus(#[from] BusError),
    /// The store failed.
    #[error("reading payments: store: {0}")]
    Store(#[from] StoreError),
}

/// Reads verdicts into the store until `stop` resolves; pokes `released` after each one so
/// the releaser looks at once.
pub async fn run<S: Store>(
    store: S,
    bus: Bus,
    streams: StreamsConfig,
    durable: String,
    released: Arc<Notify>,
    stop: impl Future<Output = ()>,
) -> Result<(), PaymentsError> {
    let stream = streams.stream_name(StreamKind::Events);
    let mut txn = store.begin().await?;
    let from = position(txn.get(keys::EVENTS_POSITION).await?) + 1;
    drop(txn);
    bus.delete_consumer(&stream, &durable).await?;
    let spec = ConsumerSpec::new(durable)
        .filter(streams.service_events("tokens")?)
        .start_at(StartPosition::Sequence(from))
        .inactive_after(ABANDONED);
    let mut consumer = bus.durable_consumer(&stream, &spec).await?;
    tracing::info!(from, "reading the token platform's payments");
    tokio::pin!(stop);
    loop {
        let delivery = tokio::select! {
            () = &mut stop => return Ok(()),
            next = consumer.next_timeout(POLL) => next?,
        };
        let Some(delivery) = delivery else { continue };
        let sequence = delivery.stream_sequence;
        let found = verdict(&delivery.subject, &delivery.payload);
        let span = if delivery.trace_context.span().span_context().is_valid() {
            let span = tracing::info_span!(
                "licence.payment",
                otel.name = "licence.payment",
                service = "licence",
                read.id = tracing::field::Empty,
                sequence,
            );
            if let Some((read, _)) = &found {
                span.record("read.id", tracing::field::display(read));
            }
            let _ = span.set_parent(delivery.trace_context.clone());
            span
        } else {
            tracing::Span::none()
        };
        store_verdict(&store, sequence, found.as_ref())
            .instrument(span)
            .await?;
        delivery.ack().await?;
        if let Some((read, payment)) = found {
            tracing::debug!(read = %read, ?payment, sequence, "payment verdict stored");
            released.notify_one();
        }
    }
}

/// Stores the verdict found at EVENTS sequence `sequence` (if any) with the position, unless
/// that position is stored already.
async fn store_verdict<S: Store>(
    store: &S,
    sequence: u64,
    found: Option<&(TxId, Payment)>,
) -> Result<(), PaymentsError> {
    let mut txn = store.begin().await?;
    if position(txn.get(keys::EVENTS_POSITION).await?) < sequence {
        if let Some((read, payment)) = found {
            // The first verdict stands: the token service decides each read once, so a
            // different second one is a forgery or a fault, never a correction.
            match txn
                .get(&keys::payment(read))
                .await?
                .map(|b| Payment::decode(&b))
            {
                None => txn.put(&keys::payment(read), &payment.encode())?,
                Some(Some(first)) if first == *payment => {}
                Some(first) => tracing::error!(
                    read = %read, ?first, second = ?payment, sequence,
                    "a second, different payment verdict for one read; keeping the first"
                ),
            }
        }
        txn.put(keys::EVENTS_POSITION, &sequence.to_be_bytes())?;
        txn.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_from_their_subjects() {
        let id = TxId::default();
        let paid = tpb::ReadPaid {
            read_id: id.to_string(),
            amount: 5,
            ..Default::default()
        };
        assert_eq!(
            verdict("citychain.c.events.tokens.ReadPaid", &paid.encode_to_vec()),
            Some((id, Payment::Paid { amount: 5 }))
        );
        let failed = tpb::ReadPaymentFailed {
            read_id: id.to_string(),
            price: 5,
            balance: 1,
            shortfall: 4,
            ..Default::default()
        };
        assert_eq!(
            verdict(
                "citychain.c.events.tokens.ReadPaymentFailed",
                &failed.encode_to_vec()
            ),
            Some((
                id,
                Payment::Failed {
                    price: 5,
                    balance: 1,
                    shortfall: 4
                }
            ))
        );
        assert_eq!(verdict("citychain.c.events.tokens.RewardMinted", &[]), None);
    }
}
