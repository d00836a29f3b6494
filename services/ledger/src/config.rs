//! The ledger service's own configuration sections, beside the shared ones of every service
//! (`[grpc]`, `[metrics]`, `[log]`).
//!
//! ```toml
//! [chain]
//! genesis = "/etc/citychain/genesis.json"
//!
//! [ledger]
//! data_dir = "/var/lib/citychain/ledger"
//! max_ttl = 1000              # a submitted transaction's expiry may be this many heights ahead
//! repair_timeout_ms = 2000    # how long one validator gets to answer a block request
//! stream_replicas = 1         # JetStream replicas if this service creates the streams
//!
//! [nats]                      # see citychain_bus::BusConfig
//! urls = ["nats://127.0.0.1:4222"]
//!
//! [store]                     # see citychain_store::StoreConfig
//! backend = "embedded"        # or "foundationdb": a subspace shared by every replica
//! ```

use std::path::PathBuf;

use citychain_bus::BusConfig;
use citychain_store::StoreConfig;
use serde::Deserialize;

pub use citychain_runtime::config::ChainSection;

/// `[ledger]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// Where the ledger keeps its store.
    pub data_dir: PathBuf,
    /// How many heights ahead of the chain a submitted transaction's expiry may be; the
    /// validators refuse more, so refusing it at submission saves the signer a silent wait.
    /// Keep it equal to the consensus service's `max_ttl`.
    pub max_ttl: u64,
    /// How long one validator gets to answer a block request during a repair.
    pub repair_timeout_ms: u64,
    /// JetStream replicas of the chain's streams, used if the ledger starts before any
    /// validator has created them.
    pub stream_replicas: usize,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            data_dir: PathBuf::from("ledger-data"),
            max_ttl: 1_000,
            repair_timeout_ms: 2_000,
            stream_replicas: 1,
        }
    }
}

/// Everything the ledger service reads beside the shared sections.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// `[chain]`.
    pub chain: ChainSection,
    /// `[ledger]`.
    #[serde(default)]
    pub ledger: LedgerSection,
    /// `[nats]`.
    #[serde(default)]
    pub nats: BusConfig,
    /// `[store]`: the embedded store in the data folder, or FoundationDB.
    #[serde(default)]
    pub store: StoreConfig,
}
