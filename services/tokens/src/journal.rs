//! The token journal kept in the service's store, key by key ([`crate::keys`]), rather than
//! as one [`Journal`] value: its sets grow with the chain, and a block touches only a few
//! keys. For each input the projection loads a window of exactly what the rules read
//! ([`Input::needs`]), decides, evolves the window, and writes back what changed, together
//! with the statement lines, the outbox and (at the end of a block that changed anything) the
//! state hash — all in the block's one store transaction.
//!
//! The state hash is the domain's [`state_hash`] over the balance keys (one per account, so
//! the scan stays small) and the stored history summary; a pure replay of the same chain
//! through [`Journal`] gives the same value.

use citychain_kernel::{Hash32, TxId};
use citychain_proto::citychain::tokens::v1 as pb;
use citychain_records::CatalogueError;
use citychain_store::{Retryable, Scan, StoreError, Transaction};
use citychain_tokens_domain::{
    Account, ChainRef, History, Input, Journal, JournalError, Needs, TokenEvent, decide, state_hash,
};
use prost::Message;
use thiserror::Error;

use crate::keys;
use crate::wire::{self, Envelope};

/// The store failed, or holds something the journal cannot read, or the journal broke an
/// invariant. All are failures of ours: the follower stops on them rather than skip a block.
#[derive(Debug, Error)]
pub enum TokensStoreError {
    /// The store failed.
    #[error("token store: {0}")]
    Store(#[from] StoreError),
    /// The record catalogue failed.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// A stored value does not decode.
    #[error("token store entry {key} is damaged: {reason}")]
    Damaged {
        /// The key, printable.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The stored journal breaks an invariant the rules keep.
    #[error("the token journal is inconsistent: {0}")]
    Journal(#[from] JournalError),
}

impl Retryable for TokensStoreError {
    fn is_retryable(&self) -> bool {
        match self {
            TokensStoreError::Store(err) => err.is_retryable(),
            TokensStoreError::Catalogue(err) => err.is_retryable(),
            TokensStoreError::Damaged { .. } | TokensStoreError::Journal(_) => false,
        }
    }
}

pub(crate) fn damaged(key: &[u8], reason: impl Into<String>) -> TokensStoreError {
    TokensStoreError::Damaged {
        key: String::from_utf8_lossy(key).escape_debug().to_string(),
        reason: reason.into(),
    }
}

fn u64_of(key: &[u8], bytes: &[u8]) -> Result<u64, TokensStoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| damaged(key, format!("{} bytes, not 8", bytes.len())))
}

/// A stored balance: the figure and the number of statement lines so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredBalance {
    /// The balance.
    pub balance: i64,
    /// Statement lines so far (the next line's number).
    pub entries: u64,
}

impl StoredBalance {
    fn encode(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.balance.to_be_bytes());
        out[8..].copy_from_slice(&self.entries.to_be_bytes());
        out
    }

    /// Reads a stored balance; `key` names it in the error.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<StoredBalance, TokensStoreError> {
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|_| damaged(key, format!("{} bytes, not 16", bytes.len())))?;
        let (balance, entries) = bytes.split_at(8);
        Ok(StoredBalance {
            balance: i64::from_be_bytes(balance.try_into().unwrap_or_default()),
            entries: u64::from_be_bytes(entries.try_into().unwrap_or_default()),
        })
    }
}

/// An account's stored balance, if an entry ever touched it.
pub async fn stored_balance<T: Transaction>(
    txn: &mut T,
    account: &Account,
) -> Result<Option<StoredBalance>, TokensStoreError> {
    let key = keys::balance(account);
    match txn.get(&key).await? {
        None => Ok(None),
        Some(bytes) => StoredBalance::decode(&key, &bytes).map(Some),
    }
}

/// Every stored balance, in account order.
pub async fn all_balances<T: Transaction>(
    txn: &mut T,
) -> Result<Vec<(Account, StoredBalance)>, TokensStoreError> {
    let rows = txn.scan(&Scan::prefix(keys::BALANCES)).await?;
    rows.into_iter()
        .map(|(key, value)| {
            Ok((
                account_of_balance_key(&key)?,
                StoredBalance::decode(&key, &value)?,
            ))
        })
        .collect()
}

