//! Publish and acknowledgement latency histograms against a real server, read as Prometheus
//! text from a local meter provider.

mod common;

use citychain_bus::{BusError, HeaderMap, StreamKind};
use citychain_telemetry::exposition::sample;
use citychain_telemetry::{TelemetryBuilder, TelemetryConfig};
use common::setup;
use opentelemetry::metrics::MeterProvider as _;

#[tokio::test]
async fn appends_record_publish_and_ack_latency_by_stream_and_outcome() {
    // given a bus recording into a local meter provider
    let (telemetry, _dispatch) = TelemetryBuilder::new(TelemetryConfig::new("bus-metrics-test"))
        .build_local()
        .unwrap();
    let (_server, bus, streams) = setup().await;
    let bus = bus.with_meter(&telemetry.meter_provider().meter("citychain-bus"));
    let mempool = streams.stream_name(StreamKind::Mempool);
    let chain = streams.stream_name(StreamKind::Chain);

    // when it appends two new messages and a duplicate to MEMPOOL,
    for id in ["tx-1", "tx-2", "tx-1"] {
        bus.publish_idempotent(
            &streams.mempool_subject(),
            id,
            "tx".into(),
            HeaderMap::new(),
        )
        .await
        .unwrap();
    }
    // a block to CHAIN and then a stale one,
    let subject = streams.chain_subject();
    bus.append_expected(&subject, 0, "block-1", "b1".into(), HeaderMap::new())
        .await
        .unwrap();
    let stale = bus
        .append_expected(&subject, 0, "block-1-fork", "fork".into(), HeaderMap::new())
        .await;
    assert!(matches!(stale, Err(BusError::Conflict { .. })), "{stale:?}");
    // and a message no stream captures
    let lost = bus
        .publish_idempotent("nowhere.at.all", "x", "x".into(), HeaderMap::new())
        .await;
    assert!(lost.is_err(), "{lost:?}");

    // then both histograms count every append by stream and outcome
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&telemetry.registry().gather())
        .unwrap();
    let expected = [
        (mempool.as_str(), "ok", 2.0),
        (mempool.as_str(), "duplicate", 1.0),
        (chain.as_str(), "ok", 1.0),
        // a refused append has no PubAck naming its stream; the subject's earlier one does
        (chain.as_str(), "conflict", 1.0),
        // nor does one on a subject that no stream has acknowledged yet
        ("unknown", "error", 1.0),
    ];
    for histogram in [
        "jetstream_publish_duration_seconds",
        "jetstream_ack_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {histogram} histogram")),
            "{histogram} missing from\n{text}"
        );
        for (stream, outcome, count) in expected {
            let labels = [("stream", stream), ("outcome", outcome)];
            assert_eq!(
                sample(&text, &format!("{histogram}_count"), &labels),
                Some(count),
                "{histogram} {labels:?} in\n{text}"
            );
            // every sample falls within the last finite bucket, ten seconds
            assert_eq!(
                sample(
                    &text,
                    &format!("{histogram}_bucket"),
                    &[("stream", stream), ("outcome", outcome), ("le", "10")]
                ),
                Some(count),
                "{histogram} {labels:?} in\n{text}"
            );
        }
    }
}
