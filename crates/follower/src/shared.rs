//! [`Shared`]: what the follower publishes to the rest of its service (the API, health,
//! metrics) while it runs: its position, the registry in force, the current alert, the
//! stored blocks found damaged and not yet repaired, and the trace contexts of recently
//! applied transactions.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use citychain_governance::Registry;
use citychain_kernel::{Genesis, Height};
use tokio::sync::watch;

/// Trace contexts of applied transactions kept at most; the oldest heights go first.
pub const MAX_TRACED_TXS: usize = 4_096;

/// What the follower shares with its service. The locks are only held to copy a value in or
/// out, so a poisoned one (a panic elsewhere) still holds a consistent value and is used.
#[derive(Debug)]
pub struct Shared {
    /// The last applied height; subscribe to be woken when it moves.
    pub applied: watch::Sender<Height>,
    /// The registry after the last applied block: the state that checks the next one.
    pub registry: RwLock<Arc<Registry>>,
    /// The current chain violation, while one stops the follower.
    pub alert: Mutex<Option<String>>,
    /// The last sequence CHAIN reported.
    pub chain_last: Mutex<u64>,
    /// Whether the follower has applied everything CHAIN held when it started.
    pub caught_up: AtomicBool,
    /// Heights whose stored block the service found damaged, with what was wrong, until the
    /// follower has repaired them.
    damaged: Mutex<BTreeMap<u64, String>>,
    /// The contexts of the `<service>.apply` spans of recently applied traced transactions,
    /// by (height, index): the parents of work the service does for them later (publishing
    /// an event, releasing a key). Kept in memory only; a restart loses them.
    traces: Mutex<BTreeMap<(u64, usize), opentelemetry::Context>>,
}

impl Shared {
    /// The state before any block.
    pub fn new(genesis: &Genesis) -> Arc<Shared> {
        Arc::new(Shared {
            applied: watch::channel(Height(0)).0,
            registry: RwLock::new(Arc::new(Registry::from_genesis(genesis))),
            alert: Mutex::new(None),
            chain_last: Mutex::new(0),
            caught_up: AtomicBool::new(false),
            damaged: Mutex::new(BTreeMap::new()),
            traces: Mutex::new(BTreeMap::new()),
        })
    }

    /// The last applied height.
    pub fn applied(&self) -> Height {
        *self.applied.borrow()
    }

    /// The registry after the last applied block.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current chain violation, if one stops the follower.
    pub fn alert(&self) -> Option<String> {
        self.alert.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The last sequence CHAIN reported.
    pub fn chain_last(&self) -> u64 {
        *self.chain_last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the service can vouch for its answers: it has caught up with the CHAIN it found
    /// at start, no chain violation halts it, and no stored block is known damaged. Services
    /// report health from this.
    pub fn is_healthy(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
            && self.alert().is_none()
            && self.damaged().is_empty()
    }

    /// Reports that the stored block at `height` is damaged (`what` says how): the service
    /// is unhealthy until the follower has rewritten it from a copy on CHAIN or a validator.
    /// Returns false if the height was already reported.
    pub fn report_damage(&self, height: Height, what: String) -> bool {
        let mut damaged = self.damaged.lock().unwrap_or_else(|e| e.into_inner());
        if damaged.contains_key(&height.0) {
            return false;
        }
        tracing::error!(height = height.0, damage = %what, "stored block damaged; not serving until it is repaired");
        damaged.insert(height.0, what);
        true
    }

    /// The heights reported damaged and not yet repaired, with what was wrong.
    pub fn damaged(&self) -> BTreeMap<u64, String> {
        self.damaged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn repaired(&self, height: u64) {
        self.damaged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&height);
    }

    /// The trace context of transaction `index` of block `height`, if it was traced and is
    /// still remembered (see [`MAX_TRACED_TXS`]).
    pub fn trace_of(&self, height: u64, index: usize) -> Option<opentelemetry::Context> {
        self.traces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(height, index))
            .cloned()
    }

    /// Remembers the trace contexts of block `height`'s transactions, forgetting the oldest
    /// beyond [`MAX_TRACED_TXS`].
    pub(crate) fn note_traces(
        &self,
        height: u64,
        traces: &BTreeMap<usize, opentelemetry::Context>,
    ) {
        if traces.is_empty() {
            return;
        }
        let mut kept = self.traces.lock().unwrap_or_else(|e| e.into_inner());
        for (index, cx) in traces {
            kept.insert((height, *index), cx.clone());
        }
        while kept.len() > MAX_TRACED_TXS {
            kept.pop_first();
        }
    }

    pub(crate) fn set_registry(&self, registry: Arc<Registry>) {
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = registry;
    }

    pub(crate) fn set_alert(&self, alert: Option<String>) {
        *self.alert.lock().unwrap_or_else(|e| e.into_inner()) = alert;
    }

    pub(crate) fn set_chain_last(&self, last: u64) {
        *self.chain_last.lock().unwrap_or_else(|e| e.into_inner()) = last;
    }
}

#[cfg(test)]
mod tests {
    use citychain_testkit::genesis::network;

    use super::*;

    #[test]
    fn healthy_only_when_caught_up_and_without_an_alert() {
        let shared = Shared::new(&network(4, 5).genesis);
        assert!(!shared.is_healthy(), "not caught up yet");
        shared.caught_up.store(true, Ordering::Release);
        assert!(shared.is_healthy());
        shared.set_alert(Some("block 3: bad".into()));
        assert!(!shared.is_healthy(), "halted on a violation");
        shared.set_alert(None);
        assert!(shared.is_healthy());
        assert!(shared.report_damage(Height(2), "block 2 does not match its seal".into()));
        assert!(
            !shared.report_damage(Height(2), "again".into()),
            "reported once"
        );
        assert!(!shared.is_healthy(), "a damaged block is not served");
        shared.repaired(2);
        assert!(shared.is_healthy());
    }

    #[test]
    fn trace_contexts_are_remembered_by_place_and_the_oldest_forgotten_first() {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
        };
        let shared = Shared::new(&network(4, 6).genesis);
        let traced = |n: u64| {
            opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from(u128::from(n) + 1),
                SpanId::from(n + 1),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            ))
        };
        for height in 1..=(MAX_TRACED_TXS as u64 / 2 + 1) {
            let block = BTreeMap::from([(0, traced(height)), (3, traced(height + 10_000))]);
            shared.note_traces(height, &block);
        }
        assert!(
            shared.trace_of(1, 0).is_none(),
            "the oldest height went first"
        );
        let last = MAX_TRACED_TXS as u64 / 2 + 1;
        let found = shared.trace_of(last, 3).expect("the newest is kept");
        assert_eq!(
            found.span().span_context().trace_id(),
            TraceId::from(u128::from(last + 10_000) + 1)
        );
        assert!(shared.trace_of(last, 1).is_none(), "an untraced index");
    }
}
