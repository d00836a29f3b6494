//! The ledger service's pure rules: how its indexes are laid out in the store ([`keys`]),
//! which keys a shortened id names ([`prefix`]) and what a transaction's status is from what
//! the chain shows ([`status`]). No IO, clock or randomness: the service shell supplies every input.

pub mod keys;
pub mod prefix;
pub mod status;

pub use keys::{IndexEntry, TxLocation, index_block};
pub use prefix::{MAX_MATCHES, MIN_PREFIX_DIGITS, PrefixError, prefix_range};
pub use status::{Lookup, Submitted, TxStatus, decide_status};
