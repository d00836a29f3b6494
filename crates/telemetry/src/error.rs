//! Why telemetry could not be set up.

/// An error from setting up logging, tracing or metrics.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// [`crate::init`] already ran in this process; the first installation stays in force.
    #[error("telemetry is already installed in this process")]
    AlreadyInitialized,
    /// Some other code installed a global `tracing` subscriber first.
    #[error("cannot install the tracing subscriber: {0}")]
    SubscriberAlreadySet(String),
    /// The log filter is not valid env-filter syntax.
    #[error("invalid log filter {filter:?}: {reason}")]
    InvalidFilter {
        /// The filter as given.
        filter: String,
        /// What the parser said.
        reason: String,
    },
    /// The log format is neither `human` nor `json`.
    #[error("invalid log format {0:?}: expected \"human\" or \"json\"")]
    InvalidLogFormat(String),
    /// OTLP export was asked for (an `OTEL_EXPORTER_OTLP_*ENDPOINT` is set) but the exporter
    /// could not be built.
    #[error("cannot build the OTLP {signal} exporter: {reason}")]
    Otlp {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// What the exporter builder said.
        reason: String,
    },
    /// The gRPC OTLP exporter needs a Tokio runtime to run its connection on.
    #[error("OTLP export over gRPC needs a Tokio runtime: call init from inside one")]
    NoRuntime,
    /// The Prometheus reader could not be registered.
    #[error("cannot set up the Prometheus metrics reader: {0}")]
    Prometheus(String),
    /// Flushing or shutting down a provider failed.
    #[error("cannot flush or shut down telemetry: {0}")]
    Flush(String),
}
