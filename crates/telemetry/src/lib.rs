//! Logging, tracing and metrics set-up shared by every citychain process, and the carriers
//! that move W3C trace context across gRPC and HTTP hops.
//!
//! A service calls [`init`] once at start-up and keeps the returned [`TelemetryGuard`] alive
//! until it exits; dropping the guard flushes and shuts down the OpenTelemetry providers.
//!
//! - Logs go to stderr through `tracing-subscriber`, human-readable or JSON, filtered with
//!   env-filter syntax.
//! - Spans always get OpenTelemetry ids (so trace context propagates through every hop), but
//!   they are exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Tests plug in their own exporter with
//!   [`TelemetryBuilder::with_span_exporter`].
//! - Metrics are recorded through the global OpenTelemetry meter provider and read by a
//!   Prometheus registry ([`prometheus_registry`]) that the runtime serves on `/metrics`;
//!   with an OTLP endpoint they are pushed over OTLP as well. Latency histograms share the
//!   bucket boundaries [`LATENCY_BOUNDARIES`].

mod carrier;
mod config;
mod error;
pub mod exposition;
mod install;
mod metrics;

pub use carrier::{
    HeaderExtractor, HeaderInjector, MetadataExtractor, MetadataInjector, extract_context,
    extract_http, extract_metadata, inject_context, inject_http, inject_metadata,
};
pub use config::{LogFormat, TelemetryConfig};
pub use error::TelemetryError;
pub use install::{TelemetryBuilder, TelemetryGuard, init, init_with_exporter, validate_filter};
pub use metrics::{LATENCY_BOUNDARIES, prometheus_registry};
