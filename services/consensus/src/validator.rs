//! One validator process: the consensus [`Node`] driven by NATS messages, timers and the
//! MEMPOOL stream, committing decided blocks to its own block store and then to CHAIN.
//!
//! Order of a commit, and why: the block is verified again with the kernel's
//! [`ChainVerifier`] (defence in depth against a bug in the engine), stored with the replay
//! window in one atomic write, and only then appended to CHAIN with an expected last
//! sequence of `height - 1` and `Nats-Msg-Id` = block hash. Every validator tries the append;
//! the stream's sequence equals the height, so the stream can hold neither a fork nor a gap,
//! and a validator whose append meets "wrong last sequence" reads the message at its height
//! and compares ids before calling it a failure.
//!
//! Everything the validator signs is stored before it is sent, and given back to the engine
//! when the validator restarts, so a crash at any point never makes it sign two different
//! messages for one height, round and step (see the engine's `Output::Signed`).
//!
//! A validator that starts behind (a restart, a new disk) first catches up from CHAIN,
//! verifying every block from its stored tip. While running, blocks it missed reach it as
//! decided blocks from its peers (the engine serves recent ones) or, when it is further
//! behind, from CHAIN again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use citychain_bus::{Bus, BusError, HeaderMap, StreamKind, StreamsConfig};
use citychain_consensus_domain::mempool::{BlockLimits, Mempool, MempoolRejection, PoolLimits};
use citychain_consensus_domain::wire::with_placeholder_certificate;
use citychain_consensus_domain::{
    Envelope, Input, Node, NodeParams, Output, SignedMessage, TimerKind, Tip, ValueRequest,
    WireMessage,
};
use citychain_governance::{AuditError, ChainAuditor, Registry};
use citychain_kernel::block::tx_root;
use citychain_kernel::replay::ReplayWindow;
use citychain_kernel::{
    Block, BlockHash, BlockHeader, CommitCertificate, Genesis, Height, PublicKey, SignedTx,
    SigningKey, TxId, ValidatorSet,
};
use citychain_store::Store;
use futures::StreamExt;
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::blockstore::{BlockStore, BlockStoreError, SignedRecord, StoredTip};
use crate::config::ConsensusSection;
use crate::intake::{ACK_WAIT, Answer, Arrival, FULL_RETRY, Held, answer, pull_mempool};
use crate::traces::{CommitMetrics, TxTraces, decide_span};

/// What stops a validator.
#[derive(Debug, Error)]
pub enum ValidatorError {
    /// NATS failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The block store failed.
    #[error(transparent)]
    BlockStore(#[from] BlockStoreError),
    /// A block from CHAIN or from consensus does not verify: the validator stops rather than
    /// build on it.
    #[error("block {height} does not verify: {source}")]
    Unverifiable {
        /// The height.
        height: u64,
        /// What is wrong: the block, or a signer governance refuses.
        source: AuditError,
    },
    /// The stored governance registry does not decode or does not fit the stored chain.
    #[error("stored governance registry: {0}")]
    Registry(String),
    /// The key is not one of the validators.
    #[error("key {0} is not a validator of this chain")]
    NotAValidator(PublicKey),
}

/// What the status query reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The height being decided.
    pub height: u64,
    /// The round at that height.
    pub round: u32,
    /// Transactions waiting in the mempool.
    pub mempool_depth: u64,
    /// Transactions committed so far.
    pub committed_txs: u64,
    /// Validators whose messages were received, by key.
    pub validators_seen: BTreeSet<String>,
    /// Dropped inputs by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Equivocations detected.
    pub evidence: u64,
}

/// The subjects a chain's validators talk on.
#[derive(Debug, Clone)]
pub struct Subjects {
    /// Messages for every validator.
    pub broadcast: String,
    /// Prefix of each validator's own subject (`<prefix>.<key hex>`).
    pub direct_prefix: String,
    /// The streams, whose block service subjects the validators answer on.
    pub blocks: StreamsConfig,
    /// Where evidence of equivocation is published (in the EVENTS stream).
    pub evidence: String,
}

impl Subjects {
    /// The subjects of `streams`' chain.
    pub fn new(streams: &StreamsConfig) -> Result<Self, BusError> {
        Ok(Subjects {
            broadcast: format!("{}.consensus.all", streams.chain_subject_prefix()),
            direct_prefix: format!("{}.consensus.to", streams.chain_subject_prefix()),
            blocks: streams.clone(),
            evidence: streams.event_subject("consensus", "Equivocation")?,
        })
    }

    fn direct(&self, key: &PublicKey) -> String {
        format!("{}.{key}", self.direct_prefix)
    }

    /// The block service subject of the validator with `key`.
    pub fn blocks(&self, key: &PublicKey) -> String {
        self.blocks.block_service_subject(&key.to_string())
    }
}

/// The header naming the sending validator's key (hex) on consensus messages. It only lets a
/// validator skip its own echoed messages; the engine authenticates every message by its
/// signature, never by this header.
const SENDER_HEADER: &str = "Citychain-Sender";

