//! The licence service: departments upload signed records, sealed at rest under a key of
//! their own; members read each other's records; every read is a receipt on the chain, and a
//! record's key is released (wrapped for the reader) only after its receipt has committed and
//! the token platform has paid for it.
//!
//! - [`config`]: the `[licence]` section.
//! - [`vault`]: sealed payloads (JetStream object store) and custody of record keys (KV).
//! - [`projection`]: records, receipts, proofs and bindings from the chain.
//! - [`payments`]: the token platform's verdicts from EVENTS.
//! - [`release`]: key grants, exactly once per paid read.
//! - [`api`] and [`error`]: `citychain.licence.v1.LicenceService` and its status mapping.
//! - [`service`]: the process.

pub mod api;
pub mod config;
pub mod error;
pub mod payments;
pub mod projection;
pub mod release;
pub mod service;
pub mod vault;

pub use config::{LicenceConfig, LicenceSection};
pub use service::{SERVICE_NAME, ServiceError, serve};
