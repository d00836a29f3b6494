//! How transactions reach a validator: its own durable consumer on MEMPOOL, and the rule that
//! makes an acknowledged submission durable.
//!
//! The submission API answers OK once MEMPOOL has stored the transaction (JetStream's publish
//! acknowledgement: on file, replicated, fsynced). From then on the message stays unacknowledged
//! on every validator's consumer until that validator knows what became of it:
//!
//! * **committed**: the block carrying it is in the validator's own block store (fsynced), or
//!   the pool dropped it because it can no longer commit (expired, its nonce used): acked;
//! * **refused**: it does not decode, names another chain, has a bad signature, the chain does
//!   not admit it, or another transaction with its signer and nonce waits: terminated;
//! * **the pool is full**: nak'ed with a delay, so it comes back when blocks have drained it;
//! * **waiting in the pool**: held, neither acked nor nak'ed.
//!
//! So when every validator crashes with transactions in its pool, nothing is lost: the server
//! redelivers each held message once its ack wait ([`ACK_WAIT`]) has passed, and the restarted
//! validator takes it again (a redelivery of one it already committed is acked at once, since
//! the replay window knows it). A message held longer than the ack wait (a deep backlog) is
//! simply redelivered; the pool knows it and keeps the newer delivery's reply.

use std::collections::BTreeMap;
use std::time::Duration;

use citychain_bus::{Bus, ConsumerSpec, DeliveryReply, StreamKind, StreamsConfig};
use citychain_kernel::{SignedTx, TxId, tx::verify_transaction_refs};
use tokio::sync::mpsc;

/// A transaction pulled from MEMPOOL, with the trace context its message carried and the
/// reply that settles its delivery.
pub(crate) type Arrival = (SignedTx, opentelemetry::Context, DeliveryReply);

/// How long a delivery may stay unanswered before the server delivers it again: also how long
/// a validator restarted after a crash may wait for the transactions it held.
pub const ACK_WAIT: Duration = Duration::from_secs(10);

/// How long a transaction that found the pool full waits before it is delivered again.
pub(crate) const FULL_RETRY: Duration = Duration::from_secs(1);

/// The replies of the deliveries whose transactions wait in the pool, by transaction and then
/// by stream sequence (the same transaction may sit in MEMPOOL twice, and one message may be
/// delivered again while it waits: each distinct message keeps its newest reply).
#[derive(Debug, Default)]
pub(crate) struct Held {
    replies: BTreeMap<TxId, BTreeMap<u64, DeliveryReply>>,
}

impl Held {
    /// Keeps `reply` until `id` is settled.
    pub(crate) fn hold(&mut self, id: TxId, reply: DeliveryReply) {
        self.replies
            .entry(id)
            .or_default()
            .insert(reply.stream_sequence(), reply);
    }

    /// Acknowledges every delivery of `ids`: call only once their outcome is durable.
    pub(crate) fn settle(&mut self, ids: impl IntoIterator<Item = TxId>) {
        let replies: Vec<DeliveryReply> = ids
            .into_iter()
            .filter_map(|id| self.replies.remove(&id))
            .flat_map(BTreeMap::into_values)
            .collect();
        answer(replies, Answer::Ack);
    }
}

/// What a validator tells the server about a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Done with: committed, or can no longer commit.
    Ack,
    /// Never acceptable here.
    Term,
    /// Deliver again after this long.
    Retry(Duration),
}

/// Sends `answer` for each of `replies` without holding up the caller (each is one publish).
pub(crate) fn answer(replies: Vec<DeliveryReply>, answer: Answer) {
    if replies.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for reply in replies {
            let sent = match answer {
                Answer::Ack => reply.ack().await,
                Answer::Term => reply.term().await,
                Answer::Retry(delay) => reply.nak(Some(delay)).await,
            };
            if let Err(err) = sent {
                // Unanswered, the message is delivered again after the ack wait.
                tracing::debug!(error = %err, "MEMPOOL delivery not answered");
            }
        }
    });
}

/// Pulls transactions from MEMPOOL in batches, verifies their signatures in one batch (and
/// one by one when the batch fails, to drop only the bad ones), and hands them on with their
/// replies. The bounded channel is the back-pressure: when the engine's pool is full it stops
/// taking. `durable` is this validator's own consumer, which the bus lets no other user
/// touch; `max_held` bounds its unacknowledged deliveries (the pool's size and a margin).
pub(crate) async fn pull_mempool(
    bus: Bus,
    streams: StreamsConfig,
    durable: String,
    max_held: u32,
    pool: mpsc::Sender<Vec<Arrival>>,
) {
    let stream = streams.stream_name(StreamKind::Mempool);
    let spec = ConsumerSpec::new(durable)
        .ack_wait(ACK_WAIT)
        .max_ack_pending(max_held);
    // Without its consumer a validator takes no transactions, so it keeps trying and says
    // why: a NATS user that is not this member's is refused the consumer's name.
    let mut consumer = loop {
        match bus.durable_consumer(&stream, &spec).await {
            Ok(c) => break c,
            Err(err) => {
                tracing::error!(
                    error = %err,
                    durable = %spec.durable,
                    "cannot consume MEMPOOL (only the NATS user of this validator's member may \
                     use its consumer); retrying"
                );
                if pool.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let chain_id = streams.chain_id().to_owned();
    loop {
        let mut batch = Vec::new();
        let mut refused = Vec::new();
        // A batch closes at 1,024 transactions or 5 ms after its first one, whichever comes
        // first: a steady stream must not wait for a pause that never comes.
        let mut closes_at: Option<tokio::time::Instant> = None;
        while batch.len() + refused.len() < 1_024 {
            let wait = match closes_at {
                None => Duration::from_millis(500),
                Some(at) => at.saturating_duration_since(tokio::time::Instant::now()),
            };
            if closes_at.is_some() && wait.is_zero() {
                break;
            }
            match consumer.next_timeout(wait).await {
                Ok(Some(delivery)) => {
                    closes_at.get_or_insert_with(|| {
                        tokio::time::Instant::now() + Duration::from_millis(5)
                    });
                    match SignedTx::decode(&delivery.payload) {
                        Ok(tx) if tx.chain_id().as_str() == chain_id => {
                            let trace = delivery.trace_context.clone();
                            batch.push((tx, trace, delivery.into_reply()));
                        }
                        _ => refused.push(delivery.into_reply()),
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "MEMPOOL pull failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
        let txs: Vec<&SignedTx> = batch.iter().map(|(tx, _, _)| tx).collect();
        let good = if verify_transaction_refs(&txs).is_ok() {
            batch
        } else {
            let (good, bad): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|(tx, _, _)| tx.verify().is_ok());
            refused.extend(bad.into_iter().map(|(_, _, reply)| reply));
            good
        };
        answer(refused, Answer::Term);
        if good.is_empty() {
            continue;
        }
        if pool.send(good).await.is_err() {
            return;
        }
    }
}
