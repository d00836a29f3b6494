//! The shared gRPC server, over real sockets on 127.0.0.1: health, reflection, request
//! limits, trace propagation, call metrics and shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use citychain_proto::citychain::ledger::v1::ledger_service_client::LedgerServiceClient;
use citychain_proto::citychain::ledger::v1::{GetBlockRequest, SubmitTransactionRequest};
use citychain_proto::citychain::tokens::v1::GetBalanceRequest;
use citychain_proto::citychain::tokens::v1::token_service_client::TokenServiceClient;
use citychain_runtime::config::GrpcConfig;
use citychain_runtime::grpc::{
    BUILT_IN_SERVICES, GrpcServer, HealthReporter, ServingStatus, connect_channel,
};
use citychain_runtime::shutdown::Shutdown;
use citychain_telemetry::exposition::sample;
use citychain_telemetry::{TelemetryBuilder, TelemetryConfig, TelemetryGuard};
use citychain_testkit::reflection::{Version, files_for_symbol, list_services};
use http_body::{Body as _, Frame};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::server::NamedService;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::health_client::HealthClient;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

struct Running {
    addr: SocketAddr,
    health: HealthReporter,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), citychain_runtime::GrpcError>>,
}

async fn start(config: GrpcConfig) -> Running {
    start_server(GrpcServer::new(&config).expect("server builds")).await
}

async fn start_server(server: GrpcServer) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = server.health();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve_on(listener, shutdown.clone()));
    Running {
        addr,
        health,
        shutdown,
        task,
    }
}

fn local_config() -> GrpcConfig {
    GrpcConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..GrpcConfig::default()
    }
}

async fn check(addr: SocketAddr, service: &str) -> Result<WireStatus, tonic::Status> {
    let channel = connect_channel(&addr.to_string(), None).await.unwrap();
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status())
}