/// Everything a validator needs.
#[derive(Debug, Clone)]
pub struct ValidatorSetup {
    /// The chain's genesis.
    pub genesis: Genesis,
    /// This validator's key.
    pub key: SigningKey,
    /// Limits and timings.
    pub section: ConsensusSection,
    /// The streams of the chain.
    pub streams: StreamsConfig,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The rules a proposed block's transactions must meet beyond what the engine checks: block
/// limits, the replay window at its height, and a bound on how far its time may be ahead of
/// our clock.
#[derive(Clone)]
struct ProposalRules {
    replay: Arc<Mutex<ReplayWindow>>,
    /// Governance after the last decided block: who may sign at the next height. The node
    /// advances it itself, in decision order, through [`BlockChecker::next_validators`].
    registry: Arc<Mutex<Registry>>,
    /// Transactions whose signatures the intake verified and that have not committed yet;
    /// judging a block verifies only the others.
    verified: Arc<Mutex<BTreeSet<VerifiedTx>>>,
    limits: BlockLimits,
    max_drift_ms: u64,
}

impl citychain_consensus_domain::BlockChecker for ProposalRules {
    fn already_verified(&self, tx: &SignedTx) -> bool {
        self.verified
            .lock()
            .is_ok_and(|set| set.contains(&verified_key(tx)))
    }

    fn check(&self, block: &Block) -> Result<(), String> {
        if block.txs.len() > self.limits.max_txs {
            return Err(format!(
                "{} transactions, the limit is {}",
                block.txs.len(),
                self.limits.max_txs
            ));
        }
        let bytes: usize = block.txs.iter().map(|t| t.bytes().len()).sum();
        if bytes > self.limits.max_bytes {
            return Err(format!(
                "{bytes} transaction bytes, the limit is {}",
                self.limits.max_bytes
            ));
        }
        let ahead = block.header.time_unix_ms.saturating_sub(now_ms());
        if ahead > self.max_drift_ms {
            return Err(format!(
                "block time is {ahead} ms ahead of this validator's clock, the bound is {}",
                self.max_drift_ms
            ));
        }
        {
            let registry = self.registry.lock().map_err(|_| "registry poisoned")?;
            citychain_txrules::check_block(&registry, &block.txs)
                .map_err(|(index, why)| format!("transaction {index}: {why}"))?;
        }
        let replay = self.replay.lock().map_err(|_| "replay window poisoned")?;
        replay
            .check_block(&block.txs, block.header.height)
            .map_err(|(index, why)| format!("transaction {index}: {why}"))
    }

