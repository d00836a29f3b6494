//! A real `nats-server` for tests, with authentication on: the launcher lives in
//! [`citychain_bus::local`] (the benchmark and development commands use it too) and is
//! re-exported here, and [`for_network`] starts one whose users are a test network's
//! validators and services, each with its own permissions.

pub use citychain_bus::local::*;

use citychain_bus::StreamsConfig;
use citychain_bus::access;

use crate::genesis::TestNetwork;

/// Starts a nats-server for `net`'s chain on `streams` with a user per validator (named by
/// [`validator_user`]) and per service (`ledger`, `licence`, `tokens`), plus the operator;
/// `more` adds users of the test's own.
pub async fn for_network(
    net: &TestNetwork,
    streams: &StreamsConfig,
    more: impl FnOnce(NatsServerBuilder) -> NatsServerBuilder,
) -> NatsServer {
    let validators: Vec<String> = net
        .genesis
        .validators
        .iter()
        .map(|m| m.to_string())
        .collect();
    let builder = NatsServer::builder().chain_users(
        streams,
        access::chain_users(validators.iter().map(String::as_str)),
    );
    more(builder).start().await.expect("nats-server starts")
}

/// The user name of validator `i` of `net`'s genesis.
pub fn validator_user(net: &TestNetwork, i: usize) -> String {
    access::validator_user(net.genesis.validators[i].as_str())
}
