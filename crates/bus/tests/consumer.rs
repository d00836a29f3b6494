//! Durable pull consumers against a real server: order, start position, redelivery after a
//! consumer restart, and position surviving a server restart.

mod common;

use std::time::Duration;

use citychain_bus::{BusError, ConsumerSpec, HeaderMap, StartPosition, StreamKind};
use common::{connect_to, setup};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn an_unacked_message_is_redelivered_after_the_consumer_restarts() {
    let (server, bus, streams) = setup().await;
    let events = streams.stream_name(StreamKind::Events);
    let subject = streams.event_subject("tokens", "ReadPaid").unwrap();
    let appended = bus
        .publish_idempotent(&subject, "1-0-0", "paid".into(), HeaderMap::new())
        .await
        .unwrap();
    let spec = ConsumerSpec::new("licence")
        .filter(streams.events_wildcard())
        .ack_wait(Duration::from_millis(500));

    // Given a consumer that received the message and went away without acking.
    {
        let mut consumer = bus.durable_consumer(&events, &spec).await.unwrap();
        let first = consumer
            .next_timeout(WAIT)
            .await
            .unwrap()
            .expect("delivered");
        assert_eq!(first.stream_sequence, appended.sequence);
        assert_eq!(first.delivered_count, 1);
        assert_eq!(first.msg_id.as_deref(), Some("1-0-0"));
        assert_eq!(first.subject, subject);
        assert_eq!(first.payload, "paid");
    }
    drop(bus);

    // When the durable is created again on a new connection.
    let bus = connect_to(&server).await;
    let mut consumer = bus.durable_consumer(&events, &spec).await.unwrap();

    // Then the same message comes back as its second delivery.
    let again = consumer
        .next_timeout(WAIT)
        .await
        .unwrap()
        .expect("redelivered");
    assert_eq!(again.stream_sequence, appended.sequence);
    assert_eq!(again.delivered_count, 2);
    again.ack_confirmed().await.unwrap();

    // And once acked it does not come back.
    let none = consumer
        .next_timeout(Duration::from_millis(1200))
        .await
        .unwrap();
    assert!(none.is_none(), "acked message redelivered: {none:?}");
}

#[tokio::test]
async fn deliveries_come_in_order_from_the_start_sequence() {
    let (_server, bus, streams) = setup().await;
    let chain = streams.stream_name(StreamKind::Chain);
    for height in 1..=5u64 {
        bus.append_expected(
            &streams.chain_subject(),
            height - 1,
            &format!("block-{height}"),
            height.to_string().into(),
            HeaderMap::new(),
        )
        .await
        .unwrap();
    }

    let spec = ConsumerSpec::new("ledger")
        .start_at(StartPosition::Sequence(3))
        .max_ack_pending(1);
    let mut consumer = bus.durable_consumer(&chain, &spec).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let delivery = consumer
            .next_timeout(WAIT)
            .await
            .unwrap()
            .expect("delivered");
        seen.push((delivery.stream_sequence, delivery.pending));
        delivery.ack().await.unwrap();
    }
    assert_eq!(seen, [(3, 2), (4, 1), (5, 0)]);
}

#[tokio::test]
async fn a_nak_redelivers_and_the_position_survives_a_server_restart() {
    let (mut server, bus, streams) = setup().await;
    let mempool = streams.stream_name(StreamKind::Mempool);
    for id in ["tx-a", "tx-b"] {
        bus.publish_idempotent(&streams.mempool_subject(), id, id.into(), HeaderMap::new())
            .await
            .unwrap();
    }
    // The dropped consumer may already have pulled tx-b; a short ack wait brings it back soon.
    let spec = ConsumerSpec::new("consensus")
        .max_ack_pending(1)
        .ack_wait(Duration::from_millis(500));

    let mut consumer = bus.durable_consumer(&mempool, &spec).await.unwrap();
    let first = consumer
        .next_timeout(WAIT)
        .await
        .unwrap()
        .expect("delivered");
    assert_eq!(first.msg_id.as_deref(), Some("tx-a"));
    first.nak(None).await.unwrap();
    let again = consumer
        .next_timeout(WAIT)
        .await
        .unwrap()
        .expect("redelivered");
    assert_eq!(
        (again.msg_id.as_deref(), again.delivered_count),
        (Some("tx-a"), 2)
    );
    again.ack_confirmed().await.unwrap();
    drop(consumer);
    drop(bus);

    server.restart().await.unwrap();

    let bus = connect_to(&server).await;
    let mut consumer = bus.durable_consumer(&mempool, &spec).await.unwrap();
    let next = consumer
        .next_timeout(WAIT)
        .await
        .unwrap()
        .expect("delivered");
    assert_eq!(
        next.msg_id.as_deref(),
        Some("tx-b"),
        "resumes after the acked message"
    );
    next.ack_confirmed().await.unwrap();
    let none = consumer
        .next_timeout(Duration::from_millis(800))
        .await
        .unwrap();
    assert!(
        none.is_none(),
        "tx-a was acked before the restart: {none:?}"
    );
}

#[tokio::test]
async fn a_consumer_on_a_missing_stream_is_a_typed_error() {
    let (_server, bus, _streams) = setup().await;
    let err = bus
        .durable_consumer("NO_SUCH_STREAM", &ConsumerSpec::new("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::StreamNotFound { .. }), "{err:?}");
    assert!(
        !bus.delete_consumer("CITYCHAIN_test-chain_CHAIN", "x")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_durable_with_an_inactivity_threshold_is_removed_once_nobody_pulls() {
    let (_server, bus, streams) = setup().await;
    let events = streams.stream_name(StreamKind::Events);
    let lasting = ConsumerSpec::new("kept").filter(streams.events_wildcard());
    let idle = ConsumerSpec::new("licence-payments-gone-pod")
        .filter(streams.events_wildcard())
        .inactive_after(Duration::from_secs(1));
    drop(bus.durable_consumer(&events, &lasting).await.unwrap());
    drop(bus.durable_consumer(&events, &idle).await.unwrap());
    let stream = bus.jetstream().get_stream(&events).await.unwrap();

    // The idle durable goes within a few seconds; the other stays.
    let mut gone = false;
    for _ in 0..100 {
        if stream
            .consumer_info("licence-payments-gone-pod")
            .await
            .is_err()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the idle durable is still there after 10 s");
    assert!(stream.consumer_info("kept").await.is_ok());
}
