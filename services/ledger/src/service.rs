//! The ledger service as a process: reads genesis, opens its store (bringing its indexes up to
//! date), connects to NATS, serves the gRPC API (with health and reflection) and `/metrics`,
//! follows CHAIN, and watches MEMPOOL for transactions that wait, until shutdown.
//!
//! Health: [`SERVICE_NAME`] starts NOT_SERVING and becomes SERVING once the follower has
//! caught up with the CHAIN it found at start; it goes back to NOT_SERVING while a chain
//! violation halts the follower (and when the process stops), so a load balancer stops sending
//! queries to a ledger that cannot vouch for its answers.

use std::sync::Arc;
use std::time::Duration;

use citychain_bus::{Bus, StreamsConfig};
use citychain_follower::{
    Admission, ChainService, Follower, FollowerConfig, FollowerError, ServiceSpec, Shared, SideTask,
};
use citychain_kernel::Genesis;
use citychain_proto::citychain::ledger::v1::ledger_service_server::LedgerServiceServer;
use citychain_runtime::config::ServiceConfig;
use citychain_runtime::{GrpcServer, Shutdown};
use citychain_store::{ServiceStore, Store};

use crate::api::LedgerApi;
use crate::config::LedgerConfig;
use crate::pending::{Pending, watch_mempool};
use crate::store::{LedgerProjection, LedgerStoreError, upgrade_indexes};

/// The name the health service reports the ledger API under.
pub const SERVICE_NAME: &str = "citychain.ledger.v1.LedgerService";

/// The service's name: its telemetry prefix (the `ledger.chain.violations` counter, the
/// `ledger.apply` span of each block, the `ledger.applied.height` gauge) and its store file
/// (`ledger.redb` inside `ledger.data_dir`).
const NAME: &str = "ledger";

/// The ledger's gRPC service, as health names it.
type Server = LedgerServiceServer<LedgerApi<ServiceStore>>;

/// The ledger's follower of CHAIN.
pub type LedgerFollower<S> = Follower<S, LedgerProjection>;

/// Why the ledger service could not start, or stopped.
pub type ServiceError = citychain_follower::ServiceError<LedgerStoreError>;

/// Runs the ledger service configured by `config` until `shutdown` fires (then returns `Ok`)
/// or a part of it fails (then returns the first error, after stopping the others).
pub async fn serve(
    config: ServiceConfig<LedgerConfig>,
    shutdown: Shutdown,
) -> Result<(), ServiceError> {
    let own = &config.extra;
    let service = ChainService::open(
        ServiceSpec {
            name: NAME,
            genesis: &own.chain.genesis,
            data_dir: &own.ledger.data_dir,
            store: &own.store,
            nats: &own.nats,
            stream_replicas: own.ledger.stream_replicas,
            repair_timeout: Duration::from_millis(own.ledger.repair_timeout_ms),
        },
        &LedgerProjection,
    )
    .await?;
    upgrade_indexes(&service.store)
        .await
        .map_err(|err| ServiceError::Task {
            what: "index upgrade",
            reason: err.to_string(),
        })?;
    let server = GrpcServer::new(&config.grpc)?;
    let pending = Arc::new(Pending::default());
    let admission = Admission::new(
        service.genesis.chain_id.clone(),
        service.shared.clone(),
        service.bus.clone(),
        service.streams.clone(),
        own.ledger.max_ttl,
    );
    let api = LedgerApi::new(
        service.store.clone(),
        service.shared.clone(),
        admission.clone(),
        pending.clone(),
        server.page_key(),
    )
    .into_server()
    .max_decoding_message_size(server.max_request_bytes());
    let server = server.add_service(api);
    let (bus, streams) = (service.bus.clone(), service.streams.clone());
    let watcher = move |stop: &Shutdown| -> Vec<SideTask> {
        let task = watch_mempool(bus, streams, admission, pending, stop.clone());
        vec![("MEMPOOL watcher", Box::pin(task))]
    };
    service
        .run::<_, Server>(
            LedgerProjection,
            server,
            &config.grpc,
            &config.metrics,
            shutdown,
            watcher,
        )
        .await
}

/// The ledger's follower over `store`, resumed from its checkpoint (from genesis on an empty
/// store), publishing to `shared`; `repair_timeout` is how long each validator gets to answer
/// a request for a block.
pub async fn resume_follower<S: Store>(
    genesis: &Genesis,
    store: S,
    bus: Bus,
    streams: StreamsConfig,
    shared: Arc<Shared>,
    repair_timeout: Duration,
) -> Result<LedgerFollower<S>, FollowerError<LedgerStoreError>> {
    let config = FollowerConfig::new(NAME, repair_timeout);
    Follower::resume(
        genesis,
        store,
        LedgerProjection,
        bus,
        streams,
        shared,
        config,
    )
    .await
}

#[cfg(test)]
mod tests {
    use tonic::server::NamedService;

    use super::*;

    #[test]
    fn health_uses_the_generated_service_name() {
        assert_eq!(
            <LedgerServiceServer<LedgerApi<ServiceStore>> as NamedService>::NAME,
            SERVICE_NAME
        );
    }
}
