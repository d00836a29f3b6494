//! The token platform's verdicts on reads, taken from EVENTS (`tokens.ReadPaid` and
//! `tokens.ReadPaymentFailed`) into the licence store, with the stream position they were read
//! up to in the same commit. A redelivered event finds its sequence already stored and
//! changes nothing, so each verdict is stored once whatever the bus does.
//!
//! The bus is not trusted with verdicts: each is a [`SignedEvent`] and is stored only if the
//! registry vouches for it as `service.tokens`' (its key was that member's key at the height
//! it was signed at, see `Registry::vouch_for_event`), it names the read's real block (the
//! read is committed in this store at the height the verdict says), and it was signed no
//! earlier than that block. Anything else on the token subjects is refused, logged and counted
//! (`licence.verdicts.refused`), so a client that can publish on EVENTS cannot release a key,
//! and a key rotated away cannot sign for reads committed after its rotation.
//!
//! An event signed at a height this store has not applied yet (the token service is ahead, or
//! this service rebuilds from genesis) is judged once the follower has got there: the reader
//! waits, in stream order. An event claiming a height CHAIN does not hold yet is refused at
//! once, so a forged height cannot make the reader wait for ever.
//!
//! The durable consumer is re-created at start from the stored position (not the server's
//! memory of it), so a store rebuilt from nothing reads every verdict again.
//!
//! A verdict published under a trace (the token service's `tokens.publish` span) is stored in
//! a `licence.payment` span, its child.

use std::sync::Arc;
use std::time::Duration;

use citychain_bus::{Bus, BusError, ConsumerSpec, StartPosition, StreamKind, StreamsConfig};
use citychain_follower::Shared;
use citychain_governance::{EventRefusal, Registry};
use citychain_kernel::genesis::service_member_id;
use citychain_kernel::{Height, MemberId, SignedEvent, TxId};
use citychain_licence_domain::Payment;
use citychain_licence_domain::keys;
use citychain_proto::citychain::licence::v1 as lpb;
use citychain_proto::citychain::tokens::v1 as tpb;
use citychain_store::{Store, StoreError, Transaction};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
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

/// A verdict read from an event's name and message: the read, the verdict, and the height of
/// the block that decided it.
fn verdict(name: &str, message: &[u8]) -> Option<(TxId, Payment, u64)> {
    match name {
        "ReadPaid" => {
            let paid = tpb::ReadPaid::decode(message).ok()?;
            Some((
                paid.read_id.parse().ok()?,
                Payment::Paid {
                    amount: paid.amount,
                },
                paid.source?.height,
            ))
        }
        "ReadPaymentFailed" => {
            let failed = tpb::ReadPaymentFailed::decode(message).ok()?;
            Some((
                failed.read_id.parse().ok()?,
                Payment::Failed {
                    price: failed.price,
                    balance: failed.balance,
                    shortfall: failed.shortfall,
                },
                failed.source?.height,
            ))
        }
        _ => None,
    }
}

/// What the reader makes of one message on the token platform's subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Judgement {
    /// A verdict the registry vouches for, on the read committed at `decided_at`.
    Verdict {
        /// The read.
        read: TxId,
        /// The verdict.
        payment: Payment,
        /// The height of the read's block, as the verdict names it.
        decided_at: u64,
    },
    /// A vouched-for event that is not a verdict (a reward, a grant).
    NotAVerdict,
    /// Signed at a height not applied yet: judge again later.
    Later(Height),
    /// Not to be believed, and why.
    Refused(&'static str, String),
}

