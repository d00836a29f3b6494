//! Rate, errors and duration of incoming gRPC calls, as one OpenTelemetry histogram.
//!
//! [`RpcMetricsLayer`] records one sample per call in `rpc.server.duration` (unit `s`, buckets
//! [`citychain_telemetry::LATENCY_BOUNDARIES`]): the time from the moment the server hands the
//! request to the service until the response is complete, streaming included, or until the
//! client gave up on it. Each sample has the attributes
//!
//! - `rpc.system`: `grpc`;
//! - `rpc.service`: the full `pkg.Service`, e.g. `citychain.ledger.v1.Ledger`;
//! - `rpc.method`: e.g. `Submit`;
//! - `rpc.grpc.status_code`: the status code as an integer, 0 for OK.
//!
//! The count of samples is the call rate, the count with a non-zero code the error rate, and
//! the buckets the latency distribution. The Prometheus exposition names it
//! `rpc_server_duration_seconds` (`_bucket`, `_sum` and `_count` series).
//!
//! The status is the one the call's span records, read by the same [`StatusBody`]. Calls
//! answered `UNIMPLEMENTED` are recorded with service and method `unknown`: that is what
//! made-up paths get, and taking their names would let any client grow the set of series
//! without bound.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use tower::{Layer, Service};

use super::trace::{OnStatus, RpcNames, StatusBody, observe_status};

/// The name of the global meter [`RpcMetricsLayer::default`] records with.
pub const METER_NAME: &str = "citychain-grpc";

/// The name of the call duration histogram.
pub const DURATION: &str = "rpc.server.duration";

/// The status code under which the service and method of a call are not recorded.
const UNIMPLEMENTED: i32 = tonic::Code::Unimplemented as i32;

/// Wraps a service so that every call is counted and timed; see the module docs.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    duration: Histogram<f64>,
}

impl RpcMetricsLayer {
    /// Records with `meter`: the instrument is created here, once.
    pub fn new(meter: &Meter) -> Self {
        let duration = meter
            .f64_histogram(DURATION)
            .with_unit("s")
            .with_description(
                "Duration of incoming gRPC calls, until the response is complete, \
                 by service, method and status code",
            )
            .with_boundaries(citychain_telemetry::LATENCY_BOUNDARIES.to_vec())
            .build();
        RpcMetricsLayer { duration }
    }
}

impl Default for RpcMetricsLayer {
    /// Records with the global meter [`METER_NAME`]. The global provider is looked up now, so
    /// build the layer after `citychain_telemetry::init`; an earlier one records nowhere.
    fn default() -> Self {
        Self::new(&opentelemetry::global::meter(METER_NAME))
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            duration: self.duration.clone(),
        }
    }
}

/// The service made by [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    duration: Histogram<f64>,
}

impl<S, B, ResBody> Service<http::Request<B>> for RpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: http_body::Body + 'static,
{
    type Response = http::Response<StatusBody<ResBody, CallSample>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let names = RpcNames::parse(request.uri().path());
        let sample = CallSample {
            duration: self.duration.clone(),
            started: Instant::now(),
            service: names.service.to_owned(),
            method: names.method.to_owned(),
        };
        let future = self.inner.call(request);
        Box::pin(async move { observe_status(future.await, sample) })
    }
}

/// One call being timed; records its sample when told the call's status.
#[derive(Debug)]
pub struct CallSample {
    duration: Histogram<f64>,
    started: Instant,
    service: String,
    method: String,
}

impl OnStatus for CallSample {
    fn finish(self, code: i32) {
        let seconds = self.started.elapsed().as_secs_f64();
        let (service, method) = if code == UNIMPLEMENTED {
            ("unknown".to_owned(), "unknown".to_owned())
        } else {
            (self.service, self.method)
        };
        self.duration.record(
            seconds,
            &[
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service),
                KeyValue::new("rpc.method", method),
                KeyValue::new("rpc.grpc.status_code", i64::from(code)),
            ],
        );
    }
}
