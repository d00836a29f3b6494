//! The [`Bus`] handle and [`connect`]: turning a [`BusConfig`] into an authenticated NATS
//! connection with a JetStream context, failing with a clear error instead of hanging when the
//! servers cannot be reached.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{Client, ConnectErrorKind, ConnectOptions, ServerAddr};
use opentelemetry::metrics::Meter;

use crate::config::BusConfig;
use crate::error::BusError;
use crate::publish::{METER_NAME, PublishMetrics};

/// A connection to NATS and its JetStream context. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Bus {
    client: Client,
    jetstream: jetstream::Context,
    urls: String,
    metrics: Arc<PublishMetrics>,
}

impl Bus {
    /// Wraps an existing client (for callers that build their own [`ConnectOptions`]).
    pub fn from_client(client: Client, request_timeout: Duration) -> Self {
        let urls = format!(
            "nats://{}:{}",
            client.server_info().host,
            client.server_info().port
        );
        Self::new(client, request_timeout, urls)
    }

    fn new(client: Client, request_timeout: Duration, urls: String) -> Self {
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(request_timeout)
            .build(client.clone());
        Self {
            client,
            jetstream,
            urls,
            metrics: Arc::new(PublishMetrics::new(&opentelemetry::global::meter(
                METER_NAME,
            ))),
        }
    }

    /// Records the publish and acknowledgement latencies of appends made through this handle
    /// (and clones made from it afterwards) with `meter`, instead of the global meter
    /// `citychain-bus` that was current when the connection was made. Meant for tests that read
    /// a local meter provider.
    pub fn with_meter(mut self, meter: &Meter) -> Self {
        self.metrics = Arc::new(PublishMetrics::new(meter));
        self
    }

    /// The latency histograms appends record in.
    pub(crate) fn publish_metrics(&self) -> &PublishMetrics {
        &self.metrics
    }

    /// The underlying NATS client, for plain publish/subscribe.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The underlying JetStream context, for what this crate does not wrap.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// The configured server URL(s), comma-separated.
    pub fn urls(&self) -> &str {
        &self.urls
    }

    /// Waits until everything published so far has reached the server.
    pub async fn flush(&self) -> Result<(), BusError> {
        self.client
            .flush()
            .await
            .map_err(|err| BusError::Unreachable {
                url: self.urls.clone(),
                reason: err.to_string(),
            })
    }
}

/// Connects to NATS as `config` says: credentials or nkey, TLS, client name, a bounded connect
/// timeout and capped exponential reconnect back-off.
///
/// The first connection is not retried in the background: if no server answers, this returns
/// [`BusError::Unreachable`] naming the URL(s) after at most `connect_timeout` per URL, so a
/// misconfigured service fails at start instead of hanging. Once connected, the client
/// reconnects on its own, following `config.reconnect`.
pub async fn connect(config: &BusConfig) -> Result<Bus, BusError> {
    if config.urls.is_empty() {
        return Err(BusError::Config("no NATS server URL configured".to_owned()));
    }
    let url_list = config.urls.join(", ");
    let addrs = config
        .urls
        .iter()
        .map(|url| {
            url.parse::<ServerAddr>()
                .map_err(|err| BusError::Config(format!("invalid NATS URL {url:?}: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let options = options(config).await?;
    // The client already bounds each attempt by `connection_timeout`; this outer bound also
    // covers DNS and the TLS handshake, with one timeout per URL plus slack.
    let url_count = u32::try_from(addrs.len()).unwrap_or(u32::MAX);
    let overall = config
        .connect_timeout
        .saturating_mul(url_count)
        .saturating_add(Duration::from_secs(1));
    let client = match tokio::time::timeout(overall, options.connect(addrs)).await {
        Ok(Ok(client)) => client,
        Ok(Err(err)) => {
            let reason = err.to_string();
            return Err(match err.kind() {
                ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                    BusError::Unauthorized {
                        url: url_list,
                        reason,
                    }
                }
                _ => BusError::Unreachable {
                    url: url_list,
                    reason,
                },
            });
        }
        Err(_) => {
            return Err(BusError::Unreachable {
                url: url_list,
                reason: format!("no connection within {overall:?}"),
            });
        }
    };
    tracing::info!(urls = %url_list, client = %config.client_name, "connected to NATS");
    Ok(Bus::new(client, config.request_timeout, url_list))
}

async fn options(config: &BusConfig) -> Result<ConnectOptions, BusError> {
    let mut options = ConnectOptions::new();
    match (&config.creds_file, &config.nkey_seed_file) {
        (Some(_), Some(_)) => {
            return Err(BusError::Config(
                "set either creds_file or nkey_seed_file, not both".to_owned(),
            ));
        }
        (Some(creds), None) => {
            options = options
                .credentials_file(creds)
                .await
                .map_err(|err| file_error("creds", creds, err))?;
        }
        (None, Some(seed_file)) => {
            let seed = std::fs::read_to_string(seed_file)
                .map_err(|err| file_error("nkey seed", seed_file, err))?;
            options = options.nkey(seed.trim().to_owned());
        }
        (None, None) => {}
    }

    if let Some(ca) = &config.tls_ca_file {
        require_file("TLS CA", ca)?;
        options = options.add_root_certificates(ca.clone());
    }
    match (&config.tls_client_cert_file, &config.tls_client_key_file) {
        (Some(cert), Some(key)) => {
            require_file("TLS client certificate", cert)?;
            require_file("TLS client key", key)?;
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        _ => {
            return Err(BusError::Config(
                "tls_client_cert_file and tls_client_key_file go together".to_owned(),
            ));
        }
    }

    if let Some(prefix) = &config.inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    let backoff = config.reconnect.clone();
    let max_reconnects = backoff.max_reconnects;
    Ok(options
        .require_tls(config.require_tls)
        .name(&config.client_name)
        .connection_timeout(config.connect_timeout)
        .request_timeout(Some(config.request_timeout))
        .max_reconnects(max_reconnects)
        .reconnect_delay_callback(move |attempt| backoff.delay(attempt))
        .event_callback(|event| async move {
            tracing::info!(%event, "NATS connection event");
        }))
}

// async-nats reads TLS files only when connecting, where a missing file would look like a
// network failure; checking first names the file.
fn require_file(what: &'static str, path: &Path) -> Result<(), BusError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|err| file_error(what, path, err))
}

fn file_error(what: &'static str, path: &Path, err: std::io::Error) -> BusError {
    BusError::CredentialsFile {
        what,
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}