/// Judges `payload` against `registry`, for `producer`.
fn judge(registry: &Registry, producer: &MemberId, payload: &[u8]) -> Judgement {
    let event = match SignedEvent::decode(payload) {
        Ok(event) => event,
        Err(err) => return Judgement::Refused("unsigned", err.to_string()),
    };
    match registry.vouch_for_event(producer, &event) {
        Ok(()) => {}
        Err(EventRefusal::Ahead { signed_at, .. }) => return Judgement::Later(signed_at),
        Err(err) => return Judgement::Refused("signer", err.to_string()),
    }
    let is_verdict = matches!(event.name.as_str(), "ReadPaid" | "ReadPaymentFailed");
    match verdict(&event.name, &event.message) {
        Some((read, payment, decided_at)) if decided_at <= event.signed_at.0 => {
            Judgement::Verdict {
                read,
                payment,
                decided_at,
            }
        }
        Some((read, _, decided_at)) => Judgement::Refused(
            "content",
            format!(
                "event {}: verdict on read {read} decided at height {decided_at} but signed at {}",
                event.id, event.signed_at
            ),
        ),
        None if is_verdict => Judgement::Refused(
            "content",
            format!("event {}: {} does not decode", event.id, event.name),
        ),
        None => Judgement::NotAVerdict,
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
/// the releaser looks at once. `shared` is the follower's: its registry judges the verdicts.
pub async fn run<S: Store>(
    store: S,
    bus: Bus,
    streams: StreamsConfig,
    durable: String,
    shared: Arc<Shared>,
    released: Arc<Notify>,
    stop: impl Future<Output = ()>,
) -> Result<(), PaymentsError> {
    let reader = Reader {
        producer: MemberId::new(service_member_id("tokens"))
            .expect("service.tokens is a valid member id"),
        refused: opentelemetry::global::meter("citychain-licence")
            .u64_counter("licence.verdicts.refused")
            .with_description(
                "Messages on the token platform's subjects not believed, by reason (unsigned, signer, content).",
            )
            .build(),
        store,
        shared,
    };
    let stream = streams.stream_name(StreamKind::Events);
    let mut txn = reader.store.begin().await?;
    let from = position(txn.get(keys::EVENTS_POSITION).await?) + 1;
    drop(txn);
    bus.delete_consumer(&stream, &durable).await?;
    let spec = ConsumerSpec::new(durable)
        .filter(streams.service_events("tokens")?)
        .start_at(StartPosition::Sequence(from))
        .inactive_after(ABANDONED);
    let mut consumer = bus.durable_consumer(&stream, &spec).await?;
    tracing::info!(from, "reading the token platform's payments");
    let chain = streams.stream_name(StreamKind::Chain);
    let mut applied = reader.shared.applied.subscribe();
    tokio::pin!(stop);
    loop {
        let delivery = tokio::select! {
            () = &mut stop => return Ok(()),
            next = consumer.next_timeout(POLL) => next?,
        };
        let Some(delivery) = delivery else { continue };
        let sequence = delivery.stream_sequence;
        let mut judgement = reader.judge(&delivery.payload);
        // Signed at a height not applied here yet: wait for the follower, unless CHAIN does
        // not hold that height at all.
        while let Judgement::Later(signed_at) = judgement {
            let tip = bus.stream_state(&chain).await?.last_sequence;
            if signed_at.0 > tip {
                judgement = Judgement::Refused(
                    "signer",
                    format!("signed at height {signed_at}, beyond the chain's {tip}"),
                );
                break;
            }
            tracing::debug!(sequence, %signed_at, "a verdict waits for the follower");
            tokio::select! {
                () = &mut stop => return Ok(()),
                reached = applied.wait_for(|h| h.0 >= signed_at.0) => {
                    if reached.is_err() {
                        return Ok(());
                    }
                }
            }
            judgement = reader.judge(&delivery.payload);
        }
        let span = if delivery.trace_context.span().span_context().is_valid() {
            let span = tracing::info_span!(
                "licence.payment",
                otel.name = "licence.payment",
                service = "licence",
                read.id = tracing::field::Empty,
                sequence,
            );
            if let Judgement::Verdict { read, .. } = &judgement {
                span.record("read.id", tracing::field::display(read));
            }
            let _ = span.set_parent(delivery.trace_context.clone());
            span
        } else {
            tracing::Span::none()
        };
        let stored = reader
            .store_judgement(sequence, &judgement)
            .instrument(span)
            .await?;
        delivery.ack().await?;
        if stored {
            released.notify_one();
        }
    }
}

/// The reader's fixed parts.
struct Reader<S> {
    store: S,
    shared: Arc<Shared>,
    producer: MemberId,
    refused: Counter<u64>,
}

impl<S: Store> Reader<S> {
    fn refuse(&self, reason: &'static str, detail: &str, sequence: u64) {
        tracing::warn!(
            sequence,
            reason,
            detail,
            "a message on the token platform's subjects is not believed"
        );
        self.refused.add(1, &[KeyValue::new("reason", reason)]);
    }

    /// Judges `payload` against the registry in force.
    fn judge(&self, payload: &[u8]) -> Judgement {
        judge(&self.shared.registry(), &self.producer, payload)
    }

    /// Stores what was judged of the message at EVENTS sequence `sequence` with the position,
    /// unless that position is stored already; returns whether a verdict was stored. A
    /// verdict counts only for the read committed here at the height it names.
    async fn store_judgement(
        &self,
        sequence: u64,
        judgement: &Judgement,
    ) -> Result<bool, PaymentsError> {
        let mut txn = self.store.begin().await?;
        if position(txn.get(keys::EVENTS_POSITION).await?) >= sequence {
            return Ok(false);
        }
        let mut stored = false;
        match judgement {
            Judgement::Verdict {
                read,
                payment,
                decided_at,
            } => {
                let committed = txn
                    .get(&keys::read(read))
                    .await?
                    .and_then(|b| lpb::ReadState::decode(b.as_slice()).ok())
                    .map(|state| state.height);
                if committed == Some(*decided_at) {
                    record_payment(&mut txn, read, payment, sequence).await?;
                    tracing::debug!(read = %read, ?payment, sequence, "payment verdict stored");
                    stored = true;
                } else {
                    self.refuse(
                        "content",
                        &format!(
                            "verdict on read {read} names height {decided_at}, the read is committed at {}",
                            committed.map_or_else(|| "no height".to_string(), |h| h.to_string())
                        ),
                        sequence,
                    );
                }
            }
            Judgement::NotAVerdict => {}
            // The reader waits until a verdict can be judged; none reaches the store unjudged.
            Judgement::Later(signed_at) => self.refuse(
                "signer",
                &format!("signed at height {signed_at}, not applied here"),
                sequence,
            ),
            Judgement::Refused(reason, detail) => self.refuse(reason, detail, sequence),
        }
        txn.put(keys::EVENTS_POSITION, &sequence.to_be_bytes())?;
        txn.commit().await?;
        Ok(stored)
    }
}

/// Stores `payment` for `read` unless a verdict is stored already: the token service decides
/// each read once, so a different second one is a fault, never a correction.
async fn record_payment<T: Transaction>(
    txn: &mut T,
    read: &TxId,
    payment: &Payment,
    sequence: u64,
) -> Result<(), PaymentsError> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use citychain_kernel::genesis::{
        build_genesis, department_plans, sample_member_plans, service_member_plans,
    };
    use citychain_kernel::{KeyPair, SigningKey};
    use citychain_proto::citychain::tokens::v1::ChainRef;

    use super::*;

    fn registry() -> (Registry, SigningKey) {
        let mut plans = department_plans(4);
        plans.extend(sample_member_plans());
        plans.extend(service_member_plans());
        let mut n = 0u8;
        let (genesis, keys) = build_genesis("city-test", 1, &plans, 4, || {
            n += 1;
            [n; 32]
        })
        .unwrap();
        let service: &KeyPair = keys
            .iter()
            .find(|k| k.member_id.as_deref() == Some("service.tokens"))
            .unwrap();
        let mut registry = Registry::from_genesis(&genesis);
        for h in 1..=3 {
            registry.apply_block(Height(h), &[]).unwrap();
        }
        (registry, service.signing.clone())
    }

    fn paid(height: u64, amount: u64) -> Vec<u8> {
        tpb::ReadPaid {
            source: Some(ChainRef {
                height,
                ..Default::default()
            }),
            read_id: TxId::default().to_string(),
            amount,
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn signed(key: &SigningKey, at: u64, name: &str, message: Vec<u8>) -> Vec<u8> {
        SignedEvent::sign(
            key,
            MemberId::new("service.tokens").unwrap(),
            Height(at),
            format!("tokens.{at}.0.0"),
            name,
            message,
        )
        .encode()
    }

    #[test]
    fn only_verdicts_signed_by_the_service_identity_are_believed() {
        let (registry, key) = registry();
        let producer = MemberId::new("service.tokens").unwrap();
        let judge = |payload: &[u8]| judge(&registry, &producer, payload);
        assert_eq!(
            judge(&signed(&key, 2, "ReadPaid", paid(2, 5))),
            Judgement::Verdict {
                read: TxId::default(),
                payment: Payment::Paid { amount: 5 },
                decided_at: 2
            }
        );
        // The bare message, as before signatures, is refused.
        assert!(matches!(
            judge(&paid(2, 5)),
            Judgement::Refused("unsigned", _)
        ));
        // Signed by someone else.
        let stranger = SigningKey::from_seed(&[200; 32]);
        assert!(matches!(
            judge(&signed(&stranger, 2, "ReadPaid", paid(2, 5))),
            Judgement::Refused("signer", _)
        ));
        // Signed before the read's block was decided.
        assert!(matches!(
            judge(&signed(&key, 1, "ReadPaid", paid(2, 5))),
            Judgement::Refused("content", _)
        ));
        // A verdict that does not decode, and an event that is not a verdict.
        assert!(matches!(
            judge(&signed(&key, 2, "ReadPaid", vec![0xff; 3])),
            Judgement::Refused("content", _)
        ));
        assert_eq!(
            judge(&signed(&key, 2, "RewardMinted", vec![])),
            Judgement::NotAVerdict
        );
        // Signed ahead of this registry: judged later.
        assert_eq!(
            judge(&signed(&key, 9, "ReadPaid", paid(2, 5))),
            Judgement::Later(Height(9))
        );
        let failed = tpb::ReadPaymentFailed {
            source: Some(ChainRef {
                height: 3,
                ..Default::default()
            }),
            read_id: TxId::default().to_string(),
            price: 5,
            balance: 1,
            shortfall: 4,
            ..Default::default()
        };
        assert_eq!(
            judge(&signed(
                &key,
                3,
                "ReadPaymentFailed",
                failed.encode_to_vec()
            )),
            Judgement::Verdict {
                read: TxId::default(),
                payment: Payment::Failed {
                    price: 5,
                    balance: 1,
                    shortfall: 4
                },
                decided_at: 3
            }
        );
    }
}
