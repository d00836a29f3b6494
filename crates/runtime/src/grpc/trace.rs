//! A span per incoming gRPC call, child of the caller's span when the request carries a W3C
//! `traceparent`, and [`StatusBody`]: how the server learns the gRPC status each call ends
//! with, shared by the span and by the call metrics ([`super::red`]).
//!
//! The span's OpenTelemetry name is `<area>.<Method>` ([`RpcNames`]): for citychain services
//! the area is the package segment after `citychain.`, so
//! `/citychain.ledger.v1.Ledger/Submit` gives `ledger.Submit`; other services keep their short
//! name (`/grpc.health.v1.Health/Check` gives `Health.Check`). The span carries `service` (the
//! area) and the semantic-convention attributes `rpc.system`, `rpc.service` (the full
//! `pkg.Service`), `rpc.method` and `rpc.grpc.status_code`; any status other than OK also sets
//! `otel.status_code = ERROR`. It also declares `tx.id` and `signer`, empty until a handler
//! that admits a transaction records them on the current span, so a flow can be found by
//! the transaction's id.
//!
//! # Where the status comes from
//!
//! A gRPC response normally carries its status in the trailers that follow the messages; a
//! call that fails before any message gets a "trailers-only" response, with the status in the
//! response headers. [`StatusBody`] wraps the response body, looks in both places, and reports
//! the code once the response is complete:
//!
//! - the status from the trailers when they pass through, else the one from the headers;
//! - OK when the body ends without any status;
//! - `UNKNOWN` when the body fails, or when the service fails without a response at all;
//! - `CANCELLED` when the body is dropped before its end, i.e. the client went away.
//!
//! The span stays open until then, so its duration covers the whole call, streaming included.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

use super::red::{CallMetrics, CallSample};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The status of a call that completed normally.
const OK: i32 = tonic::Code::Ok as i32;
/// The status of a call whose client went away before the response was complete.
const CANCELLED: i32 = tonic::Code::Cancelled as i32;
/// The status of a call that failed without saying how.
const UNKNOWN: i32 = tonic::Code::Unknown as i32;

/// Wraps a service so that every call runs in a server span and is timed in
/// `rpc.server.duration` ([`CallMetrics`]); see the module docs.
#[derive(Debug, Clone, Default)]
pub struct GrpcTraceLayer {
    metrics: CallMetrics,
}

impl GrpcTraceLayer {
    /// Times calls with `metrics`.
    pub fn new(metrics: CallMetrics) -> Self {
        GrpcTraceLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTrace {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`GrpcTraceLayer`].
#[derive(Debug, Clone)]
pub struct GrpcTrace<S> {
    inner: S,
    metrics: CallMetrics,
}

/// How a gRPC request path names its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcNames<'a> {
    /// The full `pkg.Service`, e.g. `citychain.ledger.v1.Ledger`; empty when the path is not
    /// of the form `/Service/Method`.
    pub service: &'a str,
    /// The method, e.g. `Submit`; the whole path without its leading `/` when the path is not
    /// of the form `/Service/Method`.
    pub method: &'a str,
    /// The service area: the package segment after `citychain.` for citychain services
    /// (`ledger`), the short service name for others (`Health`); empty without a service.
    pub area: &'a str,
}

impl<'a> RpcNames<'a> {
    /// Splits a request path such as `/citychain.ledger.v1.Ledger/Submit`.
    pub fn parse(path: &'a str) -> Self {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        match trimmed.split_once('/') {
            Some((service, method)) if !service.is_empty() && !method.is_empty() => RpcNames {
                service,
                method,
                area: service_area(service),
            },
            _ => RpcNames {
                service: "",
                method: trimmed,
                area: "",
            },
        }
    }

    /// The span name: `area.Method` (`ledger.Submit`), or the path itself when it does not
    /// name a service and a method.
    pub fn span_name(&self) -> String {
        if self.service.is_empty() {
            format!("/{}", self.method)
        } else {
            format!("{}.{}", self.area, self.method)
        }
    }
}

/// `citychain.ledger.v1.Ledger` is in the `ledger` area; a service outside citychain is its
/// own area, by its short name.
fn service_area(service: &str) -> &str {
    if let Some(area) = service
        .strip_prefix("citychain.")
        .and_then(|rest| rest.split('.').next())
        .filter(|area| !area.is_empty())
    {
        return area;
    }
    service.rsplit('.').next().unwrap_or(service)
}

