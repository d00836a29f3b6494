//! A deterministic simulation of a validator network, for testing [`Node`] against message
//! loss, delay, duplication and reordering and against Byzantine validators.
//!
//! Everything runs in one thread in virtual time, driven by a seeded PRNG (splitmix64), so a
//! seed replays exactly. Messages travel as encoded bytes (so the wire codec is exercised) with
//! random delay, a small drop and duplication probability, and therefore out of order.
//!
//! **Byzantine validators** run two honest engines with the same key ("clones"), each talking
//! to one half of the honest validators: each clone proposes its own block and votes by its own
//! view, so the validator as a whole sends different blocks and conflicting prevotes and
//! precommits to different peers. A fraction of each clone's messages leaks to the other half,
//! so honest validators see both sides of the equivocation. On top of that every Byzantine
//! validator (and one key outside the validator set) injects junk: votes forged in an honest
//! validator's name, votes for far-future heights, proposals out of turn, messages for another
//! chain, messages from a non-member, and undecodable bytes.
//!
//! **The checker** asserts agreement (no two honest validators decide different blocks at one
//! height), validity (each honest validator's decided chain passes the kernel's
//! [`ChainVerifier`] from genesis) and, when at most one validator is Byzantine, progress (every
//! honest validator reaches the target height within the virtual-time bound).

use std::collections::{BTreeMap, BTreeSet};

use citychain_kernel::genesis::{build_genesis, department_plans};
use citychain_kernel::{
    Block, BlockHash, BlockHeader, ChainId, ChainVerifier, CommitCertificate, Genesis, Height,
    SignedTx, SigningKey, TxBody, proposer_index,
};
use malachitebft_core_types::{NilOrVal, Round, SignedMessage, VoteType};

use crate::context::{
    Address, BlockValue, CityContext, ConsensusSignature, Height as CHeight, Proposal, Vote,
};
use crate::node::{
    EquivocationEvidence, Input, Node, NodeParams, Output, TimerKind, Tip, ValueRequest,
};
use crate::wire::{Envelope, WireMessage};

/// splitmix64: tiny, fast, and good enough to drive a simulation reproducibly.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// 32 random bytes.
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }
}

/// How one simulation run is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The seed of everything random: keys, delays, losses, splits.
    pub seed: u64,
    /// Number of validators.
    pub validators: usize,
    /// How many of them are Byzantine.
    pub byzantine: usize,
    /// Honest validators must reach this height (when `byzantine` ≤ f).
    pub target_height: u64,
    /// Virtual-time bound of the run.
    pub max_virtual_ms: u64,
    /// Largest network delay; each message takes 1..=this.
    pub max_delay_ms: u64,
    /// Probability (per mille) that a message is lost.
    pub drop_per_mille: u64,
    /// Probability (per mille) that a message is delivered twice.
    pub duplicate_per_mille: u64,
    /// Probability (per mille) that a Byzantine clone's message also reaches the other half.
    pub leak_per_mille: u64,
    /// Mean interval between junk injections, per injector.
    pub inject_every_ms: u64,
    /// The nodes' timeouts and bounds.
    pub params: NodeParams,
    /// Mean interval between crash-restarts of an honest validator (0: none). A restarted
    /// validator is a fresh node given back only what it signed, as a real one would be
    /// from its block store.
    pub restart_every_ms: u64,
}

impl SimConfig {
    /// Four validators, `byzantine` of them faulty, target height 5.
    pub fn n4(seed: u64, byzantine: usize) -> Self {
        SimConfig {
            seed,
            validators: 4,
            byzantine,
            target_height: 5,
            max_virtual_ms: 120_000,
            max_delay_ms: 40,
            drop_per_mille: 20,
            duplicate_per_mille: 20,
            leak_per_mille: 250,
            inject_every_ms: 150,
            params: NodeParams {
                propose_ms: 200,
                propose_delta_ms: 100,
                prevote_ms: 100,
                prevote_delta_ms: 50,
                precommit_ms: 100,
                precommit_delta_ms: 50,
                rebroadcast_ms: 300,
                max_future_heights: 8,
                genesis_time_unix_ms: GENESIS_TIME,
                max_proposals_per_height: 64,
                recent_blocks: 16,
                queue_capacity: 4_096,
            },
            restart_every_ms: 0,
        }
    }
}

const GENESIS_TIME: u64 = 1_700_000_000_000;
const CHAIN: &str = "citychain-sim";

