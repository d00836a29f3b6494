//! The ledger service: follows CHAIN, audits every block from genesis with the governance
//! registry, indexes blocks and transactions, and serves them with the proofs that let anyone
//! check an answer offline; it is also where clients submit transactions.
//!
//! * [`config`]: the service's configuration sections.
//! * [`store`]: the projection writing blocks and indexes, and the reads of them.
//! * [`follower`]: the verifying consumer of CHAIN, with repair from the validators.
//! * [`api`]: the gRPC API; [`error`]: its errors and their statuses.
//! * [`service`]: the whole service as a process.

pub mod api;
pub mod config;
pub mod error;
pub mod follower;
pub mod service;
pub mod store;

pub use api::LedgerApi;
pub use config::{LedgerConfig, LedgerSection};
pub use error::ApiError;
pub use follower::{Follower, FollowerError, Shared};
pub use service::{SERVICE_NAME, ServiceError, serve};
pub use store::{LedgerProjection, LedgerReader, LedgerStoreError, VerifiedBlock};
