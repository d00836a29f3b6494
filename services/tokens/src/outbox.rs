//! The outbox publisher: events decided in a block are written to the store in the block's
//! own commit (`tk/o/…`, see [`crate::keys`]); this task publishes them to EVENTS in chain
//! order and deletes them once JetStream has acknowledged them.
//!
//! Each event goes out as a [`SignedEvent`] signed by the service's identity (member
//! `service.tokens`), with its event id `tokens.<height>.<index>.<n>` inside the signed bytes
//! and `Nats-Msg-Id` = [`SignedEvent::message_id`] (the id and a digest of the signature), so
//! nobody without the key can take an event's message id first. The publisher signs only while
//! the registry it follows lists its key for that member; otherwise it holds every event back
//! and logs why (a rotation not yet in force, a wrong key file), since consumers would refuse
//! them.
//!
//! So an event is published at least once whatever fails when: a crash before the publish
//! leaves it in the outbox, and a crash between the acknowledgement and the delete publishes
//! it again on restart, under the same id, which JetStream drops as a duplicate within the
//! stream's duplicate window. Beyond that window (a service rebuilt from an empty store
//! republishes its whole history, say) a consumer sees the event again with the same id and
//! must treat the id as the event's identity.
//!
//! The publisher only reads the outbox and deletes keys it has published, in transactions of
//! their own, so it never conflicts with the follower's commits.
//!
//! An event of a traced transaction is published in a `tokens.publish` span, child of the
//! transaction's `tokens.apply` span (remembered by the follower), so the event's message
//! carries the transaction's trace on to its consumers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use citychain_bus::{Bus, HeaderMap, StreamsConfig};
use citychain_follower::Shared;
use citychain_governance::Registry;
use citychain_kernel::genesis::service_member_id;
use citychain_kernel::{Height, MemberId, SignedEvent, SigningKey};
use citychain_store::{Scan, Store, Transaction};
use opentelemetry::metrics::Counter;
use tokio::sync::watch;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::journal::TokensStoreError;
use crate::keys;
use crate::wire::Envelope;

/// Events published per round at most.
const BATCH: usize = 256;

/// How long the publisher sleeps when nothing wakes it.
const IDLE: Duration = Duration::from_secs(1);

/// How long it waits before trying again after NATS or the store failed.
const BACKOFF: Duration = Duration::from_millis(500);

/// The outbox publisher of one token service.
#[derive(Debug)]
pub struct OutboxPublisher<S> {
    store: S,
    bus: Bus,
    streams: StreamsConfig,
    shared: Arc<Shared>,
    identity: MemberId,
    key: SigningKey,
    published: Counter<u64>,
}

/// One pending event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its outbox key.
    pub key: Vec<u8>,
    /// Its id, `tokens.<height>.<index>.<n>`.
    pub id: String,
    /// The height of the block whose transaction raised it.
    pub height: u64,
    /// The transaction's index in that block.
    pub index: u32,
    /// Its name and message.
    pub envelope: Envelope,
}

/// The oldest `limit` events waiting in the outbox, in chain order.
pub async fn pending<S: Store>(store: &S, limit: usize) -> Result<Vec<Pending>, TokensStoreError> {
    let mut txn = store.begin().await?;
    let rows = txn.scan(&Scan::prefix(keys::OUTBOX).limit(limit)).await?;
    rows.into_iter()
        .map(|(key, value)| {
            let (height, index, n) = keys::outbox_place(&key)
                .ok_or_else(|| crate::journal::damaged(&key, "not an outbox key"))?;
            let envelope = Envelope::decode(&value)
                .ok_or_else(|| crate::journal::damaged(&key, "not an outbox envelope"))?;
            Ok(Pending {
                id: keys::event_id(height, index, n),
                height,
                index,
                key,
                envelope,
            })
        })
        .collect()
}

impl<S: Store> OutboxPublisher<S> {
    /// A publisher of `store`'s outbox to `streams`' EVENTS, signing with `key` (the key of
    /// member `service.tokens`); `shared` is the follower's, for the registry and the trace
    /// contexts of the transactions that raised the events.
    pub fn new(
        store: S,
        bus: Bus,
        streams: StreamsConfig,
        shared: Arc<Shared>,
        key: SigningKey,
    ) -> Self {
        let published = opentelemetry::global::meter("citychain-tokens")
            .u64_counter("tokens.events.published")
            .with_description("Token events acknowledged by EVENTS (repeats included).")
            .build();
        OutboxPublisher {
            store,
            bus,
            streams,
            shared,
            identity: MemberId::new(service_member_id("tokens"))
                .expect("service.tokens is a valid member id"),
            key,
            published,
        }
    }

