//! Tracing for `citychain bench consensus --tracing`: the process installs the same telemetry
//! a service does, with a batch span processor feeding an exporter that only counts, so a
//! run measures what tracing costs the validators (span creation, context propagation
//! through MEMPOOL and CHAIN, links, batching) without a collector's network in the figure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use citychain_telemetry::{TelemetryBuilder, TelemetryConfig, TelemetryGuard};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};

/// Counts the spans it is given and drops them.
#[derive(Debug, Clone, Default)]
pub struct CountingExporter {
    spans: Arc<AtomicU64>,
}

impl CountingExporter {
    /// Spans exported so far.
    pub fn count(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }
}

impl SpanExporter for CountingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Installs tracing at `info` (no logs) with a batch processor into a [`CountingExporter`];
/// returns the guard, to shut down after the runs, and the exporter.
///
/// The processor's queue is sized for the tens of thousands of spans a second a saturated
/// cluster makes (the SDK's default of 2,048 would drop most of them, and so hide their
/// cost); [`CountingExporter::count`] tells how many got through.
pub fn install() -> Result<(TelemetryGuard, CountingExporter)> {
    let exporter = CountingExporter::default();
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(1 << 18)
        .with_max_export_batch_size(8_192)
        .with_scheduled_delay(Duration::from_millis(200))
        .build();
    let processor = BatchSpanProcessor::builder(exporter.clone())
        .with_batch_config(config)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let guard = TelemetryBuilder::new(TelemetryConfig::new("citychain-bench").with_filter("info"))
        .without_logs()
        .with_tracer_provider(provider)
        .install()
        .context("cannot set up tracing")?;
    Ok((guard, exporter))
}
