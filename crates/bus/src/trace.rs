//! W3C trace context (`traceparent`, `tracestate`) carried in NATS message headers, so one
//! trace follows a transaction from the gRPC call through the mempool, consensus and every
//! projection.
//!
//! The propagator is used directly rather than through OpenTelemetry's global, so this works in
//! a process (or test) that never set one up. Every publish and request of this crate calls
//! [`inject_current`] unless the caller already put a `traceparent` in the headers; every
//! delivery carries the [`extract`]ed context, which a handler sets as its span's parent:
//!
//! ```no_run
//! # fn demo(delivery: citychain_bus::Delivery) {
//! use tracing_opentelemetry::OpenTelemetrySpanExt;
//!
//! let span = tracing::info_span!("apply block");
//! let _ = span.set_parent(delivery.trace_context.clone());
//! # }
//! ```

use async_nats::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header holding version, trace id, parent span id and flags.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header holding vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";

/// Writes OpenTelemetry fields into NATS headers, replacing earlier values of the same name.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

/// Reads OpenTelemetry fields from NATS headers. NATS header names are case-sensitive; W3C
/// names are not, so a lookup falls back to a case-insensitive match.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        header(self.0, key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

fn header<'a>(headers: &'a HeaderMap, key: &str) -> Option<&'a str> {
    if let Some(value) = headers.get(key) {
        return Some(value.as_str());
    }
    headers
        .iter()
        .find(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(key))
        .and_then(|(_, values)| values.first())
        .map(|value| value.as_str())
}

/// The context to propagate from here: the current `tracing` span's OpenTelemetry context when
/// a tracing-opentelemetry layer is installed and the span is valid, else OpenTelemetry's own
/// current context (which is empty when nothing is traced).
pub fn current_context() -> Context {
    let from_span = tracing::Span::current().context();
    if from_span.span().span_context().is_valid() {
        from_span
    } else {
        Context::current()
    }
}

/// Writes `cx`'s span context into `headers`. Writes nothing when `cx` has no valid span.
pub fn inject(headers: &mut HeaderMap, cx: &Context) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// Writes [`current_context`] into `headers`.
pub fn inject_current(headers: &mut HeaderMap) {
    inject(headers, &current_context());
}

/// Writes [`current_context`] into `headers` unless they already carry a `traceparent`
/// (a caller that set one explicitly wins).
pub(crate) fn inject_current_if_absent(headers: &mut HeaderMap) {
    if traceparent(headers).is_none() {
        inject_current(headers);
    }
}

/// Reads the trace context from `headers`, as a remote parent: an empty context when there is
/// none or it is malformed.
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// The raw `traceparent` header, if any.
pub fn traceparent(headers: &HeaderMap) -> Option<&str> {
    header(headers, TRACEPARENT)
}

/// The raw `tracestate` header, if any.
pub fn tracestate(headers: &HeaderMap) -> Option<&str> {
    header(headers, TRACESTATE)
}

/// The CHAIN header that carries, beside a block, the trace context of each traced transaction
/// in it: `index=traceparent` pairs separated by `,`, in index order. A block carries many
/// traces, so one `traceparent` header cannot; this one is not part of the block's bytes and
/// hashes, only a hint for the services that apply the block.
pub const TX_TRACES: &str = "Citychain-Tx-Traces";

/// At most this many transactions of one block get their trace context carried, which keeps
/// the header under 16 KiB (each pair takes at most 61 bytes).
pub const MAX_TX_TRACES: usize = 256;

