//! Creating the streams idempotently, updating their limits, and failing clearly when NATS
//! cannot be reached.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::{DiscardPolicy, StorageType};
use citychain_bus::{BusConfig, BusError, StreamKind, StreamsConfig, connect, ensure_streams};
use citychain_testkit::nats::NatsServer;
use common::{CHAIN_ID, connect_to};

#[tokio::test]
async fn ensure_streams_twice_is_idempotent_and_a_changed_limit_updates() {
    let server = NatsServer::start().await.unwrap();
    let bus = connect_to(&server).await;
    let mut streams = StreamsConfig::new(CHAIN_ID).unwrap();

    let first = ensure_streams(&bus, &streams).await.unwrap();
    assert!(first.iter().all(|s| s.created), "{first:?}");
    let names: Vec<_> = first.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CITYCHAIN_test-chain_MEMPOOL",
            "CITYCHAIN_test-chain_CHAIN",
            "CITYCHAIN_test-chain_EVENTS"
        ]
    );
    let chain_before = info(&bus, &streams, StreamKind::Chain).await;

    let second = ensure_streams(&bus, &streams).await.unwrap();
    assert!(second.iter().all(|s| !s.created), "{second:?}");
    assert_eq!(info(&bus, &streams, StreamKind::Chain).await, chain_before);

    // The CHAIN stream as created: file storage, never expires, no deletes.
    assert_eq!(chain_before.storage, StorageType::File);
    assert_eq!(chain_before.max_age, Duration::ZERO);
    assert_eq!(chain_before.max_bytes, -1);
    assert!(chain_before.deny_delete && chain_before.deny_purge);
    assert_eq!(chain_before.subjects, ["citychain.test-chain.chain"]);
    let mempool = info(&bus, &streams, StreamKind::Mempool).await;
    assert_eq!(mempool.max_age, Duration::from_secs(24 * 3600));
    assert_eq!(mempool.discard, DiscardPolicy::New);
    assert_eq!(mempool.duplicate_window, Duration::from_secs(600));

    // A changed limit is applied in place.
    streams.mempool.max_bytes = Some(64 * 1024 * 1024);
    streams.mempool.max_age = Some(Duration::from_secs(3600));
    let third = ensure_streams(&bus, &streams).await.unwrap();
    assert!(third.iter().all(|s| !s.created));
    let mempool = info(&bus, &streams, StreamKind::Mempool).await;
    assert_eq!(mempool.max_bytes, 64 * 1024 * 1024);
    assert_eq!(mempool.max_age, Duration::from_secs(3600));

    // A change the server refuses (one replica server asked for three) names the stream.
    let err = ensure_streams(&bus, &streams.clone().with_replicas(3))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::Stream { stream, .. } if stream == "CITYCHAIN_test-chain_MEMPOOL"),
        "{err:?}"
    );
}

async fn info(
    bus: &citychain_bus::Bus,
    streams: &StreamsConfig,
    kind: StreamKind,
) -> async_nats::jetstream::stream::Config {
    let mut stream = bus
        .jetstream()
        .get_stream(streams.stream_name(kind))
        .await
        .unwrap();
    stream.info().await.unwrap().config.clone()
}

#[tokio::test]
async fn connecting_where_no_server_listens_is_unreachable_and_names_the_url() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("nats://127.0.0.1:{port}");
    let config = BusConfig {
        connect_timeout: Duration::from_secs(1),
        ..BusConfig::with_url(&url)
    };

    let started = Instant::now();
    let err = connect(&config).await.unwrap_err();

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, BusError::Unreachable { url: named, .. } if *named == url),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn unreadable_credentials_and_half_tls_config_are_refused_before_connecting() {
    let config = BusConfig {
        nkey_seed_file: Some("/nonexistent/seed.nk".into()),
        ..BusConfig::default()
    };
    let err = connect(&config).await.unwrap_err();
    assert!(
        matches!(
            err,
            BusError::CredentialsFile {
                what: "nkey seed",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("/nonexistent/seed.nk"), "{err}");

    let config = BusConfig {
        tls_client_cert_file: Some("/tmp/cert.pem".into()),
        ..BusConfig::default()
    };
    assert!(matches!(connect(&config).await, Err(BusError::Config(_))));
}

#[tokio::test]
async fn the_bus_reconnects_after_a_server_restart_and_data_persists() {
    let (mut server, bus, streams) = common::setup().await;
    let subject = streams.chain_subject();
    bus.append_expected(&subject, 0, "block-1", "b1".into(), Default::default())
        .await
        .unwrap();

    server.restart().await.unwrap();

    // The same connection comes back on its own (the first reconnect attempt is immediate).
    let appended = tokio::time::timeout(
        Duration::from_secs(10),
        bus.append_expected(&subject, 1, "block-2", "b2".into(), Default::default()),
    )
    .await
    .expect("reconnected in time")
    .unwrap();
    assert_eq!(appended.sequence, 2);
    let chain = streams.stream_name(StreamKind::Chain);
    assert_eq!(bus.get_message(&chain, 1).await.unwrap().payload, "b1");
}
