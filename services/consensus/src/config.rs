//! The consensus service's own configuration sections, beside the shared ones of every
//! service (`[grpc]`, `[metrics]`, `[log]`).
//!
//! ```toml
//! [chain]
//! genesis = "/etc/citychain/genesis.json"
//!
//! [consensus]
//! validator_key = "/var/run/secrets/citychain/validator.json"
//! data_dir = "/var/lib/citychain/consensus"
//! max_block_txs = 4000          # transactions per block at most
//! max_block_bytes = 4194304     # transaction bytes per block at most
//! heartbeat_ms = 1000           # an empty block is proposed only when this much has passed
//! max_clock_drift_ms = 5000     # a proposal may be this far ahead of our clock
//! max_ttl = 1000                # a transaction's expiry may be this many heights ahead
//! mempool_max_txs = 100000
//! mempool_max_bytes = 134217728
//! stream_replicas = 1           # JetStream replicas of MEMPOOL, CHAIN and EVENTS (3 in a cluster)
//!
//! [nats]                        # see citychain_bus::BusConfig
//! urls = ["nats://127.0.0.1:4222"]
//! ```
//!
//! Why the heartbeat and the propose timeout are tied: a proposer with nothing to propose
//! waits up to the heartbeat before proposing an empty block, so the propose timeout is set
//! above it ([`ConsensusSection::propose_timeout_ms`]) and an idle chain never changes round.

use std::path::PathBuf;

use citychain_bus::BusConfig;
use serde::Deserialize;

pub use citychain_runtime::config::ChainSection;

/// `[consensus]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    /// The validator's key file.
    pub validator_key: PathBuf,
    /// Where the validator keeps its block store.
    pub data_dir: PathBuf,
    /// Transactions per block at most.
    pub max_block_txs: usize,
    /// Transaction bytes per block at most.
    pub max_block_bytes: usize,
    /// Milliseconds after the last block before an empty block is proposed.
    pub heartbeat_ms: u64,
    /// How far a proposal's time may be ahead of this validator's clock.
    pub max_clock_drift_ms: u64,
    /// How many heights ahead a transaction's expiry may be.
    pub max_ttl: u64,
    /// Transactions the mempool holds at most.
    pub mempool_max_txs: usize,
    /// Bytes the mempool holds at most.
    pub mempool_max_bytes: usize,
    /// JetStream replicas of the chain's streams; validators create or update the streams
    /// with this, so set it to the cluster's size (3 in production).
    pub stream_replicas: usize,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            validator_key: PathBuf::from("validator.json"),
            data_dir: PathBuf::from("consensus-data"),
            max_block_txs: 4_000,
            max_block_bytes: 4 * 1024 * 1024,
            heartbeat_ms: 1_000,
            max_clock_drift_ms: 5_000,
            max_ttl: 1_000,
            mempool_max_txs: 100_000,
            mempool_max_bytes: 128 * 1024 * 1024,
            stream_replicas: 1,
        }
    }
}

impl ConsensusSection {
    /// The propose timeout at round 0: the heartbeat plus time to build and spread a block.
    pub fn propose_timeout_ms(&self) -> u64 {
        self.heartbeat_ms + 1_000
    }
}

/// Everything the consensus service reads beside the shared sections.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    /// `[chain]`.
    pub chain: ChainSection,
    /// `[consensus]`.
    #[serde(default)]
    pub consensus: ConsensusSection,
    /// `[nats]`.
    #[serde(default)]
    pub nats: BusConfig,
}
