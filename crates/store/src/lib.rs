//! Service state for citychain: the [`Store`] trait (transactional, ordered, serializable
//! key-value storage), its embedded implementation over redb ([`EmbeddedStore`]), its
//! FoundationDB implementation behind the `foundationdb` feature (`FdbStore`), and the
//! exactly-once [`ProjectionRunner`] that applies committed blocks to a service's state, and
//! [`ServiceStore`], the one a service process opens as its configuration says.
//!
//! Every implementation passes the one conformance suite in `conformance` (feature
//! `conformance`), and enforces the same [`Limits`].

#![warn(missing_docs)]

pub mod any;
pub mod embedded;
pub mod error;
pub mod limits;
pub mod page;
pub mod pieces;
pub mod projection;
pub mod scan;
pub mod traits;

#[cfg(feature = "foundationdb")]
pub mod fdb;

#[cfg(feature = "conformance")]
#[doc(hidden)]
pub mod conformance;

pub use any::{Backend, ServiceStore, ServiceTxn, StoreConfig};
pub use embedded::{EmbeddedStore, EmbeddedTxn};
pub use error::{ErrorClass, Retryable, StoreError};
pub use limits::{Limits, MAX_KEY_SIZE, MAX_VALUE_SIZE, MAX_WRITE_SET_SIZE};
pub use page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_PAGE_TOKEN_CHARS, Page, PageError, PageKey};
pub use pieces::{PIECE_SIZE, put_pieces, read_pieces};
pub use projection::{
    ApplyError, ApplyOutcome, Projection, ProjectionRunner, applied_height_key, read_applied_height,
};
pub use scan::{KeySpan, Scan, prefix_end};
pub use traits::{Attempt, BoxFuture, Entry, RUN_MAX_ATTEMPTS, Store, Transaction};

#[cfg(feature = "foundationdb")]
pub use fdb::{FdbStore, FdbTxn};
