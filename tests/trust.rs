//! Trust boundaries on the bus, against a real nats-server with authentication on: who may
//! connect and publish where, and validators that carry on when the bus carries garbage.

use std::time::Duration;

use citychain_bus::{BusConfig, BusError, HeaderMap, StreamKind, connect};
use citychain_kernel::TxBody;
use citychain_scenarios::{Network, Service};
use citychain_testkit::genesis::network;

const SEED: u64 = 83;

/// A connection as `user` whose requests (JetStream acknowledgements among them) give up
/// after a second, so a refused publish fails quickly.
async fn connect_as(net: &Network, user: &str) -> citychain_bus::Bus {
    let config = BusConfig {
        request_timeout: Duration::from_secs(1),
        ..net.nats.user(user)
    };
    connect(&config).await.expect("a known user connects")
}

/// Publishes on `subject` as `user` and says whether JetStream stored the message.
async fn stored(net: &Network, user: &str, subject: &str) -> bool {
    let bus = connect_as(net, user).await;
    bus.publish_idempotent(
        subject,
        &format!("probe-{user}-{subject}"),
        "probe".into(),
        HeaderMap::new(),
    )
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_publishes_only_on_its_own_subjects() {
    let net = Network::new(network(4, SEED)).await;
    let streams = net.streams.clone();
    let validator = citychain_testkit::nats::validator_user(&net.net, 0);

    // No credentials, no connection.
    let anonymous = BusConfig {
        connect_timeout: Duration::from_secs(2),
        ..BusConfig::with_url(net.nats.url())
    };
    match connect(&anonymous).await {
        Err(BusError::Unauthorized { .. }) => {}
        other => panic!("an anonymous client was not refused as unauthorized: {other:?}"),
    }

    let chain = streams.chain_subject();
    let paid = streams.event_subject("tokens", "ReadPaid").unwrap();
    let mempool = streams.mempool_subject();
    assert!(!stored(&net, "tokens", &chain).await, "tokens wrote CHAIN");
    assert!(
        !stored(&net, "ledger", &chain).await,
        "the ledger wrote CHAIN"
    );
    assert!(
        !stored(&net, "licence", &paid).await,
        "licence forged a verdict"
    );
    assert!(
        !stored(&net, "ledger", &paid).await,
        "the ledger forged a verdict"
    );
    assert!(
        !stored(&net, &validator, &paid).await,
        "a validator forged a verdict"
    );
    assert!(!stored(&net, "tokens", &mempool).await, "tokens submitted");

    // What each may do, it can.
    assert!(stored(&net, "tokens", &paid).await);
    assert!(stored(&net, "ledger", &mempool).await);
    assert!(stored(&net, "licence", &mempool).await);

    // Nothing refused reached CHAIN.
    let bus = net.bus().await;
    let state = bus
        .stream_state(&streams.stream_name(StreamKind::Chain))
        .await
        .unwrap();
    assert_eq!(state.messages, 0, "CHAIN holds only what validators wrote");

    // A service cannot change a stream's limits (only validators manage the streams).
    let tokens = connect_as(&net, "tokens").await;
    let mut shortened = streams.stream_config(StreamKind::Mempool);
    let kept = shortened.max_age;
    shortened.max_age = Duration::from_secs(1);
    assert_ne!(kept, shortened.max_age);
    assert!(
        tokens.jetstream().update_stream(&shortened).await.is_err(),
        "tokens changed MEMPOOL's limits"
    );
    let now = bus
        .jetstream()
        .get_stream(&shortened.name)
        .await
        .unwrap()
        .cached_info()
        .config
        .max_age;
    assert_eq!(now, kept, "MEMPOOL keeps its limits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_on_chain_and_consensus_subjects_stops_no_validator() {
    let mut net = Network::new(network(4, SEED + 1)).await;
    net.start_validators().await;
    net.start(Service::Ledger, "ledger").await;
    let mut client = net.client().await;
    let dept = net.departments()[0].clone();
    let signer = net.signer(&dept, 1);
    let note = |n: u32| TxBody::new("citychain.test.v1.Note", n.to_be_bytes().to_vec());
    client.submit_and_wait(&signer, note(1)).await.unwrap();

    // Validator 3 is down while the garbage arrives, to catch up over it later.
    net.stop_validator(3).await;
    let chain_stream = net.streams.stream_name(StreamKind::Chain);
    let before = net
        .bus()
        .await
        .stream_state(&chain_stream)
        .await
        .unwrap()
        .last_sequence;

    // Garbage where validators listen: CHAIN (it takes the next sequence), the consensus
    // subjects, each validator's own subject and block service, and MEMPOOL.
    let operator = net.bus().await;
    let nats = operator.client();
    let prefix = net.streams.chain_subject_prefix();
    let mut subjects = vec![
        net.streams.chain_subject(),
        format!("{prefix}.consensus.all"),
        net.streams.mempool_subject(),
    ];
    for key in net.net.validator_keys() {
        let key = key.signing.public_key().to_string();
        subjects.push(format!("{prefix}.consensus.to.{key}"));
        subjects.push(net.streams.block_service_subject(&key));
    }
    for subject in &subjects {
        for garbage in [&b""[..], b"\x00", b"\xff\xfe garbage \x01", &[0x0a; 300]] {
            nats.publish(subject.clone(), garbage.to_vec().into())
                .await
                .unwrap();
        }
    }
    nats.flush().await.unwrap();

    // Commits go on past the garbage, and the ledger repairs the gap it left on CHAIN.
    for n in 2..8 {
        client.submit_and_wait(&signer, note(n)).await.unwrap();
    }
    let last = operator
        .stream_state(&chain_stream)
        .await
        .unwrap()
        .last_sequence;
    let mut undecodable = 0;
    for sequence in before + 1..=last {
        let message = operator.get_message(&chain_stream, sequence).await.unwrap();
        if citychain_kernel::Block::decode(&message.payload).is_err() {
            undecodable += 1;
        }
    }
    assert_eq!(undecodable, 4, "the four garbage messages sit in CHAIN");
    let tip = client.tip_height().await.unwrap();
    assert!(
        tip > before + 4,
        "the ledger applied blocks past the garbage: tip {tip}"
    );
    for i in 0..3 {
        assert!(net.validator_running(i), "validator {i} exited");
    }

    // The validator that was down catches up over the garbage, and votes again: with one
    // of the others stopped, nothing commits without it.
    net.start_validator(3).await;
    net.stop_validator(0).await;
    client.submit_and_wait(&signer, note(20)).await.unwrap();
    assert!(net.validator_running(3), "the restarted validator exited");
}
