//! The journal's state ([`Journal`]), how an event changes it ([`Journal::evolve`], which
//! cannot fail), its canonical encoding, and its state hash.
//!
//! # State hash
//!
//! The journal's sets (settled reads, remembered payload hashes, rewards per period, handled
//! grants) grow with the chain, so hashing all of them after every block would cost more and
//! more. The hash instead commits to the balances, which are few (one per account), and to
//! the whole history of events through a running digest, which costs one hash per event:
//!
//! ```text
//! digest_0 = 32 zero bytes
//! digest_k = blake3("citychain/token-events/v1" ‖ 0x00 ‖ digest_(k-1) ‖ canonical(event_k))
//! state    = blake3("citychain/token-journal/v1" ‖ 0x00 ‖
//!                   u64(accounts) ‖ for each account in text order: str(account) ‖ i64(balance) ‖
//!                   u64(events) ‖ digest_events)
//! ```
//!
//! Every change of the sets is caused by an event, so two journals with the same history hold
//! the same sets; the balances are hashed as well so that a store whose balance keys were
//! damaged is caught even though its history is intact. Integers are big-endian, strings
//! length-prefixed ([`crate::canon`]). An account appears once an entry has touched it.

use std::collections::{BTreeMap, BTreeSet};

use citychain_kernel::{Hash32, MemberId, TxId};

use crate::account::Account;
use crate::canon::Canon;
use crate::decide::{JournalError, decide};
use crate::entry::ChainRef;
use crate::event::{EventKind, TokenEvent};
use crate::input::{Input, Needs};

/// The prefix of the state hash.
pub const STATE_HASH_DOMAIN: &[u8] = b"citychain/token-journal/v1";

/// The prefix of each step of the history digest.
pub const EVENT_DIGEST_DOMAIN: &[u8] = b"citychain/token-events/v1";

/// The journal's history, summarised: how many events, and the running digest over them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    /// Events so far.
    pub events: u64,
    /// The running digest (all zeros before the first event).
    pub digest: Hash32,
}

impl History {
    /// The history after one more event.
    pub fn after(&self, event: &TokenEvent) -> History {
        History {
            // A count that large is unreachable (one event per transaction); saturating
            // rather than wrapping keeps even that case from lying about order.
            events: self.events.saturating_add(1),
            digest: event_digest(&self.digest, event),
        }
    }
}

/// One step of the history digest.
pub fn event_digest(previous: &Hash32, event: &TokenEvent) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(EVENT_DIGEST_DOMAIN);
    hasher.update(&[0]);
    hasher.update(previous.as_bytes());
    hasher.update(&event.encode());
    Hash32(*hasher.finalize().as_bytes())
}

/// The state hash of a journal with these balances (any order: they are sorted by account
/// text here) and this history. The service computes it from its store with this same
/// function.
pub fn state_hash(balances: impl IntoIterator<Item = (Account, i64)>, history: &History) -> Hash32 {
    let sorted: BTreeMap<Account, i64> = balances.into_iter().collect();
    let mut out = Canon::new();
    out.len(sorted.len());
    for (account, balance) in &sorted {
        out.str(&account.text()).i64(*balance);
    }
    out.u64(history.events).bytes32(history.digest.as_bytes());
    let mut hasher = blake3::Hasher::new();
    hasher.update(STATE_HASH_DOMAIN);
    hasher.update(&[0]);
    hasher.update(out.as_bytes());
    Hash32(*hasher.finalize().as_bytes())
}

/// The token journal's state.
///
/// The whole journal is what the rules are defined over (and what the property tests run);
/// the service keeps the same state in its store, key by key, and hands the rules a
/// [`Journal::window`] holding only what one input [`Needs`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    balances: BTreeMap<Account, i64>,
    settled_reads: BTreeSet<TxId>,
    uploads: BTreeMap<(MemberId, Hash32), TxId>,
    period_rewards: BTreeMap<(MemberId, u64), u64>,
    grants: BTreeSet<String>,
    history: History,
}

impl Journal {
    /// The empty journal (before the first block).
    pub fn new() -> Journal {
        Journal::default()
    }

    /// An account's balance (0 if nothing touched it).
    pub fn balance(&self, account: &Account) -> i64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// Every account an entry touched, with its balance, in text order.
    pub fn balances(&self) -> impl Iterator<Item = (&Account, i64)> {
        self.balances.iter().map(|(a, b)| (a, *b))
    }

    /// Tokens minted and not burned (none are): minus the mint's balance.
    pub fn supply(&self) -> u64 {
        // The mint's balance is never below -MAX_SUPPLY (= -i64::MAX), so this fits.
        self.balance(&Account::Mint).unsigned_abs()
    }

    /// Whether the read was settled (paid or failed).
    pub fn read_settled(&self, read: &TxId) -> bool {
        self.settled_reads.contains(read)
    }

    /// Every settled read.
    pub fn settled_reads(&self) -> impl Iterator<Item = &TxId> {
        self.settled_reads.iter()
    }

    /// The record that first brought `payload_hash` from `member`, if any did.
    pub fn first_upload(&self, member: &MemberId, payload_hash: &Hash32) -> Option<TxId> {
        self.uploads.get(&(member.clone(), *payload_hash)).copied()
    }

    /// Every remembered (department, payload hash) with its first record.
    pub fn uploads(&self) -> impl Iterator<Item = (&MemberId, &Hash32, &TxId)> {
        self.uploads.iter().map(|((m, h), r)| (m, h, r))
    }