    /// The height to sign an event of block `height` at, as `registry` says: the block's own
    /// height while this publisher's key was its identity's key then (so a republished event
    /// is signed, and identified, as before), else the registry's height if the key is its
    /// identity's key now (an event of an old block republished after a rotation).
    fn signing_height(&self, registry: &Registry, height: u64) -> Result<Height, PublishError> {
        let ours = self.key.public_key();
        let is_ours = registry
            .key(&ours)
            .is_some_and(|record| record.member == self.identity);
        if is_ours && registry.key_valid_at(&ours, Height(height.saturating_add(1))) {
            return Ok(Height(height));
        }
        let listed = registry.member(&self.identity).and_then(|m| m.signing_key);
        if listed != Some(ours) {
            return Err(PublishError::KeyNotOnChain {
                member: self.identity.clone(),
                ours: ours.to_string(),
                listed: listed.map_or_else(|| "none".to_string(), |k| k.to_string()),
                height: registry.height(),
            });
        }
        Ok(registry.height())
    }

    /// Publishes until `stop` resolves, woken whenever `applied` moves (a block may have
    /// filled the outbox) and every second otherwise. Failures are logged and retried: an
    /// event is never dropped.
    pub async fn run(self, mut applied: watch::Receiver<Height>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let pause = match self.publish_some().await {
                Ok(0) => IDLE,
                // More may be waiting: go again at once.
                Ok(n) if n >= BATCH => Duration::ZERO,
                Ok(_) => IDLE,
                Err(err @ PublishError::KeyNotOnChain { .. }) => {
                    tracing::warn!(error = %err, "token events held back");
                    IDLE
                }
                Err(err) => {
                    tracing::warn!(error = %err, "publishing token events failed; retrying");
                    BACKOFF
                }
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                () = &mut stop => return,
                changed = applied.changed() => {
                    if changed.is_err() {
                        // The follower is gone; keep draining on the timer until stopped.
                        tokio::time::sleep(pause).await;
                    }
                }
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Publishes one batch; returns how many events it published (and deleted).
    pub async fn publish_some(&self) -> Result<usize, PublishError> {
        let batch = pending(&self.store, BATCH).await?;
        let registry = self.shared.registry();
        let mut done = Vec::with_capacity(batch.len());
        let mut failure = None;
        for event in &batch {
            // The registry lags the outbox by a moment (a block's events commit before the
            // registry after it is shared): an event of a block the registry has not taken in
            // waits, so a rotation in that very block is seen before signing.
            if event.height > registry.height().0 {
                break;
            }
            let signed_at = match self.signing_height(&registry, event.height) {
                Ok(at) => at,
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            };
            let subject = self
                .streams
                .event_subject("tokens", &event.envelope.name)
                .map_err(PublishError::Bus)?;
            let signed = SignedEvent::sign(
                &self.key,
                self.identity.clone(),
                signed_at,
                event.id.clone(),
                event.envelope.name.clone(),
                event.envelope.payload.clone(),
            );
            let message_id = signed.message_id();
            let publish = self.bus.publish_idempotent(
                &subject,
                &message_id,
                Bytes::from(signed.encode()),
                HeaderMap::new(),
            );
            let outcome = match self.shared.trace_of(event.height, event.index as usize) {
                Some(parent) => {
                    let span = tracing::info_span!(
                        "tokens.publish",
                        otel.name = "tokens.publish",
                        service = "tokens",
                        event.id = %event.id,
                        event.name = %event.envelope.name,
                        height = event.height,
                    );
                    let _ = span.set_parent(parent);
                    publish.instrument(span).await
                }
                None => publish.await,
            };
            match outcome {
                Ok(appended) => {
                    tracing::debug!(id = %event.id, duplicate = appended.duplicate, "token event published");
                    self.published.add(1, &[]);
                    done.push(event.key.clone());
                }
                Err(err) => {
                    // Stop at the first failure so events go out in chain order.
                    failure = Some(PublishError::Bus(err));
                    break;
                }
            }
        }
        if !done.is_empty() {
            let mut txn = self.store.begin().await?;
            for key in &done {
                txn.delete(key)?;
            }
            txn.commit().await.map_err(TokensStoreError::from)?;
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(done.len()),
        }
    }
}

/// Why a round of publishing stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] TokensStoreError),
    /// NATS failed.
    #[error("NATS: {0}")]
    Bus(citychain_bus::BusError),
    /// The registry does not list this service's key for its identity, so nothing it signed
    /// would be believed.
    #[error(
        "the key file's key {ours} is not the key the chain lists for {member} at height {height} ({listed}); events are held back until it is"
    )]
    KeyNotOnChain {
        /// The service's identity.
        member: MemberId,
        /// The key it has, hex.
        ours: String,
        /// The key the registry lists, hex, or `none`.
        listed: String,
        /// The registry's height.
        height: Height,
    },
}

impl From<citychain_store::StoreError> for PublishError {
    fn from(err: citychain_store::StoreError) -> Self {
        PublishError::Store(err.into())
    }
}
