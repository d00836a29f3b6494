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

use citychain_bus::{BusError, StreamsUse, connect_to_chain};
use citychain_kernel::{Genesis, KeyError, KeyPair};
use citychain_proto::citychain::consensus::v1::consensus_service_server::ConsensusServiceServer;
use citychain_runtime::config::ServiceConfig;
use citychain_runtime::grpc::HealthReporter;
use citychain_runtime::process::{
    FileError, ServerError, Servers, StoreOpenError, load_genesis, open_embedded_store, read_text,
    spawn_owned,
};
use citychain_runtime::{GrpcError, GrpcServer, Shutdown};
use opentelemetry::KeyValue;
use thiserror::Error;

use crate::api::{ConsensusApi, ValidatorIdentity};
use crate::config::ConsensusConfig;
use crate::validator::{Status, ValidatorError, ValidatorSetup, run};

/// The name the health service reports the consensus API under.
pub const SERVICE_NAME: &str = "citychain.consensus.v1.ConsensusService";

/// The block store's file inside `consensus.data_dir`.
pub const BLOCK_STORE_FILE: &str = "blocks.redb";

/// How often readiness is checked until the validator reports its first height.
const READY_POLL: Duration = Duration::from_millis(50);

/// Why the consensus service could not start, or stopped.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// A file named in the configuration could not be used.
    #[error(transparent)]
    File(#[from] FileError),
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
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreOpenError),
    /// NATS could not be reached, or the chain's streams could not be set up.
    #[error("NATS: {0}")]
    Nats(#[source] BusError),
    /// The gRPC server could not be set up.
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    /// The gRPC server or the metrics endpoint could not start, or failed.
    #[error(transparent)]
    Servers(#[from] ServerError),
    /// The validator stopped with an error (boxed: it is much larger than the others).
    #[error("validator stopped: {0}")]
    Validator(Box<ValidatorError>),
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
    let store = open_embedded_store(&own.consensus.data_dir, BLOCK_STORE_FILE).await?;
    tracing::info!(
        chain = %identity.chain_id,
        member = %identity.member_id,
        key = %identity.key,
        "starting validator"
    );

    let (bus, streams) = connect_to_chain(
        &own.nats,
        &citychain_bus::access::validator_user(identity.member_id.as_str()),
        &format!("citychain-consensus-{}", identity.member_id),
        genesis.chain_id.as_str(),
        own.consensus.stream_replicas,
        StreamsUse::Manage,
    )
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
    // Fires with the process's shutdown, or when one part fails and the others must stop.
    let stop = shutdown.child();
    if config.metrics.enabled {
        register_status_metrics(status.clone());
    }
    let servers = Servers::start(server, config.grpc.listen, &config.metrics, &stop).await?;
    let ready = spawn_owned(mark_ready(status.clone(), health.clone(), stop.clone()));

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

    let servers = servers.drain().await;
    outcome?;
    servers?;
    tracing::info!("consensus service stopped");
    Ok(())
}

fn load_key(path: &Path) -> Result<KeyPair, ServiceError> {
    let text = read_text("validator key file", path)?;
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
