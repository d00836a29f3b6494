//! [`Shared`]: what the follower publishes to the rest of its service (the API, health,
//! metrics) while it runs: its position, the registry in force, and the current alert.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use citychain_governance::Registry;
use citychain_kernel::{Genesis, Height};
use tokio::sync::watch;

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
    /// at start, and no chain violation halts it. Services report health from this.
    pub fn is_healthy(&self) -> bool {
        self.caught_up.load(Ordering::Acquire) && self.alert().is_none()
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
    }
}
