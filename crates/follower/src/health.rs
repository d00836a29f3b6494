//! Health and metrics of a chain-fed service, both read from its follower's [`Shared`], so
//! every service reports them alike:
//!
//! - [`track_health`]: the gRPC service is SERVING once the follower has caught up with the
//!   CHAIN it found at start, and NOT_SERVING while a chain violation halts it or a stored
//!   block is known damaged ([`Shared::is_healthy`]), so a load balancer stops sending
//!   queries to a service that cannot vouch for its answers.
//! - [`register_metrics`]: `<service>.applied.height`, `<service>.store.damaged` (stored
//!   blocks found damaged and not yet repaired) and `projection.lag{service}`.

use std::sync::Arc;
use std::time::Duration;

use citychain_runtime::Shutdown;
use citychain_runtime::grpc::HealthReporter;
use opentelemetry::metrics::Meter;
use opentelemetry::{InstrumentationScope, KeyValue};
use tonic::server::NamedService;

use crate::shared::Shared;

/// How often health is brought in line with the follower.
const HEALTH_POLL: Duration = Duration::from_millis(100);

/// The meter of `service`'s instruments, `citychain-<service>`.
pub(crate) fn meter(service: &str) -> Meter {
    opentelemetry::global::meter_with_scope(
        InstrumentationScope::builder(format!("citychain-{service}")).build(),
    )
}

/// Keeps the health of the gRPC service `G` in line with the follower until `stop` fires:
/// SERVING while [`Shared::is_healthy`], NOT_SERVING otherwise. The caller sets NOT_SERVING
/// before and after (at start, and when the process stops). `service` names the service in
/// the logs.
pub fn track_health<G: NamedService>(
    shared: Arc<Shared>,
    health: HealthReporter,
    stop: Shutdown,
    service: &str,
) -> impl Future<Output = ()> + Send + 'static {
    // Owned, so that the task can be spawned whatever `service` borrows from.
    let service = service.to_string();
    async move {
        let mut serving = false;
        loop {
            let should_serve = shared.is_healthy();
            if should_serve != serving {
                serving = should_serve;
                if serving {
                    health.set_serving::<G>().await;
                    tracing::info!(height = shared.applied().0, "{service} caught up; serving");
                } else {
                    health.set_not_serving::<G>().await;
                    let damaged: Vec<u64> = shared.damaged().into_keys().collect();
                    tracing::warn!(
                        alert = ?shared.alert(),
                        ?damaged,
                        "{service} halted on a chain violation or damaged store; not serving"
                    );
                }
            }
            tokio::select! {
                () = stop.wait() => return,
                () = tokio::time::sleep(HEALTH_POLL) => {}
            }
        }
    }
}

/// The follower's position as OpenTelemetry instruments (and so on `/metrics`):
/// `<service>.applied.height` and `projection.lag` with the attribute `service`.
pub fn register_metrics(shared: Arc<Shared>, service: &str) {
    let meter = meter(service);
    let applied = shared.clone();
    meter
        .u64_observable_gauge(format!("{service}.applied.height"))
        .with_description(format!("The last block the {service} service applied."))
        .with_callback(move |observer| observer.observe(applied.applied().0, &[]))
        .build();
    let damaged = shared.clone();
    meter
        .u64_observable_gauge(format!("{service}.store.damaged"))
        .with_description(format!(
            "Stored blocks the {service} service found damaged and has not yet rewritten."
        ))
        .with_callback(move |observer| observer.observe(damaged.damaged().len() as u64, &[]))
        .build();
    let label = [KeyValue::new("service", service.to_string())];
    meter
        .u64_observable_gauge("projection.lag")
        .with_description("Blocks on CHAIN that the projection has not applied yet.")
        .with_callback(move |observer| {
            let lag = shared.chain_last().saturating_sub(shared.applied().0);
            observer.observe(lag, &label);
        })
        .build();
}
