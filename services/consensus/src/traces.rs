//! Tracing and timing of what a validator orders.
//!
//! Each transaction that reaches the mempool with a trace context (the `traceparent` its
//! submitter's span put on the MEMPOOL message) gets a `consensus.tx` span, child of that
//! context, from its admission to the commit of the block that carries it: its duration is
//! the transaction's wait for ordering on this validator. A block carries many traces, so
//! the block's own `consensus.decide` span and the transactions' spans are joined by span
//! links, both ways. The committed transactions' contexts go on to CHAIN beside the block
//! (see [`citychain_bus::trace::TX_TRACES`]), so every service that applies the block
//! continues each transaction's trace.
//!
//! A busy validator admits thousands of traced transactions a second, so their spans are
//! not `tracing` spans held open in the subscriber: admission notes only the time and the
//! parent, and the span is made whole at commit through the OpenTelemetry tracer, with its
//! real start time and its link to the block.
//!
//! [`CommitMetrics`] records how long each height took from its start to its commit, and in
//! how many rounds.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use citychain_consensus_domain::mempool::Mempool;
use citychain_kernel::{Block, TxId};
use opentelemetry::metrics::Histogram;
use opentelemetry::trace::{Link, Span as _, SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Links a `consensus.decide` span keeps at most (OpenTelemetry's default span limit).
const MAX_BLOCK_LINKS: usize = 128;

/// When a traced transaction was admitted, and the context it arrived with.
#[derive(Debug)]
struct Waiting {
    since: SystemTime,
    parent: Context,
}

/// The traced transactions waiting in this validator's mempool.
#[derive(Debug)]
pub(crate) struct TxTraces {
    tracer: opentelemetry::global::BoxedTracer,
    waiting: BTreeMap<TxId, Waiting>,
    /// Transactions tracked at most: the mempool's own bound.
    max_waiting: usize,
}

impl TxTraces {
    /// Nothing tracked yet; at most `max_waiting` at a time. Spans go to the global tracer
    /// provider, so build this after telemetry is installed.
    pub(crate) fn new(max_waiting: usize) -> Self {
        TxTraces {
            tracer: opentelemetry::global::tracer("citychain-consensus"),
            waiting: BTreeMap::new(),
            max_waiting,
        }
    }

    /// Whether a transaction that arrived with `parent` is tracked: it carries a trace, and
    /// the bound is not reached.
    pub(crate) fn wants(&self, parent: &Context) -> bool {
        parent.span().span_context().is_valid() && self.waiting.len() < self.max_waiting
    }

    /// Notes transaction `id`, just admitted to the mempool with `parent` (which
    /// [`TxTraces::wants`]); its first admission counts.
    pub(crate) fn admitted(&mut self, id: TxId, parent: &Context) {
        self.waiting.entry(id).or_insert_with(|| Waiting {
            since: SystemTime::now(),
            parent: parent.clone(),
        });
    }

    /// Ends the `consensus.tx` spans of `block`'s tracked transactions, each linked to
    /// `decide` (the block's span) and linked from it, and returns their contexts by index in
    /// the block, for CHAIN. The spans name the transaction and the height only: the submit
    /// call's span names the signer, and the process's resource the validator.
    pub(crate) fn committed(
        &mut self,
        block: &Block,
        decide: &tracing::Span,
    ) -> Vec<(usize, Context)> {
        if self.waiting.is_empty() {
            return Vec::new();
        }
        let block_span = decide.context().span().span_context().clone();
        let height = i64::try_from(block.header.height.0).unwrap_or(i64::MAX);
        let mut carried = Vec::new();
        for (index, tx) in block.txs.iter().enumerate() {
            let Some(waiting) = self.waiting.remove(&tx.id()) else {
                continue;
            };
            let mut builder = self
                .tracer
                .span_builder("consensus.tx")
                .with_kind(SpanKind::Internal)
                .with_start_time(waiting.since)
                .with_attributes([
                    KeyValue::new("service", "consensus"),
                    KeyValue::new("tx.id", tx.id().to_string()),
                    KeyValue::new("height", height),
                ]);
            if block_span.is_valid() {
                builder = builder.with_links(vec![Link::with_context(block_span.clone())]);
            }
            let mut span = self.tracer.build_with_context(builder, &waiting.parent);
            let context = span.span_context().clone();
            span.end();
            if carried.len() < MAX_BLOCK_LINKS {
                decide.add_link(context.clone());
            }
            carried.push((index, Context::new().with_remote_span_context(context)));
        }
        carried
    }

    /// Forgets transactions the mempool no longer holds (expired or evicted): their spans
    /// are never made.
    pub(crate) fn prune(&mut self, mempool: &Mempool) {
        self.waiting.retain(|id, _| mempool.contains(id));
    }
}

/// The span of committing block `block` (verify, store, append to CHAIN).
pub(crate) fn decide_span(block: &Block, round: u32, validator: &str) -> tracing::Span {
    tracing::info_span!(
        "consensus.decide",
        otel.name = "consensus.decide",
        service = "consensus",
        height = block.header.height.0,
        round,
        txs = block.txs.len(),
        proposer = %block.header.proposer,
        validator = %validator,
    )
}

/// Commit latency and rounds per height, recorded on the global meter.
#[derive(Debug)]
pub(crate) struct CommitMetrics {
    latency: Histogram<f64>,
    rounds: Histogram<u64>,
    height_started: Instant,
}

impl CommitMetrics {
    /// The instruments `consensus.commit.latency` (seconds) and `consensus.rounds.per_height`.
    pub(crate) fn new() -> Self {
        let meter = opentelemetry::global::meter("citychain-consensus");
        CommitMetrics {
            latency: meter
                .f64_histogram("consensus.commit.latency")
                .with_unit("s")
                .with_description("Time from the start of a height to the commit of its block.")
                .with_boundaries(citychain_telemetry::LATENCY_BOUNDARIES.to_vec())
                .build(),
            rounds: meter
                .u64_histogram("consensus.rounds.per_height")
                .with_description("Rounds a height took to decide (1 when the first succeeded).")
                .with_boundaries(vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0])
                .build(),
            height_started: Instant::now(),
        }
    }

    /// Records the commit of a block decided in `round` (0-based), and starts the next height.
    pub(crate) fn committed(&mut self, round: u32) {
        let now = Instant::now();
        self.latency
            .record(now.duration_since(self.height_started).as_secs_f64(), &[]);
        self.rounds.record(u64::from(round) + 1, &[]);
        self.height_started = now;
    }
}
