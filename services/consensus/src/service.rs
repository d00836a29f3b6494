//! The consensus service as a process: reads genesis and the validator key, opens the block
//! store, connects to NATS, serves the gRPC API (with health and reflection) and `/metrics`,
//! and runs the validator until shutdown.
//!
//! Health: the overall name `""` is SERVING while the process runs (the runtime's server
//! flips it at shutdown); [`SERVICE_NAME`] starts NOT_SERVING and becomes SERVING once the
//! validator has caught up from CHAIN and started voting, which is when it first reports a
//! height. A validator error sets it back to NOT_SERVING before the process stops.
//!
//! Start-up order, and why: everything that can be wrong in a file (genesis, key, data
//! directory) is checked before anything connects, so a misconfigured validator fails at once
//! with the file named; the gRPC and metrics ports are bound before the validator starts, so
//! a port in use is reported before the validator joins the network.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use citychain_bus::{BusConfig, BusError, StreamsConfig, connect, ensure_streams};
use citychain_kernel::{Genesis, GenesisError, KeyError, KeyPair};
use citychain_proto::citychain::consensus::v1::consensus_service_server::ConsensusServiceServer;
use citychain_runtime::config::ServiceConfig;
use citychain_runtime::grpc::HealthReporter;
use citychain_runtime::metrics::serve_metrics_on;
use citychain_runtime::{GrpcError, GrpcServer, MetricsError, Shutdown};
use citychain_store::{EmbeddedStore, StoreError};
use opentelemetry::KeyValue;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::api::{ConsensusApi, ValidatorIdentity};
use crate::config::ConsensusConfig;
use crate::validator::{Status, ValidatorError, ValidatorSetup, run};

/// The name the health service reports the consensus API under.
pub const SERVICE_NAME: &str = "citychain.consensus.v1.ConsensusService";

/// The block store's file inside `consensus.data_dir`.
pub const BLOCK_STORE_FILE: &str = "blocks.redb";

/// How long the gRPC and metrics servers get to finish calls in flight once the validator
/// has stopped; a client holding a stream open (a health watch) must not keep the process up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often readiness is checked until the validator reports its first height.
const READY_POLL: Duration = Duration::from_millis(50);

/// Why the consensus service could not start, or stopped.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// A file named in the configuration could not be read.
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        /// Which file it is (`genesis file`, `validator key file`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The genesis file does not hold a valid genesis.
    #[error("genesis file {path} is invalid: {source}")]
    Genesis {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: GenesisError,
    },
    /// The validator key file does not hold a valid key.
    #[error("validator key file {path} is invalid: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: KeyError,
    },
    /// The key is not one of the chain's validators.
    #[error(
        "the key {key} in validator key file {key_file} is not a validator of chain {chain_id} \
         (genesis file {genesis})"
    )]
    NotAValidator {
        /// The key, in hex.
        key: String,
        /// The key file.
        key_file: PathBuf,
        /// The chain.
        chain_id: String,
        /// The genesis file.
        genesis: PathBuf,
    },
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The block store could not be opened (damaged, or open in another process).
    #[error("cannot open the block store {path}: {source}")]
    Store {
        /// The file.
        path: PathBuf,
        /// What the store said.
        source: StoreError,
    },
    /// NATS could not be reached, or the chain's streams could not be set up.
    #[error("NATS: {0}")]
    Nats(#[source] BusError),
    /// The gRPC server could not start, or failed.
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    /// The metrics endpoint could not start, or failed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The validator stopped with an error (boxed: it is much larger than the others).
    #[error("validator stopped: {0}")]
    Validator(Box<ValidatorError>),
    /// A server task panicked or was cancelled.
    #[error("the {what} task ended abnormally: {reason}")]
    Task {
        /// Which task.
        what: &'static str,
        /// What Tokio said.
        reason: String,
    },
}

impl From<ValidatorError> for ServiceError {
    fn from(err: ValidatorError) -> Self {
        ServiceError::Validator(Box::new(err))
    }
}

