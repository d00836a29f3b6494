//! The token platform's rules, pure: departments earn tokens for uploading records and spend
//! them to read other departments' records, in a double-entry journal that every member can
//! recompute from the chain and get the same figures.
//!
//! - [`account`]: the accounts (`mint`, `member:<id>`) and how they are written.
//! - [`entry`]: journal entries and the chain place ([`ChainRef`]) that caused them.
//! - [`input`]: what the service hands the rules: an accepted upload, an allowed read, a
//!   grant; and [`Needs`], the part of the journal deciding one of them reads.
//! - [`event`]: what the rules decide ([`TokenEvent`]), each carrying its balanced entries.
//! - [`decide`](mod@decide): the rules themselves, [`decide()`] returning events.
//! - [`journal`]: the state ([`Journal`]), [`Journal::evolve`] (infallible), the canonical
//!   encoding and the state hash.
//!
//! No IO, no clock, no floats; ordered maps only; every sum is checked (balances are `i64`,
//! amounts `u64`, intermediate sums `i128`), so a replay anywhere gives the same bytes.

#![warn(missing_docs)]

pub mod account;
pub mod canon;
pub mod decide;
pub mod entry;
pub mod event;
pub mod input;
pub mod journal;

pub use account::{Account, AccountError};
pub use decide::{JournalError, MAX_SUPPLY, decide};
pub use entry::{ChainRef, Entry, Side};
pub use event::{EventKind, NoReward, TokenEvent};
pub use input::{Input, Needs};
pub use journal::{
    EVENT_DIGEST_DOMAIN, History, Journal, STATE_HASH_DOMAIN, event_digest, state_hash,
};