/// The W3C `traceparent` of `cx`'s span, or `None` when it has no valid span.
pub fn traceparent_of(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Writes the [`TX_TRACES`] header from `(index, context)` pairs: the first
/// [`MAX_TX_TRACES`] with a valid span, in the order given. Writes nothing when none has one.
pub fn inject_tx_traces<'a>(
    headers: &mut HeaderMap,
    traces: impl IntoIterator<Item = (usize, &'a Context)>,
) {
    let pairs: Vec<String> = traces
        .into_iter()
        .filter_map(|(index, cx)| traceparent_of(cx).map(|tp| format!("{index}={tp}")))
        .take(MAX_TX_TRACES)
        .collect();
    if !pairs.is_empty() {
        headers.insert(TX_TRACES, pairs.join(",").as_str());
    }
}

/// Reads the [`TX_TRACES`] header: each transaction index with its context as a remote
/// parent. Malformed pairs, and pairs beyond [`MAX_TX_TRACES`], are skipped; a header that is
/// absent gives an empty map.
pub fn extract_tx_traces(headers: &HeaderMap) -> std::collections::BTreeMap<usize, Context> {
    let propagator = TraceContextPropagator::new();
    let Some(value) = header(headers, TX_TRACES) else {
        return std::collections::BTreeMap::new();
    };
    value
        .split(',')
        .take(MAX_TX_TRACES)
        .filter_map(|pair| {
            let (index, parent) = pair.split_once('=')?;
            let index = index.trim().parse::<usize>().ok()?;
            let cx = propagator.extract(&OneTraceparent(parent.trim()));
            cx.span().span_context().is_valid().then_some((index, cx))
        })
        .collect()
}

/// An extractor holding only a `traceparent`.
struct OneTraceparent<'a>(&'a str);

impl Extractor for OneTraceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        key.eq_ignore_ascii_case(TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn known_context() -> Context {
        let span = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("city", "x")]).unwrap(),
        );
        Context::new().with_remote_span_context(span)
    }

    #[test]
    fn inject_then_extract_round_trips() {
        let mut headers = HeaderMap::new();
        inject(&mut headers, &known_context());
        assert_eq!(
            traceparent(&headers),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(tracestate(&headers), Some("city=x"));
        let extracted = extract(&headers);
        let span = extracted.span();
        let sc = span.span_context();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_remote() && sc.is_sampled());
    }

    #[test]
    fn nothing_to_inject_without_a_span_and_nothing_to_extract_from_garbage() {
        let mut headers = HeaderMap::new();
        inject_current(&mut headers);
        assert_eq!(traceparent(&headers), None);

        headers.insert("Traceparent", "not-a-traceparent");
        assert_eq!(traceparent(&headers), Some("not-a-traceparent"));
        assert!(!extract(&headers).span().span_context().is_valid());
    }

    #[test]
    fn tx_traces_round_trip_by_index_and_skip_what_is_not_a_trace() {
        let known = known_context();
        let empty = Context::new();
        let mut headers = HeaderMap::new();
        inject_tx_traces(&mut headers, [(0, &empty), (3, &known), (7, &known)]);
        let raw = headers.get(TX_TRACES).unwrap().as_str().to_owned();
        assert_eq!(
            raw,
            "3=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01,\
             7=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let traces = extract_tx_traces(&headers);
        assert_eq!(traces.keys().copied().collect::<Vec<_>>(), vec![3, 7]);
        let span = traces[&7].span();
        assert_eq!(
            span.span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );

        let mut damaged = HeaderMap::new();
        // The first pair's index is no number: only the second pair is kept.
        damaged.insert(TX_TRACES, format!("x={}", &raw[2..]).as_str());
        let kept = extract_tx_traces(&damaged);
        assert_eq!(kept.keys().copied().collect::<Vec<_>>(), vec![7]);
        damaged.insert(TX_TRACES, "1=00-zz-00f067aa0ba902b7-01,2");
        assert!(extract_tx_traces(&damaged).is_empty());
        assert!(extract_tx_traces(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn at_most_the_cap_of_tx_traces_is_carried() {
        let known = known_context();
        let mut headers = HeaderMap::new();
        inject_tx_traces(&mut headers, (0..MAX_TX_TRACES + 10).map(|i| (i, &known)));
        let raw = headers.get(TX_TRACES).unwrap().as_str();
        assert!(raw.len() <= 16 * 1024, "{} bytes", raw.len());
        assert_eq!(extract_tx_traces(&headers).len(), MAX_TX_TRACES);
    }
}
