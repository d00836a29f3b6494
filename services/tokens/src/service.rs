//! The token service as a process: reads genesis and its identity's key file, opens its
//! store, connects to NATS, serves the gRPC API (with health and reflection) and `/metrics`,
//! publishes its outbox to EVENTS (each event signed), and follows CHAIN until shutdown.
//!
//! Health: [`SERVICE_NAME`] starts NOT_SERVING and becomes SERVING once the follower has
//! caught up with the CHAIN it found at start; it goes back to NOT_SERVING while a chain
//! violation halts the follower (and when the process stops).

use std::time::Duration;

use citychain_follower::{ChainService, ServiceSpec};
use citychain_kernel::KeyPair;
use citychain_proto::citychain::tokens::v1::token_service_server::TokenServiceServer;
use citychain_runtime::config::ServiceConfig;
use citychain_runtime::process::read_text;
use citychain_runtime::{GrpcServer, Shutdown};
use citychain_store::ServiceStore;

use crate::api::TokensApi;
use crate::config::TokensConfig;
use crate::journal::TokensStoreError;
use crate::outbox::OutboxPublisher;
use crate::projection::TokensProjection;

/// The name the health service reports the token API under.
pub const SERVICE_NAME: &str = "citychain.tokens.v1.TokenService";

/// The service's name: its telemetry prefix (`tokens.chain.violations`, `tokens.apply`,
/// `tokens.applied.height`, `projection.lag{service="tokens"}`) and its store file
/// (`tokens.redb` inside `tokens.data_dir`).
const NAME: &str = "tokens";

type Server = TokenServiceServer<TokensApi<ServiceStore>>;

/// Why the token service could not start, or stopped.
pub type ServiceError = citychain_follower::ServiceError<TokensStoreError>;

/// Runs the token service configured by `config` until `shutdown` fires (then returns `Ok`)
/// or a part of it fails (then returns the first error, after stopping the others).
pub async fn serve(
    config: ServiceConfig<TokensConfig>,
    shutdown: Shutdown,
) -> Result<(), ServiceError> {
    let own = &config.extra;
    let key_text = read_text("token service key file", &own.tokens.key_file)?;
    let identity = KeyPair::from_key_file(&key_text).map_err(|err| ServiceError::Task {
        what: "reading the token service key file",
        reason: format!("{}: {err}", own.tokens.key_file.display()),
    })?;
    let service = ChainService::open(
        ServiceSpec {
            name: NAME,
            genesis: &own.chain.genesis,
            data_dir: &own.tokens.data_dir,
            store: &own.store,
            nats: &own.nats,
            stream_replicas: own.tokens.stream_replicas,
            repair_timeout: Duration::from_millis(own.tokens.repair_timeout_ms),
        },
        &TokensProjection,
    )
    .await?;
    let server = GrpcServer::new(&config.grpc)?;
    let api = TokensApi::new(
        service.store.clone(),
        service.shared.clone(),
        server.page_key(),
    )
    .into_server()
    .max_decoding_message_size(server.max_request_bytes());
    let server = server.add_service(api);
    let publisher = OutboxPublisher::new(
        service.store.clone(),
        service.bus.clone(),
        service.streams.clone(),
        service.shared.clone(),
        identity.signing,
    );
    let applied = service.shared.applied.subscribe();
    service
        .run::<_, Server>(
            TokensProjection,
            server,
            &config.grpc,
            &config.metrics,
            shutdown,
            |stop| {
                let stop = stop.clone();
                // The publisher stops at the stop; what it has not published stays in the
                // outbox for the next start.
                vec![(
                    "publishing token events",
                    Box::pin(async move {
                        publisher.run(applied, stop.wait()).await;
                        Ok(())
                    }),
                )]
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
