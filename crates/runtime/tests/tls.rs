//! TLS and mutual TLS on the shared gRPC server, with the throw-away certificates in
//! `tests/fixtures/tls`.

use std::path::{Path, PathBuf};

use citychain_runtime::config::{GrpcConfig, TlsConfig};
use citychain_runtime::grpc::{GrpcServer, client_tls_from_files, connect_channel};
use citychain_runtime::shutdown::Shutdown;
use tokio::net::TcpListener;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::health_client::HealthClient;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

async fn start(client_ca: Option<PathBuf>) -> (String, Shutdown) {
    let config = GrpcConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(TlsConfig {
            cert: fixture("server.pem"),
            key: fixture("server.key"),
            client_ca,
        }),
        ..GrpcConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let shutdown = Shutdown::new();
    let server = GrpcServer::new(&config).expect("TLS files load");
    tokio::spawn(server.serve_on(listener, shutdown.clone()));
    (addr, shutdown)
}

async fn check(addr: &str, with_client_cert: bool) -> Result<WireStatus, String> {
    let client_cert = (fixture("client.pem"), fixture("client.key"));
    let identity = with_client_cert.then_some((client_cert.0.as_path(), client_cert.1.as_path()));
    let tls = client_tls_from_files(&fixture("ca.pem"), identity, None).unwrap();
    let channel = connect_channel(addr, Some(tls))
        .await
        .map_err(|e| e.to_string())?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|r| r.into_inner().status())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_tls_server_answers_a_client_that_trusts_its_ca() {
    let (addr, shutdown) = start(None).await;
    assert_eq!(check(&addr, false).await, Ok(WireStatus::Serving));
    shutdown.trigger();
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_certificate_and_refuses_its_absence() {
    let (addr, shutdown) = start(Some(fixture("ca.pem"))).await;
    assert_eq!(check(&addr, true).await, Ok(WireStatus::Serving));
    let refused = check(&addr, false).await;
    assert!(refused.is_err(), "{refused:?}");
    shutdown.trigger();
}

#[tokio::test]
async fn a_missing_certificate_file_is_named_at_start_up() {
    let config = GrpcConfig {
        tls: Some(TlsConfig {
            cert: PathBuf::from("/nonexistent/server.pem"),
            key: fixture("server.key"),
            client_ca: None,
        }),
        ..GrpcConfig::default()
    };
    let err = GrpcServer::new(&config).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/server.pem"), "{err}");
}
