//! Idempotent and conditional appends against a real server.

mod common;

use citychain_bus::{BusError, HeaderMap, StreamKind};
use common::setup;

#[tokio::test]
async fn a_duplicate_publish_is_stored_once() {
    let (_server, bus, streams) = setup().await;
    let subject = streams.mempool_subject();
    let mempool = streams.stream_name(StreamKind::Mempool);

    let first = bus
        .publish_idempotent(&subject, "tx-1", "payload".into(), HeaderMap::new())
        .await
        .unwrap();
    let second = bus
        .publish_idempotent(&subject, "tx-1", "payload".into(), HeaderMap::new())
        .await
        .unwrap();

    assert_eq!(first.stream, mempool);
    assert!(!first.duplicate);
    assert!(second.duplicate, "second ack reports the duplicate");
    assert_eq!(second.sequence, first.sequence);
    assert_eq!(bus.stream_state(&mempool).await.unwrap().messages, 1);

    // A different id is a different message.
    let third = bus
        .publish_idempotent(&subject, "tx-2", "payload".into(), HeaderMap::new())
        .await
        .unwrap();
    assert!(!third.duplicate);
    assert_eq!(bus.stream_state(&mempool).await.unwrap().messages, 2);
}

#[tokio::test]
async fn a_stale_conditional_append_conflicts_and_stores_nothing() {
    let (_server, bus, streams) = setup().await;
    let subject = streams.chain_subject();
    let chain = streams.stream_name(StreamKind::Chain);

    // Given a chain with two blocks.
    let b1 = bus
        .append_expected(&subject, 0, "block-1", "b1".into(), HeaderMap::new())
        .await
        .unwrap();
    let b2 = bus
        .append_expected(
            &subject,
            b1.sequence,
            "block-2",
            "b2".into(),
            HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!((b1.sequence, b2.sequence), (1, 2));
    let before = bus.stream_state(&chain).await.unwrap();

    // When a writer appends expecting the stream to end at block 1.
    let err = bus
        .append_expected(&subject, 1, "block-2-fork", "fork".into(), HeaderMap::new())
        .await
        .unwrap_err();

    // Then it gets a typed conflict naming the actual last sequence, and nothing is stored.
    assert!(
        matches!(
            err,
            BusError::Conflict {
                expected: 1,
                actual: Some(2)
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("expected last sequence 1"),
        "{err}"
    );
    assert_eq!(bus.stream_state(&chain).await.unwrap(), before);
    let last = bus.last_message(&chain).await.unwrap().expect("not empty");
    assert_eq!(last.sequence, 2);
    assert_eq!(
        last.msg_id.as_deref(),
        Some("block-2"),
        "someone else's write"
    );
    assert_eq!(last.payload, "b2");

    // And with the right expected sequence the append succeeds.
    let b3 = bus
        .append_expected(&subject, 2, "block-3", "b3".into(), HeaderMap::new())
        .await
        .unwrap();
    assert_eq!((b3.sequence, b3.duplicate), (3, false));

    // A retry of that same write conflicts too (the sequence is checked before the id), and
    // the last message's id tells the writer the block is its own.
    let retry = bus
        .append_expected(&subject, 2, "block-3", "b3".into(), HeaderMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            retry,
            BusError::Conflict {
                expected: 2,
                actual: Some(3)
            }
        ),
        "{retry:?}"
    );
    let last = bus.last_message(&chain).await.unwrap().expect("not empty");
    assert_eq!(
        (last.sequence, last.msg_id.as_deref()),
        (3, Some("block-3"))
    );
    assert_eq!(bus.stream_state(&chain).await.unwrap().messages, 3);

    // Without the condition, the same id within the duplicate window is a duplicate.
    let dup = bus
        .publish_idempotent(&subject, "block-3", "b3".into(), HeaderMap::new())
        .await
        .unwrap();
    assert_eq!((dup.sequence, dup.duplicate), (3, true));
}

#[tokio::test]
async fn an_append_expecting_an_empty_stream_conflicts_once_it_is_not() {
    let (_server, bus, streams) = setup().await;
    let subject = streams.chain_subject();
    bus.append_expected(&subject, 0, "genesis", "g".into(), HeaderMap::new())
        .await
        .unwrap();
    let err = bus
        .append_expected(&subject, 0, "other-genesis", "g2".into(), HeaderMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BusError::Conflict {
                expected: 0,
                actual: Some(1)
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn messages_are_read_back_by_sequence() {
    let (_server, bus, streams) = setup().await;
    let chain = streams.stream_name(StreamKind::Chain);
    assert!(bus.last_message(&chain).await.unwrap().is_none());

    let mut headers = HeaderMap::new();
    headers.insert("Citychain-Height", "1");
    bus.append_expected(&streams.chain_subject(), 0, "h1", "one".into(), headers)
        .await
        .unwrap();

    let message = bus.get_message(&chain, 1).await.unwrap();
    assert_eq!(message.subject, streams.chain_subject());
    assert_eq!(message.payload, "one");
    assert_eq!(message.msg_id.as_deref(), Some("h1"));
    assert_eq!(
        message.headers.get("Citychain-Height").map(|v| v.as_str()),
        Some("1")
    );

    let missing = bus.get_message(&chain, 2).await.unwrap_err();
    assert!(
        matches!(missing, BusError::MessageNotFound { sequence: 2, .. }),
        "{missing:?}"
    );
    let no_stream = bus.get_message("NO_SUCH_STREAM", 1).await.unwrap_err();
    assert!(
        matches!(no_stream, BusError::StreamNotFound { .. }),
        "{no_stream:?}"
    );
}

#[tokio::test]
async fn publishing_where_no_stream_listens_is_a_typed_error() {
    let (_server, bus, _streams) = setup().await;
    let err = bus
        .publish_idempotent("nowhere.at.all", "id", "x".into(), HeaderMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::NoStream { .. }), "{err:?}");
    let err = bus
        .publish_idempotent("nowhere", "", "x".into(), HeaderMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Publish { .. }), "{err:?}");
}
