//! The service entry point in-process: health follows the validator, a shutdown ends the
//! service cleanly, and a validator error ends it with that error.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use citychain_bus::{BusConfig, StreamsConfig};
use citychain_consensus::{SERVICE_NAME, ServiceError, serve};
use citychain_runtime::{ConfigLoader, ServiceConfig, Shutdown};
use citychain_testkit::genesis::network;
use citychain_testkit::grpc::free_addr;
use citychain_testkit::nats::{self, NatsServer};
use tokio::task::JoinHandle;
use tonic_health::pb::health_check_response::ServingStatus;

const SEED: u64 = 23;

/// A nats-server with the users of the four-validator network, and how validator 0 connects.
async fn nats_server() -> (NatsServer, BusConfig) {
    let net = network(4, SEED);
    let streams = StreamsConfig::new(net.genesis.chain_id.as_str()).unwrap();
    let server = nats::for_network(&net, &streams, |builder| builder).await;
    let user = server.user(&nats::validator_user(&net, 0));
    (server, user)
}

/// One validator of a four-validator network (the other three never start, so it never
/// commits, but it does start and report a height).
fn config(
    dir: &Path,
    nats: &BusConfig,
    grpc: SocketAddr,
) -> ServiceConfig<citychain_consensus::ConsensusConfig> {
    let net = network(4, SEED);
    let genesis = net.write_to(dir).unwrap();
    let member = net.genesis.validators[0].to_string();
    let key = dir.join("keys").join(format!("{member}.json"));
    let text = format!(
        r#"
[service]
name = "consensus"
[grpc]
listen = "{grpc}"
[metrics]
enabled = false
[chain]
genesis = "{genesis}"
[consensus]
validator_key = "{key}"
data_dir = "{data}"
[nats]
{nats}request_timeout = "1s"
reconnect = {{ initial = "50ms", max = "200ms" }}
"#,
        genesis = genesis.display(),
        key = key.display(),
        data = dir.join("data").display(),
        nats = nats.to_toml(),
    );
    ConfigLoader::new()
        .toml(text)
        .env(Vec::<(String, String)>::new())
        .load()
        .expect("a valid configuration")
}

async fn health(grpc: SocketAddr) -> Option<i32> {
    citychain_testkit::grpc::health(grpc, SERVICE_NAME).await
}

async fn wait_serving(grpc: SocketAddr, service: &JoinHandle<Result<(), ServiceError>>) {
    for _ in 0..200 {
        assert!(!service.is_finished(), "the service stopped while starting");
        if health(grpc).await == Some(ServingStatus::Serving as i32) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not SERVING after 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_once_started_and_a_shutdown_ends_the_service_cleanly() {
    let (_nats, user) = nats_server().await;
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_addr();
    let shutdown = Shutdown::new();
    let service = tokio::spawn(serve(config(dir.path(), &user, grpc), shutdown.clone()));

    wait_serving(grpc, &service).await;
    shutdown.trigger();

    let outcome = tokio::time::timeout(Duration::from_secs(10), service)
        .await
        .expect("the service stops within 10 s")
        .expect("the service task does not panic");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(health(grpc).await, None, "the gRPC port is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_error_stops_the_service_with_that_error() {
    let (mut nats, user) = nats_server().await;
    let dir = tempfile::tempdir().unwrap();
    let grpc = free_addr();
    let service = tokio::spawn(serve(config(dir.path(), &user, grpc), Shutdown::new()));
    wait_serving(grpc, &service).await;

    // Without NATS the validator cannot follow CHAIN and stops; the service stops with it.
    nats.kill();

    let outcome = tokio::time::timeout(Duration::from_secs(20), service)
        .await
        .expect("the service stops within 20 s of losing NATS")
        .expect("the service task does not panic");
    match outcome {
        Err(ServiceError::Validator(err)) => eprintln!("stopped as expected: {err}"),
        other => panic!("expected a validator error, got {other:?}"),
    }
    assert_eq!(health(grpc).await, None, "the gRPC port is closed");
}

#[tokio::test]
async fn unreachable_nats_is_reported_with_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("nats://{}", free_addr());
    let outcome = serve(
        config(dir.path(), &BusConfig::with_url(&url), free_addr()),
        Shutdown::new(),
    )
    .await;
    let err = outcome.expect_err("no NATS, no service");
    assert!(matches!(err, ServiceError::Nats(_)), "{err:?}");
    assert!(err.to_string().contains(&url[7..]), "{err}");
}
