//! Installing the subscriber and the OpenTelemetry providers, and tearing them down.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_log::AsLog as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::{LogFormat, TelemetryConfig, TelemetryError, metrics};

/// Set once a global installation succeeded (or got far enough that retrying would only
/// register the Prometheus reader twice).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs logging, tracing and metrics for the whole process, with OTLP export when the
/// standard `OTEL_EXPORTER_OTLP_*` variables ask for it.
///
/// Call it once, early, from inside the Tokio runtime when OTLP export may be enabled, and
/// keep the guard until the process ends. A second call returns
/// [`TelemetryError::AlreadyInitialized`] and changes nothing.
pub fn init(config: TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    TelemetryBuilder::new(config).install()
}

/// Like [`init`], but spans go to `exporter` (exported one by one as they end) instead of
/// OTLP: meant for tests, with e.g. an in-memory exporter.
pub fn init_with_exporter<E>(
    config: TelemetryConfig,
    exporter: E,
) -> Result<TelemetryGuard, TelemetryError>
where
    E: SpanExporter + 'static,
{
    TelemetryBuilder::new(config)
        .with_span_exporter(exporter)
        .install()
}

/// Checks that `filter` is valid env-filter syntax, so configuration can be refused at load
/// time rather than at start-up.
pub fn validate_filter(filter: &str) -> Result<(), TelemetryError> {
    parse_filter(filter).map(|_| ())
}

fn parse_filter(filter: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(filter).map_err(|e| TelemetryError::InvalidFilter {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })
}

/// Step-by-step set-up, for when [`init`] is not enough: a custom span exporter or tracer
/// provider, or a subscriber scoped to one test instead of the whole process.
#[derive(Debug)]
pub struct TelemetryBuilder {
    config: TelemetryConfig,
    tracer_provider: Option<SdkTracerProvider>,
    logs: bool,
}

impl TelemetryBuilder {
    /// Starts from `config`; spans are exported over OTLP only if the environment says so.
    pub fn new(config: TelemetryConfig) -> Self {
        TelemetryBuilder {
            config,
            tracer_provider: None,
            logs: true,
        }
    }

    /// Writes no logs: the filter then chooses only the spans traced. For tools whose
    /// terminal output is their result (a benchmark's table), yet which trace at `info`.
    pub fn without_logs(mut self) -> Self {
        self.logs = false;
        self
    }

    /// Sends every span to `exporter` synchronously as it ends, instead of OTLP.
    pub fn with_span_exporter<E>(mut self, exporter: E) -> Self
    where
        E: SpanExporter + 'static,
    {
        let provider = SdkTracerProvider::builder()
            .with_resource(resource(&self.config.service_name))
            .with_simple_exporter(exporter)
            .build();
        self.tracer_provider = Some(provider);
        self
    }

    /// Uses a tracer provider built by the caller, instead of OTLP.
    pub fn with_tracer_provider(mut self, provider: SdkTracerProvider) -> Self {
        self.tracer_provider = Some(provider);
        self
    }

    /// Installs everything globally: the `tracing` subscriber (and the `log` bridge), the
    /// OpenTelemetry tracer and meter providers, and the W3C TraceContext propagator. Metrics
    /// are read by [`crate::prometheus_registry`].
    ///
    /// Fails with [`TelemetryError::AlreadyInitialized`] when it already ran in this process,
    /// and with [`TelemetryError::SubscriberAlreadySet`] when other code set a global
    /// subscriber; neither changes anything.
    pub fn install(self) -> Result<TelemetryGuard, TelemetryError> {
        if INSTALLED.swap(true, Ordering::SeqCst) {
            return Err(TelemetryError::AlreadyInitialized);
        }
        if tracing::dispatcher::has_been_set() {
            INSTALLED.store(false, Ordering::SeqCst);
            return Err(TelemetryError::SubscriberAlreadySet(
                "another global subscriber is installed".to_owned(),
            ));
        }
        let (guard, dispatch) = match self.build(metrics::prometheus_registry()) {
            Ok(parts) => parts,
            Err(e) => {
                INSTALLED.store(false, Ordering::SeqCst);
                return Err(e);
            }
        };
        // From here on the Prometheus reader is registered, so INSTALLED stays set even on
        // failure: a retry could only fail on a duplicate registration.
        tracing::dispatcher::set_global_default(dispatch)
            .map_err(|e| TelemetryError::SubscriberAlreadySet(e.to_string()))?;
        // Crates that log through `log` show up as tracing events. Someone else may already
        // own the `log` facade; that only loses their bridge, so it is not an error.
        let _ = tracing_log::LogTracer::builder()
            .with_max_level(tracing::level_filters::LevelFilter::current().as_log())
            .init();
        opentelemetry::global::set_tracer_provider(guard.tracer_provider.clone());
        opentelemetry::global::set_meter_provider(guard.meter_provider.clone());
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Ok(guard)
    }

    /// Builds everything without installing anything global except the propagator: returns
    /// the subscriber as a [`tracing::Dispatch`] for `tracing::dispatcher::with_default` or
    /// `set_default`, and a guard whose meter provider reads into its own fresh registry.
    /// Any number of these can live in one process, which suits tests.
    pub fn build_local(self) -> Result<(TelemetryGuard, tracing::Dispatch), TelemetryError> {
        let parts = self.build(prometheus::Registry::new())?;
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Ok(parts)
    }