    fn next_validators(&self, decided: &Block) -> Option<ValidatorSet> {
        let mut registry = self.registry.lock().ok()?;
        if registry.next_height() != decided.header.height {
            return None; // Already applied (a block fed twice); the set stands.
        }
        let before = registry.next_validator_set();
        match registry.apply_block(decided.header.height, &decided.txs) {
            Ok(outcome) if outcome.validators_changed => {
                let after = registry.next_validator_set();
                tracing::info!(
                    height = decided.header.height.0 + 1,
                    validators = after.len(),
                    "validator set changes at the next height"
                );
                (after != before).then_some(after)
            }
            Ok(_) => None,
            Err(err) => {
                tracing::error!(error = %err, "governance cannot apply a decided block");
                None
            }
        }
    }
}

/// Keeps the transactions of a block being assembled that the chain admits now
/// ([`citychain_txrules`]), with the citizens' quotas of one block counted in order.
fn retain_admissible(registry: &Mutex<Registry>, txs: &mut Vec<SignedTx>) {
    let Ok(registry) = registry.lock() else {
        txs.clear();
        return;
    };
    citychain_txrules::retain_for_block(
        &registry,
        txs,
        |tx| tx,
        |tx: &SignedTx, why: citychain_txrules::Inadmissible| {
            tracing::debug!(tx = %tx.id(), reason = %why, "transaction left out: the chain does not admit it");
        },
    );
}

/// A transaction whose signature was verified: its id with the signature, since the id does
/// not cover the signature and a block could carry the same intent with a bad one.
type VerifiedTx = (TxId, [u8; 64]);

fn verified_key(tx: &SignedTx) -> VerifiedTx {
    (tx.id(), tx.signature().to_bytes())
}

/// A running validator's engine state, owned by one task.
struct Engine<S: Store> {
    setup: ValidatorSetup,
    /// This validator's key in hex, as [`SENDER_HEADER`] carries it.
    own_key: String,
    bus: Bus,
    subjects: Subjects,
    store: BlockStore<S>,
    node: Node<ProposalRules>,
    replay: Arc<Mutex<ReplayWindow>>,
    verified: Arc<Mutex<BTreeSet<VerifiedTx>>>,
    mempool: Mempool,
    limits: BlockLimits,
    verifier: ChainAuditor,
    registry: Arc<Mutex<Registry>>,
    pending: Option<ValueRequest>,
    pending_since_ms: u64,
    last_block_ms: u64,
    timers: mpsc::UnboundedSender<(u64, TimerKind, u32)>,
    status: Arc<Mutex<Status>>,
    traces: TxTraces,
    commit_metrics: CommitMetrics,
    /// The height whose CHAIN message was found not to be a block (counted once).
    chain_gap: Option<u64>,
    /// MEMPOOL deliveries of the transactions in the pool, acknowledged once they commit.
    held: Held,
}

/// Runs a validator until `shutdown` resolves.
pub async fn run<S: Store + Clone + 'static>(
    setup: ValidatorSetup,
    bus: Bus,
    store: S,
    status: Arc<Mutex<Status>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ValidatorError> {
    let key = setup.key.public_key();
    let chain_id = setup.genesis.chain_id.clone();
    let subjects = Subjects::new(&setup.streams)?;
    let blocks = BlockStore::new(store);
    let section = setup.section.clone();

    // Catch up from CHAIN before voting: the stream may hold blocks decided while we were down.
    let mut verifier = match blocks.tip().await? {
        Some(tip) => {
            let stored = blocks
                .registry()
                .await?
                .ok_or_else(|| ValidatorError::Registry("missing beside a stored tip".into()))?;
            let registry =
                Registry::decode(&stored).map_err(|e| ValidatorError::Registry(e.to_string()))?;
            let last =
                checked_tip_block(&bus, &setup.streams, &blocks, &tip, &registry, &key).await?;
            ChainAuditor::resume(&setup.genesis, &last.header, tip.transactions, registry)
                .map_err(|e| ValidatorError::Registry(e.to_string()))?
        }
        None => ChainAuditor::new(&setup.genesis),
    };
    let mut replay = blocks.replay_window(section.max_ttl).await?;
    catch_up_from_chain(
        &bus,
        &setup.streams,
        &blocks,
        &mut verifier,
        &mut replay,
        &key,
    )
    .await?;
    let tip = blocks.tip().await?;
    let validators = verifier.verifier().validators().clone();
    let Some(me) = validators.get(&key) else {
        return Err(ValidatorError::NotAValidator(key));
    };
    let durable = citychain_bus::access::validator_durable(me.member_id.as_str());
    let registry = Arc::new(Mutex::new(verifier.registry().clone()));

    let replay = Arc::new(Mutex::new(replay));
    let limits = BlockLimits {
        max_txs: section.max_block_txs,
        max_bytes: section.max_block_bytes,
    };
    let verified = Arc::new(Mutex::new(BTreeSet::new()));
    let rules = ProposalRules {
        replay: replay.clone(),
        registry: registry.clone(),
        verified: verified.clone(),
        limits,
        max_drift_ms: section.max_clock_drift_ms,
    };
    let params = NodeParams {
        propose_ms: section.propose_timeout_ms(),
        genesis_time_unix_ms: setup.genesis.genesis_time_unix_ms,
        ..NodeParams::default()
    };
    let node = Node::new(chain_id, validators, setup.key.clone(), params, rules);

    let (net_tx, mut net_rx) = mpsc::channel::<Bytes>(8_192);
    let (timer_tx, mut timer_rx) = mpsc::unbounded_channel();
    let (pool_tx, mut pool_rx) = mpsc::channel::<Vec<Arrival>>(4);
    let mut tasks = tokio::task::JoinSet::new();
    for subject in [subjects.broadcast.clone(), subjects.direct(&key)] {
        let mut sub =
            bus.client()
                .subscribe(subject.clone())
                .await
                .map_err(|e| BusError::Subscribe {
                    subject,
                    reason: e.to_string(),
                })?;
        let net_tx = net_tx.clone();
        let own = key.to_string();
        tasks.spawn(async move {
            while let Some(message) = sub.next().await {
                // NATS echoes our own broadcasts back; the engine never needs them, and
                // decoding our own proposal would cost as much as a peer's.
                let echoed = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(SENDER_HEADER))
                    .is_some_and(|sender| sender.as_str() == own);
                if echoed {
                    continue;
                }
                if net_tx.send(message.payload).await.is_err() {
                    break;
                }
            }
        });
    }
    bus.flush().await?;
    let max_held = u32::try_from(section.mempool_max_txs.saturating_add(4_096)).unwrap_or(u32::MAX);
    tasks.spawn(pull_mempool(
        bus.clone(),
        setup.streams.clone(),
        durable,
        max_held,
        pool_tx,
    ));
    let server_store = blocks.clone();
    let (server_bus, server_streams) = (bus.clone(), setup.streams.clone());
    let _block_server = bus
        .serve(&subjects.blocks(&key), None, move |request| {
            let store = server_store.clone();
            let (bus, streams) = (server_bus.clone(), server_streams.clone());
            async move { serve_block(&bus, &streams, &store, &request.payload).await }
        })
        .await?;

