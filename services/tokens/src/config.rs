//! The token service's own configuration sections, beside the shared ones of every service
//! (`[grpc]`, `[metrics]`, `[log]`).
//!
//! ```toml
//! [chain]
//! genesis = "/etc/citychain/genesis.json"
//!
//! [tokens]
//! data_dir = "/var/lib/citychain/tokens"
//! key_file = "/etc/citychain/tokens/service.tokens.json"   # the key of member service.tokens
//! repair_timeout_ms = 2000    # how long one validator gets to answer a block request
//! stream_replicas = 1         # JetStream replicas if this service creates the streams
//!
//! [nats]                      # see citychain_bus::BusConfig
//! urls = ["nats://127.0.0.1:4222"]
//!
//! [store]                     # see citychain_store::StoreConfig
//! backend = "embedded"        # or "foundationdb": a subspace shared by every replica
//! ```
//!
//! The key file (citychain-key/v1) is the service's identity on the chain, member
//! `service.tokens` of role `service`: it signs every event the service publishes, and the
//! licence service releases a record key only on a `ReadPaid` signed by the key the chain lists
//! for that member. Replicas share it; governance rotates it like any member's key (pass the
//! rotation, then restart the service with the new file once it is in force: in between the
//! service holds its events back, and says so in its log).

use std::path::PathBuf;

use citychain_bus::BusConfig;
use citychain_store::StoreConfig;
use serde::Deserialize;

pub use citychain_runtime::config::ChainSection;

/// `[tokens]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TokensSection {
    /// Where the token service keeps its store.
    pub data_dir: PathBuf,
    /// The key file of the service's identity, member `service.tokens`.
    pub key_file: PathBuf,
    /// How long one validator gets to answer a block request during a repair.
    pub repair_timeout_ms: u64,
    /// JetStream replicas of the chain's streams, used if this service starts before any
    /// validator has created them.
    pub stream_replicas: usize,
}

impl Default for TokensSection {
    fn default() -> Self {
        TokensSection {
            data_dir: PathBuf::from("tokens-data"),
            key_file: PathBuf::from("service.tokens.json"),
            repair_timeout_ms: 2_000,
            stream_replicas: 1,
        }
    }
}

/// Everything the token service reads beside the shared sections.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// `[chain]`.
    pub chain: ChainSection,
    /// `[tokens]`.
    #[serde(default)]
    pub tokens: TokensSection,
    /// `[nats]`.
    #[serde(default)]
    pub nats: BusConfig,
    /// `[store]`: the embedded store in the data folder, or FoundationDB.
    #[serde(default)]
    pub store: StoreConfig,
}

#[cfg(test)]
mod tests {
    use citychain_runtime::{ConfigLoader, ServiceConfig};

    use super::*;

    #[test]
    fn the_documented_shape_loads_and_unknown_keys_are_refused() {
        let text = r#"
[service]
name = "tokens"
[chain]
genesis = "/etc/citychain/genesis.json"
[tokens]
data_dir = "/var/lib/citychain/tokens"
repair_timeout_ms = 500
[nats]
urls = ["nats://127.0.0.1:4222"]
"#;
        let config: ServiceConfig<TokensConfig> = ConfigLoader::new()
            .toml(text)
            .env(Vec::<(String, String)>::new())
            .load()
            .unwrap();
        assert_eq!(config.extra.tokens.repair_timeout_ms, 500);
        assert_eq!(config.extra.tokens.stream_replicas, 1);
        assert_eq!(
            config.extra.chain.genesis,
            PathBuf::from("/etc/citychain/genesis.json")
        );
        let bad = ConfigLoader::new()
            .toml("[service]\nname = \"tokens\"\n[chain]\ngenesis = \"g\"\n[tokens]\nprice = 3\n")
            .env(Vec::<(String, String)>::new())
            .load::<TokensConfig>();
        let err = bad.unwrap_err().to_string();
        assert!(err.contains("price"), "{err}");
    }

    #[test]
    fn the_store_section_comes_from_the_file_or_the_environment_and_is_checked() {
        use citychain_store::Backend;
        let text = "[service]\nname = \"tokens\"\n[chain]\ngenesis = \"g\"\n";
        let load = |env: Vec<(&str, &str)>| {
            ConfigLoader::new()
                .toml(text)
                .env(env.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())))
                .load::<TokensConfig>()
        };
        assert_eq!(load(vec![]).unwrap().extra.store.backend, Backend::Embedded);
        let fdb = load(vec![
            ("CITYCHAIN_STORE__BACKEND", "foundationdb"),
            (
                "CITYCHAIN_STORE__CLUSTER_FILE",
                "/etc/foundationdb/fdb.cluster",
            ),
            ("CITYCHAIN_STORE__KEY_PREFIX", "city/tokens/"),
        ])
        .unwrap()
        .extra
        .store;
        assert_eq!(fdb.backend, Backend::Foundationdb);
        assert_eq!(fdb.prefix_for("tokens"), "city/tokens/");
        let err = load(vec![("CITYCHAIN_STORE__BACKEND", "postgres")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres"), "{err}");
    }
}
