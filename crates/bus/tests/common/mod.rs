//! Shared set-up for the bus tests: one real nats-server per test, a connected bus and the
//! chain's streams.

#![allow(dead_code)]

use std::time::Duration;

use citychain_bus::{Bus, BusConfig, StreamsConfig, connect, ensure_streams};
use citychain_testkit::nats::NatsServer;

pub const CHAIN_ID: &str = "test-chain";

/// A server, a bus connected to it, and the chain's streams created.
pub async fn setup() -> (NatsServer, Bus, StreamsConfig) {
    let server = NatsServer::start().await.expect("nats-server starts");
    let bus = connect_to(&server).await;
    let streams = StreamsConfig::new(CHAIN_ID).expect("valid chain id");
    ensure_streams(&bus, &streams)
        .await
        .expect("streams created");
    (server, bus, streams)
}

/// A new connection to `server`.
pub async fn connect_to(server: &NatsServer) -> Bus {
    let config = BusConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..server.operator()
    };
    connect(&config).await.expect("connects")
}
