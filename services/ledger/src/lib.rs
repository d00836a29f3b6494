//! The ledger service: follows CHAIN, audits every block from genesis with the governance
//! registry, indexes blocks and transactions, and serves them with the proofs that let anyone
//! check an answer offline; it is also where clients submit transactions.
//!
//! * [`config`]: the service's configuration sections.
//! * [`store`]: the projection writing blocks and indexes, and the reads of them.
//! * [`api`]: the gRPC API; [`error`]: its errors and their statuses.
//! * [`pending`]: the transactions waiting on MEMPOOL, for `WatchTransaction`.
//! * [`service`]: the whole service as a process, following CHAIN with citychain-follower
//!   (the verifying consumer shared by every service, with repair from the validators).

pub mod api;
pub mod config;
pub mod error;
pub mod pending;
pub mod service;
pub mod store;

pub use api::LedgerApi;
pub use config::{LedgerConfig, LedgerSection};
pub use error::ApiError;
pub use service::{LedgerFollower, SERVICE_NAME, ServiceError, resume_follower, serve};
pub use store::{LedgerProjection, LedgerReader, LedgerStoreError, upgrade_indexes};