/// A property the checker found broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two honest validators decided different blocks at one height.
    Agreement {
        /// The height.
        height: u64,
        /// One validator's block.
        first: BlockHash,
        /// The other's.
        second: BlockHash,
    },
    /// An honest validator's decided chain does not verify from genesis.
    Validity {
        /// The validator's index (key order).
        validator: usize,
        /// The first bad height.
        height: u64,
        /// The kernel's complaint.
        error: String,
    },
    /// An honest validator did not reach the target height in time.
    Progress {
        /// The validator's index (key order).
        validator: usize,
        /// The last height it decided.
        reached: u64,
        /// The target.
        target: u64,
    },
    /// An honest validator signed two conflicting messages (seen as evidence against it).
    HonestEquivocation {
        /// The validator's index (key order).
        validator: usize,
    },
}

/// What a run did and what the checker found.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Broken properties (empty when all hold).
    pub violations: Vec<Violation>,
    /// Last decided height of each honest validator.
    pub honest_heights: Vec<u64>,
    /// Evidence outputs seen across honest validators.
    pub evidence: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Deliveries that did not decode.
    pub undecodable: u64,
    /// Honest nodes' drop counts by reason.
    pub drops: BTreeMap<&'static str, u64>,
    /// Virtual time at the end of the run.
    pub virtual_ms: u64,
}

impl SimReport {
    /// Whether agreement was broken.
    pub fn forked(&self) -> bool {
        self.violations
            .iter()
            .any(|v| matches!(v, Violation::Agreement { .. }))
    }
}

/// The hosts' block rule in the simulation: at most 8 transactions.
fn sim_checker(block: &Block) -> Result<(), String> {
    if block.txs.len() > 8 {
        return Err(format!("{} transactions, at most 8", block.txs.len()));
    }
    Ok(())
}

type SimNode = Node<fn(&Block) -> Result<(), String>>;

struct Slot {
    validator: usize,
    world: u8,
    honest: bool,
    node: SimNode,
    decided: Vec<Block>,
    /// What the node signed, as its host would have stored it.
    signed: Vec<crate::node::SignedMessage>,
}

enum Event {
    Deliver {
        slot: usize,
        bytes: Vec<u8>,
    },
    Timer {
        slot: usize,
        height: u64,
        kind: TimerKind,
        round: u32,
    },
    Value {
        slot: usize,
        request: Box<ValueRequest>,
    },
    Inject {
        injector: usize,
    },
    Restart,
}

struct World {
    cfg: SimConfig,
    rng: SimRng,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    slots: Vec<Slot>,
    keys: Vec<SigningKey>,
    outsider: SigningKey,
    chain_id: ChainId,
    ctx: CityContext,
    report: SimReport,
}

/// Runs one simulation of 4 validators with `byzantine` of them faulty.
pub fn run(seed: u64, byzantine: usize) -> SimReport {
    run_with(SimConfig::n4(seed, byzantine))
}

/// Runs one simulation.
pub fn run_with(cfg: SimConfig) -> SimReport {
    let mut rng = SimRng::new(cfg.seed);
    let (genesis, pairs) = build_genesis(
        CHAIN,
        GENESIS_TIME,
        &department_plans(cfg.validators),
        cfg.validators,
        || rng.bytes32(),
    )
    .expect("a generated genesis is valid");
    let validators = genesis.validator_set();
    // Keys in the validator set's (key) order, so index i is validator i everywhere.
    let keys: Vec<SigningKey> = validators
        .validators()
        .iter()
        .map(|v| {
            pairs
                .iter()
                .find(|p| p.signing.public_key() == v.key)
                .expect("every validator has a key pair")
                .signing
                .clone()
        })
        .collect();
    let chain_id = genesis.chain_id.clone();
    let n = cfg.validators;
    let byzantine: BTreeSet<usize> = (n - cfg.byzantine.min(n)..n).collect();
    let honest: Vec<usize> = (0..n).filter(|i| !byzantine.contains(i)).collect();
    // Split the honest validators into two halves; each Byzantine clone talks to one.
    let split = if honest.len() > 1 {
        1 + rng.below(honest.len() as u64 - 1) as usize
    } else {
        honest.len()
    };

    let mut slots = Vec::new();
    let make = |i: usize| -> SimNode {
        Node::new(
            chain_id.clone(),
            validators.clone(),
            keys[i].clone(),
            cfg.params.clone(),
            sim_checker as fn(&Block) -> Result<(), String>,
        )
    };
    for (pos, &i) in honest.iter().enumerate() {
        slots.push(Slot {
            validator: i,
            world: u8::from(pos >= split),
            honest: true,
            node: make(i),
            decided: Vec::new(),
            signed: Vec::new(),
        });
    }
    for &i in &byzantine {
        for world in 0..2 {
            slots.push(Slot {
                validator: i,
                world,
                honest: false,
                node: make(i),
                decided: Vec::new(),
                signed: Vec::new(),
            });
        }
    }
    let outsider = SigningKey::from_seed(&rng.bytes32());
    let mut world = World {
        ctx: CityContext::new(chain_id.clone()),
        chain_id,
        rng,
        now: 0,
        seq: 0,
        queue: BTreeMap::new(),
        slots,
        keys,
        outsider,
        report: SimReport {
            seed: cfg.seed,
            ..SimReport::default()
        },
        cfg,
    };
    world.run(&genesis);
    world.report
}

