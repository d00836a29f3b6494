//! The configuration every service process shares, loaded from a TOML file plus environment
//! overrides, and validated into typed sections.
//!
//! # Sources, lowest priority first
//!
//! 1. defaults given to [`ConfigLoader::default_value`], then the built-in defaults below;
//! 2. the TOML file ([`ConfigLoader::file`]) or text ([`ConfigLoader::toml`]);
//! 3. environment variables `CITYCHAIN_<SECTION>__<KEY>`;
//! 4. explicit values given to [`ConfigLoader::set`] (e.g. from command-line flags).
//!
//! # Environment overrides
//!
//! A variable named `CITYCHAIN_` followed by at least two segments joined with a double
//! underscore sets the key those segments name, lower-cased: `CITYCHAIN_GRPC__LISTEN` sets
//! `grpc.listen`, `CITYCHAIN_GRPC__TLS__CLIENT_CA` sets `grpc.tls.client_ca`, and
//! `CITYCHAIN_NATS__URL` sets `nats.url` in a service's own section. Variables without a
//! double underscore (such as `CITYCHAIN_CONFIG`) are not overrides and are ignored.
//!
//! The value is read as a TOML value when it is one (`true`, `8`, `[1, 2]`, `"quoted"`) and
//! as a plain string otherwise (`0.0.0.0:50051`, `info,citychain=debug`). To force a string
//! that looks like a number or a boolean, quote it: `CITYCHAIN_SERVICE__NAME='"42"'`.
//!
//! # Sections
//!
//! ```toml
//! [service]
//! name = "ledger"                  # required
//!
//! [grpc]
//! listen = "0.0.0.0:50051"         # default
//! max_request_bytes = 4194304      # default 4 MiB, at most 4 GiB - 1
//! [grpc.tls]                       # optional; TLS is off without it
//! cert = "/etc/citychain/tls.crt"  # PEM chain, required with [grpc.tls]
//! key = "/etc/citychain/tls.key"   # PEM key, required with [grpc.tls]
//! client_ca = "/etc/citychain/ca.crt"  # optional: require client certificates (mutual TLS)
//!
//! [metrics]
//! enabled = true                   # default
//! listen = "0.0.0.0:9090"          # default
//!
//! [log]
//! format = "human"                 # or "json"
//! filter = "info,citychain_store=debug"  # default: RUST_LOG, else "info"
//! ```
//!
//! # A service's own sections
//!
//! Every other top-level key belongs to the service: `ServiceConfig<T>` deserializes them
//! into `T` (any `DeserializeOwned` type whose fields are the service's sections, e.g.
//! `nats`, `store`, `chain`), so new services plug in without changing this crate. Keys that
//! neither the shared sections nor `T` use are refused with [`ConfigError::Unknown`], naming
//! the key, so a typo never silently falls back to a default. A `T` field holding a map or a
//! `toml::Value` takes whatever lies below it.

mod error;
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;

use citychain_telemetry::{LogFormat, TelemetryConfig};
use serde::Deserialize;

pub use error::ConfigError;
pub use load::{ConfigLoader, ENV_PREFIX, ENV_SEPARATOR};

/// The default largest request message: 4 MiB, as tonic's own default.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// A validated service configuration: the shared sections plus the service's own, `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig<T = NoExtra> {
    /// `[service]`: who this process is.
    pub service: ServiceSection,
    /// `[grpc]`: the public API server.
    pub grpc: GrpcConfig,
    /// `[metrics]`: the Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// `[log]`: log format and filter.
    pub log: LogConfig,
    /// Every other top-level key, deserialized into the service's own type.
    pub extra: T,
}

impl<T: serde::de::DeserializeOwned> ServiceConfig<T> {
    /// Loads `path`, then applies the process's `CITYCHAIN_*` environment overrides.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        ConfigLoader::new().file(path).load()
    }
}

impl<T> ServiceConfig<T> {
    /// The settings for [`citychain_telemetry::init`]; an absent filter falls back to
    /// `RUST_LOG`, then `info`.
    pub fn telemetry(&self) -> TelemetryConfig {
        let config =
            TelemetryConfig::new(self.service.name.clone()).with_log_format(self.log.format);
        match &self.log.filter {
            Some(filter) => config.with_filter(filter.clone()),
            None => config,
        }
    }
}

/// The `T` of a service without sections of its own: any top-level key other than the
/// shared sections is then refused as unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct NoExtra {}

/// `[service]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSection {
    /// The service's name (`ledger`, `tokens`, ...): used for telemetry and logs.
    pub name: String,
}

/// `[grpc]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GrpcConfig {
    /// The address the server listens on.
    pub listen: SocketAddr,
    /// The largest request message accepted, in bytes (as sent, i.e. after compression).
    pub max_request_bytes: usize,
    /// TLS for the server; plain text without it.
    pub tls: Option<TlsConfig>,
    /// A file holding the secret page tokens are authenticated with (at least 32 bytes),
    /// shared by every replica of the service. Without it each process makes up its own,
    /// so a token works only on the replica that issued it, until that replica restarts.
    pub page_token_secret_file: Option<PathBuf>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            tls: None,
            page_token_secret_file: None,
        }
    }
}

/// `[grpc.tls]`: the server's certificate and, for mutual TLS, the clients' CA.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert: PathBuf,
    /// PEM private key of the server.
    pub key: PathBuf,
    /// PEM CA certificate(s) that client certificates must chain to; when set, every client
    /// must present a certificate (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// `[chain]`: which chain a service works on, shared by every service that reads the chain.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// The genesis file.
    pub genesis: std::path::PathBuf,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Whether the service serves `/metrics` and `/healthz` at all.
    pub enabled: bool,
    /// The address the metrics endpoint listens on.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// Env-filter syntax; `None` means `RUST_LOG`, then `info`.
    pub filter: Option<String>,
}