impl<S, B, ResBody> Service<http::Request<B>> for GrpcTrace<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: Body + 'static,
{
    type Response = http::Response<StatusBody<ResBody, CallEnd>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let names = RpcNames::parse(request.uri().path());
        let span = tracing::info_span!(
            "grpc.request",
            otel.name = %names.span_name(),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            service = %names.area,
            rpc.system = "grpc",
            rpc.service = %names.service,
            rpc.method = %names.method,
            rpc.grpc.status_code = tracing::field::Empty,
            tx.id = tracing::field::Empty,
            signer = tracing::field::Empty,
        );
        // Only fails when no OpenTelemetry layer is installed, and then there is no trace to
        // join anyway.
        let _ = span.set_parent(citychain_telemetry::extract_http(request.headers()));
        let sample = self.metrics.start(&names);
        let future = span.in_scope(|| self.inner.call(request));
        let end = CallEnd {
            span: SpanStatus(span.clone()),
            sample,
        };
        Box::pin(async move { observe_status(future.await, end) }.instrument(span))
    }
}

/// What a call's status finishes: its span and its duration sample.
#[derive(Debug)]
pub struct CallEnd {
    span: SpanStatus,
    sample: CallSample,
}

impl OnStatus for CallEnd {
    fn finish(self, code: i32) {
        self.span.finish(code);
        self.sample.finish(code);
    }
}

/// Records a call's status on its server span. It holds a handle to the span, which keeps the
/// span open until the status is known.
#[derive(Debug)]
pub struct SpanStatus(tracing::Span);

impl OnStatus for SpanStatus {
    fn finish(self, code: i32) {
        // The OpenTelemetry layer ends a span at its last exit, not when it closes: entering
        // it once more here moves that end to now, when the response is complete.
        self.0.in_scope(|| {
            self.0.record("rpc.grpc.status_code", code);
            if code != OK {
                self.0.record("otel.status_code", "ERROR");
            }
        });
    }
}

/// Told, exactly once, the gRPC status code a call ended with (0 for OK).
pub trait OnStatus {
    /// Takes the call's final status code.
    fn finish(self, code: i32);
}

/// Wraps the body of a service's response so that `sink` learns the call's status (see the
/// module docs). A service that failed without any response is reported as `UNKNOWN` at once.
pub fn observe_status<B, E, K>(
    result: Result<http::Response<B>, E>,
    sink: K,
) -> Result<http::Response<StatusBody<B, K>>, E>
where
    B: Body,
    K: OnStatus,
{
    match result {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = StatusBody::new(&parts.headers, body, sink);
            Ok(http::Response::from_parts(parts, body))
        }
        Err(error) => {
            sink.finish(UNKNOWN);
            Err(error)
        }
    }
}

/// A response body that passes every frame through unchanged and reports the call's gRPC
/// status to an [`OnStatus`] once the response is complete, or once it is dropped unfinished.
#[derive(Debug)]
pub struct StatusBody<B: Body, K: OnStatus> {
    inner: B,
    /// The status from the response headers, if the response is trailers-only.
    header_status: Option<i32>,
    /// Whom to tell; `None` once told.
    sink: Option<K>,
}

impl<B: Body, K: OnStatus> StatusBody<B, K> {
    /// Wraps `inner`, the body of a response with `headers`. A trailers-only response (a status
    /// in the headers, an empty body) is complete already, so `sink` is told right away.
    pub fn new(headers: &http::HeaderMap, inner: B, sink: K) -> Self {
        let mut body = StatusBody {
            inner,
            header_status: grpc_status(headers),
            sink: Some(sink),
        };
        if let Some(code) = body.header_status
            && body.inner.is_end_stream()
        {
            body.finish(code);
        }
        body
    }
}

impl<B: Body, K: OnStatus> StatusBody<B, K> {
    fn finish(&mut self, code: i32) {
        if let Some(sink) = self.sink.take() {
            sink.finish(code);
        }
    }
}

