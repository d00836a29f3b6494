//! The gRPC server every service runs, and client channels to other services.
//!
//! [`GrpcServer`] always serves, next to the service's own APIs:
//! - the standard health service `grpc.health.v1.Health`, driven by a [`HealthReporter`]
//!   (the overall status, service name `""`, is SERVING until shutdown begins);
//! - reflection, both `grpc.reflection.v1.ServerReflection` and the older
//!   `grpc.reflection.v1alpha.ServerReflection` that many clients still speak, advertising
//!   exactly the services this server serves (its own APIs, health and reflection) and
//!   resolving every citychain file and symbol (`citychain_proto::FILE_DESCRIPTOR_SET`);
//! - TLS, and mutual TLS when a client CA is configured;
//! - a server span per call, joined to the caller's trace ([`trace`]);
//! - a duration sample per call, by service, method and status code ([`red`]);
//! - a cap on request message size ([`limit`]);
//! - the key that authenticates the service's page tokens ([`GrpcServer::page_key`]), from
//!   `grpc.page_token_secret_file` or, without one, made up at start.
//!
//! # Request size limit
//!
//! `grpc.max_request_bytes` is enforced for every service by [`limit::RequestLimitLayer`],
//! which fails an oversized call with `RESOURCE_EXHAUSTED` as soon as the message header
//! arrives. Generated servers additionally keep tonic's decoding limit, 4 MiB by default; a
//! service whose configuration allows more must raise it where it builds its server:
//!
//! ```ignore
//! let server = GrpcServer::new(&config.grpc)?;
//! let api = LedgerServer::new(ledger).max_decoding_message_size(server.max_request_bytes());
//! server.add_service(api).serve_with_shutdown(config.grpc.listen, shutdown).await?;
//! ```

pub mod client;
pub mod limit;
pub mod red;
pub mod trace;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use opentelemetry::metrics::Meter;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
pub use tonic_health::ServingStatus;
pub use tonic_health::server::HealthReporter;

pub use client::{
    TraceContextInterceptor, TracedChannel, client_tls_from_files, connect_channel,
    connect_channel_lazy, health_status,
};
pub use limit::RequestLimitLayer;
pub use red::CallMetrics;
pub use trace::GrpcTraceLayer;

use citychain_store::PageKey;

use crate::config::{GrpcConfig, TlsConfig};

#[cfg(test)]
mod message_tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        assert_eq!(short_message("short".into()), "short");
        let long = format!("account {}", "é".repeat(1 << 19));
        let cut = short_message(long.clone());
        assert!(cut.len() <= MAX_STATUS_MESSAGE, "{}", cut.len());
        assert!(cut.starts_with("account é"));
        assert!(cut.ends_with("bytes cut)"), "{cut}");
    }
}
use crate::shutdown::Shutdown;

/// The longest status message a service sends, in bytes: errors name the field and the limit,
/// and quote at most this much of what the caller sent.
pub const MAX_STATUS_MESSAGE: usize = 512;

/// `message`, cut to at most [`MAX_STATUS_MESSAGE`] bytes (on a character boundary) and
/// saying how much was cut, so an error never echoes a whole oversized input back.
pub fn short_message(message: String) -> String {
    if message.len() <= MAX_STATUS_MESSAGE {
        return message;
    }
    let mut end = MAX_STATUS_MESSAGE - 40;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes cut)", &message[..end], message.len() - end)
}

/// Why a gRPC server or channel could not be set up, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadPem {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS configuration was refused.
    #[error("invalid TLS configuration: {source}")]
    Tls {
        /// What tonic said.
        source: tonic::transport::Error,
    },
    /// The reflection service could not read the descriptor sets.
    #[error("cannot build the reflection service: {0}")]
    Reflection(String),
    /// The listen address could not be bound.
    #[error("cannot listen for gRPC on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The page token secret file is unreadable or too short.
    #[error("page token secret {path}: {problem}")]
    PageSecret {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The operating system gave no randomness for a page token key.
    #[error("cannot make up a page token key: {0}")]
    Randomness(String),
    /// The server failed while running.
    #[error("gRPC server failed: {0}")]
    Serve(tonic::transport::Error),
    /// A client address is not a valid URI.
    #[error("invalid gRPC address {addr:?}: {source}")]
    Address {
        /// The address as given.
        addr: String,
        /// Why it is not a URI.
        source: tonic::transport::Error,
    },
    /// A client could not connect.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// What tonic said.
        source: tonic::transport::Error,
    },
}

/// The services every [`GrpcServer`] serves besides the ones added.
pub const BUILT_IN_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// A gRPC server with health, reflection, TLS, tracing, call metrics and request limits; add
/// the service's own APIs with [`GrpcServer::add_service`], then serve until shutdown.
#[derive(Debug)]
pub struct GrpcServer {
    max_request_bytes: usize,
    tls: Option<ServerTlsConfig>,
    routes: RoutesBuilder,
    /// The services added, as reflection advertises them.
    names: Vec<&'static str>,
    health: HealthReporter,
    /// The call metrics, when given a meter; otherwise they go to the global meter, looked up
    /// when serving starts.
    metrics: Option<CallMetrics>,
    page_key: PageKey,
    /// Whether `page_key` was made up at start rather than read from a shared secret.
    page_key_own: bool,
}

/// The shortest page token secret accepted, in bytes.
pub const MIN_PAGE_SECRET_BYTES: usize = 32;

