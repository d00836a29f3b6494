//! The shared gRPC server, over real sockets on 127.0.0.1: health, reflection, request
//! limits, trace propagation and shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use citychain_runtime::config::GrpcConfig;
use citychain_runtime::grpc::{GrpcServer, HealthReporter, ServingStatus, connect_channel};
use citychain_runtime::shutdown::Shutdown;
use opentelemetry::trace::TraceContextExt as _;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

struct Running {
    addr: SocketAddr,
    health: HealthReporter,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), citychain_runtime::GrpcError>>,
}

async fn start(config: GrpcConfig) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = GrpcServer::new(&config).expect("server builds");
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
async fn reflection_lists_health_reflection_and_every_citychain_service() {
    let server = start(local_config()).await;
    let channel = connect_channel(&format!("http://{}", server.addr), None)
        .await
        .unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let listed: Vec<String> = list.service.into_iter().map(|s| s.name).collect();

    let mut expected = vec![
        "grpc.health.v1.Health".to_owned(),
        "grpc.reflection.v1.ServerReflection".to_owned(),
    ];
    let ours =
        prost_types::FileDescriptorSet::decode(citychain_proto::FILE_DESCRIPTOR_SET).unwrap();
    for file in ours.file {
        for service in &file.service {
            expected.push(format!("{}.{}", file.package(), service.name()));
        }
    }
    for name in expected {
        assert!(listed.contains(&name), "{name} missing from {listed:?}");
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

#[tokio::test]
async fn a_call_runs_in_a_server_span_that_continues_the_callers_trace() {
    // given a subscriber for this test's thread that records spans in memory
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let (_telemetry, dispatch) = citychain_telemetry::TelemetryBuilder::new(
        citychain_telemetry::TelemetryConfig::new("grpc-test").with_filter("info"),
    )
    .with_span_exporter(exporter.clone())
    .build_local()
    .unwrap();
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
    let server_span = spans
        .iter()
        .find(|s| s.name == "Health.Check")
        .unwrap_or_else(|| {
            panic!(
                "no Health.Check span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(server_span.span_context.trace_id(), client.trace_id());
    assert_eq!(server_span.parent_span_id, client.span_id());
    assert_eq!(
        server_span.span_kind,
        opentelemetry::trace::SpanKind::Server
    );
    let attribute = |key: &str| {
        server_span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        attribute("rpc.service").as_deref(),
        Some("grpc.health.v1.Health")
    );
    assert_eq!(attribute("rpc.method").as_deref(), Some("Check"));
    assert_eq!(attribute("rpc.system").as_deref(), Some("grpc"));
}
