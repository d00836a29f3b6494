//! Tracing and timing of what a validator orders.
//!
//! Each transaction that reaches the mempool with a trace context (the `traceparent` its
//! submitter's span put on the MEMPOOL message) gets a `consensus.tx` span, child of that
//! context, open from its admission to the commit of the block that carries it: its duration
//! is the transaction's wait for ordering on this validator. A block carries many traces, so
//! the block's own `consensus.decide` span and the transactions' spans are joined by span
//! links, both ways. The committed transactions' contexts go on to CHAIN beside the block
//! (see [`citychain_bus::trace::TX_TRACES`]), so every service that applies the block
//! continues each transaction's trace.
//!
//! [`CommitMetrics`] records how long each height took from its start to its commit, and in
//! how many rounds.

use std::collections::BTreeMap;
use std::time::Instant;

use citychain_consensus_domain::mempool::Mempool;
use citychain_kernel::{Block, SignedTx, TxId};
use opentelemetry::Context;
use opentelemetry::metrics::Histogram;
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Links a `consensus.decide` span keeps at most (OpenTelemetry's default span limit).
const MAX_BLOCK_LINKS: usize = 128;

/// The open `consensus.tx` spans of the transactions waiting in this validator's mempool.
#[derive(Debug)]
pub(crate) struct TxTraces {
    validator: String,
    open: BTreeMap<TxId, tracing::Span>,
    /// Spans kept at most: the mempool's own bound.
    max_open: usize,
}

impl TxTraces {
    /// No open spans; `validator` (the key in hex) names this validator on every span.
    pub(crate) fn new(validator: &str, max_open: usize) -> Self {
        TxTraces {
            validator: validator.to_owned(),
            open: BTreeMap::new(),
            max_open,
        }
    }

    /// Opens the span of `tx`, just admitted to the mempool, as a child of `parent`: nothing
    /// when `parent` carries no trace, or the transaction already has its span.
    pub(crate) fn admitted(&mut self, tx: &SignedTx, parent: &Context) {
        if !parent.span().span_context().is_valid() || self.open.len() >= self.max_open {
            return;
        }
        let id = tx.id();
        if self.open.contains_key(&id) {
            return;
        }
        let span = tracing::info_span!(
            "consensus.tx",
            otel.name = "consensus.tx",
            service = "consensus",
            tx.id = %id,
            signer = %tx.signer(),
            validator = %self.validator,
            height = tracing::field::Empty,
        );
        let _ = span.set_parent(parent.clone());
        self.open.insert(id, span);
    }

    /// Closes the spans of `block`'s transactions, each linked to `decide` (the block's span)
    /// and linked from it, and returns their contexts by index in the block, for CHAIN.
    pub(crate) fn committed(
        &mut self,
        block: &Block,
        decide: &tracing::Span,
    ) -> Vec<(usize, Context)> {
        let block_span = decide.context().span().span_context().clone();
        let mut carried = Vec::new();
        for (index, tx) in block.txs.iter().enumerate() {
            let Some(span) = self.open.remove(&tx.id()) else {
                continue;
            };
            span.record("height", block.header.height.0);
            if block_span.is_valid() {
                span.add_link(block_span.clone());
            }
            let cx = span.context();
            if carried.len() < MAX_BLOCK_LINKS {
                decide.add_link(cx.span().span_context().clone());
            }
            carried.push((index, cx));
        }
        carried
    }

    /// Drops the spans of transactions the mempool no longer holds (expired or evicted):
    /// they end there, without a height.
    pub(crate) fn prune(&mut self, mempool: &Mempool) {
        self.open.retain(|id, _| mempool.contains(id));
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