    let mut engine = Engine {
        traces: TxTraces::new(section.mempool_max_txs),
        commit_metrics: CommitMetrics::new(),
        chain_gap: None,
        held: Held::default(),
        own_key: key.to_string(),
        bus,
        subjects,
        store: blocks,
        node,
        replay,
        verified,
        mempool: Mempool::new(PoolLimits {
            max_txs: section.mempool_max_txs,
            max_bytes: section.mempool_max_bytes,
        }),
        limits,
        verifier,
        registry,
        pending: None,
        pending_since_ms: 0,
        last_block_ms: tip.map_or(now_ms(), |t| t.time_unix_ms),
        timers: timer_tx,
        status,
        setup,
    };
    let start_height = tip.map_or(1, |t| t.height + 1);
    let previous = tip.map(|t| Tip {
        hash: t.hash,
        time_unix_ms: t.time_unix_ms,
    });
    // What this validator signed at the height it resumes, so it never signs it differently.
    let signed = engine.store.signed_from(start_height).await?;
    engine
        .node
        .restore_signed(signed.iter().filter_map(|record| {
            Envelope::decode(&record.bytes)
                .ok()
                .and_then(|e| SignedMessage::from_wire(e.message))
        }));
    let outputs = engine.node.start(start_height, previous);
    engine.process(outputs).await?;

    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut chain_check = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(bytes) = net_rx.recv() => {
                let outputs = match Envelope::decode(&bytes) {
                    Ok(envelope) => {
                        engine.note_sender(&envelope);
                        engine.node.handle(Input::Message(envelope))
                    }
                    Err(err) => {
                        engine.count_drop("undecodable");
                        tracing::debug!(error = %err, "undecodable consensus message");
                        Vec::new()
                    }
                };
                engine.process(outputs).await?;
            }
            Some((height, kind, round)) = timer_rx.recv() => {
                let outputs = engine.node.handle(Input::TimeoutElapsed { height, kind, round });
                engine.process(outputs).await?;
            }
            Some(txs) = pool_rx.recv(), if !engine.mempool.is_full() => {
                engine.admit(txs);
                engine.try_propose().await?;
            }
            _ = tick.tick() => engine.try_propose().await?,
            _ = chain_check.tick() => engine.follow_chain().await?,
        }
        engine.publish_status();
    }
    tasks.abort_all();
    Ok(())
}

