//! The verifying consumer of CHAIN: takes each block in height order, audits it from genesis
//! (hash link, height, time, Merkle root, every signature, the certificate of the validator
//! set governance puts in force at that height, every signer's authorization), and applies it
//! with its indexes in one atomic write.
//!
//! CHAIN holds block `h` at stream sequence `h` (the validators append with an expected last
//! sequence), so the follower reads by sequence and needs no consumer state on the server: its
//! position is its store's applied height. A block missing from the stream, damaged, or failing
//! the audit is fetched again from the validators (request/reply by height) and audited; if no
//! copy passes, the follower raises an alert (an error log, health NOT_SERVING, the
//! `ledger.chain.violations` counter) and keeps retrying that height. It never skips a block.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use citychain_bus::{Bus, BusError, HeaderMap, StreamKind, StreamsConfig};
use citychain_governance::{AuditError, ChainAuditor, Registry};
use citychain_kernel::{Block, Genesis, Height};
use citychain_store::{ApplyError, ApplyOutcome, ProjectionRunner, Store};
use futures::StreamExt;
use opentelemetry::metrics::Counter;
use thiserror::Error;
use tokio::sync::watch;
use tracing::Instrument;

use crate::store::{LedgerProjection, LedgerReader, LedgerStoreError, VerifiedBlock};

/// How long the follower waits for news of a block before looking at the stream again.
const POLL: Duration = Duration::from_secs(1);

/// How long it waits before trying a height again after no copy of the block passed.
const RETRY: Duration = Duration::from_secs(2);

/// Why the follower stopped. Chain violations do not stop it (they are alerts); these do.
#[derive(Debug, Error)]
pub enum FollowerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] LedgerStoreError),
    /// The store holds a registry that does not fit its blocks.
    #[error("cannot resume from the stored state: {0}")]
    Resume(AuditError),
    /// NATS failed in a way retrying does not fix.
    #[error("NATS: {0}")]
    Bus(#[from] BusError),
}

/// What the follower shares with the API.
#[derive(Debug)]
pub struct Shared {
    /// The last applied height.
    pub applied: watch::Sender<Height>,
    /// The registry after the last applied block.
    pub registry: RwLock<Registry>,
    /// The current chain violation, if one stops the follower.
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
            registry: RwLock::new(Registry::from_genesis(genesis)),
            alert: Mutex::new(None),
            chain_last: Mutex::new(0),
            caught_up: AtomicBool::new(false),
        })
    }

    /// The last applied height.
    pub fn applied(&self) -> Height {
        *self.applied.borrow()
    }
}

/// Follows CHAIN into the ledger's store.
#[derive(Debug)]
pub struct Follower<S> {
    bus: Bus,
    streams: StreamsConfig,
    runner: ProjectionRunner<S, LedgerProjection>,
    auditor: ChainAuditor,
    shared: Arc<Shared>,
    repair_timeout: Duration,
    violations: Counter<u64>,
}

impl<S: Store + Clone> Follower<S> {
    /// Resumes after the stored applied height (from genesis on an empty store).
    pub async fn resume(
        genesis: &Genesis,
        store: S,
        bus: Bus,
        streams: StreamsConfig,
        shared: Arc<Shared>,
        repair_timeout: Duration,
    ) -> Result<Self, FollowerError> {
        let reader = LedgerReader::new(store.clone());
        let runner = ProjectionRunner::new(store, LedgerProjection);
        let applied = runner
            .applied_height()
            .await
            .map_err(LedgerStoreError::from)?;
        let auditor =
            if applied == 0 {
                ChainAuditor::new(genesis)
            } else {
                let last = reader.block(Height(applied)).await?.ok_or_else(|| {
                    LedgerStoreError::Index {
                        key: format!("block {applied} (the applied height) is missing"),
                    }
                })?;
                let registry = reader
                    .registry()
                    .await?
                    .ok_or_else(|| LedgerStoreError::Index {
                        key: "the registry is missing".into(),
                    })?;
                let transactions = reader.transactions().await?;
                ChainAuditor::resume(genesis, &last.header, transactions, registry)
                    .map_err(FollowerError::Resume)?
            };
        *shared.registry.write().unwrap_or_else(|e| e.into_inner()) = auditor.registry().clone();
        shared.applied.send_replace(Height(applied));
        let violations = opentelemetry::global::meter("citychain-ledger")
            .u64_counter("ledger.chain.violations")
            .with_description("Blocks that failed the audit from every source.")
            .build();
        Ok(Follower {
            bus,
            streams,
            runner,
            auditor,
            shared,
            repair_timeout,
            violations,
        })
    }