#[tokio::test]
async fn health_answers_serving_and_flips_to_not_serving_per_service() {
    let server = start(local_config()).await;
    let name = "citychain.ledger.v1.Ledger";

    // the server as a whole is SERVING from the start
    assert_eq!(check(server.addr, "").await.unwrap(), WireStatus::Serving);

    // a service the process has not announced is unknown
    assert_eq!(
        check(server.addr, name).await.unwrap_err().code(),
        Code::NotFound
    );

    server
        .health
        .set_service_status(name, ServingStatus::Serving)
        .await;
    assert_eq!(check(server.addr, name).await.unwrap(), WireStatus::Serving);

    server
        .health
        .set_service_status(name, ServingStatus::NotServing)
        .await;
    assert_eq!(
        check(server.addr, name).await.unwrap(),
        WireStatus::NotServing
    );
    assert_eq!(check(server.addr, "").await.unwrap(), WireStatus::Serving);

    server.shutdown.trigger();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn reflection_in_both_versions_lists_exactly_what_is_served_and_resolves_it() {
    let server = start(local_config()).await;
    let url = format!("http://{}", server.addr);
    for version in [Version::V1, Version::V1Alpha] {
        // No API was added: health and reflection only, not every citychain service.
        let listed = list_services(&url, version).await.unwrap();
        let mut expected = BUILT_IN_SERVICES.to_vec();
        expected.sort_unstable();
        assert_eq!(listed, expected, "{version:?}");
        // Each listed service resolves, in either protocol.
        for service in &listed {
            files_for_symbol(&url, version, service)
                .await
                .unwrap_or_else(|e| panic!("{service} over {version:?}: {e}"));
        }
        // A citychain message resolves, with the files it imports.
        let set = files_for_symbol(&url, version, "citychain.governance.v1.Approve")
            .await
            .unwrap();
        assert!(
            set.file
                .iter()
                .any(|f| f.name() == "citychain/governance/v1/governance.proto"),
            "{version:?}"
        );
        let unknown = files_for_symbol(&url, version, "citychain.nowhere.v1.Thing").await;
        assert!(unknown.is_err(), "{version:?}");
    }
    server.shutdown.trigger();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused() {
    let server = start(GrpcConfig {
        max_request_bytes: 1024,
        ..local_config()
    })
    .await;

    // a small request passes
    assert_eq!(check(server.addr, "").await.unwrap(), WireStatus::Serving);

    // a health check whose service name alone is 4 KiB does not
    let err = check(server.addr, &"x".repeat(4096)).await.unwrap_err();
    // (the layer answers RESOURCE_EXHAUSTED at the message header; tonic's own decoding
    // limit behind it would answer OUT_OF_RANGE)
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("limit of 1024 bytes"), "{err:?}");

    // and the server keeps serving afterwards
    assert_eq!(check(server.addr, "").await.unwrap(), WireStatus::Serving);

    server.shutdown.trigger();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_programmatic_shutdown_stops_the_server() {
    let server = start(local_config()).await;
    assert_eq!(check(server.addr, "").await.unwrap(), WireStatus::Serving);

    server.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("server stops promptly")
        .unwrap()
        .expect("clean stop");

    // nothing listens any more
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn serve_with_shutdown_binds_the_address_it_is_given() {
    // find a free port, then let the server bind it by address
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let shutdown = Shutdown::new();
    let server = GrpcServer::new(&local_config()).unwrap();
    let task = tokio::spawn(server.serve_with_shutdown(addr, shutdown.clone()));

    let mut status = None;
    for _ in 0..50 {
        if let Ok(s) = tokio::time::timeout(Duration::from_millis(500), async {
            match connect_channel(&addr.to_string(), None).await {
                Ok(channel) => HealthClient::new(channel)
                    .check(HealthCheckRequest::default())
                    .await
                    .ok(),
                Err(_) => None,
            }
        })
        .await
            && let Some(s) = s
        {
            status = Some(s.into_inner().status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, Some(WireStatus::Serving));

    shutdown.trigger();
    task.await.unwrap().unwrap();
}

/// How long [`TrailerLedger`] takes before it fails a call.
const FAILURE_DELAY: Duration = Duration::from_millis(100);

/// A stand-in for the ledger API that always sends its status in trailers, after the
/// response headers: `SubmitTransaction` answers an empty message and OK at once, every other
/// method no message and `FAILED_PRECONDITION` after [`FAILURE_DELAY`].
#[derive(Debug, Clone)]
struct TrailerLedger;

impl NamedService for TrailerLedger {
    const NAME: &'static str = "citychain.ledger.v1.LedgerService";
}

impl tower::Service<http::Request<tonic::body::Body>> for TrailerLedger {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let submit = request.uri().path().ends_with("/SubmitTransaction");
        Box::pin(async move {
            let mut body = request.into_body();
            while std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
                .await
                .is_some()
            {}
            let (frames, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                let mut trailers = http::HeaderMap::new();
                if submit {
                    // one message of zero bytes: uncompressed, length 0
                    let message = Bytes::from_static(&[0, 0, 0, 0, 0]);
                    let _ = frames.send(Frame::data(message)).await;
                    trailers.insert("grpc-status", "0".parse().unwrap());
                } else {
                    tokio::time::sleep(FAILURE_DELAY).await;
                    trailers.insert("grpc-status", "9".parse().unwrap());
                    trailers.insert("grpc-message", "not-yet".parse().unwrap());
                }
                let _ = frames.send(Frame::trailers(trailers)).await;
            });
            let response = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(tonic::body::Body::new(Frames(rx)))
                .unwrap();
            Ok(response)
        })
    }
}

/// A response body made of the frames sent on a channel, ending when the channel closes.
struct Frames(mpsc::Receiver<Frame<Bytes>>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

/// A subscriber for the calling thread (set it with `set_default`) that records spans in
/// `exporter`.
///
/// tracing caches per callsite whether it is enabled. While a single dispatcher is registered
/// in the process, it decides with the default dispatcher of whichever thread reaches the
/// callsite first, so a server of another test, on a thread without a subscriber, could switch
/// the server span off for this one too. A second, idle dispatcher living as long as the
/// process makes tracing ask every registered dispatcher instead.
fn record_spans(exporter: &InMemorySpanExporter) -> (TelemetryGuard, tracing::Dispatch) {
    static IDLE: LazyLock<tracing::Dispatch> =
        LazyLock::new(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    LazyLock::force(&IDLE);
    TelemetryBuilder::new(TelemetryConfig::new("grpc-test").with_filter("info"))
        .with_span_exporter(exporter.clone())
        .build_local()
        .unwrap()
}

/// The finished span named `name`.
fn span_named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no {name} span in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

/// The value of a span attribute, as text.
fn span_attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn a_call_runs_in_a_server_span_that_continues_the_callers_trace() {
    // given a subscriber for this test's thread that records spans in memory
    let exporter = InMemorySpanExporter::default();
    let (_telemetry, dispatch) = record_spans(&exporter);
    let _default = tracing::dispatcher::set_default(&dispatch);

    let server = start(local_config()).await;

    // when a client calls from inside its own span
    let client_span = tracing::info_span!("client.work");
    let client = client_span.context().span().span_context().clone();
    let status = {
        use tracing::Instrument as _;
        check(server.addr, "")
            .instrument(client_span.clone())
            .await
            .unwrap()
    };
    assert_eq!(status, WireStatus::Serving);
    drop(client_span);

    server.shutdown.trigger();
    server.task.await.unwrap().unwrap();

    // then the server span is named after the method and is a child of the client's span
    let spans = exporter.get_finished_spans().unwrap();
    let server_span = span_named(&spans, "Health.Check");
    assert_eq!(server_span.span_context.trace_id(), client.trace_id());
    assert_eq!(server_span.parent_span_id, client.span_id());
    assert_eq!(
        server_span.span_kind,
        opentelemetry::trace::SpanKind::Server
    );
    let attribute = |key: &str| span_attribute(server_span, key);
    assert_eq!(attribute("service").as_deref(), Some("Health"));
    assert_eq!(
        attribute("rpc.service").as_deref(),
        Some("grpc.health.v1.Health")
    );
    assert_eq!(attribute("rpc.method").as_deref(), Some("Check"));
    assert_eq!(attribute("rpc.system").as_deref(), Some("grpc"));
}

#[tokio::test]
async fn citychain_spans_are_named_by_area_and_a_status_in_the_trailers_marks_an_error() {
    // given a server with a ledger API that sends every status in trailers
    let exporter = InMemorySpanExporter::default();
    let (_telemetry, dispatch) = record_spans(&exporter);
    let _default = tracing::dispatcher::set_default(&dispatch);
    let server = start_server(
        GrpcServer::new(&local_config())
            .unwrap()
            .add_service(TrailerLedger),
    )
    .await;
    let mut ledger = LedgerServiceClient::new(
        connect_channel(&server.addr.to_string(), None)
            .await
            .unwrap(),
    );

    // when one call succeeds and another fails, a while after its response headers
    ledger
        .submit_transaction(SubmitTransactionRequest::default())
        .await
        .unwrap();
    let err = ledger
        .get_block(GetBlockRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    drop(ledger);
    server.shutdown.trigger();
    server.task.await.unwrap().unwrap();

    // then the spans are named `ledger.<Method>`, and the failure is an error
    let spans = exporter.get_finished_spans().unwrap();
    let ok = span_named(&spans, "ledger.SubmitTransaction");
    assert_eq!(span_attribute(ok, "service").as_deref(), Some("ledger"));
    assert_eq!(
        span_attribute(ok, "rpc.service").as_deref(),
        Some("citychain.ledger.v1.LedgerService")
    );
    assert_eq!(
        span_attribute(ok, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    assert_eq!(ok.status, opentelemetry::trace::Status::Unset);

    let failed = span_named(&spans, "ledger.GetBlock");
    assert_eq!(
        span_attribute(failed, "rpc.grpc.status_code").as_deref(),
        Some("9")
    );
    assert!(
        matches!(failed.status, opentelemetry::trace::Status::Error { .. }),
        "{:?}",
        failed.status
    );
    // and the span lasted until the trailers went out, not just until the headers did
    let lasted = failed.end_time.duration_since(failed.start_time).unwrap();
    assert!(lasted >= FAILURE_DELAY, "{lasted:?}");
}

#[tokio::test]
async fn every_call_is_counted_and_timed_by_service_method_and_status() {
    // given a server recording into a local meter provider, with a ledger API
    let (telemetry, _dispatch) = TelemetryBuilder::new(TelemetryConfig::new("grpc-metrics-test"))
        .build_local()
        .unwrap();
    let meter = telemetry.meter_provider().meter("citychain-grpc");
    let server = start_server(
        GrpcServer::new(&local_config())
            .unwrap()
            .with_meter(&meter)
            .add_service(TrailerLedger),
    )
    .await;
    let channel = connect_channel(&server.addr.to_string(), None)
        .await
        .unwrap();

    // when it answers health checks (OK; NOT_FOUND in the response headers), ledger calls
    // (OK twice; FAILED_PRECONDITION in the trailers) and a call to a service it does not have
    assert_eq!(check(server.addr, "").await.unwrap(), WireStatus::Serving);
    assert_eq!(
        check(server.addr, "nope").await.unwrap_err().code(),
        Code::NotFound
    );
    let mut ledger = LedgerServiceClient::new(channel.clone());
    for _ in 0..2 {
        ledger
            .submit_transaction(SubmitTransactionRequest::default())
            .await
            .unwrap();
    }
    let err = ledger
        .get_block(GetBlockRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = TokenServiceClient::new(channel)
        .get_balance(GetBalanceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);

    // then the duration histogram counts each call by service, method and status
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&telemetry.registry().gather())
        .unwrap();
    assert!(
        text.contains("# TYPE rpc_server_duration_seconds histogram"),
        "{text}"
    );
    let count = |service: &str, method: &str, code: &str| {
        let labels = [
            ("rpc_system", "grpc"),
            ("rpc_service", service),
            ("rpc_method", method),
            ("rpc_grpc_status_code", code),
        ];
        sample(&text, "rpc_server_duration_seconds_count", &labels)
    };
    let health = "grpc.health.v1.Health";
    let ledger = "citychain.ledger.v1.LedgerService";
    assert_eq!(count(health, "Check", "0"), Some(1.0), "{text}");
    assert_eq!(count(health, "Check", "5"), Some(1.0), "{text}");
    assert_eq!(count(ledger, "SubmitTransaction", "0"), Some(2.0), "{text}");
    assert_eq!(count(ledger, "GetBlock", "9"), Some(1.0), "{text}");
    // a call nothing here implements is kept apart from real methods, without its names
    assert_eq!(count("unknown", "unknown", "12"), Some(1.0), "{text}");
    assert_eq!(
        count("citychain.tokens.v1.TokenService", "GetBalance", "12"),
        None
    );
    // and the failed call's duration includes the wait before its trailers
    let fast = sample(
        &text,
        "rpc_server_duration_seconds_bucket",
        &[("rpc_method", "GetBlock"), ("le", "0.05")],
    );
    assert_eq!(fast, Some(0.0), "{text}");

    server.shutdown.trigger();
    server.task.await.unwrap().unwrap();
}