    /// The department's rewards in a period.
    pub fn period_rewards(&self, member: &MemberId, period: u64) -> u64 {
        self.period_rewards
            .get(&(member.clone(), period))
            .copied()
            .unwrap_or(0)
    }

    /// Every (department, period) with its rewards.
    pub fn all_period_rewards(&self) -> impl Iterator<Item = (&MemberId, u64, u64)> {
        self.period_rewards.iter().map(|((m, p), t)| (m, *p, *t))
    }

    /// Whether the proposal's grant was handled (issued or withheld).
    pub fn grant_handled(&self, proposal_id: &str) -> bool {
        self.grants.contains(proposal_id)
    }

    /// Every handled grant's proposal.
    pub fn grants(&self) -> impl Iterator<Item = &String> {
        self.grants.iter()
    }

    /// The history summary.
    pub fn history(&self) -> History {
        self.history
    }

    /// Applies a decided event. It cannot fail: every figure it writes was computed, with
    /// checked arithmetic, when the event was decided.
    pub fn evolve(&mut self, event: &TokenEvent) {
        for entry in &event.entries {
            self.balances
                .insert(entry.account.clone(), entry.balance_after);
        }
        match &event.kind {
            EventKind::RewardMinted {
                record_id,
                member,
                payload_hash,
                period,
                period_total,
                ..
            } => {
                self.uploads
                    .entry((member.clone(), *payload_hash))
                    .or_insert(*record_id);
                self.period_rewards
                    .insert((member.clone(), *period), *period_total);
            }
            EventKind::UploadUnrewarded {
                record_id,
                member,
                payload_hash,
                ..
            } => {
                self.uploads
                    .entry((member.clone(), *payload_hash))
                    .or_insert(*record_id);
            }
            EventKind::ReadPaid { read_id, .. } | EventKind::ReadPaymentFailed { read_id, .. } => {
                self.settled_reads.insert(*read_id);
            }
            EventKind::GrantIssued { proposal_id, .. }
            | EventKind::GrantWithheld { proposal_id, .. } => {
                self.grants.insert(proposal_id.clone());
            }
        }
        self.history = self.history.after(event);
    }

    /// Decides `input` at `source` and applies the events; returns them.
    pub fn apply(
        &mut self,
        input: &Input,
        source: &ChainRef,
    ) -> Result<Vec<TokenEvent>, JournalError> {
        let events = decide(self, input, source)?;
        for event in &events {
            self.evolve(event);
        }
        Ok(events)
    }

    /// The state hash (see the module documentation).
    pub fn state_hash(&self) -> Hash32 {
        state_hash(
            self.balances.iter().map(|(a, b)| (a.clone(), *b)),
            &self.history,
        )
    }

    /// A journal holding only what `needs` names (and the history): deciding the input the
    /// needs came from against it gives the same events as against `self`.
    pub fn window(&self, needs: &Needs) -> Journal {
        let mut window = Journal {
            history: self.history,
            ..Journal::default()
        };
        for account in &needs.accounts {
            if let Some(balance) = self.balances.get(account) {
                window.set_balance(account.clone(), *balance);
            }
        }
        if let Some(read) = &needs.read
            && self.read_settled(read)
        {
            window.set_read_settled(*read);
        }
        if let Some((member, hash)) = &needs.upload
            && let Some(first) = self.first_upload(member, hash)
        {
            window.set_upload(member.clone(), *hash, first);
        }
        if let Some((member, period)) = &needs.period {
            let total = self.period_rewards(member, *period);
            if total > 0 {
                window.set_period_rewards(member.clone(), *period, total);
            }
        }
        if let Some(grant) = &needs.grant
            && self.grant_handled(grant)
        {
            window.set_grant_handled(grant.clone());
        }
        window
    }

    /// Loads a balance (for a window built from a store).
    pub fn set_balance(&mut self, account: Account, balance: i64) {
        self.balances.insert(account, balance);
    }

    /// Loads a settled read.
    pub fn set_read_settled(&mut self, read: TxId) {
        self.settled_reads.insert(read);
    }

    /// Loads a remembered upload.
    pub fn set_upload(&mut self, member: MemberId, payload_hash: Hash32, first: TxId) {
        self.uploads.insert((member, payload_hash), first);
    }

    /// Loads a department's rewards in a period.
    pub fn set_period_rewards(&mut self, member: MemberId, period: u64, total: u64) {
        self.period_rewards.insert((member, period), total);
    }

    /// Loads a handled grant.
    pub fn set_grant_handled(&mut self, proposal_id: String) {
        self.grants.insert(proposal_id);
    }

    /// Loads the history summary.
    pub fn set_history(&mut self, history: History) {
        self.history = history;
    }

    /// The whole state in canonical form: equal journals, equal bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Canon::new();
        out.len(self.balances.len());
        for (account, balance) in &self.balances {
            out.str(&account.text()).i64(*balance);
        }
        out.len(self.settled_reads.len());
        for read in &self.settled_reads {
            out.bytes32(read.as_bytes());
        }
        out.len(self.uploads.len());
        for ((member, hash), first) in &self.uploads {
            out.str(member.as_str())
                .bytes32(hash.as_bytes())
                .bytes32(first.as_bytes());
        }
        out.len(self.period_rewards.len());
        for ((member, period), total) in &self.period_rewards {
            out.str(member.as_str()).u64(*period).u64(*total);
        }
        out.len(self.grants.len());
        for grant in &self.grants {
            out.str(grant);
        }
        out.u64(self.history.events)
            .bytes32(self.history.digest.as_bytes());
        out.into_bytes()
    }
}
