//! Global installation: once per process, and a second attempt is an error, not a panic.
//! (Kept alone in its own test binary because it changes process-wide state.)

use citychain_telemetry::{
    LogFormat, TelemetryConfig, TelemetryError, init, init_with_exporter, prometheus_registry,
};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::InMemorySpanExporter;

#[test]
fn init_twice_is_an_error_not_a_panic_and_metrics_reach_the_registry() {
    let config = TelemetryConfig::new("init-test")
        .with_log_format(LogFormat::Json)
        .with_filter("warn");

    let guard = init(config.clone()).expect("first init succeeds");

    let again = init(config.clone());
    assert!(
        matches!(again, Err(TelemetryError::AlreadyInitialized)),
        "{again:?}"
    );
    let with_exporter = init_with_exporter(config, InMemorySpanExporter::default());
    assert!(matches!(
        with_exporter,
        Err(TelemetryError::AlreadyInitialized)
    ));

    // the global meter provider feeds the process-wide Prometheus registry
    let counter = opentelemetry::global::meter("init-test")
        .u64_counter("citychain.test.events")
        .build();
    counter.add(3, &[KeyValue::new("kind", "test")]);
    let names: Vec<String> = prometheus_registry()
        .gather()
        .iter()
        .map(|family| family.name().to_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "citychain_test_events_total"),
        "{names:?}"
    );

    guard.shutdown().expect("clean shutdown");
}
