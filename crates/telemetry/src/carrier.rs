//! W3C trace context (`traceparent`, `tracestate`) carried in HTTP headers and gRPC metadata.
//!
//! The carriers always speak W3C Trace Context through their own propagator rather than the
//! global one: the format is part of our wire contract between services, so it must not change
//! with whatever another library installed globally, and it must work in tests that never
//! called [`crate::init`].

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{KeyRef, MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes propagation fields into an [`http::HeaderMap`]; invalid names or values are skipped.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(name) = http::HeaderName::from_bytes(key.as_bytes()) else {
            return;
        };
        let Ok(value) = http::HeaderValue::from_str(&value) else {
            return;
        };
        self.0.insert(name, value);
    }

    fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

/// Reads propagation fields from an [`http::HeaderMap`]; values that are not visible ASCII
/// are treated as absent.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = self
            .0
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then_some(values)
    }
}

/// Writes propagation fields into gRPC request metadata (ASCII entries).
#[derive(Debug)]
pub struct MetadataInjector<'a>(pub &'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(key) = MetadataKey::from_bytes(key.as_bytes()) else {
            return;
        };
        let Ok(value) = MetadataValue::try_from(value.as_str()) else {
            return;
        };
        self.0.insert(key, value);
    }
}

/// Reads propagation fields from gRPC metadata (ASCII entries only).
#[derive(Debug)]
pub struct MetadataExtractor<'a>(pub &'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                KeyRef::Ascii(k) => Some(k.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Writes `cx` into any carrier as W3C trace context.
pub fn inject_context(cx: &Context, injector: &mut dyn Injector) {
    TraceContextPropagator::new().inject_context(cx, injector);
}

/// Reads W3C trace context from any carrier; an empty context when there is none or it is
/// malformed.
pub fn extract_context(extractor: &dyn Extractor) -> Context {
    TraceContextPropagator::new().extract(extractor)
}

/// Writes the current tracing span's trace context into HTTP headers (`traceparent`,
/// and `tracestate` when it has one). Nothing is written outside a sampled-or-not OTel span.
pub fn inject_http(headers: &mut http::HeaderMap) {
    inject_context(&current_context(), &mut HeaderInjector(headers));
}

/// Reads the remote parent context from HTTP headers, for [`OpenTelemetrySpanExt::set_parent`].
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    extract_context(&HeaderExtractor(headers))
}

/// Writes the current tracing span's trace context into gRPC metadata.
pub fn inject_metadata(metadata: &mut MetadataMap) {
    inject_context(&current_context(), &mut MetadataInjector(metadata));
}

/// Reads the remote parent context from gRPC metadata.
pub fn extract_metadata(metadata: &MetadataMap) -> Context {
    extract_context(&MetadataExtractor(metadata))
}

/// The OTel context of the current tracing span, falling back to the OTel API's own current
/// context for code that opened spans through `opentelemetry` directly.
fn current_context() -> Context {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        cx
    } else {
        Context::current()
    }
}