/// The account a balance key names.
pub fn account_of_balance_key(key: &[u8]) -> Result<Account, TokensStoreError> {
    let text = key
        .strip_prefix(keys::BALANCES)
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or_else(|| damaged(key, "not a balance key"))?;
    Account::parse(text).map_err(|err| damaged(key, err.to_string()))
}

/// The stored history summary (the empty history before the first event).
pub async fn history<T: Transaction>(txn: &mut T) -> Result<History, TokensStoreError> {
    let Some(bytes) = txn.get(keys::HISTORY).await? else {
        return Ok(History::default());
    };
    let bytes: [u8; 40] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| damaged(keys::HISTORY, format!("{} bytes, not 40", bytes.len())))?;
    let (events, digest) = bytes.split_at(8);
    Ok(History {
        events: u64::from_be_bytes(events.try_into().unwrap_or_default()),
        digest: Hash32::from_slice("history digest", digest)
            .map_err(|err| damaged(keys::HISTORY, err.to_string()))?,
    })
}

fn encode_history(history: &History) -> Vec<u8> {
    [
        history.events.to_be_bytes().as_slice(),
        history.digest.as_bytes(),
    ]
    .concat()
}

/// The journal's state hash as the store holds it now.
pub async fn current_state_hash<T: Transaction>(txn: &mut T) -> Result<Hash32, TokensStoreError> {
    let balances = all_balances(txn).await?;
    let history = history(txn).await?;
    Ok(state_hash(
        balances.into_iter().map(|(a, b)| (a, b.balance)),
        &history,
    ))
}

/// The journal's state hash after block `height` (given that it is applied): the hash
/// recorded at the last block at or before it that changed the journal, else the empty
/// journal's.
pub async fn state_hash_at<T: Transaction>(
    txn: &mut T,
    height: u64,
) -> Result<Hash32, TokensStoreError> {
    let upto = keys::state_hash(height);
    let scan = Scan::range(keys::HASHES..=upto.as_slice())
        .reverse()
        .limit(1);
    match txn.scan(&scan).await?.into_iter().next() {
        Some((key, value)) => {
            Hash32::from_slice("state hash", &value).map_err(|err| damaged(&key, err.to_string()))
        }
        None => Ok(Journal::new().state_hash()),
    }
}

/// Loads the window of the journal that `needs` names.
async fn load_window<T: Transaction>(
    txn: &mut T,
    needs: &Needs,
) -> Result<Journal, TokensStoreError> {
    let mut window = Journal::new();
    window.set_history(history(txn).await?);
    for account in &needs.accounts {
        if let Some(stored) = stored_balance(txn, account).await? {
            window.set_balance(account.clone(), stored.balance);
        }
    }
    if let Some(read) = &needs.read
        && txn.get(&keys::read(read)).await?.is_some()
    {
        window.set_read_settled(*read);
    }
    if let Some((member, hash)) = &needs.upload {
        let key = keys::upload(member, hash);
        if let Some(first) = txn.get(&key).await? {
            let first = Hash32::from_slice("first record", &first)
                .map_err(|err| damaged(&key, err.to_string()))?;
            window.set_upload(member.clone(), *hash, TxId(first));
        }
    }
    if let Some((member, period)) = &needs.period {
        let key = keys::period(member, *period);
        if let Some(total) = txn.get(&key).await? {
            window.set_period_rewards(member.clone(), *period, u64_of(&key, &total)?);
        }
    }
    if let Some(grant) = &needs.grant
        && txn.get(&keys::grant(grant)).await?.is_some()
    {
        window.set_grant_handled(grant.clone());
    }
    Ok(window)
}

