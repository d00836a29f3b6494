//! The verifying follower of CHAIN, shared by every service that builds its state on the chain
//! (the ledger, licence, tokens, and the services after them).
//!
//! Each such service must follow CHAIN the same way: read block `h` at stream sequence `h`,
//! audit it from genesis with [`citychain_governance::ChainAuditor`] (which also folds
//! governance into the registry), repair it from the validators' block service when CHAIN's
//! copy is missing or damaged, raise an alert and retry when no copy passes (never skipping a
//! block), and apply it to the service's store together with the applied height in one atomic
//! commit. This crate does all of that once; a service only says what a block means to it:
//!
//! - [`projection`]: the [`ChainProjection`] a service implements, and the [`AuditedBlock`] it
//!   receives (the block, its governance outcome, the registry before and after it, ...).
//! - [`checkpoint`]: the follower's resume checkpoint (last header, transaction count,
//!   registry), written in the same commit as the projection's writes; its key layout; and
//!   [`read_checkpoint`] for services that want the stored registry.
//! - [`shared`]: [`Shared`], what the follower publishes to the service's API and health.
//! - [`health`]: gRPC health and metrics from [`Shared`], the same for every service.
//! - [`follower`]: [`Follower`], the loop itself.
//! - [`admission`]: the checks and the publish every service's submission makes.
//! - [`service`]: [`ChainService`], the process shape of every chain-following service.
//! - [`replay`]: [`Replayer`], the same audit and apply for blocks from another source (an
//!   export), for audits that rebuild a service's state from the chain alone.
//!
//! A service wires it up like this (the ledger's `service.rs` is a complete example):
//!
//! ```no_run
//! # use std::time::Duration;
//! # use citychain_bus::{Bus, StreamsConfig};
//! # use citychain_follower::{AuditedBlock, ChainProjection, Follower, FollowerConfig, Shared};
//! # use citychain_kernel::Genesis;
//! # use citychain_store::{EmbeddedStore, StoreError, Transaction};
//! /// Counts each signer's transactions.
//! struct Counts;
//!
//! impl ChainProjection for Counts {
//!     type Error = StoreError;
//!
//!     fn name(&self) -> &str {
//!         "counts"
//!     }
//!
//!     async fn apply<T: Transaction>(
//!         &self,
//!         txn: &mut T,
//!         block: &AuditedBlock,
//!     ) -> Result<(), StoreError> {
//!         for tx in &block.block.txs {
//!             let key = [b"c/".as_slice(), tx.signer().as_bytes()].concat();
//!             let old = match txn.get(&key).await? {
//!                 Some(v) => u64::from_be_bytes(v.try_into().expect("8 bytes")),
//!                 None => 0,
//!             };
//!             txn.put(&key, &(old + 1).to_be_bytes())?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # async fn run(
//! #     genesis: Genesis,
//! #     store: EmbeddedStore,
//! #     bus: Bus,
//! #     streams: StreamsConfig,
//! #     stop: impl Future<Output = ()>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! let shared = Shared::new(&genesis); // a clone goes to the API, and health asks it
//! let config = FollowerConfig::new("counts", Duration::from_secs(2));
//! let follower =
//!     Follower::resume(&genesis, store, Counts, bus, streams, shared.clone(), config).await?;
//! follower.run(stop).await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod admission;
pub mod checkpoint;
pub mod follower;
pub mod health;
pub mod projection;
pub mod replay;
pub mod service;
pub mod shared;

#[cfg(test)]
mod testing;

pub use admission::{Admission, AdmissionError};
pub use checkpoint::{Checkpoint, CheckpointError, PREFIX, read_checkpoint, read_checkpoint_in};
pub use follower::{Follower, FollowerConfig, FollowerError, resume_point};
pub use health::{register_metrics, track_health};
pub use projection::{AuditedBlock, ChainProjection};
pub use replay::{ReplayError, Replayer};
pub use service::{ChainService, ServiceError, ServiceSpec, SideTask};
pub use shared::Shared;
