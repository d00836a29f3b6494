//! End to end over OTLP/gRPC: the test serves the collector's `TraceService` and
//! `MetricsService` on a loopback port, re-runs its own binary with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing there (the environment is only read at start-up, so
//! it has to be a child process), and checks what actually arrived: a parent and a child span
//! in one trace, their attributes and resource, and a counter's data point.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use citychain_telemetry::{TelemetryConfig, init};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue as ProtoKeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

const CHILD: &str = "CITYCHAIN_TELEMETRY_OTLP_RECEIVER_CHILD";
const TEST_NAME: &str = "spans_and_metrics_reach_an_otlp_receiver";

const SERVICE: &str = "otlp-receiver-test";
const PARENT_SPAN: &str = "ledger.Submit";
const CHILD_SPAN: &str = "ledger.apply";
const TX_ID: &str = "7c1d5e0a9b3f";
const HEIGHT: i64 = 42;
const COUNTER: &str = "citychain.test.receiver.submitted";
const COUNT: u64 = 7;

/// Upper bound for the child run and for the receiver to hold everything expected.
const WAIT: Duration = Duration::from_secs(20);

/// Variables that would change what the child exports if inherited from the caller.
const INHERITED_OTEL: [&str; 12] = [
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_SDK_DISABLED",
];

/// The receiver: every export request, kept as it arrived.
#[derive(Debug, Clone, Default)]
struct Received {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl Received {
    /// Every span received, each with the resource of the batch it came in.
    fn spans(&self) -> Vec<(Option<Resource>, Span)> {
        let traces = self.traces.lock().unwrap();
        traces
            .iter()
            .flat_map(|request| &request.resource_spans)
            .flat_map(|rs| {
                rs.scope_spans
                    .iter()
                    .flat_map(|ss| &ss.spans)
                    .map(|span| (rs.resource.clone(), span.clone()))
            })
            .collect()
    }

    /// Every metric received, each with the resource of the batch it came in.
    fn metrics(&self) -> Vec<(Option<Resource>, Metric)> {
        let metrics = self.metrics.lock().unwrap();
        metrics
            .iter()
            .flat_map(|request| &request.resource_metrics)
            .flat_map(|rm| {
                rm.scope_metrics
                    .iter()
                    .flat_map(|sm| &sm.metrics)
                    .map(|metric| (rm.resource.clone(), metric.clone()))
            })
            .collect()
    }

    /// Whether both spans and the counter have arrived (not whether they are right).
    fn has_everything(&self) -> bool {
        let spans = self.spans();
        let named = |name: &str| spans.iter().any(|(_, span)| span.name == name);
        named(PARENT_SPAN)
            && named(CHILD_SPAN)
            && self
                .metrics()
                .iter()
                .any(|(_, metric)| metric.name == COUNTER)
    }

    /// A short account of what arrived, for failure messages.
    fn summary(&self) -> String {
        let spans: Vec<String> = self.spans().into_iter().map(|(_, s)| s.name).collect();
        let metrics: Vec<String> = self.metrics().into_iter().map(|(_, m)| m.name).collect();
        format!(
            "{} trace request(s) with spans {spans:?}; {} metrics request(s) with metrics {metrics:?}",
            self.traces.lock().unwrap().len(),
            self.metrics.lock().unwrap().len(),
        )
    }
}

#[test]
fn spans_and_metrics_reach_an_otlp_receiver() {
    if std::env::var_os(CHILD).is_some() {
        run_in_child();
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(receive_from_child());
}

async fn receive_from_child() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port for the receiver");
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(TraceServiceServer::new(received.clone()))
            .add_service(MetricsServiceServer::new(received.clone()))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );

    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "5000")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "100")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for name in INHERITED_OTEL {
        command.env_remove(name);
    }
    let output = tokio::time::timeout(WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("the child did not finish within {WAIT:?}"))
        .expect("the test binary re-runs");
    let child_output = format!(
        "child stdout:\n{}\nchild stderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "child failed ({}):\n{child_output}",
        output.status
    );

    // The child flushes before exiting, so this should already hold; the wait only covers
    // a request still being handled.
    let deadline = Instant::now() + WAIT;
    while !received.has_everything() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    server
        .await
        .expect("the receiver task did not panic")
        .expect("the receiver served without error");

    check_spans(&received, &child_output);
    check_metrics(&received, &child_output);
}

