//! [`ServiceStore`]: the store a service process runs on, chosen by its configuration
//! ([`StoreConfig`]) rather than at compile time: the embedded store in the service's data
//! folder, or a FoundationDB subspace (with the `foundationdb` feature). Both go through one
//! [`Store`] and [`Transaction`] implementation that forwards each call to the store chosen.
//! Services open it with `citychain_runtime::process::open_service_store`, which also creates
//! the data folder for the embedded store.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::embedded::{EmbeddedStore, EmbeddedTxn};
use crate::error::StoreError;
use crate::limits::Limits;
use crate::scan::Scan;
use crate::traits::{Entry, Store, Transaction};

/// Which store a service keeps its state in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A redb file in the service's data folder: one per replica.
    #[default]
    Embedded,
    /// A subspace of a FoundationDB cluster, which replicas of the service share. Needs a
    /// build with the `foundationdb` feature.
    Foundationdb,
}

/// The `[store]` section of a service's configuration.
///
/// ```toml
/// [store]
/// backend = "foundationdb"                      # default "embedded"
/// cluster_file = "/etc/foundationdb/fdb.cluster" # default: FoundationDB's own default file
/// key_prefix = "citychain/ledger/"               # default: citychain/<service>/
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The store.
    pub backend: Backend,
    /// FoundationDB's cluster file; only with `backend = "foundationdb"`.
    pub cluster_file: Option<PathBuf>,
    /// The FoundationDB subspace of this service's keys; only with `backend =
    /// "foundationdb"`.
    pub key_prefix: Option<String>,
}

impl StoreConfig {
    /// Whether this build can open the configured backend; the error names the setting and
    /// how to get a build that can.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Embedded if self.cluster_file.is_some() || self.key_prefix.is_some() => {
                Err(StoreError::InvalidArgument {
                    what: "[store]",
                    reason: "cluster_file and key_prefix are for backend = \"foundationdb\"; \
                             the embedded store takes neither"
                        .to_owned(),
                })
            }
            Backend::Foundationdb if !cfg!(feature = "foundationdb") => {
                Err(StoreError::InvalidArgument {
                    what: "[store] backend",
                    reason: "\"foundationdb\" needs a build with FoundationDB support \
                             (cargo build --features foundationdb, or the image's \
                             runtime-foundationdb target)"
                        .to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The subspace of service `service`: `key_prefix`, or `citychain/<service>/`.
    pub fn prefix_for(&self, service: &str) -> String {
        self.key_prefix
            .clone()
            .unwrap_or_else(|| format!("citychain/{service}/"))
    }
}

/// The store of a service process: see the module docs.
#[derive(Clone)]
pub enum ServiceStore {
    /// The embedded store.
    Embedded(EmbeddedStore),
    /// A FoundationDB subspace.
    #[cfg(feature = "foundationdb")]
    Foundationdb(crate::fdb::FdbStore),
}

impl std::fmt::Debug for ServiceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceStore::Embedded(_) => f.write_str("ServiceStore::Embedded"),
            #[cfg(feature = "foundationdb")]
            ServiceStore::Foundationdb(store) => write!(
                f,
                "ServiceStore::Foundationdb({})",
                String::from_utf8_lossy(store.key_prefix())
            ),
        }
    }
}

impl ServiceStore {
    /// Opens the FoundationDB subspace `config` names for service `service`
    /// ([`StoreConfig::prefix_for`]); refused, as [`StoreConfig::check`] says, by a build
    /// without FoundationDB support. The embedded store is opened by the caller, who knows
    /// the service's data folder, and wrapped as [`ServiceStore::Embedded`].
    pub async fn open_foundationdb(
        config: &StoreConfig,
        service: &str,
    ) -> Result<ServiceStore, StoreError> {
        config.check()?;
        if config.backend != Backend::Foundationdb {
            return Err(StoreError::InvalidArgument {
                what: "[store] backend",
                reason: "is not \"foundationdb\"".to_owned(),
            });
        }
        #[cfg(feature = "foundationdb")]
        {
            let prefix = config.prefix_for(service);
            let store =
                crate::fdb::FdbStore::open(config.cluster_file.as_deref(), prefix.as_bytes())
                    .await?;
            Ok(ServiceStore::Foundationdb(store))
        }
        #[cfg(not(feature = "foundationdb"))]
        {
            let _ = service;
            unreachable!("StoreConfig::check refuses \"foundationdb\" in this build")
        }
    }

