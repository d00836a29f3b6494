//! [`Follower`]: the verifying consumer of CHAIN. It takes each block in height order, audits
//! it from genesis (hash link, height, time, Merkle root, every signature, the certificate of
//! the validator set governance puts in force at that height, every signer's authorization),
//! and applies it to the service's [`ChainProjection`] with the applied height and the
//! follower's checkpoint in one atomic write.
//!
//! CHAIN holds block `h` at stream sequence `h` (the validators append with an expected last
//! sequence), so the follower reads by sequence and needs no consumer state on the server: its
//! position is its store's applied height. A block missing from the stream, damaged, or failing
//! the audit is fetched again from the validators (request/reply by height) and audited; if no
//! copy passes, the follower raises an alert (an error log, [`Shared::alert`] and so health
//! NOT_SERVING, the `<service>.chain.violations` counter) and keeps retrying that height. It
//! never skips a block. The alert clears once the height is applied.
//!
//! Stored state is checked too. On resume the projection checks what it stored for the
//! applied height ([`ChainProjection::check_applied`]); damage there, or in the checkpoint,
//! stops the resume with [`FollowerError::Damaged`] so that the service rebuilds the store
//! from CHAIN rather than serve from it. A block the service later finds damaged while serving
//! ([`Shared::report_damage`]: health NOT_SERVING) is fetched again, from CHAIN else from the
//! validators; a copy that verifies (transactions, signatures, certificate of the set in force
//! there) is handed to [`ChainProjection::repair`], which accepts only the block whose hash it
//! stored; the damage clears once it is rewritten (`<service>.store.repairs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use citychain_bus::{Bus, BusError, HeaderMap, StoredMessage, StreamKind, StreamsConfig, trace};
use citychain_governance::{AuditError, ChainAuditor, Registry};
use citychain_kernel::{Block, Genesis, Height};
use citychain_store::{ApplyError, ApplyOutcome, ProjectionRunner, Store, StoreError, Transaction};
use futures::StreamExt;
use opentelemetry::metrics::Counter;
use opentelemetry::trace::TraceContextExt as _;
use thiserror::Error;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::checkpoint::{CheckpointError, Checkpointed, StepError, read_checkpoint_in};
use crate::health;
use crate::projection::{AuditedBlock, ChainProjection};
use crate::shared::Shared;

/// How long the follower waits for news of a block before looking at the stream again.
const POLL: Duration = Duration::from_secs(1);

/// How long it waits before trying a height again after no copy of the block passed.
const RETRY: Duration = Duration::from_secs(2);

/// Why the follower stopped (or could not start). Chain violations do not stop it (they are
/// alerts); these do.
#[derive(Debug, Error)]
pub enum FollowerError<E> {
    /// The service's projection failed.
    #[error(transparent)]
    Projection(E),
    /// The store failed.
    #[error("follower store: {0}")]
    Store(#[from] StoreError),
    /// The stored checkpoint cannot be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The stored checkpoint does not fit the chain's genesis.
    #[error("cannot resume from the stored state: {0}")]
    Resume(AuditError),
    /// The store's applied height moved under the follower (another writer of the same
    /// projection on a shared store, gone ahead or behind).
    #[error(
        "the store expects block {expected} but the follower audited block {audited}; is \
         another writer applying the same projection?"
    )]
    OutOfStep {
        /// The height the store expects next.
        expected: u64,
        /// The height the follower audited.
        audited: u64,
    },
    /// NATS failed in a way retrying does not fix.
    #[error("NATS: {0}")]
    Bus(#[from] BusError),
    /// What the store holds for the applied height is not what was written.
    #[error("the store is damaged: {0}")]
    Damaged(String),
}

impl<E> FollowerError<E> {
    /// Whether the error says the store's bytes are damaged (so rebuilding the store from
    /// CHAIN is the repair), rather than that a part failed.
    pub fn is_damage(&self) -> bool {
        match self {
            FollowerError::Damaged(_) => true,
            FollowerError::Store(err) => err.is_corruption(),
            FollowerError::Checkpoint(CheckpointError::Store(err)) => err.is_corruption(),
            FollowerError::Checkpoint(CheckpointError::Damaged { .. }) => true,
            _ => false,
        }
    }
}

/// How one service's follower reports itself.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// The service's name, as it prefixes its telemetry: the violation counter is
    /// `<service>.chain.violations` (meter `citychain-<service>`), the span of each block
    /// `<service>.apply`.
    pub service: String,
    /// How long one validator gets to answer a request for a block.
    pub repair_timeout: Duration,
}

