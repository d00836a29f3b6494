//! A real `nats-server` for tests: the launcher now lives in [`citychain_bus::local`] (the
//! benchmark and development commands use it too); this re-export keeps test imports stable.

pub use citychain_bus::local::*;
