//! What every citychain service process shares, written once: configuration loading
//! ([`config`]), the gRPC server with health, reflection, TLS, tracing and request limits
//! ([`grpc`]), graceful shutdown ([`shutdown`]), the Prometheus `/metrics` endpoint
//! ([`metrics`]) and the files and tasks of a service process ([`process`]).
//!
//! A service's `main` typically reads:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use citychain_runtime::{config::ServiceConfig, grpc::GrpcServer, metrics, shutdown::Shutdown};
//!
//! let config: ServiceConfig = ServiceConfig::load("ledger.toml")?;
//! let _telemetry = citychain_telemetry::init(config.telemetry())?;
//! let shutdown = Shutdown::on_signals()?;
//! let server = GrpcServer::new(&config.grpc)?; // .add_service(LedgerServer::new(api)...)
//! let metrics = tokio::spawn(metrics::serve_metrics(config.metrics.listen, shutdown.clone()));
//! server.serve_with_shutdown(config.grpc.listen, shutdown).await?;
//! metrics.await??;
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod grpc;
pub mod metrics;
pub mod process;
pub mod shutdown;

pub use config::{ConfigError, ConfigLoader, NoExtra, ServiceConfig};
pub use grpc::{GrpcError, GrpcServer, TracedChannel, connect_channel};
pub use metrics::{MetricsError, serve_metrics};
pub use shutdown::Shutdown;
