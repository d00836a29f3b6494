//! The process shape every chain-following service shares: read genesis, open the store its
//! `[store]` section names (the embedded `<name>.redb` by default), connect to NATS and the chain's streams ([`ChainService::open`]); then,
//! once the service has built its API on the opened parts, run the gRPC server and `/metrics`,
//! health that follows the follower, the service's own side tasks and the follower itself
//! until shutdown or the first failure ([`ChainService::run`]).
//!
//! Health: the gRPC service `G` starts NOT_SERVING, becomes SERVING once the follower has
//! caught up with the CHAIN it found at start, and goes back to NOT_SERVING while a chain
//! violation halts it, while a stored block is known damaged, and when the process stops.
//!
//! A damaged store is never served: [`open_checked`] rebuilds it from CHAIN at start.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use citychain_bus::{Bus, BusConfig, BusError, StreamsConfig, StreamsUse, connect_to_chain};
use citychain_kernel::Genesis;
use citychain_runtime::config::{GrpcConfig, MetricsConfig};
use citychain_runtime::process::{
    FileError, ServerError, Servers, StoreOpenError, embedded_store_file, load_genesis, move_aside,
    open_service_store, spawn_owned,
};
use citychain_runtime::{GrpcError, GrpcServer, Shutdown};
use citychain_store::{ServiceStore, StoreConfig};
use thiserror::Error;
use tonic::server::NamedService;

use crate::follower::{Follower, FollowerConfig, FollowerError, resume_point};
use crate::health::{self, register_metrics, track_health};
use crate::projection::ChainProjection;
use crate::shared::Shared;

/// Where a chain-following service finds what it needs, from its configuration.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec<'a> {
    /// The service's name: its telemetry prefix, its store file (`<name>.redb`) and its NATS
    /// connection name (`citychain-<name>`).
    pub name: &'static str,
    /// The genesis file.
    pub genesis: &'a Path,
    /// The embedded store's folder.
    pub data_dir: &'a Path,
    /// Which store to open.
    pub store: &'a StoreConfig,
    /// NATS.
    pub nats: &'a BusConfig,
    /// JetStream replicas of the chain's streams, if this service creates them.
    pub stream_replicas: usize,
    /// How long one validator gets to answer a request for a block.
    pub repair_timeout: Duration,
}

