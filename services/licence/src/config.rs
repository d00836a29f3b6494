//! The licence service's own configuration sections, beside the shared ones of every service
//! (`[grpc]`, `[metrics]`, `[log]`).
//!
//! ```toml
//! [chain]
//! genesis = "/etc/citychain/genesis.json"
//!
//! [licence]
//! data_dir = "/var/lib/citychain/licence"
//! key_file = "/etc/citychain/licence.key"   # the service's own key file (citychain-key/v1)
//! max_ttl = 1000                # a submitted read's expiry may be this many heights ahead
//! repair_timeout_ms = 2000      # how long one validator gets to answer a block request
//! stream_replicas = 1           # JetStream replicas of the streams, buckets and objects
//! payments_consumer = "licence-payments"   # durable name on EVENTS; one per store
//!
//! [nats]                        # see citychain_bus::BusConfig
//! urls = ["nats://127.0.0.1:4222"]
//!
//! [store]                     # see citychain_store::StoreConfig
//! backend = "embedded"        # or "foundationdb": a subspace shared by every replica
//! ```
//!
//! The key file's X25519 secret seals every record key the service keeps (in a JetStream
//! key-value bucket), so replicas of one deployment must share it, and losing it loses every
//! record. Back it up like a validator key.

use std::path::PathBuf;

use citychain_bus::BusConfig;
use citychain_store::StoreConfig;
use serde::Deserialize;

pub use citychain_runtime::config::ChainSection;

/// `[licence]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LicenceSection {
    /// Where the service keeps its store.
    pub data_dir: PathBuf,
    /// The service's key file.
    pub key_file: PathBuf,
    /// How many heights ahead of the chain a submitted read's expiry may be.
    pub max_ttl: u64,
    /// How long one validator gets to answer a block request during a repair.
    pub repair_timeout_ms: u64,
    /// JetStream replicas of what the service creates.
    pub stream_replicas: usize,
    /// The durable consumer reading the token platform's payments. Replicas with their own
    /// store need their own name; replicas sharing a FoundationDB store share one.
    pub payments_consumer: String,
}

impl Default for LicenceSection {
    fn default() -> Self {
        LicenceSection {
            data_dir: PathBuf::from("licence-data"),
            key_file: PathBuf::from("licence.key"),
            max_ttl: 1_000,
            repair_timeout_ms: 2_000,
            stream_replicas: 1,
            payments_consumer: "licence-payments".to_string(),
        }
    }
}

/// Everything the licence service reads beside the shared sections.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LicenceConfig {
    /// `[chain]`.
    pub chain: ChainSection,
    /// `[licence]`.
    #[serde(default)]
    pub licence: LicenceSection,
    /// `[nats]`.
    #[serde(default)]
    pub nats: BusConfig,
    /// `[store]`: the embedded store in the data folder, or FoundationDB.
    #[serde(default)]
    pub store: StoreConfig,
}