    fn build(
        self,
        registry: prometheus::Registry,
    ) -> Result<(TelemetryGuard, tracing::Dispatch), TelemetryError> {
        let filter = parse_filter(&self.config.filter)?;
        let resource = resource(&self.config.service_name);
        let tracer_provider = match self.tracer_provider {
            Some(provider) => provider,
            None => default_tracer_provider(resource.clone())?,
        };
        let meter_provider = match metrics::build_meter_provider(&registry, resource) {
            Ok(provider) => provider,
            Err(e) => {
                let _ = tracer_provider.shutdown();
                return Err(e);
            }
        };

        let tracer = tracer_provider.tracer(self.config.service_name.clone());
        let otel_layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                !is_export_machinery(meta.target())
            }));
        let fmt_layer = match self.config.log_format {
            _ if !self.logs => None,
            // Colours only on a terminal: piped logs (files, `citychain dev`) stay plain text.
            LogFormat::Human => tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .boxed()
                .into(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stderr)
                .boxed()
                .into(),
        };
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(fmt_layer)
            .with(otel_layer);
        let guard = TelemetryGuard {
            tracer_provider,
            meter_provider,
            registry,
            shut_down: false,
        };
        Ok((guard, tracing::Dispatch::new(subscriber)))
    }
}

/// Keeps the providers alive; dropping it flushes pending spans and metrics and shuts the
/// providers down (which also stops the global ones it installed).
///
/// With OTLP export, drop it while the Tokio runtime is still running (e.g. at the end of an
/// `async fn main` on the multi-threaded runtime), so the last batch can still be sent.
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    registry: prometheus::Registry,
    shut_down: bool,
}

impl TelemetryGuard {
    /// The tracer provider the subscriber's OpenTelemetry layer writes to.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// The meter provider; after [`init`] it is also the global one.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// The registry the meter provider's Prometheus reader feeds.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Exports whatever spans and metrics are pending, without shutting down.
    pub fn force_flush(&self) -> Result<(), TelemetryError> {
        let traces = self.tracer_provider.force_flush();
        let metrics = self.meter_provider.force_flush();
        traces
            .and(metrics)
            .map_err(|e| TelemetryError::Flush(e.to_string()))
    }

    /// Flushes and shuts down now rather than on drop, reporting failures.
    pub fn shutdown(mut self) -> Result<(), TelemetryError> {
        self.shut_down = true;
        let traces = self.tracer_provider.shutdown();
        let metrics = self.meter_provider.shutdown();
        traces
            .and(metrics)
            .map_err(|e| TelemetryError::Flush(e.to_string()))
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        // Shutdown flushes first; failures here have nowhere useful to go.
        let _ = self.tracer_provider.shutdown();
        let _ = self.meter_provider.shutdown();
    }
}

/// Targets whose spans stay out of OpenTelemetry: the HTTP/2 and gRPC stack the OTLP exporter
/// itself runs on, and the SDK. At debug level they would otherwise trace their own exports,
/// which produce more spans to export. They are still logged.
fn is_export_machinery(target: &str) -> bool {
    const PREFIXES: [&str; 7] = [
        "h2",
        "hyper",
        "tonic",
        "tower",
        "opentelemetry",
        "rustls",
        "reqwest",
    ];
    PREFIXES.iter().any(|prefix| {
        target
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '_', '-']))
    })
}

/// Which OTLP signal an environment check is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Signal {
    Traces,
    Metrics,
}

/// Whether the standard variables ask for OTLP export of `signal`: a generic or per-signal
/// endpoint is set, and `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` is not `none`.
pub(crate) fn otlp_enabled(signal: Signal) -> bool {
    let (specific, selector) = match signal {
        Signal::Traces => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"),
        Signal::Metrics => (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_METRICS_EXPORTER",
        ),
    };
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var(selector).is_ok_and(|v| v.trim().eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set(specific))
}

/// The tonic-based OTLP exporters open their connection on the current Tokio runtime.
pub(crate) fn require_runtime() -> Result<(), TelemetryError> {
    tokio::runtime::Handle::try_current()
        .map(|_| ())
        .map_err(|_| TelemetryError::NoRuntime)
}

/// A batch OTLP exporter when the environment asks for one; otherwise a provider without
/// processors, which still gives spans their ids so trace context propagates, but exports
/// nothing.
fn default_tracer_provider(resource: Resource) -> Result<SdkTracerProvider, TelemetryError> {
    let builder = SdkTracerProvider::builder().with_resource(resource);
    if !otlp_enabled(Signal::Traces) {
        return Ok(builder.build());
    }
    require_runtime()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| TelemetryError::Otlp {
            signal: "traces",
            reason: e.to_string(),
        })?;
    // The batch processor honours the OTEL_BSP_* variables.
    Ok(builder.with_batch_exporter(exporter).build())
}

/// The OTel resource: SDK and `OTEL_RESOURCE_ATTRIBUTES` attributes, and `service.name` from
/// the configuration, which wins over a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`. When
/// `OTEL_SERVICE_NAME` is set the SDK's own detectors decide instead, and there a
/// `service.name` in `OTEL_RESOURCE_ATTRIBUTES` wins over `OTEL_SERVICE_NAME`: set the name in
/// one place only (docs/observability.md).
fn resource(service_name: &str) -> Resource {
    let builder = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty()) {
        builder.build()
    } else {
        builder.with_service_name(service_name.to_owned()).build()
    }
}

#[cfg(test)]
mod tests {
    use super::is_export_machinery;

    #[test]
    fn the_exporters_own_stack_is_kept_out_of_traces() {
        for target in [
            "h2",
            "h2::codec",
            "hyper_util::client",
            "tonic::transport",
            "opentelemetry-otlp",
            "opentelemetry_sdk",
        ] {
            assert!(is_export_machinery(target), "{target}");
        }
        for target in [
            "citychain_runtime::grpc::trace",
            "tonicity",
            "ledger",
            "h2o",
        ] {
            assert!(!is_export_machinery(target), "{target}");
        }
    }
}