impl<S: Store + Clone + 'static> Engine<S> {
    async fn process(&mut self, outputs: Vec<Output>) -> Result<(), ValidatorError> {
        let mut queue: std::collections::VecDeque<Output> = outputs.into();
        while let Some(output) = queue.pop_front() {
            match output {
                Output::Broadcast(envelope) => {
                    self.publish(&self.subjects.broadcast.clone(), &envelope)
                        .await;
                }
                Output::SendTo { to, message } => {
                    self.publish(&self.subjects.direct(&to), &message).await;
                }
                Output::ScheduleTimeout {
                    height,
                    kind,
                    round,
                    after_ms,
                } => {
                    let timers = self.timers.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(after_ms)).await;
                        let _ = timers.send((height, kind, round));
                    });
                }
                // The engine ignores timers it no longer wants, so cancelling is not needed.
                Output::CancelTimeout { .. } | Output::CancelAllTimeouts => {}
                Output::NeedValue(request) => {
                    self.pending = Some(request);
                    self.pending_since_ms = now_ms();
                    queue.extend(self.propose_if_ready());
                }
                Output::Decided { block, round } => self.commit(block, round).await?,
                Output::Evidence(evidence) => {
                    tracing::warn!(?evidence, "equivocation detected");
                    self.with_status(|s| s.evidence += 1);
                    let text = format!("{evidence:?}");
                    let id = citychain_kernel::hash::domain_hash(
                        citychain_kernel::hash::Domain::ConsensusMessage,
                        text.as_bytes(),
                    );
                    let subject = self.subjects.evidence.clone();
                    if let Err(err) = self
                        .bus
                        .publish_idempotent(&subject, &id.to_hex(), text.into(), HeaderMap::new())
                        .await
                    {
                        tracing::error!(error = %err, "evidence not published");
                    }
                }
                Output::Dropped { reason } => self.count_drop(reason.label()),
                Output::Signed(message) => {
                    // Stored (fsynced) before the broadcast that follows it in this batch.
                    let (height, round, kind) = message.slot();
                    let envelope = Envelope {
                        chain_id: self.setup.genesis.chain_id.clone(),
                        message: message.to_wire(),
                    };
                    self.store
                        .record_signed(&SignedRecord {
                            height,
                            round,
                            kind,
                            bytes: envelope.encode(),
                        })
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn publish(&self, subject: &str, envelope: &Envelope) {
        let mut headers = HeaderMap::new();
        headers.insert(SENDER_HEADER, self.own_key.as_str());
        if let Err(err) = self
            .bus
            .client()
            .publish_with_headers(subject.to_owned(), headers, envelope.encode().into())
            .await
        {
            tracing::warn!(subject, error = %err, "consensus message not sent");
        }
    }

    /// Records which validators are heard from: the senders named by votes and proposals that
    /// name a validator. The signature is checked by the engine afterwards, so this is a
    /// liveness view for operators, not an authenticated one.
    fn note_sender(&self, envelope: &Envelope) {
        let sender = match &envelope.message {
            WireMessage::Vote(v) => v.validator.0,
            WireMessage::Proposal(p) => p.proposer.0,
            _ => return,
        };
        if self.node.kernel_validators().get(&sender).is_some() {
            self.with_status(|s| {
                s.validators_seen.insert(sender.to_string());
            });
        }
    }

    fn count_drop(&self, label: &str) {
        self.with_status(|s| *s.dropped.entry(label.to_owned()).or_default() += 1);
    }

    fn with_status(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut status) = self.status.lock() {
            f(&mut status);
        }
    }

    fn publish_status(&self) {
        let height = self.node.height();
        let round = self.node.round().unwrap_or(0);
        let depth = self.mempool.len() as u64;
        let committed = self.verifier.verifier().transactions();
        self.with_status(|s| {
            s.height = height;
            s.round = round;
            s.mempool_depth = depth;
            s.committed_txs = committed;
        });
    }

    /// Takes arrivals into the pool. Each delivery is answered by what became of it (see
    /// [`crate::intake`]): held while its transaction waits, acked once it can no longer commit,
    /// terminated when the chain refuses it, retried later when the pool is full.
    fn admit(&mut self, txs: Vec<Arrival>) {
        let mut done = Vec::new();
        let mut refused = Vec::new();
        let mut retry = Vec::new();
        let mut later = Vec::new();
        let (Ok(registry), Ok(replay), Ok(mut verified)) = (
            self.registry.lock(),
            self.replay.lock(),
            self.verified.lock(),
        ) else {
            return;
        };
        let next = Height(self.node.height());
        // Bounded like the pool; when full (expired transactions linger here), start over:
        // forgetting only means verifying again.
        if verified.len() > 2 * self.setup.section.mempool_max_txs {
            verified.clear();
        }
        for (tx, trace, reply) in txs {
            if let Err(why) = citychain_txrules::admit(&registry, &tx) {
                tracing::debug!(tx = %tx.id(), reason = %why, "transaction left out: the chain does not admit it");
                refused.push(reply);
                continue;
            }
            let id = tx.id();
            let key = verified_key(&tx);
            let traced = self.traces.wants(&trace);
            match self.mempool.admit(tx, &replay, next) {
                Ok(()) => {
                    verified.insert(key);
                    if traced {
                        self.traces.admitted(id, &trace);
                    }
                    self.held.hold(id, reply);
                }
                // Delivered again while it waits.
                Err(MempoolRejection::Duplicate(_)) => self.held.hold(id, reply),
                Err(MempoolRejection::Full { .. }) => retry.push(reply),
                // Already committed, or expired, or its nonce used: nothing left to do.
                Err(MempoolRejection::Replay(why)) => {
                    tracing::debug!(tx = %id, reason = %why, "transaction not admitted");
                    done.push(reply);
                }
                // Another transaction with its (signer, nonce) waits: if that one commits,
                // this one is a replay when it comes back; if that one expires, this one may
                // still commit. So it is asked for again, not refused.
                Err(why @ MempoolRejection::NonceTaken { .. }) => {
                    tracing::debug!(tx = %id, reason = %why, "transaction not admitted yet");
                    later.push(reply);
                }
            }
        }
        answer(done, Answer::Ack);
        answer(refused, Answer::Term);
        answer(retry, Answer::Retry(FULL_RETRY));
        answer(later, Answer::Retry(ACK_WAIT));
    }

    async fn try_propose(&mut self) -> Result<(), ValidatorError> {
        let outputs = self.propose_if_ready();
        if outputs.is_empty() {
            return Ok(());
        }
        Box::pin(self.process(outputs)).await
    }

    /// Answers a pending request for a block: at once when transactions wait, otherwise with
    /// an empty block once the heartbeat is due.
    fn propose_if_ready(&mut self) -> Vec<Output> {
        let Some(request) = self.pending.clone() else {
            return Vec::new();
        };
        if request.height != self.node.height() {
            self.pending = None;
            return Vec::new();
        }
        let now = now_ms();
        // The heartbeat counts from the later of the last block and the request, so a busy
        // chain whose pool is empty for a moment waits for transactions instead of
        // proposing an empty block.
        let since = self.last_block_ms.max(self.pending_since_ms);
        let heartbeat_due = now.saturating_sub(since) >= self.setup.section.heartbeat_ms;
        if self.mempool.is_empty() && !heartbeat_due {
            return Vec::new();
        }
        self.pending = None;
        let mut txs = match self.replay.lock() {
            Ok(replay) => self
                .mempool
                .select(self.limits, &replay, Height(request.height)),
            Err(_) => Vec::new(),
        };
        // Governance may have changed since admission (a key rotated, a member suspended),
        // and the citizens' quotas hold per block.
        retain_admissible(&self.registry, &mut txs);
        let header = BlockHeader {
            chain_id: self.setup.genesis.chain_id.clone(),
            height: Height(request.height),
            time_unix_ms: now.max(request.min_time_unix_ms),
            prev_hash: request.prev_hash,
            tx_root: tx_root(&txs),
            tx_count: txs.len() as u64,
            validators_hash: request.validators_hash,
            proposer: request.proposer,
        };
        let block = with_placeholder_certificate(&Block {
            certificate: CommitCertificate {
                height: header.height,
                round: request.round,
                block_hash: header.hash(),
                signatures: Vec::new(),
            },
            header,
            txs,
        });
        self.node.handle(Input::ProposeValue(block))
    }

    /// Verifies, stores and publishes a decided block.
    async fn commit(&mut self, block: Block, round: u32) -> Result<(), ValidatorError> {
        let height = block.header.height.0;
        if height < self.verifier.next_height().0 {
            return Ok(()); // Already committed (caught up from CHAIN meanwhile).
        }
        let span = decide_span(&block, round, &self.own_key);
        self.commit_in(block, round, &span)
            .instrument(span.clone())
            .await
    }

    async fn commit_in(
        &mut self,
        block: Block,
        round: u32,
        span: &tracing::Span,
    ) -> Result<(), ValidatorError> {
        let height = block.header.height.0;
        // The engine verified the body's signatures before voting for it (or, for a block
        // received decided, before accepting it); links and the certificate are checked again.
        self.verifier
            .push_with_verified_body(&block)
            .map_err(|source| ValidatorError::Unverifiable { height, source })?;
        let registry = self.verifier.registry().encode();
        let settled;
        {
            let Ok(mut replay) = self.replay.lock() else {
                return Ok(());
            };
            // The engine checked the window before voting; a failure here would be a bug.
            if let Err((index, why)) = replay.apply_block(&block.txs, block.header.height) {
                tracing::error!(height, index, reason = %why, "decided block breaks the replay window");
            }
            let next = Height(height + 1);
            settled = self.mempool.after_commit(&block.txs, &replay, next);
            if let Ok(mut verified) = self.verified.lock() {
                for tx in &block.txs {
                    verified.remove(&verified_key(tx));
                }
            }
        }
        self.store.append(&block, &registry).await?;
        // Durable here now: the deliveries of what the block carried, and of what can no
        // longer commit, are done with.
        self.held
            .settle(block.txs.iter().map(SignedTx::id).chain(settled));
        self.last_block_ms = block.header.time_unix_ms;
        self.commit_metrics.committed(round);
        let carried = self.traces.committed(&block, span);
        self.traces.prune(&self.mempool);
        let mut headers = HeaderMap::new();
        citychain_bus::trace::inject_tx_traces(
            &mut headers,
            carried.iter().map(|(i, cx)| (*i, cx)),
        );
        let appended =
            append_to_chain(&self.bus, &self.setup.streams, &self.store, &block, headers).await?;
        if let Appended::Foreign { found } = appended {
            // Only validators may publish on CHAIN, so this is a validator's (or the server's)
            // fault; the block stays in this store and the block service, where followers
            // repair the gap from.
            self.count_drop("foreign message on CHAIN");
            tracing::error!(
                height,
                found = %found,
                ours = %block.hash(),
                "CHAIN holds something else at the height this validator decided; carrying on"
            );
        }
        tracing::info!(height, txs = block.txs.len(), hash = %block.hash(), "committed");
        Ok(())
    }

    /// When CHAIN is ahead of this validator (it was cut off longer than its peers keep
    /// recent blocks), feeds the next block from CHAIN to the engine as a decided block.
    async fn follow_chain(&mut self) -> Result<(), ValidatorError> {
        let stream = self.setup.streams.stream_name(StreamKind::Chain);
        let state = self.bus.stream_state(&stream).await?;
        let height = self.node.height();
        if state.last_sequence < height {
            return Ok(());
        }
        let message = self.bus.get_message(&stream, height).await?;
        // The engine checks a decided block's certificate; a message that is not a block is
        // replaced by the other validators' copies, which it checks the same way.
        let candidates = match Block::decode(&message.payload) {
            Ok(block) => vec![block],
            // Counted and asked for once per height; consensus brings the block otherwise.
            Err(_) if self.chain_gap == Some(height) => return Ok(()),
            Err(err) => {
                self.chain_gap = Some(height);
                self.count_drop("foreign message on CHAIN");
                tracing::error!(height, error = %err, "CHAIN's message is not a block; asking the other validators");
                let peers = peer_keys(&self.verifier, &self.setup.key.public_key());
                blocks_from_peers(&self.bus, &self.setup.streams, &peers, height).await
            }
        };
        for block in candidates {
            let envelope = Envelope {
                chain_id: self.setup.genesis.chain_id.clone(),
                message: WireMessage::DecidedBlock(block),
            };
            let outputs = self.node.handle(Input::Message(envelope));
            self.process(outputs).await?;
            if self.node.height() > height {
                break;
            }
        }
        Ok(())
    }
}