/// Runs the consensus service configured by `config` until `shutdown` fires (then returns
/// `Ok`) or a part of it fails (then returns the first error, after stopping the others).
pub async fn serve(
    config: ServiceConfig<ConsensusConfig>,
    shutdown: Shutdown,
) -> Result<(), ServiceError> {
    let own = &config.extra;
    let genesis_path = &own.chain.genesis;
    let key_path = &own.consensus.validator_key;
    let genesis = load_genesis(genesis_path)?;
    let key = load_key(key_path)?;
    let identity = identify(&genesis, &key, key_path, genesis_path)?;
    let store = open_store(&own.consensus.data_dir).await?;
    tracing::info!(
        chain = %identity.chain_id,
        member = %identity.member_id,
        key = %identity.key,
        "starting validator"
    );

    let bus = connect(&nats_config(&own.nats, &identity))
        .await
        .map_err(ServiceError::Nats)?;
    let streams = StreamsConfig::new(genesis.chain_id.as_str())
        .map_err(ServiceError::Nats)?
        .with_replicas(config.extra.consensus.stream_replicas);
    ensure_streams(&bus, &streams)
        .await
        .map_err(ServiceError::Nats)?;

    let status: Arc<Mutex<Status>> = Arc::default();
    let server = GrpcServer::new(&config.grpc)?;
    let health = server.health();
    health
        .set_not_serving::<ConsensusServiceServer<ConsensusApi>>()
        .await;
    let api = ConsensusApi::new(identity, status.clone())
        .into_server()
        .max_decoding_message_size(server.max_request_bytes());
    let server = server.add_service(api);
    let grpc_addr = config.grpc.listen;
    let grpc_listener = TcpListener::bind(grpc_addr)
        .await
        .map_err(|source| GrpcError::Bind {
            addr: grpc_addr,
            source,
        })?;
    let metrics_listener = if config.metrics.enabled {
        let addr = config.metrics.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        Some(listener)
    } else {
        None
    };

    // Fires with the process's shutdown, or when one part fails and the others must stop.
    let stop = shutdown.child();
    let grpc = tokio::spawn(stop_all_on_error(
        server.serve_on(grpc_listener, stop.clone()),
        stop.clone(),
    ));
    let metrics = metrics_listener.map(|listener| {
        register_status_metrics(status.clone());
        tokio::spawn(stop_all_on_error(
            serve_metrics_on(
                listener,
                citychain_telemetry::prometheus_registry(),
                stop.clone(),
            ),
            stop.clone(),
        ))
    });
    let ready = tokio::spawn(mark_ready(status.clone(), health.clone(), stop.clone()));

    let setup = ValidatorSetup {
        genesis,
        key: key.signing,
        section: own.consensus.clone(),
        streams,
    };
    let outcome = run(setup, bus, store, status, stop.wait()).await;
    ready.abort();
    health
        .set_not_serving::<ConsensusServiceServer<ConsensusApi>>()
        .await;
    if let Err(err) = &outcome {
        tracing::error!(error = %err, "validator stopped");
    }
    stop.trigger();

    let grpc = drain("gRPC server", grpc).await;
    let metrics = match metrics {
        Some(task) => drain("metrics endpoint", task).await,
        None => Ok(Ok(())),
    };
    outcome?;
    grpc??;
    metrics??;
    tracing::info!("consensus service stopped");
    Ok(())
}

fn load_genesis(path: &Path) -> Result<Genesis, ServiceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ServiceError::Read {
        what: "genesis file",
        path: path.to_path_buf(),
        source,
    })?;
    Genesis::from_json(&text).map_err(|source| ServiceError::Genesis {
        path: path.to_path_buf(),
        source,
    })
}

fn load_key(path: &Path) -> Result<KeyPair, ServiceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ServiceError::Read {
        what: "validator key file",
        path: path.to_path_buf(),
        source,
    })?;
    KeyPair::from_key_file(&text).map_err(|source| ServiceError::KeyFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Who this validator is in genesis; refuses a key that is not a validator's before anything
/// connects.
fn identify(
    genesis: &Genesis,
    key: &KeyPair,
    key_file: &Path,
    genesis_file: &Path,
) -> Result<ValidatorIdentity, ServiceError> {
    let public = key.signing.public_key();
    let validators = genesis.validator_set();
    let validator = validators
        .get(&public)
        .ok_or_else(|| ServiceError::NotAValidator {
            key: public.to_string(),
            key_file: key_file.to_path_buf(),
            chain_id: genesis.chain_id.to_string(),
            genesis: genesis_file.to_path_buf(),
        })?;
    Ok(ValidatorIdentity {
        chain_id: genesis.chain_id.clone(),
        key: public,
        member_id: validator.member_id.clone(),
    })
}

async fn open_store(data_dir: &Path) -> Result<EmbeddedStore, ServiceError> {
    std::fs::create_dir_all(data_dir).map_err(|source| ServiceError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let path = data_dir.join(BLOCK_STORE_FILE);
    EmbeddedStore::open(&path)
        .await
        .map_err(|source| ServiceError::Store { path, source })
}

/// `[nats]` with the member in the client name, unless the configuration chose one, so the
/// server's connection list tells the validators apart.
fn nats_config(nats: &BusConfig, identity: &ValidatorIdentity) -> BusConfig {
    let mut config = nats.clone();
    if config.client_name == BusConfig::default().client_name {
        config.client_name = format!("citychain-consensus-{}", identity.member_id);
    }
    config
}

/// Runs a server; if it fails, fires `stop` so the validator and the other server stop too.
async fn stop_all_on_error<E>(
    server: impl Future<Output = Result<(), E>>,
    stop: Shutdown,
) -> Result<(), E> {
    let result = server.await;
    if result.is_err() {
        stop.trigger();
    }
    result
}

/// Waits for a server task to finish after `stop` fired, for at most [`DRAIN_TIMEOUT`].
async fn drain<E>(
    what: &'static str,
    mut task: JoinHandle<Result<(), E>>,
) -> Result<Result<(), E>, ServiceError> {
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut task).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(join)) => Err(ServiceError::Task {
            what,
            reason: join.to_string(),
        }),
        Err(_) => {
            tracing::warn!(
                server = what,
                "calls still open after {DRAIN_TIMEOUT:?}; closing them"
            );
            task.abort();
            Ok(Ok(()))
        }
    }
}

