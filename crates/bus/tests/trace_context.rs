//! A trace context travels with a message: what the publisher injects is what the consumer
//! extracts, both from an explicit context and from the current tracing span.

mod common;

use std::time::Duration;

use citychain_bus::{ConsumerSpec, HeaderMap, StreamKind, trace};
use opentelemetry::Context;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

use common::setup;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn remote_parent() -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex(TRACE_ID).unwrap(),
        SpanId::from_hex(SPAN_ID).unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

#[tokio::test]
async fn the_traceparent_published_is_the_one_consumed() {
    let (_server, bus, streams) = setup().await;
    let mut headers = HeaderMap::new();
    trace::inject(&mut headers, &remote_parent());
    bus.publish_idempotent(&streams.mempool_subject(), "tx", "x".into(), headers)
        .await
        .unwrap();

    let mut consumer = bus
        .durable_consumer(
            &streams.stream_name(StreamKind::Mempool),
            &ConsumerSpec::new("t"),
        )
        .await
        .unwrap();
    let delivery = consumer
        .next_timeout(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("delivered");

    assert_eq!(
        trace::traceparent(&delivery.headers),
        Some(format!("00-{TRACE_ID}-{SPAN_ID}-01").as_str())
    );
    let span = delivery.trace_context.span();
    let extracted = span.span_context();
    assert_eq!(extracted.trace_id().to_string(), TRACE_ID);
    assert_eq!(extracted.span_id().to_string(), SPAN_ID);
    assert!(extracted.is_remote());
}

#[tokio::test]
async fn the_current_span_is_propagated() {
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bus-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let (_server, bus, streams) = setup().await;

    // The publisher runs inside a span whose parent came from a remote caller.
    let span = tracing::info_span!("submit transaction");
    span.set_parent(remote_parent()).expect("layer installed");
    let publisher_span_id = span.context().span().span_context().span_id();
    assert_ne!(publisher_span_id, SpanId::INVALID);
    bus.publish_idempotent(
        &streams.mempool_subject(),
        "tx",
        "x".into(),
        HeaderMap::new(),
    )
    .instrument(span)
    .await
    .unwrap();

    let stored = bus
        .get_message(&streams.stream_name(StreamKind::Mempool), 1)
        .await
        .unwrap();
    let cx = stored.trace_context();
    let span = cx.span();
    let extracted = span.span_context();
    assert_eq!(extracted.trace_id().to_string(), TRACE_ID, "same trace");
    assert_eq!(
        extracted.span_id(),
        publisher_span_id,
        "parent is the publishing span"
    );
    assert_eq!(
        trace::traceparent(&stored.headers),
        Some(format!("00-{TRACE_ID}-{publisher_span_id}-01").as_str())
    );
}