/// Why a chain-following service could not start, or stopped. `E` is its projection's error.
#[derive(Debug, Error)]
pub enum ServiceError<E: std::error::Error + 'static> {
    /// A file named in the configuration could not be used.
    #[error(transparent)]
    File(#[from] FileError),
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
    /// The follower stopped with an error.
    #[error("following CHAIN failed: {0}")]
    Follower(#[from] FollowerError<E>),
    /// One of the service's own tasks stopped with an error.
    #[error("{what}: {reason}")]
    Task {
        /// The task.
        what: &'static str,
        /// Its error.
        reason: String,
    },
}

/// Opens the service's store and checks what the follower would resume from (the
/// checkpoint, and `projection`'s check of the applied height).
///
/// An embedded store that cannot be opened because its file is damaged (redb's "All roots
/// are corrupted" after an unclean stop and a bad disk, say), or that fails the check, is
/// closed, moved aside (`<name>.redb.damaged`, kept for inspection) with an error log and
/// the `<service>.store.rebuilds` counter, and replaced by an empty store that the follower
/// fills from CHAIN from genesis. So the service comes back, having served nothing from the
/// damaged file, instead of crash-looping. A damaged FoundationDB subspace is an error: its
/// replicas share it, and clearing it is the operator's decision.
pub async fn open_checked<P: ChainProjection>(
    spec: &ServiceSpec<'_>,
    genesis: &Genesis,
    projection: &P,
) -> Result<ServiceStore, ServiceError<P::Error>> {
    let damage = match open_service_store(spec.store, spec.data_dir, spec.name).await {
        Ok(store) => match resume_point(&store, genesis, projection).await {
            Ok(_) => return Ok(store),
            Err(err) if err.is_damage() => match store {
                ServiceStore::Embedded(embedded) => {
                    if let Err(close) = embedded.close().await {
                        tracing::warn!(error = %close, "closing the damaged store failed");
                    }
                    err.to_string()
                }
                #[allow(unreachable_patterns)]
                _ => return Err(err.into()),
            },
            Err(err) => return Err(err.into()),
        },
        Err(StoreOpenError::Open { source, .. }) if source.is_corruption() => source.to_string(),
        Err(err) => return Err(err.into()),
    };
    let path = spec.data_dir.join(embedded_store_file(spec.name));
    let aside = move_aside(&path).map_err(|source| StoreOpenError::MoveAside {
        path: path.clone(),
        source,
    })?;
    health::meter(spec.name)
        .u64_counter(format!("{}.store.rebuilds", spec.name))
        .with_description("Damaged stores moved aside and rebuilt from CHAIN.")
        .build()
        .add(1, &[]);
    tracing::error!(
        service = spec.name,
        damage = %damage,
        moved_to = %aside.display(),
        "the store is damaged: moved aside, rebuilding it from CHAIN"
    );
    Ok(open_service_store(spec.store, spec.data_dir, spec.name).await?)
}

/// A task a service runs beside its follower, until the stop it was given fires.
pub type SideTask = (
    &'static str,
    Pin<Box<dyn Future<Output = Result<(), String>> + Send>>,
);

/// The opened parts of a chain-following service.
#[derive(Debug)]
pub struct ChainService {
    /// The chain's genesis.
    pub genesis: Genesis,
    /// The service's store.
    pub store: ServiceStore,
    /// Its NATS connection.
    pub bus: Bus,
    /// The chain's streams.
    pub streams: StreamsConfig,
    /// What the follower shares with the API and health.
    pub shared: Arc<Shared>,
    name: &'static str,
    repair_timeout: Duration,
}

impl ChainService {
    /// Reads genesis, opens the store (rebuilding it if it is damaged, see
    /// [`open_checked`]) and connects to the chain. `projection` is the one [`Self::run`]
    /// will follow with; it checks the stored state before anything is served from it.
    pub async fn open<P: ChainProjection>(
        spec: ServiceSpec<'_>,
        projection: &P,
    ) -> Result<ChainService, ServiceError<P::Error>> {
        let genesis = load_genesis(spec.genesis)?;
        let store = open_checked(&spec, &genesis, projection).await?;
        tracing::info!(chain = %genesis.chain_id, service = spec.name, "starting");
        let (bus, streams) = connect_to_chain(
            spec.nats,
            spec.name,
            &format!("citychain-{}", spec.name),
            genesis.chain_id.as_str(),
            spec.stream_replicas,
            StreamsUse::Follow,
        )
        .await
        .map_err(ServiceError::Nats)?;
        Ok(ChainService {
            shared: Shared::new(&genesis),
            genesis,
            store,
            bus,
            streams,
            name: spec.name,
            repair_timeout: spec.repair_timeout,
        })
    }

    /// Runs the service whose gRPC API `G` is on `server` until `shutdown` fires (then
    /// `Ok`) or a part fails (then the first error, after stopping the others). `side` builds
    /// the service's own tasks from the stop they must watch; a side task that fails stops
    /// the service.
    pub async fn run<P, G>(
        self,
        projection: P,
        server: GrpcServer,
        grpc: &GrpcConfig,
        metrics: &MetricsConfig,
        shutdown: Shutdown,
        side: impl FnOnce(&Shutdown) -> Vec<SideTask>,
    ) -> Result<(), ServiceError<P::Error>>
    where
        P: ChainProjection,
        G: NamedService,
    {
        let follower = Follower::resume(
            &self.genesis,
            self.store,
            projection,
            self.bus,
            self.streams,
            self.shared.clone(),
            FollowerConfig::new(self.name, self.repair_timeout),
        )
        .await?;
        let health = server.health();
        health.set_not_serving::<G>().await;
        // Fires with the process's shutdown, or when one part fails and the others must stop.
        let stop = shutdown.child();
        if metrics.enabled {
            register_metrics(self.shared.clone(), self.name);
        }
        let servers = Servers::start(server, grpc.listen, metrics, &stop).await?;
        let watcher = spawn_owned(track_health::<G>(
            self.shared.clone(),
            health.clone(),
            stop.clone(),
            self.name,
        ));
        let tasks: Vec<_> = side(&stop)
            .into_iter()
            .map(|(what, task)| {
                let stop = stop.clone();
                let handle = spawn_owned(async move {
                    let outcome = task.await;
                    if outcome.is_err() {
                        stop.trigger();
                    }
                    outcome
                });
                (what, handle)
            })
            .collect();

        let outcome = follower.run(stop.wait()).await;
        watcher.abort();
        health.set_not_serving::<G>().await;
        if let Err(err) = &outcome {
            tracing::error!(error = %err, service = self.name, "stopped");
        }
        stop.trigger();
        let mut failed = None;
        for (what, handle) in tasks {
            match handle.await {
                Ok(Err(reason)) => {
                    tracing::error!(task = what, error = %reason, service = self.name, "task failed");
                    failed.get_or_insert(ServiceError::Task { what, reason });
                }
                Err(join) => {
                    failed.get_or_insert(ServiceError::Task {
                        what,
                        reason: join.to_string(),
                    });
                }
                Ok(Ok(())) => {}
            }
        }
        let servers = servers.drain().await;
        outcome?;
        if let Some(err) = failed {
            return Err(err);
        }
        servers?;
        tracing::info!(service = self.name, "service stopped");
        Ok(())
    }
}