impl World {
    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn run(&mut self, genesis: &Genesis) {
        for s in 0..self.slots.len() {
            let out = self.slots[s].node.start(1, None);
            self.apply(s, out);
        }
        let injectors = self.cfg.byzantine + 1;
        for injector in 0..injectors {
            let at = self.rng.below(self.cfg.inject_every_ms * 2);
            self.push(at, Event::Inject { injector });
        }
        if self.cfg.restart_every_ms > 0 {
            let at = 1 + self.rng.below(self.cfg.restart_every_ms * 2);
            self.push(at, Event::Restart);
        }
        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > self.cfg.max_virtual_ms || self.all_done() {
                break;
            }
            self.now = at;
            match event {
                Event::Deliver { slot, bytes } => {
                    self.report.delivered += 1;
                    match Envelope::decode(&bytes) {
                        Ok(env) => {
                            let out = self.slots[slot].node.handle(Input::Message(env));
                            self.apply(slot, out);
                        }
                        Err(_) => self.report.undecodable += 1,
                    }
                }
                Event::Timer {
                    slot,
                    height,
                    kind,
                    round,
                } => {
                    let out = self.slots[slot].node.handle(Input::TimeoutElapsed {
                        height,
                        kind,
                        round,
                    });
                    self.apply(slot, out);
                }
                Event::Value { slot, request } => {
                    let block = self.build_block(slot, &request);
                    let out = self.slots[slot].node.handle(Input::ProposeValue(block));
                    self.apply(slot, out);
                }
                Event::Inject { injector } => {
                    self.inject(injector);
                    let next = self.now + 1 + self.rng.below(self.cfg.inject_every_ms * 2);
                    self.push(next, Event::Inject { injector });
                }
                Event::Restart => {
                    self.restart_one();
                    let next = self.now + 1 + self.rng.below(self.cfg.restart_every_ms * 2);
                    self.push(next, Event::Restart);
                }
            }
        }
        self.report.virtual_ms = self.now;
        self.check(genesis);
    }

    fn all_done(&self) -> bool {
        self.slots
            .iter()
            .filter(|s| s.honest)
            .all(|s| s.decided.len() as u64 >= self.cfg.target_height)
    }

    /// The slots a message from `from` to validator `to` reaches: the honest validator, or the
    /// Byzantine clone on the sender's side; a clone's message also reaches honest validators
    /// of the other side with the leak probability.
    fn targets(&mut self, from: usize, to: usize) -> Vec<usize> {
        let (sender_world, sender_honest) = (self.slots[from].world, self.slots[from].honest);
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.validator != to || i == from {
                continue;
            }
            let same_side = slot.world == sender_world;
            let reaches = if slot.honest {
                sender_honest || same_side
            } else {
                same_side
            };
            out.push((i, reaches, slot.honest));
        }
        let mut chosen = Vec::new();
        for (i, reaches, honest) in out {
            if reaches || (honest && self.rng.chance(self.cfg.leak_per_mille)) {
                chosen.push(i);
            }
        }
        chosen
    }

    fn send(&mut self, slot: usize, bytes: Vec<u8>) {
        if self.rng.chance(self.cfg.drop_per_mille) {
            return;
        }
        let copies = if self.rng.chance(self.cfg.duplicate_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + 1 + self.rng.below(self.cfg.max_delay_ms);
            self.push(
                at,
                Event::Deliver {
                    slot,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    fn apply(&mut self, from: usize, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Broadcast(env) => {
                    let bytes = env.encode();
                    let me = self.slots[from].validator;
                    for v in 0..self.cfg.validators {
                        if v == me {
                            continue;
                        }
                        for t in self.targets(from, v) {
                            self.send(t, bytes.clone());
                        }
                    }
                }
                Output::SendTo { to, message } => {
                    let Some(v) = self.keys.iter().position(|k| k.public_key() == to) else {
                        continue;
                    };
                    let bytes = message.encode();
                    for t in self.targets(from, v) {
                        self.send(t, bytes.clone());
                    }
                }
                Output::ScheduleTimeout {
                    height,
                    kind,
                    round,
                    after_ms,
                } => {
                    let at = self.now + after_ms;
                    self.push(
                        at,
                        Event::Timer {
                            slot: from,
                            height,
                            kind,
                            round,
                        },
                    );
                }
                // The node ignores stale firings, so cancellations need no bookkeeping here.
                Output::CancelTimeout { .. } | Output::CancelAllTimeouts => {}
                // Simulated validators never restart, so nothing signed needs keeping.
                Output::Signed(message) => self.slots[from].signed.push(message),
                Output::NeedValue(request) => {
                    let at = self.now + self.rng.below(5);
                    self.push(
                        at,
                        Event::Value {
                            slot: from,
                            request: Box::new(request),
                        },
                    );
                }
                Output::Decided { block, .. } => self.slots[from].decided.push(block),
                Output::Evidence(evidence) => {
                    if self.slots[from].honest {
                        self.report.evidence += 1;
                        let offender = match &evidence {
                            EquivocationEvidence::Votes { first, .. } => first.validator.0,
                            EquivocationEvidence::Proposals { first, .. } => first.proposer.0,
                        };
                        let accused = self.keys.iter().position(|k| k.public_key() == offender);
                        if let Some(validator) = accused
                            && self
                                .slots
                                .iter()
                                .any(|s| s.validator == validator && s.honest)
                        {
                            self.report
                                .violations
                                .push(Violation::HonestEquivocation { validator });
                        }
                    }
                }
                // Counted by the node itself.
                Output::Dropped { .. } => {}
            }
        }
    }

    /// The host's block: one transaction signed by the proposer, so every block (and each
    /// clone's block) is distinct and the Merkle root and body checks have work to do.
    fn build_block(&mut self, slot: usize, req: &ValueRequest) -> Block {
        let key = &self.keys[self.slots[slot].validator];
        let tx = SignedTx::sign(
            &self.chain_id,
            key,
            self.rng.next_u64(),
            Height(req.height + 100),
            TxBody::new("citychain.sim.v1.Payload", self.rng.bytes32().to_vec()),
        )
        .expect("a simulated transaction is well formed");
        let txs = vec![tx];
        let time = req.min_time_unix_ms.max(GENESIS_TIME + self.now);
        let validators = self.slots[slot].node_validators();
        let header = BlockHeader::new(
            self.chain_id.clone(),
            Height(req.height),
            time,
            req.prev_hash,
            &txs,
            &validators,
            req.proposer,
        );
        let hash = header.hash();
        Block {
            header,
            txs,
            certificate: CommitCertificate {
                height: Height(req.height),
                round: 0,
                block_hash: hash,
                signatures: Vec::new(),
            },
        }
    }

    /// One piece of junk from injector `injector` (Byzantine validator, or the outsider for
    /// the last injector) to a random honest validator.
    fn inject(&mut self, injector: usize) {
        let honest: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].honest)
            .collect();
        if honest.is_empty() {
            return;
        }
        let target = honest[self.rng.below(honest.len() as u64) as usize];
        let height = self.slots[target].node.height().max(1);
        let round = self.slots[target].node.round().unwrap_or(0);
        let byz: Vec<usize> = self
            .slots
            .iter()
            .filter(|s| !s.honest)
            .map(|s| s.validator)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (signer, signer_key) = match byz.get(injector) {
            Some(&v) => (Some(v), self.keys[v].clone()),
            None => (None, self.outsider.clone()),
        };
        let victim = self.slots[target].validator;
        let hash = BlockHash(citychain_kernel::Hash32(self.rng.bytes32()));
        let kind = if signer.is_none() {
            // The outsider only has its own key: a vote from a non-member.
            0
        } else {
            1 + self.rng.below(5)
        };
        let vote = |h: u64, claimed: Address| Vote {
            vote_type: VoteType::Prevote,
            height: CHeight(h),
            round: Round::new(round),
            value: NilOrVal::Val(hash),
            validator: claimed,
        };
        let sign_vote = |ctx: &CityContext, v: Vote, key: &SigningKey| {
            let sig = key.sign(&ctx.vote_sign_bytes(&v));
            WireMessage::Vote(SignedMessage::new(v, ConsensusSignature(sig)))
        };
        let mut chain_id = self.chain_id.clone();
        let message = match kind {
            0 => sign_vote(
                &self.ctx,
                vote(height, Address(signer_key.public_key())),
                &signer_key,
            ),
            // Forged in the name of the honest target's own key (or any other validator).
            1 => {
                let claimed = Address(self.keys[victim].public_key());
                sign_vote(&self.ctx, vote(height, claimed), &signer_key)
            }
            // Far-future height, properly signed.
            2 => sign_vote(
                &self.ctx,
                vote(height + 1_000, Address(signer_key.public_key())),
                &signer_key,
            ),
            // A proposal out of turn (a round this validator does not lead).
            3 => {
                let me = signer.unwrap_or(0);
                let n = self.cfg.validators;
                let mut r = round;
                while proposer_index(n, height, r) == me {
                    r += 1;
                }
                let p = Proposal {
                    height: CHeight(height),
                    round: Round::new(r),
                    value: BlockValue(hash),
                    pol_round: Round::Nil,
                    proposer: Address(signer_key.public_key()),
                };
                let sig = signer_key.sign(&self.ctx.proposal_sign_bytes(&p));
                WireMessage::Proposal(SignedMessage::new(p, ConsensusSignature(sig)))
            }
            // Another chain.
            _ => {
                chain_id = ChainId::new("some-other-chain").expect("valid chain id");
                sign_vote(
                    &self.ctx,
                    vote(height, Address(signer_key.public_key())),
                    &signer_key,
                )
            }
        };
        let mut bytes = Envelope { chain_id, message }.encode();
        if self.rng.chance(200) {
            // Garbage: flip bytes, or send random ones.
            let len = bytes.len().max(1);
            for _ in 0..4 {
                let i = self.rng.below(len as u64) as usize;
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 0x5A;
                }
            }
        }
        self.send(target, bytes);
    }

    /// Replaces a random honest validator's node with a fresh one that knows only its decided
    /// blocks and what it signed; messages in flight to it still arrive.
    fn restart_one(&mut self) {
        let honest: Vec<usize> = (0..self.slots.len())
            .filter(|&s| self.slots[s].honest)
            .collect();
        if honest.is_empty() {
            return;
        }
        let slot = honest[self.rng.below(honest.len() as u64) as usize];
        let validators = self.slots[slot].node_validators();
        let key = self.keys[self.slots[slot].validator].clone();
        let mut node = Node::new(
            self.chain_id.clone(),
            validators,
            key,
            self.cfg.params.clone(),
            sim_checker as fn(&Block) -> Result<(), String>,
        );
        node.restore_signed(self.slots[slot].signed.iter().cloned());
        let tip = self.slots[slot].decided.last().map(|b| Tip {
            hash: b.hash(),
            time_unix_ms: b.header.time_unix_ms,
        });
        let next = self.slots[slot].decided.len() as u64 + 1;
        self.slots[slot].node = node;
        let out = self.slots[slot].node.start(next, tip);
        self.apply(slot, out);
    }

    fn check(&mut self, genesis: &Genesis) {
        let honest: Vec<&Slot> = self.slots.iter().filter(|s| s.honest).collect();
        let mut by_height: BTreeMap<u64, BlockHash> = BTreeMap::new();
        for slot in &honest {
            for block in &slot.decided {
                let h = block.header.height.0;
                let hash = block.hash();
                match by_height.get(&h) {
                    Some(other) if *other != hash => {
                        self.report.violations.push(Violation::Agreement {
                            height: h,
                            first: *other,
                            second: hash,
                        });
                    }
                    Some(_) => {}
                    None => {
                        by_height.insert(h, hash);
                    }
                }
            }
            let mut verifier = ChainVerifier::new(genesis);
            for block in &slot.decided {
                if let Err(e) = verifier.push(block) {
                    self.report.violations.push(Violation::Validity {
                        validator: slot.validator,
                        height: block.header.height.0,
                        error: e.to_string(),
                    });
                    break;
                }
            }
            let reached = slot.decided.last().map(|b| b.header.height.0).unwrap_or(0);
            self.report.honest_heights.push(reached);
            if self.cfg.byzantine <= (self.cfg.validators - 1) / 3
                && reached < self.cfg.target_height
            {
                self.report.violations.push(Violation::Progress {
                    validator: slot.validator,
                    reached,
                    target: self.cfg.target_height,
                });
            }
            for (label, count) in slot.node.drop_counts() {
                *self.report.drops.entry(label).or_default() += count;
            }
        }
    }
}

impl Slot {
    fn node_validators(&self) -> citychain_kernel::ValidatorSet {
        self.node.kernel_validators().clone()
    }
}