impl FollowerConfig {
    /// The configuration of `service`'s follower.
    pub fn new(service: impl Into<String>, repair_timeout: Duration) -> Self {
        FollowerConfig {
            service: service.into(),
            repair_timeout,
        }
    }
}

/// Follows CHAIN into a service's store through its [`ChainProjection`].
#[derive(Debug)]
pub struct Follower<S, P> {
    bus: Bus,
    streams: StreamsConfig,
    runner: ProjectionRunner<S, Checkpointed<P>>,
    auditor: ChainAuditor,
    /// The auditor's registry, shared with [`Shared`] and the blocks handed to the projection
    /// rather than copied for each.
    registry: Arc<Registry>,
    shared: Arc<Shared>,
    service: String,
    /// The OpenTelemetry names of each block's span and of each traced transaction's span;
    /// tracing's own span names are static.
    apply_block_span: String,
    apply_span: String,
    repair_timeout: Duration,
    violations: Counter<u64>,
    repairs: Counter<u64>,
}

/// Where a follower of `projection` over `store` resumes: the auditor after the applied
/// height, from the follower's checkpoint (at genesis on an empty store), once the
/// projection's own check of that height passed. Damage in the checkpoint or at that height
/// is an error that [`FollowerError::is_damage`] recognises.
pub async fn resume_point<S: Store, P: ChainProjection>(
    store: &S,
    genesis: &Genesis,
    projection: &P,
) -> Result<ChainAuditor, FollowerError<P::Error>> {
    // `read_checkpoint_in` reads the applied height and the checkpoint in one snapshot and
    // checks that they agree.
    let checkpoint = {
        let mut txn = store.begin().await?;
        read_checkpoint_in(&mut txn, projection.name()).await?
    };
    let auditor = match checkpoint {
        None => ChainAuditor::new(genesis),
        Some(checkpoint) => checkpoint.resume(genesis).map_err(FollowerError::Resume)?,
    };
    let applied = Height(auditor.next_height().0 - 1);
    if applied.0 > 0 {
        let mut txn = store.begin().await?;
        let found = projection
            .check_applied(&mut txn, applied)
            .await
            .map_err(FollowerError::Projection)?;
        if let Some(what) = found {
            return Err(FollowerError::Damaged(what));
        }
    }
    Ok(auditor)
}

impl<S: Store, P: ChainProjection> Follower<S, P> {
    /// Resumes after the stored applied height, from the follower's checkpoint (from genesis
    /// on an empty store), and publishes that position and registry to `shared`.
    pub async fn resume(
        genesis: &Genesis,
        store: S,
        projection: P,
        bus: Bus,
        streams: StreamsConfig,
        shared: Arc<Shared>,
        config: FollowerConfig,
    ) -> Result<Self, FollowerError<P::Error>> {
        let name = projection.name().to_string();
        let runner = ProjectionRunner::new(store, Checkpointed::new(projection)?);
        let auditor = resume_point(runner.store(), genesis, runner.projection().inner()).await?;
        let applied = Height(auditor.next_height().0 - 1);
        let registry = Arc::new(auditor.registry().clone());
        shared.set_registry(registry.clone());
        shared.applied.send_replace(applied);
        let meter = health::meter(&config.service);
        let violations = meter
            .u64_counter(format!("{}.chain.violations", config.service))
            .with_description("Blocks that failed the audit from every source.")
            .build();
        let repairs = meter
            .u64_counter(format!("{}.store.repairs", config.service))
            .with_description("Stored blocks found damaged and rewritten from a copy.")
            .build();
        tracing::info!(
            service = %config.service,
            projection = %name,
            applied = applied.0,
            "following CHAIN"
        );
        Ok(Follower {
            bus,
            streams,
            runner,
            auditor,
            registry,
            shared,
            apply_block_span: format!("{}.apply_block", config.service),
            apply_span: format!("{}.apply", config.service),
            service: config.service,
            repair_timeout: config.repair_timeout,
            violations,
            repairs,
        })
    }