/// Marks the consensus API SERVING once the validator reports a height: it does so only
/// after it has caught up from CHAIN and started its engine.
async fn mark_ready(status: Arc<Mutex<Status>>, health: HealthReporter, stop: Shutdown) {
    let started = async {
        loop {
            let height = status.lock().map(|s| s.height).unwrap_or(0);
            if height > 0 {
                return height;
            }
            tokio::time::sleep(READY_POLL).await;
        }
    };
    tokio::select! {
        () = stop.wait() => {}
        height = started => {
            health
                .set_serving::<ConsensusServiceServer<ConsensusApi>>()
                .await;
            tracing::info!(height, "validator caught up and started; serving");
        }
    }
}

/// Exposes the status as OpenTelemetry instruments (and so on `/metrics`), read when scraped.
fn register_status_metrics(status: Arc<Mutex<Status>>) {
    type Field = fn(&Status) -> u64;
    let meter = opentelemetry::global::meter("citychain-consensus");
    let reader = |field: Field| {
        let status = status.clone();
        move || status.lock().map(|s| field(&s)).ok()
    };
    let gauges: [(&'static str, &'static str, Field); 4] = [
        ("consensus.height", "The height being decided.", |s| {
            s.height
        }),
        (
            "consensus.round",
            "The round at the height being decided.",
            |s| u64::from(s.round),
        ),
        (
            "consensus.mempool.depth",
            "Transactions waiting in the mempool.",
            |s| s.mempool_depth,
        ),
        (
            "consensus.validators.seen",
            "Validators whose messages were received.",
            |s| s.validators_seen.len() as u64,
        ),
    ];
    for (name, description, field) in gauges {
        let value = reader(field);
        meter
            .u64_observable_gauge(name)
            .with_description(description)
            .with_callback(move |observer| {
                if let Some(v) = value() {
                    observer.observe(v, &[]);
                }
            })
            .build();
    }
    let counters: [(&'static str, &'static str, Field); 2] = [
        (
            "consensus.committed.transactions",
            "Transactions in committed blocks.",
            |s| s.committed_txs,
        ),
        ("consensus.evidence", "Equivocations detected.", |s| {
            s.evidence
        }),
    ];
    for (name, description, field) in counters {
        let value = reader(field);
        meter
            .u64_observable_counter(name)
            .with_description(description)
            .with_callback(move |observer| {
                if let Some(v) = value() {
                    observer.observe(v, &[]);
                }
            })
            .build();
    }
    meter
        .u64_observable_counter("consensus.dropped")
        .with_description("Inputs dropped, by reason.")
        .with_callback(move |observer| {
            let Ok(status) = status.lock() else {
                return;
            };
            for (reason, count) in &status.dropped {
                observer.observe(*count, &[KeyValue::new("reason", reason.clone())]);
            }
        })
        .build();
}

#[cfg(test)]
mod tests {
    use tonic::server::NamedService;

    use super::*;

    #[test]
    fn health_uses_the_generated_service_name() {
        assert_eq!(
            <ConsensusServiceServer<ConsensusApi> as NamedService>::NAME,
            SERVICE_NAME
        );
    }

    #[test]
    fn a_key_outside_the_validator_set_is_refused_naming_both_files() {
        let genesis =
            Genesis::from_json(&citychain_testkit::genesis::network(4, 3).genesis.to_json())
                .unwrap();
        let stranger = KeyPair::from_key_file(
            &citychain_testkit::genesis::network(4, 4).validator_keys()[0].to_key_file(),
        )
        .unwrap();

        let err = identify(
            &genesis,
            &stranger,
            Path::new("/keys/stranger.json"),
            Path::new("/etc/genesis.json"),
        )
        .unwrap_err();

        let said = err.to_string();
        assert!(said.contains("/keys/stranger.json"), "{said}");
        assert!(said.contains("/etc/genesis.json"), "{said}");
    }

    #[test]
    fn a_validator_is_identified_by_its_member_id() {
        let net = citychain_testkit::genesis::network(4, 3);
        let key = net.validator_keys()[1].clone();

        let identity = identify(&net.genesis, &key, Path::new("k"), Path::new("g")).unwrap();

        assert_eq!(identity.member_id, net.genesis.validators[1]);
        assert_eq!(identity.key, key.signing.public_key());
    }
}
