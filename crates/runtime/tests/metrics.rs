//! The `/metrics` and `/healthz` endpoint over a real socket.

use std::net::SocketAddr;
use std::time::Duration;

use citychain_runtime::metrics::{serve_metrics, serve_metrics_on};
use citychain_runtime::shutdown::Shutdown;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A plain HTTP/1.1 GET; returns the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

#[tokio::test]
async fn metrics_serves_prometheus_text_with_a_counter_recorded_through_opentelemetry() {
    // given a meter provider reading into its own registry
    let (telemetry, _dispatch) = citychain_telemetry::TelemetryBuilder::new(
        citychain_telemetry::TelemetryConfig::new("metrics-test"),
    )
    .build_local()
    .unwrap();
    let counter = telemetry
        .meter_provider()
        .meter("citychain-runtime-test")
        .u64_counter("citychain.test.requests")
        .with_description("Requests seen by the test")
        .build();
    counter.add(2, &[KeyValue::new("route", "submit")]);
    counter.add(1, &[KeyValue::new("route", "submit")]);

    // when the endpoint serves that registry
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(serve_metrics_on(
        listener,
        telemetry.registry().clone(),
        shutdown.clone(),
    ));

    // then /metrics shows the counter in Prometheus text format
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("# TYPE citychain_test_requests_total counter"),
        "{body}"
    );
    let sample = body
        .lines()
        .find(|l| l.starts_with("citychain_test_requests_total{"))
        .unwrap_or_else(|| panic!("no sample in {body}"));
    assert!(sample.contains("route=\"submit\""), "{sample}");
    assert!(sample.ends_with(" 3"), "{sample}");

    shutdown.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_process_registry_is_served_and_healthz_follows_shutdown() {
    // a plain prometheus collector on the process-wide registry shows up too
    let gauge =
        prometheus::IntGauge::new("citychain_test_ready", "Readiness for the test").unwrap();
    citychain_telemetry::prometheus_registry()
        .register(Box::new(gauge.clone()))
        .unwrap();
    gauge.set(1);

    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(serve_metrics(addr, shutdown.clone()));

    let mut served = None;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            served = Some(get(addr, "/metrics").await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = served.expect("the endpoint came up");
    assert_eq!(status, 200);
    assert!(body.contains("citychain_test_ready 1"), "{body}");

    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(get(addr, "/nope").await.0, 404);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("endpoint stops promptly")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
