//! The consensus service: each validator (one per department) orders signed transactions
//! from MEMPOOL into blocks with Tendermint (Malachite's core, driven by
//! `citychain-consensus-domain`), keeps every decided block in its own store, and appends
//! it to the CHAIN stream, which the other services consume.
//!
//! * [`config`]: the service's configuration sections.
//! * [`blockstore`]: the validator's own copy of the chain.
//! * [`validator`]: the running validator: network, timers, mempool, commit.
//! * [`intake`]: MEMPOOL's deliveries, acknowledged only once their outcome is durable.
//! * `traces`: each transaction's span through the validator, and commit timing.
//! * [`api`]: the gRPC status API.
//! * [`service`]: the whole service as a process: files, store, NATS, gRPC, metrics.

pub mod api;
pub mod blockstore;
pub mod config;
pub mod intake;
pub mod service;
pub(crate) mod traces;
pub mod validator;

pub use api::{ApiError, ConsensusApi, ValidatorIdentity};
pub use blockstore::{BlockStore, BlockStoreError, StoredTip};
pub use config::{ConsensusConfig, ConsensusSection};
pub use service::{SERVICE_NAME, ServiceError, serve};
pub use validator::{Status, Subjects, ValidatorError, ValidatorSetup, run};