    /// Follows CHAIN until `stop` resolves, or the store fails.
    pub async fn run(mut self, stop: impl Future<Output = ()>) -> Result<(), FollowerError> {
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
                    tracing::warn!(error = %err, "cannot read CHAIN's state; retrying");
                    0
                }
            };
            *self
                .shared
                .chain_last
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = last;
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
                _ = news.next() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Applies block `height`, from CHAIN, else from the validators. Returns false (after
    /// raising the alert) if no copy passed the audit.
    async fn follow(&mut self, height: Height) -> Result<bool, FollowerError> {
        let span = tracing::info_span!("ledger.apply", height = height.0);
        async {
            let bytes = self.read_chain(height).await;
            let mut problems = Vec::new();
            if let Some(bytes) = bytes {
                match self.audit_and_apply(height, &bytes).await? {
                    None => return Ok(true),
                    Some(problem) => problems.push(format!("CHAIN: {problem}")),
                }
            } else {
                problems.push("CHAIN: no message at this sequence".to_string());
            }
            for (validator, bytes) in self.ask_validators(height).await {
                match self.audit_and_apply(height, &bytes).await? {
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
            *self.shared.alert.lock().unwrap_or_else(|e| e.into_inner()) = Some(alert);
            Ok(false)
        }
        .instrument(span)
        .await
    }

    async fn read_chain(&self, height: Height) -> Option<Bytes> {
        let stream = self.streams.stream_name(StreamKind::Chain);
        match self.bus.get_message(&stream, height.0).await {
            Ok(message) => Some(message.payload),
            Err(err) => {
                tracing::warn!(height = height.0, error = %err, "block not readable from CHAIN");
                None
            }
        }
    }

    /// Every validator's copy of block `height` that it returned, in validator order.
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

    /// Audits `bytes` as block `height` and applies it. `Ok(None)` when applied, `Ok(Some(why))`
    /// when this copy fails the audit, `Err` when the store failed.
    async fn audit_and_apply(
        &mut self,
        height: Height,
        bytes: &[u8],
    ) -> Result<Option<String>, FollowerError> {
        let block = match Block::decode(bytes) {
            Ok(block) => block,
            Err(err) => return Ok(Some(format!("does not decode: {err}"))),
        };
        if block.header.height != height {
            return Ok(Some(format!(
                "holds block {} where block {} belongs",
                block.header.height.0, height.0
            )));
        }
        let validators = self.auditor.verifier().validators().clone();
        let mut auditor = self.auditor.clone();
        if let Err(err) = auditor.push(&block) {
            return Ok(Some(err.to_string()));
        }
        let verified = VerifiedBlock {
            registry: auditor.registry().encode(),
            transactions: auditor.verifier().transactions(),
            bytes: bytes.to_vec(),
            block,
            validators,
        };
        match self.runner.apply_block(height.0, &verified).await {
            Ok(ApplyOutcome::Applied) | Ok(ApplyOutcome::AlreadyApplied { .. }) => {}
            Err(ApplyError::Gap { expected, got }) => {
                return Err(LedgerStoreError::Index {
                    key: format!("applied height: expected block {expected}, auditing {got}"),
                }
                .into());
            }
            Err(ApplyError::Projection { source, .. }) => return Err(source.into()),
            Err(ApplyError::Store(err)) => return Err(LedgerStoreError::Store(err).into()),
        }
        *self
            .shared
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner()) = auditor.registry().clone();
        self.auditor = auditor;
        *self.shared.alert.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.applied.send_replace(height);
        Ok(None)
    }
}
