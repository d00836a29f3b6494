//! What a process tells the telemetry set-up: its name, how logs look and which are kept.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::TelemetryError;

/// The filter used when neither the configuration nor `RUST_LOG` gives one.
const DEFAULT_FILTER: &str = "info";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Coloured, one line per event, for a terminal.
    #[default]
    Human,
    /// One JSON object per event, for log collectors.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        })
    }
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "human" | "text" | "pretty" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(TelemetryError::InvalidLogFormat(s.to_owned())),
        }
    }
}

/// Settings for [`crate::init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The OpenTelemetry `service.name` and the tracer's name, e.g. `citychain-ledger`.
    /// `OTEL_SERVICE_NAME`, when set, wins for the exported resource.
    pub service_name: String,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Which spans and events are kept, in env-filter syntax (`info,citychain_store=debug`).
    pub filter: String,
}

impl TelemetryConfig {
    /// Human logs with the filter from `RUST_LOG`, or `info` when it is unset.
    pub fn new(service_name: impl Into<String>) -> Self {
        TelemetryConfig {
            service_name: service_name.into(),
            log_format: LogFormat::Human,
            filter: default_filter(),
        }
    }

    /// Replaces the log format.
    pub fn with_log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    /// Replaces the filter (env-filter syntax).
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = filter.into();
        self
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig::new("citychain")
    }
}

/// `RUST_LOG` when set and not blank, `info` otherwise.
pub(crate) fn default_filter() -> String {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_FILTER.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_parses_case_insensitively_and_names_a_bad_value() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("human".parse::<LogFormat>().unwrap(), LogFormat::Human);
        let err = "xml".parse::<LogFormat>().unwrap_err();
        assert!(err.to_string().contains("xml"), "{err}");
    }

    #[test]
    fn an_invalid_filter_is_refused_with_the_filter_in_the_error() {
        let err = crate::TelemetryBuilder::new(TelemetryConfig::new("t").with_filter("[["))
            .build_local()
            .unwrap_err();
        assert!(
            matches!(&err, TelemetryError::InvalidFilter { filter, .. } if filter == "[["),
            "{err:?}"
        );
    }
}
