//! A span per incoming gRPC call, child of the caller's span when the request carries a W3C
//! `traceparent`.
//!
//! The span's OpenTelemetry name is `Service.Method` (from `/pkg.Service/Method`), with the
//! semantic-convention attributes `rpc.system`, `rpc.service` (the full `pkg.Service`) and
//! `rpc.method`. `rpc.grpc.status_code` is recorded when the status travels in the response
//! headers, which is the case for calls failed before or instead of any response message.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Wraps a service so that every call runs in a server span; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTraceLayer;

impl<S> Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTrace { inner }
    }
}

/// The service made by [`GrpcTraceLayer`].
#[derive(Debug, Clone)]
pub struct GrpcTrace<S> {
    inner: S,
}

/// The parts of a gRPC path: `/citychain.ledger.v1.Ledger/Submit` gives
/// (`citychain.ledger.v1.Ledger`, `Submit`, `Ledger.Submit`).
pub fn rpc_names(path: &str) -> (&str, &str, String) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    match trimmed.split_once('/') {
        Some((service, method)) if !service.is_empty() && !method.is_empty() => {
            let short = service.rsplit('.').next().unwrap_or(service);
            (service, method, format!("{short}.{method}"))
        }
        _ => ("", trimmed, path.to_owned()),
    }
}

impl<S, B, ResBody> Service<http::Request<B>> for GrpcTrace<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method, name) = rpc_names(request.uri().path());
        let span = tracing::info_span!(
            "grpc.request",
            otel.name = %name,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        // Only fails when no OpenTelemetry layer is installed, and then there is no trace to
        // join anyway.
        let _ = span.set_parent(citychain_telemetry::extract_http(request.headers()));
        let future = span.in_scope(|| self.inner.call(request));
        let recorder = span.clone();
        Box::pin(
            async move {
                let result = future.await;
                if let Ok(response) = &result {
                    record_status(&recorder, response.headers());
                }
                result
            }
            .instrument(span),
        )
    }
}

fn record_status(span: &tracing::Span, headers: &http::HeaderMap) {
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    span.record("rpc.grpc.status_code", code);
    if code != 0 {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(test)]
mod tests {
    use super::rpc_names;

    #[test]
    fn grpc_paths_split_into_service_method_and_span_name() {
        let cases = [
            (
                "/citychain.ledger.v1.Ledger/Submit",
                ("citychain.ledger.v1.Ledger", "Submit", "Ledger.Submit"),
            ),
            (
                "/grpc.health.v1.Health/Check",
                ("grpc.health.v1.Health", "Check", "Health.Check"),
            ),
            ("/Plain/Call", ("Plain", "Call", "Plain.Call")),
            ("/", ("", "", "/")),
            ("/nothing", ("", "nothing", "/nothing")),
        ];
        for (path, (service, method, name)) in cases {
            let got = rpc_names(path);
            assert_eq!(
                (got.0, got.1, got.2.as_str()),
                (service, method, name),
                "{path}"
            );
        }
    }
}