/// The `grpc-status` in response headers or trailers, if there is one.
fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl<B, K> Body for StatusBody<B, K>
where
    B: Body + Unpin,
    K: OnStatus + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_status(trailers).or(this.header_status).unwrap_or(OK);
                    this.finish(code);
                }
            }
            Some(Err(_)) => this.finish(UNKNOWN),
            None => this.finish(this.header_status.unwrap_or(OK)),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body, K: OnStatus> Drop for StatusBody<B, K> {
    fn drop(&mut self) {
        if self.sink.is_none() {
            return;
        }
        // Not told yet: either the server stopped reading a body that had nothing more to give
        // (a finished body without trailers), or the response was abandoned half-way because
        // the client went away.
        let code = self.header_status.unwrap_or(if self.inner.is_end_stream() {
            OK
        } else {
            CANCELLED
        });
        self.finish(code);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;

    use super::*;

    /// A body that yields the given frames, then ends.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    /// Remembers every code it is told.
    #[derive(Clone, Default)]
    struct Told(Arc<Mutex<Vec<i32>>>);

    impl OnStatus for Told {
        fn finish(self, code: i32) {
            self.0.lock().unwrap().push(code);
        }
    }

    impl Told {
        fn codes(&self) -> Vec<i32> {
            self.0.lock().unwrap().clone()
        }
    }

    fn status_map(code: &str) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", code.parse().unwrap());
        map
    }

    fn message() -> Frame<Bytes> {
        Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))
    }

    /// Polls `body` until it ends, as the server does.
    fn drain(body: &mut StatusBody<Frames, Told>) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while let Poll::Ready(Some(_)) = Pin::new(&mut *body).poll_frame(&mut cx) {}
    }

    #[test]
    fn the_status_in_the_trailers_is_told_when_they_pass() {
        let told = Told::default();
        let frames = [message(), Frame::trailers(status_map("9"))];
        let mut body =
            StatusBody::new(&http::HeaderMap::new(), Frames(frames.into()), told.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = Pin::new(&mut body).poll_frame(&mut cx);
        assert_eq!(told.codes(), [] as [i32; 0], "not before the trailers");
        let _ = Pin::new(&mut body).poll_frame(&mut cx);
        assert_eq!(told.codes(), [9]);
        drain(&mut body);
        drop(body);
        assert_eq!(told.codes(), [9], "told once");
    }

    #[test]
    fn a_trailers_only_response_is_told_at_once() {
        let told = Told::default();
        let body = StatusBody::new(&status_map("5"), Frames(VecDeque::new()), told.clone());
        assert_eq!(told.codes(), [5]);
        drop(body);
        assert_eq!(told.codes(), [5]);
    }

    #[test]
    fn an_end_without_any_status_is_ok() {
        let told = Told::default();
        let frames = [message(), Frame::trailers(http::HeaderMap::new())];
        let mut body =
            StatusBody::new(&http::HeaderMap::new(), Frames(frames.into()), told.clone());
        drain(&mut body);
        assert_eq!(told.codes(), [0]);

        let told = Told::default();
        let mut body = StatusBody::new(
            &http::HeaderMap::new(),
            Frames([message()].into()),
            told.clone(),
        );
        drain(&mut body);
        assert_eq!(told.codes(), [0]);
    }

    #[test]
    fn a_body_dropped_before_its_end_is_cancelled() {
        let told = Told::default();
        let frames = [message(), Frame::trailers(status_map("0"))];
        let mut body =
            StatusBody::new(&http::HeaderMap::new(), Frames(frames.into()), told.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = Pin::new(&mut body).poll_frame(&mut cx);
        drop(body);
        assert_eq!(told.codes(), [1]);
    }

    #[test]
    fn a_service_error_is_unknown() {
        let told = Told::default();
        let result: Result<http::Response<Frames>, &str> = Err("broken");
        assert!(observe_status(result, told.clone()).is_err());
        assert_eq!(told.codes(), [2]);
    }

    #[test]
    fn grpc_paths_split_into_service_method_area_and_span_name() {
        let cases = [
            (
                "/citychain.ledger.v1.Ledger/Submit",
                (
                    "citychain.ledger.v1.Ledger",
                    "Submit",
                    "ledger",
                    "ledger.Submit",
                ),
            ),
            (
                "/citychain.licence.v1.LicenceService/SubmitRead",
                (
                    "citychain.licence.v1.LicenceService",
                    "SubmitRead",
                    "licence",
                    "licence.SubmitRead",
                ),
            ),
            (
                "/citychain.tokens.v1.TokenService/GetBalance",
                (
                    "citychain.tokens.v1.TokenService",
                    "GetBalance",
                    "tokens",
                    "tokens.GetBalance",
                ),
            ),
            (
                "/grpc.health.v1.Health/Check",
                ("grpc.health.v1.Health", "Check", "Health", "Health.Check"),
            ),
            (
                "/citychainx.ledger.v1.Ledger/Submit",
                (
                    "citychainx.ledger.v1.Ledger",
                    "Submit",
                    "Ledger",
                    "Ledger.Submit",
                ),
            ),
            ("/Plain/Call", ("Plain", "Call", "Plain", "Plain.Call")),
            ("/", ("", "", "", "/")),
            ("/nothing", ("", "nothing", "", "/nothing")),
        ];
        for (path, (service, method, area, name)) in cases {
            let got = RpcNames::parse(path);
            assert_eq!(
                (got.service, got.method, got.area, got.span_name().as_str()),
                (service, method, area, name),
                "{path}"
            );
        }
    }
}
