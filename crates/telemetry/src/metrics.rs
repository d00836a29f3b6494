//! The meter provider: a Prometheus reader for scraping and, with an OTLP endpoint, a
//! periodic OTLP push as well.

use std::sync::LazyLock;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::TelemetryError;
use crate::install::{Signal, otlp_enabled};

/// Bucket boundaries, in seconds, for every latency histogram citychain records (gRPC calls,
/// JetStream publishes and acknowledgements): from half a millisecond to ten seconds, roughly
/// 1-2.5-5 per decade. Pass them to an instrument builder's `with_boundaries` so that every
/// latency histogram can be compared and aggregated bucket for bucket.
pub const LATENCY_BOUNDARIES: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide registry that [`crate::init`] attaches its Prometheus reader to.
static REGISTRY: LazyLock<prometheus::Registry> = LazyLock::new(prometheus::Registry::new);

/// The process-wide Prometheus registry: everything recorded through the global OpenTelemetry
/// meter provider after [`crate::init`] shows up here, and a service may also register plain
/// `prometheus` collectors on it. The runtime serves it as text on `/metrics`.
///
/// The returned value is a cheap handle to the same registry.
pub fn prometheus_registry() -> prometheus::Registry {
    REGISTRY.clone()
}

/// Builds a meter provider read by `registry`, plus an OTLP push when the environment asks
/// for one. The Prometheus reader is registered last so that an earlier failure leaves the
/// registry untouched.
pub(crate) fn build_meter_provider(
    registry: &prometheus::Registry,
    resource: Resource,
) -> Result<SdkMeterProvider, TelemetryError> {
    let mut builder = SdkMeterProvider::builder().with_resource(resource);
    if otlp_enabled(Signal::Metrics) {
        crate::install::require_runtime()?;
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| TelemetryError::Otlp {
                signal: "metrics",
                reason: e.to_string(),
            })?;
        // The periodic reader honours OTEL_METRIC_EXPORT_INTERVAL.
        builder = builder.with_periodic_exporter(exporter);
    }
    let prometheus_reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
    Ok(builder.with_reader(prometheus_reader).build())
}
