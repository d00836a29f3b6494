//! OTLP export is switched on by the standard environment variables. The environment can
//! only be set for a child process, so the test re-runs itself with it; the collector
//! address is a closed loopback port, so exports fail fast and must not hang shutdown.

use std::process::Command;
use std::time::{Duration, Instant};

use citychain_telemetry::{TelemetryConfig, TelemetryError, init};

const CHILD: &str = "CITYCHAIN_TELEMETRY_OTLP_CHILD";
const TEST_NAME: &str = "otlp_export_is_switched_on_by_the_environment";

#[test]
fn otlp_export_is_switched_on_by_the_environment() {
    if std::env::var_os(CHILD).is_some() {
        run_in_child();
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "100")
        .output()
        .expect("the test binary re-runs");
    assert!(
        output.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_in_child() {
    let config = TelemetryConfig::new("otlp-test").with_filter("info");

    // outside a runtime the gRPC exporter cannot start, and nothing is installed
    let err = init(config.clone()).unwrap_err();
    assert!(matches!(err, TelemetryError::NoRuntime), "{err:?}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let guard = init(config).expect("init with OTLP inside a runtime");
        tracing::info_span!("exported.work").in_scope(|| tracing::info!("working"));
        opentelemetry::global::meter("otlp-test")
            .u64_counter("citychain.test.exported")
            .build()
            .add(1, &[]);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let started = Instant::now();
        drop(guard);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "shutdown took {:?}",
            started.elapsed()
        );
    });
}
