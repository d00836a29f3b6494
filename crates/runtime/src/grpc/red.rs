//! Rate, errors and duration of incoming gRPC calls, as one OpenTelemetry histogram.
//!
//! [`CallMetrics`] records one sample per call in `rpc.server.duration` (unit `s`, buckets
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
//! The server's call layer ([`super::trace::GrpcTraceLayer`]) starts each sample beside the
//! call's span and finishes both with the status one [`super::trace::StatusBody`] reads, so a
//! response body is wrapped once for both. Calls
//! answered `UNIMPLEMENTED` are recorded with service and method `unknown`: that is what
//! made-up paths get, and taking their names would let any client grow the set of series
//! without bound.

use std::time::Instant;

use super::trace::{OnStatus, RpcNames};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};

/// The name of the global meter [`CallMetrics::default`] records with.
pub const METER_NAME: &str = "citychain-grpc";

/// The name of the call duration histogram.
pub const DURATION: &str = "rpc.server.duration";

/// The status code under which the service and method of a call are not recorded.
const UNIMPLEMENTED: i32 = tonic::Code::Unimplemented as i32;

/// The call duration histogram; see the module docs.
#[derive(Debug, Clone)]
pub struct CallMetrics {
    duration: Histogram<f64>,
}

impl CallMetrics {
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
        CallMetrics { duration }
    }

    /// Starts timing the call `names` names, now.
    pub fn start(&self, names: &RpcNames<'_>) -> CallSample {
        CallSample {
            duration: self.duration.clone(),
            started: Instant::now(),
            service: names.service.to_owned(),
            method: names.method.to_owned(),
        }
    }
}

impl Default for CallMetrics {
    /// Records with the global meter [`METER_NAME`]. The global provider is looked up now, so
    /// build the layer after `citychain_telemetry::init`; an earlier one records nowhere.
    fn default() -> Self {
        Self::new(&opentelemetry::global::meter(METER_NAME))
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
