//! The token service: a double-entry journal of tokens that departments earn by uploading
//! records and spend to read other departments' records, projected from the chain so that
//! any member can recompute every balance. The rules live in `citychain-tokens-domain`; this
//! crate is their shell. See `docs/tokens.md`.
//!
//! * [`config`]: the service's configuration sections.
//! * [`projection`]: what a block means to the journal (uploads, reads, grants).
//! * [`journal`]: the journal in the store, key by key; [`keys`]: the key layout.
//! * [`wire`]: events and statement lines in their protobuf form.
//! * [`outbox`]: publishing events to EVENTS from the transactional outbox.
//! * [`api`]: the gRPC API; [`error`]: its errors and their statuses.
//! * [`audit`]: rebuilding the journal from a chain export alone.
//! * [`service`]: the whole service as a process.

pub mod api;
pub mod audit;
pub mod config;
pub mod error;
pub mod journal;
pub mod keys;
pub mod outbox;
pub mod projection;
pub mod service;
pub mod wire;

pub use api::TokensApi;
pub use audit::{AuditError, AuditSummary, replay_export, summarise};
pub use config::{TokensConfig, TokensSection};
pub use error::ApiError;
pub use journal::TokensStoreError;
pub use outbox::OutboxPublisher;
pub use projection::{PROJECTION_NAME, TokensProjection};
pub use service::{SERVICE_NAME, ServiceError, serve};
