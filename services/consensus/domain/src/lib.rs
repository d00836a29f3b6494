//! Pure rules of the consensus service: mempool admission, and the Tendermint consensus core
//! (Malachite's) wired to citychain's blocks, keys and certificates.
//!
//! * [`context`]: the Malachite context and the bytes every consensus signature covers.
//! * [`signing`]: signing and verifying votes, proposals and certificates.
//! * [`wire`]: the network messages and their protobuf encoding.
//! * [`node`]: one validator's engine as a deterministic input/output state machine.
//! * [`sim`]: a deterministic network simulation of honest and Byzantine validators.
//! * [`mempool`]: admission, bounds and block selection of waiting transactions.

pub mod context;
pub mod mempool;
pub mod node;
pub mod signing;
pub mod sim;
pub mod wire;

pub use context::CityContext;
pub use node::{
    AcceptAll, BlockChecker, BlockRejection, DropReason, EquivocationEvidence, Input, Node,
    NodeParams, Output, SignedMessage, SigningSlot, TimerKind, Tip, ValueRequest,
};
pub use wire::{Envelope, WireError, WireMessage};