fn check_spans(received: &Received, child_output: &str) {
    let spans = received.spans();
    let find = |name: &str| {
        let matching: Vec<&(Option<Resource>, Span)> =
            spans.iter().filter(|(_, span)| span.name == name).collect();
        assert_eq!(
            matching.len(),
            1,
            "expected exactly one span named {name:?} within {WAIT:?}; received {}\n{child_output}",
            received.summary()
        );
        matching[0].clone()
    };
    let (parent_resource, parent) = find(PARENT_SPAN);
    let (child_resource, child) = find(CHILD_SPAN);

    assert_eq!(
        parent.trace_id.len(),
        16,
        "trace id is 16 bytes: {parent:?}"
    );
    assert!(
        parent.trace_id.iter().any(|b| *b != 0),
        "trace id is not all zeros"
    );
    assert_eq!(
        hex(&parent.trace_id),
        hex(&child.trace_id),
        "the two spans belong to one trace"
    );
    assert!(
        parent.parent_span_id.is_empty(),
        "{PARENT_SPAN} is a root span, got parent {}",
        hex(&parent.parent_span_id)
    );
    assert_eq!(
        hex(&child.parent_span_id),
        hex(&parent.span_id),
        "{CHILD_SPAN}'s parent is {PARENT_SPAN}"
    );
    assert_ne!(
        hex(&child.span_id),
        hex(&parent.span_id),
        "the spans have distinct ids"
    );
    assert_eq!(
        parent.kind,
        SpanKind::Server as i32,
        "otel.kind = server on {PARENT_SPAN}"
    );
    assert_eq!(
        attribute(&parent.attributes, "tx.id"),
        Some(any_value::Value::StringValue(TX_ID.to_owned())),
        "tx.id on {PARENT_SPAN}: {:?}",
        parent.attributes
    );
    assert_eq!(
        attribute(&child.attributes, "block.height"),
        Some(any_value::Value::IntValue(HEIGHT)),
        "block.height on {CHILD_SPAN}: {:?}",
        child.attributes
    );
    assert!(
        parent.end_time_unix_nano >= child.end_time_unix_nano
            && parent.start_time_unix_nano <= child.start_time_unix_nano,
        "{CHILD_SPAN} lies within {PARENT_SPAN}"
    );
    for (name, resource) in [(PARENT_SPAN, parent_resource), (CHILD_SPAN, child_resource)] {
        assert_eq!(
            service_name(resource.as_ref()),
            Some(SERVICE.to_owned()),
            "service.name in the resource of {name}: {resource:?}"
        );
    }
}

fn check_metrics(received: &Received, child_output: &str) {
    let metrics = received.metrics();
    let counters: Vec<&(Option<Resource>, Metric)> = metrics
        .iter()
        .filter(|(_, metric)| metric.name == COUNTER)
        .collect();
    assert!(
        !counters.is_empty(),
        "no metric named {COUNTER:?} within {WAIT:?}; received {}\n{child_output}",
        received.summary()
    );
    // With cumulative temporality every export repeats the total, so each one must be right.
    for (resource, metric) in counters {
        assert_eq!(
            service_name(resource.as_ref()),
            Some(SERVICE.to_owned()),
            "service.name in the resource of {COUNTER}: {resource:?}"
        );
        let Some(metric::Data::Sum(sum)) = &metric.data else {
            panic!("{COUNTER} is exported as a sum: {metric:?}");
        };
        assert!(sum.is_monotonic, "a counter is monotonic: {sum:?}");
        assert_eq!(sum.data_points.len(), 1, "one attribute set: {sum:?}");
        let point = &sum.data_points[0];
        assert_eq!(
            point.value,
            Some(number_data_point::Value::AsInt(COUNT as i64)),
            "the counter's value: {point:?}"
        );
        assert_eq!(
            attribute(&point.attributes, "outcome"),
            Some(any_value::Value::StringValue("accepted".to_owned())),
            "the data point's attribute: {point:?}"
        );
    }
}

/// The child: install telemetry from the environment, make two nested spans and a counter,
/// then drop the guard, which flushes both over OTLP.
fn run_in_child() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let guard =
            init(TelemetryConfig::new(SERVICE).with_filter("info")).expect("init with OTLP");

        let submit = tracing::info_span!(PARENT_SPAN, otel.kind = "server", tx.id = TX_ID);
        submit.in_scope(|| {
            tracing::info_span!(CHILD_SPAN, block.height = HEIGHT)
                .in_scope(|| tracing::info!("applying"));
        });
        drop(submit);

        opentelemetry::global::meter(SERVICE)
            .u64_counter(COUNTER)
            .build()
            .add(COUNT, &[KeyValue::new("outcome", "accepted")]);

        let started = Instant::now();
        drop(guard);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "flush and shutdown took {:?}",
            started.elapsed()
        );
    });
}

fn attribute(attributes: &[ProtoKeyValue], key: &str) -> Option<any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.clone())
}

fn service_name(resource: Option<&Resource>) -> Option<String> {
    match attribute(&resource?.attributes, "service.name")? {
        any_value::Value::StringValue(name) => Some(name),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
