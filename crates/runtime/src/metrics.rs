//! The metrics endpoint: `/metrics` serves the telemetry crate's Prometheus registry as text,
//! `/healthz` answers liveness probes (503 once shutdown has begun).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// Why the metrics endpoint stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("metrics server failed: {0}")]
    Serve(std::io::Error),
}

#[derive(Debug, Clone)]
struct MetricsState {
    registry: prometheus::Registry,
    shutdown: Shutdown,
}

/// Serves [`citychain_telemetry::prometheus_registry`] on `addr` until `shutdown` fires.
pub async fn serve_metrics(addr: SocketAddr, shutdown: Shutdown) -> Result<(), MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    serve_metrics_on(
        listener,
        citychain_telemetry::prometheus_registry(),
        shutdown,
    )
    .await
}

/// Serves `registry` on an already bound `listener` (tests bind port 0 to learn the address
/// first) until `shutdown` fires.
pub async fn serve_metrics_on(
    listener: TcpListener,
    registry: prometheus::Registry,
    shutdown: Shutdown,
) -> Result<(), MetricsError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics endpoint listening");
    }
    let app = metrics_router(registry, shutdown.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.wait())
        .await
        .map_err(MetricsError::Serve)
}

/// The `/metrics` and `/healthz` routes over `registry`, to mount in another axum app.
pub fn metrics_router(registry: prometheus::Registry, shutdown: Shutdown) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .with_state(MetricsState { registry, shutdown })
}

async fn render_metrics(State(state): State<MetricsState>) -> Response {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&state.registry.gather(), &mut body) {
        Ok(()) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        )
            .into_response(),
    }
}

async fn healthz(State(state): State<MetricsState>) -> Response {
    if state.shutdown.is_triggered() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}
