//! The ledger service as a process: reads genesis, opens its store, connects to NATS, serves
//! the gRPC API (with health and reflection) and `/metrics`, and follows CHAIN until shutdown.
//!
//! Health: [`SERVICE_NAME`] starts NOT_SERVING and becomes SERVING once the follower has
//! caught up with the CHAIN it found at start; it goes back to NOT_SERVING while a chain
//! violation halts the follower (and when the process stops), so a load balancer stops sending
//! queries to a ledger that cannot vouch for its answers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use citychain_bus::{BusError, connect_to_chain};
use citychain_proto::citychain::ledger::v1::ledger_service_server::LedgerServiceServer;
use citychain_runtime::config::ServiceConfig;
use citychain_runtime::grpc::HealthReporter;
use citychain_runtime::process::{
    FileError, ServerError, Servers, StoreOpenError, load_genesis, open_embedded_store, spawn_owned,
};
use citychain_runtime::{GrpcError, GrpcServer, Shutdown};
use citychain_store::EmbeddedStore;
use opentelemetry::KeyValue;
use thiserror::Error;

use crate::api::LedgerApi;
use crate::config::LedgerConfig;
use crate::follower::{Follower, FollowerError, Shared};

/// The name the health service reports the ledger API under.
pub const SERVICE_NAME: &str = "citychain.ledger.v1.LedgerService";

/// The store's file inside `ledger.data_dir`.
pub const STORE_FILE: &str = "ledger.redb";

/// How often health is brought in line with the follower.
const HEALTH_POLL: Duration = Duration::from_millis(100);

/// Why the ledger service could not start, or stopped.
#[derive(Debug, Error)]
pub enum ServiceError {
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
    Follower(#[from] FollowerError),
}

/// Runs the ledger service configured by `config` until `shutdown` fires (then returns `Ok`)
/// or a part of it fails (then returns the first error, after stopping the others).
pub async fn serve(
    config: ServiceConfig<LedgerConfig>,
    shutdown: Shutdown,
) -> Result<(), ServiceError> {
    let own = &config.extra;
    let genesis = load_genesis(&own.chain.genesis)?;
    let store = open_embedded_store(&own.ledger.data_dir, STORE_FILE).await?;
    tracing::info!(chain = %genesis.chain_id, "starting ledger");

    let (bus, streams) = connect_to_chain(
        &own.nats,
        "citychain-ledger",
        genesis.chain_id.as_str(),
        own.ledger.stream_replicas,
    )
    .await
    .map_err(ServiceError::Nats)?;

    let shared = Shared::new(&genesis);
    let follower = Follower::resume(
        &genesis,
        store.clone(),
        bus.clone(),
        streams.clone(),
        shared.clone(),
        Duration::from_millis(own.ledger.repair_timeout_ms),
    )
    .await?;

    let server = GrpcServer::new(&config.grpc)?;
    let health = server.health();
    health
        .set_not_serving::<LedgerServiceServer<LedgerApi<EmbeddedStore>>>()
        .await;
    let api = LedgerApi::new(
        genesis.chain_id.clone(),
        store,
        shared.clone(),
        bus,
        streams,
        own.ledger.max_ttl,
    )
    .into_server()
    .max_decoding_message_size(server.max_request_bytes());
    let server = server.add_service(api);
    // Fires with the process's shutdown, or when one part fails and the others must stop.
    let stop = shutdown.child();
    if config.metrics.enabled {
        register_metrics(shared.clone());
    }
    let servers = Servers::start(server, config.grpc.listen, &config.metrics, &stop).await?;
    let watcher = spawn_owned(track_health(shared.clone(), health.clone(), stop.clone()));

    let outcome = follower.run(stop.wait()).await;
    watcher.abort();
    health
        .set_not_serving::<LedgerServiceServer<LedgerApi<EmbeddedStore>>>()
        .await;
    if let Err(err) = &outcome {
        tracing::error!(error = %err, "ledger stopped");
    }
    stop.trigger();
    let servers = servers.drain().await;
    outcome?;
    servers?;
    tracing::info!("ledger service stopped");
    Ok(())
}

/// SERVING once caught up with the CHAIN seen at start and while no violation halts the
/// follower; NOT_SERVING otherwise.
async fn track_health(shared: Arc<Shared>, health: HealthReporter, stop: Shutdown) {
    let mut serving = false;
    loop {
        let alert = shared
            .alert
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let caught_up = shared.caught_up.load(Ordering::Acquire);
        let should_serve = caught_up && alert.is_none();
        if should_serve != serving {
            serving = should_serve;
            if serving {
                health
                    .set_serving::<LedgerServiceServer<LedgerApi<EmbeddedStore>>>()
                    .await;
                tracing::info!(height = shared.applied().0, "ledger caught up; serving");
            } else {
                health
                    .set_not_serving::<LedgerServiceServer<LedgerApi<EmbeddedStore>>>()
                    .await;
                tracing::warn!("ledger halted on a chain violation; not serving");
            }
        }
        tokio::select! {
            () = stop.wait() => return,
            () = tokio::time::sleep(HEALTH_POLL) => {}
        }
    }
}

/// The follower's position as OpenTelemetry instruments (and so on `/metrics`).
fn register_metrics(shared: Arc<Shared>) {
    let meter = opentelemetry::global::meter("citychain-ledger");
    let applied = shared.clone();
    meter
        .u64_observable_gauge("ledger.applied.height")
        .with_description("The last block the ledger applied.")
        .with_callback(move |observer| observer.observe(applied.applied().0, &[]))
        .build();
    meter
        .u64_observable_gauge("projection.lag")
        .with_description("Blocks on CHAIN that the projection has not applied yet.")
        .with_callback(move |observer| {
            let last = *shared.chain_last.lock().unwrap_or_else(|e| e.into_inner());
            observer.observe(
                last.saturating_sub(shared.applied().0),
                &[KeyValue::new("service", "ledger")],
            );
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
            <LedgerServiceServer<LedgerApi<EmbeddedStore>> as NamedService>::NAME,
            SERVICE_NAME
        );
    }
}
