//! Client channels to other citychain services (and to our own in tests) that carry the
//! caller's trace context in every request.

use std::path::{Path, PathBuf};

use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::GrpcError;

/// A channel whose requests carry the current span's `traceparent`. Generated clients take
/// it as they are: `LedgerClient::new(channel)`.
pub type TracedChannel = InterceptedService<Channel, TraceContextInterceptor>;

/// Writes the current tracing span's W3C trace context into each outgoing request's
/// metadata. It runs when the call is made, so the caller's span is the one propagated.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextInterceptor;

impl Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        citychain_telemetry::inject_metadata(request.metadata_mut());
        Ok(request)
    }
}

/// Connects to `addr` (`http://host:port`, `https://host:port`, or a bare `host:port`, which
/// gets `https://` with TLS and `http://` without) and wraps the channel so that requests
/// carry trace context.
pub async fn connect_channel(
    addr: &str,
    tls: Option<ClientTlsConfig>,
) -> Result<TracedChannel, GrpcError> {
    let endpoint = endpoint(addr, tls)?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| GrpcError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    Ok(InterceptedService::new(channel, TraceContextInterceptor))
}

/// Like [`connect_channel`] but connects on first use, so a peer that is not up yet is not
/// an error at start-up.
pub fn connect_channel_lazy(
    addr: &str,
    tls: Option<ClientTlsConfig>,
) -> Result<TracedChannel, GrpcError> {
    let channel = endpoint(addr, tls)?.connect_lazy();
    Ok(InterceptedService::new(channel, TraceContextInterceptor))
}

fn endpoint(addr: &str, tls: Option<ClientTlsConfig>) -> Result<Endpoint, GrpcError> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else if tls.is_some() {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri).map_err(|source| GrpcError::Address {
        addr: addr.to_owned(),
        source,
    })?;
    match tls {
        Some(tls) => endpoint
            .tls_config(tls)
            .map_err(|source| GrpcError::Tls { source }),
        None => Ok(endpoint),
    }
}

/// Client TLS from PEM files: the CA that the server's certificate must chain to and, for
/// mutual TLS, this client's certificate and key. `domain` overrides the name checked in
/// the server's certificate (by default the host in the address).
pub fn client_tls_from_files(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    domain: Option<&str>,
) -> Result<ClientTlsConfig, GrpcError> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_pem(ca)?));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(read_pem(cert)?, read_pem(key)?));
    }
    if let Some(domain) = domain {
        tls = tls.domain_name(domain);
    }
    Ok(tls)
}

/// Reads a PEM file, naming it on failure.
pub(crate) fn read_pem(path: &Path) -> Result<Vec<u8>, GrpcError> {
    std::fs::read(path).map_err(|source| GrpcError::ReadPem {
        path: PathBuf::from(path),
        source,
    })
}

/// The serving status (`ServingStatus as i32`) the gRPC health service at `addr` (a plain
/// `host:port`, no TLS) reports for `service`; `None` when nothing answers there within a
/// second. For readiness checks by supervisors and tests.
pub async fn health_status(addr: std::net::SocketAddr, service: &str) -> Option<i32> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(std::time::Duration::from_secs(1))
        .connect()
        .await
        .ok()?;
    let request = tonic_health::pb::HealthCheckRequest {
        service: service.to_owned(),
    };
    let response = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(request)
        .await
        .ok()?;
    Some(response.into_inner().status)
}