/// What [`append_to_chain`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// CHAIN holds the block at its height (appended now, or by another validator first).
    Ours,
    /// CHAIN holds something else at the block's height: `found` is its message id.
    Foreign {
        /// The message id at that sequence, or `(none)`.
        found: String,
    },
}

/// Appends `block` to CHAIN at sequence = height. A conflict is fine when the stream already
/// holds this very block (another validator was first); when the stream is behind our store,
/// the missing blocks are appended first. When the stream holds something else at that
/// height (garbage, or another block) the answer says so and nothing fails: the validator
/// carries on and readers repair from the validators' block service.
pub async fn append_to_chain<S: Store>(
    bus: &Bus,
    streams: &StreamsConfig,
    store: &BlockStore<S>,
    block: &Block,
    headers: HeaderMap,
) -> Result<Appended, ValidatorError> {
    let subject = streams.chain_subject();
    let stream = streams.stream_name(StreamKind::Chain);
    let height = block.header.height.0;
    let hash = block.hash().to_string();
    let encoded = Bytes::from(block.encode());
    loop {
        match bus
            .append_expected(
                &subject,
                height - 1,
                &hash,
                encoded.clone(),
                headers.clone(),
            )
            .await
        {
            Ok(appended) if appended.duplicate => {
                return chain_holds(bus, &stream, appended.sequence, &encoded, block.hash()).await;
            }
            Ok(_) => return Ok(Appended::Ours),
            Err(BusError::Conflict { actual, .. }) => {
                let last = match actual {
                    Some(last) => last,
                    None => bus.stream_state(&stream).await?.last_sequence,
                };
                if last >= height {
                    return chain_holds(bus, &stream, height, &encoded, block.hash()).await;
                }
                // The stream lacks blocks below this one: append them from the store.
                for missing in last + 1..height {
                    // A damaged copy is left for the others' (or CHAIN's repair) to fill.
                    let bytes = match store.block_bytes(missing).await {
                        Ok(Some(bytes)) => bytes,
                        Ok(None) | Err(BlockStoreError::Damaged { .. }) => break,
                        Err(err) => return Err(err.into()),
                    };
                    let Ok(earlier) = Block::decode(&bytes) else {
                        break;
                    };
                    let id = earlier.hash().to_string();
                    match bus
                        .append_expected(&subject, missing - 1, &id, bytes.into(), HeaderMap::new())
                        .await
                    {
                        Ok(_) | Err(BusError::Conflict { .. }) => {}
                        Err(other) => return Err(other.into()),
                    }
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
}

/// Whether CHAIN's message `sequence` is the block `ours` (encoded as `encoded`). The message
/// id is only a hint (anyone who may publish on CHAIN can claim one): what CHAIN holds is ours
/// only if it decodes to a block with our block's hash.
async fn chain_holds(
    bus: &Bus,
    stream: &str,
    sequence: u64,
    encoded: &Bytes,
    ours: BlockHash,
) -> Result<Appended, ValidatorError> {
    let found = bus.get_message(stream, sequence).await?;
    // Another validator's copy of the same block carries the precommits it collected, so the
    // bytes may differ; the header hash names the block.
    let same = found.payload == *encoded
        || Block::decode(&found.payload).is_ok_and(|block| block.hash() == ours);
    Ok(if same {
        Appended::Ours
    } else {
        Appended::Foreign {
            found: found.msg_id.unwrap_or_else(|| "(none)".to_owned()),
        }
    })
}

/// How long a validator waits for a peer's copy of a block that CHAIN holds damaged.
const PEER_BLOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// Verifies and stores every block CHAIN holds beyond the stored tip. A message that is not
/// the next block (garbage, or a block that does not verify) is replaced by a peer's copy
/// from the block service; when no peer has one, catching up stops there and consensus
/// brings the validator up to date.
async fn catch_up_from_chain<S: Store>(
    bus: &Bus,
    streams: &StreamsConfig,
    store: &BlockStore<S>,
    verifier: &mut ChainAuditor,
    replay: &mut ReplayWindow,
    own: &PublicKey,
) -> Result<(), ValidatorError> {
    let stream = streams.stream_name(StreamKind::Chain);
    let last = bus.stream_state(&stream).await?.last_sequence;
    let mut height = verifier.next_height().0;
    while height <= last {
        let message = bus.get_message(&stream, height).await?;
        let from_chain = Block::decode(&message.payload)
            .map_err(|e| e.to_string())
            .and_then(|block| {
                verifier
                    .push(&block)
                    .map(|_| block)
                    .map_err(|e| e.to_string())
            });
        let block = match from_chain {
            Ok(block) => block,
            Err(why) => {
                tracing::error!(
                    height,
                    reason = %why,
                    "CHAIN's message is not the next block; asking the other validators"
                );
                let peers = peer_keys(verifier, own);
                let mut repaired = None;
                for candidate in blocks_from_peers(bus, streams, &peers, height).await {
                    if verifier.push(&candidate).is_ok() {
                        repaired = Some(candidate);
                        break;
                    }
                }
                match repaired {
                    Some(block) => block,
                    None => {
                        tracing::warn!(
                            height,
                            "no validator has block {height} yet; consensus will bring it"
                        );
                        break;
                    }
                }
            }
        };
        if let Err((index, why)) = replay.apply_block(&block.txs, block.header.height) {
            tracing::error!(height, index, reason = %why, "CHAIN block breaks the replay window");
        }
        store.append(&block, &verifier.registry().encode()).await?;
        height += 1;
    }
    if height > 1 {
        tracing::info!(height = height - 1, "caught up from CHAIN");
    }
    Ok(())
}

/// The stored tip block, checked against the hash in the tip record (kept apart from the
/// block's bytes). A damaged, missing or different block is rewritten from a copy with that
/// hash whose transactions, signatures and certificate (by the set `registry` had in force
/// there) verify, from CHAIN else from a peer; with no such copy anywhere the validator stops,
/// naming the damage, rather than vote on a chain it cannot vouch for.
async fn checked_tip_block<S: Store>(
    bus: &Bus,
    streams: &StreamsConfig,
    blocks: &BlockStore<S>,
    tip: &StoredTip,
    registry: &Registry,
    own: &PublicKey,
) -> Result<Block, ValidatorError> {
    let damage = match blocks.block(tip.height).await {
        Ok(Some(block)) if block.hash() == tip.hash => return Ok(block),
        Ok(Some(block)) => format!(
            "it hashes to {}, the tip record says {}",
            block.hash(),
            tip.hash
        ),
        Ok(None) => "it is missing".to_string(),
        Err(BlockStoreError::Damaged { what, .. }) => what,
        Err(err) => return Err(err.into()),
    };
    tracing::error!(height = tip.height, damage = %damage, "the stored tip block is damaged; fetching the block with the tip's hash");
    let set = registry.validator_set_for(Height(tip.height));
    let good = |b: &Block| {
        b.hash() == tip.hash
            && b.verify_body(registry.chain_id()).is_ok()
            && set
                .as_ref()
                .is_some_and(|set| b.certificate.verify(&b.header, set).is_ok())
    };
    let stream = streams.stream_name(StreamKind::Chain);
    let mut copies = Vec::new();
    if let Ok(message) = bus.get_message(&stream, tip.height).await
        && let Ok(block) = Block::decode(&message.payload)
    {
        copies.push(("CHAIN", block));
    }
    if !copies.iter().any(|(_, b)| good(b)) {
        let peers: Vec<PublicKey> = registry
            .next_validator_set()
            .validators()
            .iter()
            .map(|v| v.key)
            .filter(|k| k != own)
            .collect();
        let from_peers = blocks_from_peers(bus, streams, &peers, tip.height).await;
        copies.extend(from_peers.into_iter().map(|b| ("a peer", b)));
    }
    match copies.into_iter().find(|(_, b)| good(b)) {
        Some((source, copy)) => {
            blocks.rewrite(tip.height, &copy).await?;
            tracing::warn!(
                height = tip.height,
                from = source,
                "damaged tip block rewritten"
            );
            Ok(copy)
        }
        None => Err(BlockStoreError::Damaged {
            height: tip.height,
            what: format!("{damage}; no copy with the tip's hash on CHAIN or at any peer"),
        }
        .into()),
    }
}

/// The keys of the validators in force, but `own`.
fn peer_keys(verifier: &ChainAuditor, own: &PublicKey) -> Vec<PublicKey> {
    verifier
        .verifier()
        .validators()
        .validators()
        .iter()
        .map(|v| v.key)
        .filter(|key| key != own)
        .collect()
}

/// Block `height` as each of `peers` that has it returns it, decoded (not yet verified).
async fn blocks_from_peers(
    bus: &Bus,
    streams: &StreamsConfig,
    peers: &[PublicKey],
    height: u64,
) -> Vec<Block> {
    let mut blocks = Vec::new();
    for key in peers {
        let subject = streams.block_service_subject(&key.to_string());
        let request = Bytes::copy_from_slice(&height.to_be_bytes());
        match bus
            .request(&subject, request, HeaderMap::new(), PEER_BLOCK_TIMEOUT)
            .await
        {
            Ok(reply) if !reply.payload.is_empty() => match Block::decode(&reply.payload) {
                Ok(block) => blocks.push(block),
                Err(err) => {
                    tracing::debug!(height, validator = %key, error = %err, "peer's block does not decode")
                }
            },
            Ok(_) => tracing::debug!(height, validator = %key, "peer lacks the block"),
            Err(err) => {
                tracing::debug!(height, validator = %key, error = %err, "no block from peer")
            }
        }
    }
    blocks
}

/// Answers a block request: 8 bytes of height in, the encoded block (or nothing) out. A
/// stored block found damaged is never sent: it is rewritten from CHAIN's copy if that copy
/// is the block the chain links to there ([`repair_stored_block`]), and sent only then.
async fn serve_block<S: Store>(
    bus: &Bus,
    streams: &StreamsConfig,
    store: &BlockStore<S>,
    request: &[u8],
) -> Bytes {
    let Ok(height) = <[u8; 8]>::try_from(request) else {
        return Bytes::new();
    };
    let height = u64::from_be_bytes(height);
    match store.block_bytes(height).await {
        Ok(Some(bytes)) => bytes.into(),
        Ok(None) => Bytes::new(),
        Err(err @ BlockStoreError::Damaged { .. }) => {
            tracing::error!(height, error = %err, "a stored block is damaged; rewriting it from CHAIN");
            match repair_stored_block(bus, streams, store, height).await {
                Some(copy) => {
                    tracing::warn!(height, "damaged block rewritten from CHAIN");
                    copy.encode().into()
                }
                None => {
                    tracing::error!(
                        height,
                        "no copy on CHAIN links to the stored chain; the damaged block stays unserved"
                    );
                    Bytes::new()
                }
            }
        }
        Err(err) => {
            tracing::error!(height, error = %err, "cannot serve a stored block");
            Bytes::new()
        }
    }
}

/// Rewrites the stored block at `height` from CHAIN's copy, if that copy's transactions and
/// signatures verify and it has the hash the store vouches for apart from the damaged bytes: the tip record's hash at the tip, below it
/// the `prev_hash` of the stored block above (itself read through its seal). `None` when no
/// such copy is there.
async fn repair_stored_block<S: Store>(
    bus: &Bus,
    streams: &StreamsConfig,
    store: &BlockStore<S>,
    height: u64,
) -> Option<Block> {
    let tip = store.tip().await.ok()??;
    let expected = if height == tip.height {
        tip.hash
    } else {
        store.block(height + 1).await.ok()??.header.prev_hash
    };
    let stream = streams.stream_name(StreamKind::Chain);
    let message = bus.get_message(&stream, height).await.ok()?;
    let copy = Block::decode(&message.payload).ok()?;
    // Whoever is served the block checks its certificate; its body is checked here.
    if copy.hash() != expected || copy.verify_body(&copy.header.chain_id).is_err() {
        return None;
    }
    store.rewrite(height, &copy).await.ok()?;
    Some(copy)
}
