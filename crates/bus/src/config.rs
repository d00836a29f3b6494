//! [`BusConfig`]: where NATS is and how to authenticate, as services embed it in their TOML
//! configuration. Every field has a default, so an empty `[bus]` table connects to a local
//! server. Durations are written the human way (`"5s"`, `"250ms"`).
//!
//! ```toml
//! [bus]
//! urls = ["nats://nats-0:4222", "nats://nats-1:4222"]   # or one string, commas allowed
//! creds_file = "/etc/citychain/ledger.creds"
//! tls_ca_file = "/etc/citychain/ca.pem"
//! require_tls = true
//! client_name = "ledger-0"
//! inbox_prefix = "_INBOX_ledger"                       # the default for the ledger's user
//! connect_timeout = "5s"
//! reconnect = { initial = "100ms", max = "5s" }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// How to reach NATS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Server URLs (`nats://host:port`, `tls://host:port`). In TOML either a list or one string,
    /// which may hold several comma-separated URLs.
    #[serde(deserialize_with = "urls::deserialize")]
    pub urls: Vec<String>,
    /// A decentralised-auth credentials file (user JWT and nkey seed, `.creds`).
    pub creds_file: Option<PathBuf>,
    /// A file holding an nkey seed (`SU...`), for nkey authentication without JWTs.
    pub nkey_seed_file: Option<PathBuf>,
    /// PEM file with the CA certificates that sign the servers' certificates.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS; needs `tls_client_key_file`.
    pub tls_client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub tls_client_key_file: Option<PathBuf>,
    /// Refuse to talk to a server without TLS.
    pub require_tls: bool,
    /// The name this client shows in the server's connection list.
    pub client_name: String,
    /// Where replies to this client's requests arrive (`<prefix>.>`); a NATS user may only
    /// subscribe on its own inbox, `_INBOX_<user>` (see [`crate::access`]). Unset, a
    /// validator or service connecting to its chain uses its user's inbox
    /// ([`crate::connect_to_chain`]).
    pub inbox_prefix: Option<String>,
    /// Bound on establishing one connection; the first connect tries each URL once, so it fails
    /// after at most this long per URL.
    #[serde(with = "human_duration")]
    pub connect_timeout: Duration,
    /// Default timeout of requests, including JetStream API calls and publish acks.
    #[serde(with = "human_duration")]
    pub request_timeout: Duration,
    /// Back-off between reconnect attempts once connected.
    pub reconnect: ReconnectBackoff,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            urls: vec!["nats://127.0.0.1:4222".to_owned()],
            creds_file: None,
            nkey_seed_file: None,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
            require_tls: false,
            client_name: "citychain".to_owned(),
            inbox_prefix: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            reconnect: ReconnectBackoff::default(),
        }
    }
}

impl BusConfig {
    /// The default configuration pointed at `url`.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            ..Self::default()
        }
    }
}

impl BusConfig {
    /// The fields of a `[nats]` table that say where NATS is and who connects (URLs, nkey seed
    /// file, client name, inbox), as TOML lines; harnesses that write service configurations
    /// add their own lines after them.
    pub fn to_toml(&self) -> String {
        let mut out = format!("urls = {:?}\n", self.urls);
        if let Some(seed) = &self.nkey_seed_file {
            out.push_str(&format!(
                "nkey_seed_file = {:?}\n",
                seed.display().to_string()
            ));
        }
        if let Some(creds) = &self.creds_file {
            out.push_str(&format!("creds_file = {:?}\n", creds.display().to_string()));
        }
        out.push_str(&format!("client_name = {:?}\n", self.client_name));
        if let Some(prefix) = &self.inbox_prefix {
            out.push_str(&format!("inbox_prefix = {prefix:?}\n"));
        }
        out
    }
}

/// Exponential back-off between reconnect attempts: the first retry is immediate (a server that
/// restarts is usually back at once), then `initial`, doubling up to `max`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectBackoff {
    /// Delay before the second retry.
    #[serde(with = "human_duration")]
    pub initial: Duration,
    /// Cap on the delay.
    #[serde(with = "human_duration")]
    pub max: Duration,
    /// Give up after this many consecutive failed attempts; `None` (the default) never gives up,
    /// which suits services that must wait for NATS however long it is down.
    pub max_reconnects: Option<usize>,
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            max_reconnects: None,
        }
    }
}

impl ReconnectBackoff {
    /// The delay before attempt number `attempt` (1-based, as async-nats counts them).
    pub fn delay(&self, attempt: usize) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        // Doubling stops mattering long before 2^20, and capping the exponent avoids overflow.
        let exponent = u32::try_from(attempt - 2).unwrap_or(u32::MAX).min(20);
        self.initial.saturating_mul(1u32 << exponent).min(self.max)
    }
}

/// Serde for durations as human-readable strings ("5s", "1m 30s", "250ms").
pub(crate) mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|err| serde::de::Error::custom(format!("invalid duration {text:?}: {err}")))
    }

    /// The same, for an optional field (use with `#[serde(default)]`).
    pub(crate) fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        deserialize(d).map(Some)
    }
}

/// Serde for `urls`: a list, or one string with comma-separated URLs.
mod urls {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let urls = match OneOrMany::deserialize(d)? {
            OneOrMany::One(text) => text
                .split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect(),
            OneOrMany::Many(urls) => urls,
        };
        Ok(urls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_immediately_doubles_and_caps() {
        let backoff = ReconnectBackoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_reconnects: None,
        };
        let delays: Vec<_> = (1..=7).map(|attempt| backoff.delay(attempt)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            delays,
            [
                ms(0),
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000)
            ]
        );
        assert_eq!(backoff.delay(usize::MAX), Duration::from_secs(1));
    }

    #[test]
    fn toml_with_defaults_and_human_durations() {
        let config: BusConfig = toml::from_str(
            r#"
            urls = "nats://a:4222, nats://b:4222"
            creds_file = "/etc/x.creds"
            connect_timeout = "2s"
            reconnect = { max = "10s" }
            "#,
        )
        .unwrap();
        assert_eq!(config.urls, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(config.creds_file, Some(PathBuf::from("/etc/x.creds")));
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.reconnect.max, Duration::from_secs(10));
        assert_eq!(config.reconnect.initial, Duration::from_millis(100));
        assert_eq!(config.client_name, "citychain");

        let empty: BusConfig = toml::from_str("").unwrap();
        assert_eq!(empty, BusConfig::default());
        assert!(toml::from_str::<BusConfig>("connect_timeout = \"soon\"").is_err());
        assert!(toml::from_str::<BusConfig>("no_such_field = 1").is_err());

        let user = BusConfig {
            nkey_seed_file: Some(PathBuf::from("/keys/ledger.nk")),
            client_name: "ledger".into(),
            inbox_prefix: Some("_INBOX_ledger".into()),
            ..BusConfig::with_url("nats://a:4222")
        };
        let back: BusConfig = toml::from_str(&user.to_toml()).unwrap();
        assert_eq!(back, user);
    }
}
