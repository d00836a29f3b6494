//! Trace context survives a trip through HTTP headers and gRPC metadata.

use citychain_telemetry::{
    TelemetryBuilder, TelemetryConfig, extract_http, extract_metadata, inject_http, inject_metadata,
};
use opentelemetry::trace::{TraceContextExt, TraceId};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tracing_opentelemetry::OpenTelemetrySpanExt;

fn local_subscriber() -> (citychain_telemetry::TelemetryGuard, tracing::Dispatch) {
    TelemetryBuilder::new(TelemetryConfig::new("carrier-test").with_filter("trace"))
        .with_span_exporter(InMemorySpanExporter::default())
        .build_local()
        .expect("local telemetry builds")
}

#[test]
fn extract_of_inject_keeps_trace_and_span_id_over_http_headers() {
    let (_guard, dispatch) = local_subscriber();
    tracing::dispatcher::with_default(&dispatch, || {
        // given a span in progress
        let span = tracing::info_span!("client.call");
        let _entered = span.enter();
        let sent = span.context().span().span_context().clone();
        assert!(sent.is_valid(), "the OTel layer gave the span ids");

        // when its context is injected and extracted again
        let mut headers = http::HeaderMap::new();
        inject_http(&mut headers);
        let received = extract_http(&headers);

        // then the remote parent is the same span of the same trace
        assert!(headers.contains_key("traceparent"));
        let received = received.span().span_context().clone();
        assert_eq!(received.trace_id(), sent.trace_id());
        assert_eq!(received.span_id(), sent.span_id());
        assert_eq!(received.trace_flags(), sent.trace_flags());
        assert!(received.is_remote());
    });
}

#[test]
fn extract_of_inject_keeps_trace_and_span_id_over_grpc_metadata() {
    let (_guard, dispatch) = local_subscriber();
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("client.call");
        let _entered = span.enter();
        let sent = span.context().span().span_context().clone();

        let mut metadata = tonic::metadata::MetadataMap::new();
        inject_metadata(&mut metadata);
        let received = extract_metadata(&metadata).span().span_context().clone();

        assert_eq!(received.trace_id(), sent.trace_id());
        assert_eq!(received.span_id(), sent.span_id());
    });
}

#[test]
fn a_known_traceparent_is_read_field_by_field() {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let cx = extract_http(&headers);
    let span = cx.span();
    let sc = span.span_context();
    assert_eq!(
        sc.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(format!("{}", sc.span_id()), "00f067aa0ba902b7");
    assert!(sc.is_sampled());
}

#[test]
fn missing_or_malformed_traceparent_gives_no_parent() {
    for value in [None, Some("garbage"), Some("00-zz-yy-01")] {
        let mut headers = http::HeaderMap::new();
        if let Some(value) = value {
            headers.insert("traceparent", http::HeaderValue::from_static(value));
        }
        let cx = extract_http(&headers);
        assert!(!cx.span().span_context().is_valid(), "{value:?}");
    }
}

#[test]
fn nothing_is_injected_outside_any_span() {
    let (_guard, dispatch) = local_subscriber();
    tracing::dispatcher::with_default(&dispatch, || {
        let mut headers = http::HeaderMap::new();
        inject_http(&mut headers);
        assert!(!headers.contains_key("traceparent"));
    });
}

#[test]
fn ended_spans_reach_the_test_exporter_with_their_parent() {
    let exporter = InMemorySpanExporter::default();
    let (_guard, dispatch) =
        TelemetryBuilder::new(TelemetryConfig::new("carrier-test").with_filter("trace"))
            .with_span_exporter(exporter.clone())
            .build_local()
            .unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("server.handle");
        span.set_parent(extract_http(&headers)).unwrap();
        span.in_scope(|| tracing::info!("handled"));
    });
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "server.handle");
    assert_eq!(
        spans[0].span_context.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(format!("{}", spans[0].parent_span_id), "00f067aa0ba902b7");
}
