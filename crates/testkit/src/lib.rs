//! Test-only helpers shared by every crate's tests.

pub mod bodies;
pub mod chain;
pub mod damage;
pub mod generators;
pub mod genesis;
pub mod grpc;
pub mod nats;
pub mod reflection;

pub use bodies::{note, note_about};