    /// Releases what the store holds process-wide: FoundationDB's client network thread,
    /// which must be stopped before the process exits. Call it once, after the last use of
    /// every store.
    pub fn shutdown_process() {
        #[cfg(feature = "foundationdb")]
        crate::fdb::stop_network();
    }
}

/// A transaction of a [`ServiceStore`].
pub enum ServiceTxn {
    /// On the embedded store.
    Embedded(EmbeddedTxn),
    /// On FoundationDB.
    #[cfg(feature = "foundationdb")]
    Foundationdb(crate::fdb::FdbTxn),
}

impl std::fmt::Debug for ServiceTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceTxn::Embedded(_) => f.write_str("ServiceTxn::Embedded"),
            #[cfg(feature = "foundationdb")]
            ServiceTxn::Foundationdb(_) => f.write_str("ServiceTxn::Foundationdb"),
        }
    }
}

/// Forwards `$call` to whichever store or transaction `$value` holds.
macro_rules! forward {
    ($value:expr, $inner:ident => $call:expr) => {
        match $value {
            ServiceTxn::Embedded($inner) => $call,
            #[cfg(feature = "foundationdb")]
            ServiceTxn::Foundationdb($inner) => $call,
        }
    };
}

impl Store for ServiceStore {
    type Txn = ServiceTxn;

    async fn begin(&self) -> Result<ServiceTxn, StoreError> {
        match self {
            ServiceStore::Embedded(store) => Ok(ServiceTxn::Embedded(store.begin().await?)),
            #[cfg(feature = "foundationdb")]
            ServiceStore::Foundationdb(store) => Ok(ServiceTxn::Foundationdb(store.begin().await?)),
        }
    }

    fn limits(&self) -> Limits {
        match self {
            ServiceStore::Embedded(store) => store.limits(),
            #[cfg(feature = "foundationdb")]
            ServiceStore::Foundationdb(store) => store.limits(),
        }
    }
}

impl Transaction for ServiceTxn {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        forward!(self, txn => txn.get(key).await)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        forward!(self, txn => txn.put(key, value))
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        forward!(self, txn => txn.delete(key))
    }

    async fn scan(&mut self, scan: &Scan) -> Result<Vec<Entry>, StoreError> {
        forward!(self, txn => txn.scan(scan).await)
    }

    async fn commit(self) -> Result<(), StoreError> {
        forward!(self, txn => txn.commit().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_defaults_to_the_embedded_store_and_refuses_what_it_cannot_use() {
        let config = StoreConfig::default();
        assert_eq!(config.backend, Backend::Embedded);
        assert!(config.check().is_ok());
        assert_eq!(config.prefix_for("ledger"), "citychain/ledger/");

        let stray = StoreConfig {
            cluster_file: Some("/etc/foundationdb/fdb.cluster".into()),
            ..StoreConfig::default()
        };
        let err = stray.check().unwrap_err().to_string();
        assert!(err.contains("cluster_file"), "{err}");

        let fdb = StoreConfig {
            backend: Backend::Foundationdb,
            key_prefix: Some("city/ledger/".into()),
            ..StoreConfig::default()
        };
        assert_eq!(fdb.prefix_for("ledger"), "city/ledger/");
        if cfg!(feature = "foundationdb") {
            assert!(fdb.check().is_ok());
        } else {
            let err = fdb.check().unwrap_err().to_string();
            assert!(err.contains("--features foundationdb"), "{err}");
        }
    }
}