/// Writes what changed between a window as loaded and after its events: the settled reads,
/// remembered uploads, period totals and handled grants it gained, and the history.
/// Balances are written with the statement lines (see [`write_entries`]).
fn write_back<T: Transaction>(
    txn: &mut T,
    before: &Journal,
    after: &Journal,
    height: u64,
) -> Result<(), TokensStoreError> {
    for read in after.settled_reads() {
        if !before.read_settled(read) {
            txn.put(&keys::read(read), &height.to_be_bytes())?;
        }
    }
    for (member, hash, first) in after.uploads() {
        if before.first_upload(member, hash).is_none() {
            txn.put(&keys::upload(member, hash), first.as_bytes())?;
        }
    }
    for (member, period, total) in after.all_period_rewards() {
        if before.period_rewards(member, period) != total {
            txn.put(&keys::period(member, period), &total.to_be_bytes())?;
        }
    }
    for grant in after.grants() {
        if !before.grant_handled(grant) {
            txn.put(&keys::grant(grant), b"")?;
        }
    }
    if before.history() != after.history() {
        txn.put(keys::HISTORY, &encode_history(&after.history()))?;
    }
    Ok(())
}

/// Writes an event's entries: each account's statement line and its new balance.
async fn write_entries<T: Transaction>(
    txn: &mut T,
    event: &TokenEvent,
) -> Result<(), TokensStoreError> {
    for entry in &event.entries {
        let stored = stored_balance(txn, &entry.account)
            .await?
            .unwrap_or_default();
        let line = wire::statement_entry(event, entry);
        txn.put(
            &keys::statement(&entry.account, stored.entries),
            &line.encode_to_vec(),
        )?;
        let next = StoredBalance {
            balance: entry.balance_after,
            entries: stored
                .entries
                .checked_add(1)
                .ok_or_else(|| damaged(&keys::balance(&entry.account), "entry count overflows"))?,
        };
        txn.put(&keys::balance(&entry.account), &next.encode())?;
    }
    Ok(())
}

/// Where the next published event of a block goes in the outbox: events of one chain place
/// are numbered from 0 in the order they were decided.
#[derive(Debug, Default)]
pub(crate) struct OutboxCursor {
    place: Option<(u64, u32)>,
    next: u32,
}

impl OutboxCursor {
    fn slot(&mut self, source: &ChainRef) -> (u64, u32, u32) {
        let place = (source.height, source.index);
        if self.place != Some(place) {
            self.place = Some(place);
            self.next = 0;
        }
        let n = self.next;
        self.next = self.next.saturating_add(1);
        (place.0, place.1, n)
    }
}

/// Decides `input` at `source` against the stored journal and records the outcome: state,
/// statement lines, and the outbox. Returns the events.
pub(crate) async fn settle<T: Transaction>(
    txn: &mut T,
    input: &Input,
    source: &ChainRef,
    cursor: &mut OutboxCursor,
) -> Result<Vec<TokenEvent>, TokensStoreError> {
    let before = load_window(txn, &input.needs(source)).await?;
    let events = decide(&before, input, source)?;
    if events.is_empty() {
        return Ok(events);
    }
    let mut after = before.clone();
    for event in &events {
        after.evolve(event);
    }
    write_back(txn, &before, &after, source.height)?;
    for event in &events {
        write_entries(txn, event).await?;
        if let Some((name, payload)) = wire::published(event) {
            let (height, index, n) = cursor.slot(&event.source);
            let envelope = Envelope {
                name: name.to_string(),
                payload,
            };
            txn.put(&keys::outbox(height, index, n), &envelope.encode())?;
        }
    }
    Ok(events)
}

/// Records the state hash after block `height` if the block changed the journal (its
/// history moved from `start`).
pub(crate) async fn seal_block<T: Transaction>(
    txn: &mut T,
    height: u64,
    start: &History,
) -> Result<(), TokensStoreError> {
    if history(txn).await? == *start {
        return Ok(());
    }
    let hash = current_state_hash(txn).await?;
    txn.put(&keys::state_hash(height), hash.as_bytes())?;
    Ok(())
}

/// Reads a statement line.
pub fn decode_entry(key: &[u8], bytes: &[u8]) -> Result<pb::Entry, TokensStoreError> {
    pb::Entry::decode(bytes).map_err(|err| damaged(key, err.to_string()))
}
