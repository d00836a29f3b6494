//! Test-only helpers shared by every crate's tests.

pub mod generators;
pub mod genesis;
pub mod nats;