/// The page key from `path`'s secret (surrounding whitespace ignored), or a random one.
fn page_key(path: Option<&PathBuf>) -> Result<(PageKey, bool), GrpcError> {
    let Some(path) = path else {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|err| GrpcError::Randomness(err.to_string()))?;
        return Ok((PageKey::derive(&secret), true));
    };
    let problem = |problem: String| GrpcError::PageSecret {
        path: path.clone(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|err| problem(err.to_string()))?;
    let secret = bytes.trim_ascii();
    if secret.len() < MIN_PAGE_SECRET_BYTES {
        return Err(problem(format!(
            "{} bytes, at least {MIN_PAGE_SECRET_BYTES} are needed",
            secret.len()
        )));
    }
    Ok((PageKey::derive(secret), false))
}

impl GrpcServer {
    /// Prepares a server from `[grpc]`; reads the TLS files now, so a bad path fails at
    /// start-up.
    pub fn new(config: &GrpcConfig) -> Result<Self, GrpcError> {
        let tls = config.tls.as_ref().map(server_tls).transpose()?;
        let max_request_bytes = config.max_request_bytes;
        let (page_key, page_key_own) = page_key(config.page_token_secret_file.as_ref())?;

        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service.max_decoding_message_size(max_request_bytes));
        Ok(GrpcServer {
            max_request_bytes,
            tls,
            routes,
            names: Vec::new(),
            health,
            metrics: None,
            page_key,
            page_key_own,
        })
    }

    /// The key the service's page tokens are tagged with. Without a configured secret it was
    /// made up at start, which is said once here: such tokens fail on other replicas.
    pub fn page_key(&self) -> PageKey {
        if self.page_key_own {
            tracing::warn!(
                "grpc.page_token_secret_file is not set: page tokens work only on this replica until it restarts"
            );
        }
        self.page_key.clone()
    }

    /// The handle that sets what the health service answers, per service name: e.g.
    /// `health.set_service_status("citychain.ledger.v1.Ledger", ServingStatus::Serving)` once
    /// the service is ready, `NotServing` while it cannot serve. Names never set answer
    /// `NOT_FOUND`; the overall name `""` is SERVING until shutdown.
    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    /// The configured request message limit, for generated servers'
    /// `max_decoding_message_size` (see the module docs).
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    /// Records the call metrics ([`red`]) with `meter` instead of the global meter
    /// [`red::METER_NAME`], which is otherwise looked up when serving starts. Meant for tests
    /// that read a local meter provider.
    pub fn with_meter(mut self, meter: &Meter) -> Self {
        self.metrics = Some(CallMetrics::new(meter));
        self
    }

    /// Adds a generated (or any tonic) service.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// The services reflection advertises: those added, health, and reflection itself.
    pub fn service_names(&self) -> Vec<&'static str> {
        let mut names = self.names.clone();
        names.extend(BUILT_IN_SERVICES);
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Adds both reflection services, advertising [`GrpcServer::service_names`].
    fn add_reflection(&mut self) -> Result<(), GrpcError> {
        let names = self.service_names();
        let builder = || {
            // Each version's builder adds only its own reflection file; both are listed, so
            // both must resolve in either protocol.
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(citychain_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                );
            for name in &names {
                builder = builder.with_service_name(*name);
            }
            builder
        };
        let failed = |e: tonic_reflection::server::Error| GrpcError::Reflection(e.to_string());
        let v1 = builder().build_v1().map_err(failed)?;
        let v1alpha = builder().build_v1alpha().map_err(failed)?;
        self.routes
            .add_service(v1.max_decoding_message_size(self.max_request_bytes))
            .add_service(v1alpha.max_decoding_message_size(self.max_request_bytes));
        Ok(())
    }

    /// Binds `addr` and serves until `shutdown` fires, then stops accepting, marks the
    /// server NOT_SERVING and lets calls in flight finish.
    pub async fn serve_with_shutdown(
        self,
        addr: SocketAddr,
        shutdown: Shutdown,
    ) -> Result<(), GrpcError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GrpcError::Bind { addr, source })?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on an already bound `listener` (tests bind port 0 to learn the address first)
    /// until `shutdown` fires.
    pub async fn serve_on(
        mut self,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> Result<(), GrpcError> {
        self.add_reflection()?;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, tls = self.tls.is_some(), "gRPC server listening");
        }
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut builder = Server::builder();
        if let Some(tls) = self.tls {
            builder = builder
                .tls_config(tls)
                .map_err(|source| GrpcError::Tls { source })?;
        }
        let metrics = self.metrics.unwrap_or_default();
        let health = self.health;
        let signal = async move {
            shutdown.wait().await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            tracing::info!("gRPC server shutting down");
        };
        builder
            .layer(GrpcTraceLayer::new(metrics))
            .layer(RequestLimitLayer::new(self.max_request_bytes))
            .add_routes(self.routes.routes())
            .serve_with_incoming_shutdown(incoming, signal)
            .await
            .map_err(GrpcError::Serve)
    }
}

/// Server TLS from `[grpc.tls]`; with a client CA every client must present a certificate
/// that chains to it.
fn server_tls(config: &TlsConfig) -> Result<ServerTlsConfig, GrpcError> {
    let identity = Identity::from_pem(
        client::read_pem(&config.cert)?,
        client::read_pem(&config.key)?,
    );
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &config.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(client::read_pem(ca)?));
    }
    Ok(tls)
}
