//! Request/reply against a real server: a round trip, no responders, a timeout, and the
//! requester's trace reaching the handler.

mod common;

use std::time::Duration;

use bytes::Bytes;
use citychain_bus::{BusError, HeaderMap, trace};
use citychain_testkit::nats::NatsServer;
use common::connect_to;

#[tokio::test]
async fn a_request_gets_the_handlers_reply() {
    let server = NatsServer::builder()
        .jetstream(false)
        .start()
        .await
        .unwrap();
    let bus = connect_to(&server).await;
    let responder = bus
        .serve(
            "citychain.test.ping",
            Some("pingers"),
            |request| async move {
                let mut reply = b"pong:".to_vec();
                reply.extend_from_slice(&request.payload);
                let parent = trace::traceparent(&request.headers)
                    .unwrap_or("none")
                    .to_owned();
                reply.extend_from_slice(format!(":{parent}").as_bytes());
                Bytes::from(reply)
            },
        )
        .await
        .unwrap();
    assert_eq!(responder.subject(), "citychain.test.ping");

    let mut headers = HeaderMap::new();
    headers.insert(
        trace::TRACEPARENT,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    let reply = bus
        .request(
            "citychain.test.ping",
            "hi".into(),
            headers,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(
        reply.payload,
        "pong:hi:00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );

    responder.stop().await;
    let err = bus
        .request(
            "citychain.test.ping",
            "hi".into(),
            HeaderMap::new(),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::NoResponders { .. }), "{err:?}");
}

#[tokio::test]
async fn nobody_listening_is_no_responders_and_a_slow_handler_times_out() {
    let server = NatsServer::builder()
        .jetstream(false)
        .start()
        .await
        .unwrap();
    let bus = connect_to(&server).await;

    let err = bus
        .request(
            "citychain.test.nobody",
            "x".into(),
            HeaderMap::new(),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::NoResponders { subject } if subject == "citychain.test.nobody"),
        "{err:?}"
    );

    let _slow = bus
        .serve("citychain.test.slow", None, |_| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Bytes::new()
        })
        .await
        .unwrap();
    let timeout = Duration::from_millis(200);
    let err = bus
        .request("citychain.test.slow", "x".into(), HeaderMap::new(), timeout)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::RequestTimeout { timeout: t, .. } if *t == timeout),
        "{err:?}"
    );
}