    /// Follows CHAIN until `stop` resolves, or the store or the projection fails.
    pub async fn run(
        mut self,
        stop: impl Future<Output = ()>,
    ) -> Result<(), FollowerError<P::Error>> {
        let mut news = self
            .bus
            .client()
            .subscribe(self.streams.chain_subject())
            .await
            .map_err(|err| BusError::Request {
                subject: self.streams.chain_subject(),
                reason: err.to_string(),
            })?;
        let stream = self.streams.stream_name(StreamKind::Chain);
        tokio::pin!(stop);
        loop {
            let last = match self.bus.stream_state(&stream).await {
                Ok(state) => state.last_sequence,
                Err(err) => {
                    // Not knowing CHAIN's length is not being caught up with it.
                    tracing::warn!(error = %err, "cannot read CHAIN's state; retrying");
                    tokio::select! {
                        () = &mut stop => return Ok(()),
                        () = tokio::time::sleep(POLL) => {}
                    }
                    continue;
                }
            };
            self.shared.set_chain_last(last);
            self.repair_damage().await?;
            while self.auditor.next_height().0 <= last {
                let height = self.auditor.next_height();
                if !self.follow(height).await? {
                    tokio::select! {
                        () = &mut stop => return Ok(()),
                        () = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
            if self.auditor.next_height().0 > last {
                self.shared.caught_up.store(true, Ordering::Release);
            }
            tokio::select! {
                () = &mut stop => return Ok(()),
                // A publish on CHAIN's subject only wakes the follower: core subscribers also
                // see appends the stream refused (a validator that lost the race to append
                // its own copy, with another certificate), so blocks are read by sequence.
                woken = news.next() => {
                    if woken.is_none() {
                        // The subscription ended (the connection is being replaced): poll.
                        tokio::time::sleep(POLL).await;
                    }
                }
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Applies block `height`, from CHAIN, else from the validators. Returns false (after
    /// raising the alert) if no copy passed the audit.
    async fn follow(&mut self, height: Height) -> Result<bool, FollowerError<P::Error>> {
        let span = tracing::info_span!(
            "chain.apply",
            otel.name = %self.apply_block_span,
            service = %self.service,
            height = height.0,
        );
        async {
            let mut problems = Vec::new();
            match self.read_chain(height).await {
                Some(message) => match self
                    .audit_and_apply(
                        height,
                        message.payload,
                        trace::extract_tx_traces(&message.headers),
                    )
                    .await?
                {
                    None => return Ok(true),
                    Some(problem) => problems.push(format!("CHAIN: {problem}")),
                },
                None => problems.push("CHAIN: no message at this sequence".to_string()),
            }
            for (validator, bytes) in self.ask_validators(height).await {
                match self.audit_and_apply(height, bytes, BTreeMap::new()).await? {
                    None => {
                        tracing::warn!(
                            height = height.0,
                            validator = %validator,
                            problems = %problems.join("; "),
                            "block repaired from a validator"
                        );
                        return Ok(true);
                    }
                    Some(problem) => problems.push(format!("validator {validator}: {problem}")),
                }
            }
            let alert = format!("block {}: {}", height.0, problems.join("; "));
            tracing::error!(height = height.0, alert = %alert, "chain violation: not applying");
            self.violations.add(1, &[]);
            self.shared.set_alert(Some(alert));
            Ok(false)
        }
        .instrument(span)
        .await
    }

    /// Rewrites each stored block the service reported damaged from the first copy (CHAIN's,
    /// else a validator's) that verifies as block `height` of this chain (its transactions,
    /// their signatures, and a certificate from the validator set governance had in force
    /// there) and that the projection accepts. A height no copy repairs stays reported, and is
    /// tried again on the next poll.
    async fn repair_damage(&mut self) -> Result<(), FollowerError<P::Error>> {
        for (height, what) in self.shared.damaged() {
            let at = Height(height);
            let mut repaired = None;
            if let Some(message) = self.read_chain(at).await
                && self.try_repair(at, &message.payload).await?
            {
                repaired = Some("CHAIN".to_string());
            }
            if repaired.is_none() {
                for (validator, bytes) in self.ask_validators(at).await {
                    if self.try_repair(at, &bytes).await? {
                        repaired = Some(format!("validator {validator}"));
                        break;
                    }
                }
            }
            match repaired {
                Some(source) => {
                    self.repairs.add(1, &[]);
                    self.shared.repaired(height);
                    tracing::warn!(height, damage = %what, from = %source, "damaged block rewritten");
                }
                None => tracing::error!(
                    height,
                    damage = %what,
                    "no verified copy of the damaged block matches what the store holds beside it; still not serving"
                ),
            }
        }
        Ok(())
    }

    /// Rewrites block `at` from `bytes` if they are a verified copy of it that the
    /// projection accepts.
    async fn try_repair(&self, at: Height, bytes: &[u8]) -> Result<bool, FollowerError<P::Error>> {
        let Ok(copy) = Block::decode(bytes) else {
            return Ok(false);
        };
        let Some(set) = self.registry.validator_set_for(at) else {
            return Ok(false);
        };
        let verified = copy.header.height == at
            && copy.header.validators_hash == set.hash()
            && copy.verify_body(self.registry.chain_id()).is_ok()
            && copy.certificate.verify(&copy.header, &set).is_ok();
        if !verified {
            return Ok(false);
        }
        let mut txn = self.runner.store().begin().await?;
        let accepted = self
            .runner
            .projection()
            .inner()
            .repair(&mut txn, at, &copy)
            .await
            .map_err(FollowerError::Projection)?;
        if accepted {
            txn.commit().await?;
        }
        Ok(accepted)
    }

    /// Opens `<service>.apply` for each traced transaction of `block`: a child of the
    /// transaction's context, linked to and from the block's span (the current one). The
    /// spans end when dropped, once the block is applied.
    fn tx_spans(
        &self,
        block: &Block,
        traces: BTreeMap<usize, opentelemetry::Context>,
    ) -> BTreeMap<usize, tracing::Span> {
        let block_span = tracing::Span::current();
        let block_context = block_span.context().span().span_context().clone();
        traces
            .into_iter()
            .filter_map(|(index, parent)| {
                let tx = block.txs.get(index)?;
                let span = tracing::info_span!(
                    "chain.apply.tx",
                    otel.name = %self.apply_span,
                    service = %self.service,
                    height = block.header.height.0,
                    index,
                    tx.id = %tx.id(),
                    signer = %tx.signer(),
                );
                block_span.add_link(parent.span().span_context().clone());
                let _ = span.set_parent(parent);
                if block_context.is_valid() {
                    span.add_link(block_context.clone());
                }
                Some((index, span))
            })
            .collect()
    }

    async fn read_chain(&self, height: Height) -> Option<StoredMessage> {
        let stream = self.streams.stream_name(StreamKind::Chain);
        match self.bus.get_message(&stream, height.0).await {
            Ok(message) => Some(message),
            Err(err) => {
                tracing::warn!(height = height.0, error = %err, "block not readable from CHAIN");
                None
            }
        }
    }

    /// Every validator's copy of block `height` that it returned, in validator order. The
    /// validators asked are those that must certify the block, as governance says.
    async fn ask_validators(&self, height: Height) -> Vec<(String, Bytes)> {
        let mut copies = Vec::new();
        let keys: Vec<String> = self
            .auditor
            .verifier()
            .validators()
            .validators()
            .iter()
            .map(|v| v.key.to_string())
            .collect();
        for key in keys {
            let subject = self.streams.block_service_subject(&key);
            let request = Bytes::copy_from_slice(&height.0.to_be_bytes());
            match self
                .bus
                .request(&subject, request, HeaderMap::new(), self.repair_timeout)
                .await
            {
                Ok(reply) if !reply.payload.is_empty() => copies.push((key, reply.payload)),
                Ok(_) => {
                    tracing::debug!(height = height.0, validator = %key, "validator lacks the block")
                }
                Err(err) => {
                    tracing::debug!(height = height.0, validator = %key, error = %err, "no block from validator")
                }
            }
        }
        copies
    }

    /// Audits `bytes` as block `height` and applies it, in a span per traced transaction
    /// (`traces`, by index, from CHAIN's header). `Ok(None)` when applied, `Ok(Some(why))`
    /// when this copy fails the audit, `Err` when the store or the projection failed.
    async fn audit_and_apply(
        &mut self,
        height: Height,
        bytes: Bytes,
        traces: BTreeMap<usize, opentelemetry::Context>,
    ) -> Result<Option<String>, FollowerError<P::Error>> {
        let (auditor, mut audited) =
            match AuditedBlock::audit(&self.auditor, &self.registry, height, bytes) {
                Ok(step) => step,
                Err(problem) => return Ok(Some(problem.to_string())),
            };
        let tx_spans = self.tx_spans(&audited.block, traces);
        audited.traces = tx_spans
            .iter()
            .map(|(index, span)| (*index, span.context()))
            .collect();
        match self.runner.apply_block(height.0, &audited).await {
            // Already applied: another replica sharing the store got there first, with the
            // same committed block, so moving on is right.
            Ok(ApplyOutcome::Applied) | Ok(ApplyOutcome::AlreadyApplied { .. }) => {}
            Err(ApplyError::Gap { expected, got }) => {
                return Err(FollowerError::OutOfStep {
                    expected,
                    audited: got,
                });
            }
            Err(ApplyError::Projection { source, .. }) => {
                return Err(match source {
                    StepError::Projection(err) => FollowerError::Projection(err),
                    StepError::Store(err) => FollowerError::Store(err),
                });
            }
            Err(ApplyError::Store(err)) => return Err(FollowerError::Store(err)),
        }
        // Only now, with the block stored, does the follower move on.
        self.auditor = auditor;
        self.registry = audited.registry_after;
        self.shared.set_registry(self.registry.clone());
        self.shared.set_alert(None);
        self.shared.note_traces(height.0, &audited.traces);
        self.shared.applied.send_replace(height);
        Ok(None)
    }
}
