//! The ledger service's pure rules: how its indexes are laid out in the store ([`keys`]) and
//! what a transaction's status is from what the chain shows ([`status`]). No IO, clock or randomness: the service shell supplies every input.

pub mod keys;
pub mod status;

pub use keys::{IndexEntry, TxLocation, index_block};
pub use status::{Lookup, Submitted, TxStatus, decide_status};
