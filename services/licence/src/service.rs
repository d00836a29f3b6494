//! The licence service as a process: reads genesis and its key file, opens its store and the
//! vault, connects to NATS, serves the gRPC API (with health and reflection) and `/metrics`,
//! and runs its three loops until shutdown: the CHAIN follower (records and receipts), the
//! payments reader (the token platform's verdicts) and the releaser (key grants).
//!
//! Health: [`SERVICE_NAME`] is SERVING once the follower has caught up with the CHAIN it found
//! at start and while no chain violation halts it.

use std::sync::Arc;
use std::time::Duration;

use citychain_follower::{Admission, ChainService, ServiceSpec};
use citychain_kernel::KeyPair;
use citychain_proto::citychain::licence::v1::licence_service_server::LicenceServiceServer;
use citychain_runtime::config::ServiceConfig;
use citychain_runtime::process::read_text;
use citychain_runtime::{GrpcServer, Shutdown};
use citychain_store::ServiceStore;
use tokio::sync::Notify;

use crate::api::LicenceApi;
use crate::config::LicenceConfig;
use crate::payments;
use crate::projection::{LicenceProjection, ProjectionError};
use crate::release;
use crate::vault::Vault;

/// The name the health service reports the licence API under.
pub const SERVICE_NAME: &str = "citychain.licence.v1.LicenceService";

/// The service's name: its telemetry prefix and its store file (`licence.redb` inside
/// `licence.data_dir`).
const NAME: &str = "licence";

type Server = LicenceServiceServer<LicenceApi<ServiceStore>>;

/// Why the licence service could not start, or stopped.
pub type ServiceError = citychain_follower::ServiceError<ProjectionError>;

/// Runs the licence service configured by `config` until `shutdown` fires (then returns `Ok`)
/// or a part of it fails (then returns the first error, after stopping the others).
pub async fn serve(
    config: ServiceConfig<LicenceConfig>,
    shutdown: Shutdown,
) -> Result<(), ServiceError> {
    let own = &config.extra;
    let key_text = read_text("licence key file", &own.licence.key_file)?;
    let keys = KeyPair::from_key_file(&key_text).map_err(|err| ServiceError::Task {
        what: "reading the licence key file",
        reason: format!("{}: {err}", own.licence.key_file.display()),
    })?;
    let service = ChainService::open(
        ServiceSpec {
            name: NAME,
            genesis: &own.chain.genesis,
            data_dir: &own.licence.data_dir,
            store: &own.store,
            nats: &own.nats,
            stream_replicas: own.licence.stream_replicas,
            repair_timeout: Duration::from_millis(own.licence.repair_timeout_ms),
        },
        &LicenceProjection,
    )
    .await?;
    let vault = Vault::open(
        &service.bus,
        &service.streams,
        own.licence.stream_replicas,
        keys.encryption,
    )
    .await
    .map_err(|err| ServiceError::Task {
        what: "opening the vault",
        reason: err.to_string(),
    })?;
    let server = GrpcServer::new(&config.grpc)?;
    let admission = Admission::new(
        service.genesis.chain_id.clone(),
        service.shared.clone(),
        service.bus.clone(),
        service.streams.clone(),
        own.licence.max_ttl,
    );
    let api = LicenceApi::new(
        service.store.clone(),
        service.shared.clone(),
        admission,
        vault.clone(),
        server.page_key(),
    )
    .into_server()
    .max_decoding_message_size(server.max_request_bytes());
    let server = server.add_service(api);
    let poke = Arc::new(Notify::new());
    let (store, bus, streams, shared) = (
        service.store.clone(),
        service.bus.clone(),
        service.streams.clone(),
        service.shared.clone(),
    );
    let durable = own.licence.payments_consumer.clone();
    service
        .run::<_, Server>(
            LicenceProjection,
            server,
            &config.grpc,
            &config.metrics,
            shutdown,
            |stop| {
                let payments = payments::run(
                    store.clone(),
                    bus,
                    streams,
                    durable,
                    shared.clone(),
                    poke.clone(),
                    stop.wait(),
                );
                let releaser = release::run(store, vault, shared, poke, stop.wait());
                vec![
                    (
                        "reading payments",
                        Box::pin(async move { payments.await.map_err(|e| e.to_string()) }),
                    ),
                    (
                        "releasing keys",
                        Box::pin(async move { releaser.await.map_err(|e| e.to_string()) }),
                    ),
                ]
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use tonic::server::NamedService;

    use super::*;

    #[test]
    fn health_uses_the_generated_service_name() {
        assert_eq!(<Server as NamedService>::NAME, SERVICE_NAME);
    }
}
