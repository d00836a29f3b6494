//! Merging the configuration sources, then deserializing and validating the result while
//! keeping track of which key every error is about.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{ConfigError, GrpcConfig, LogConfig, MetricsConfig, ServiceConfig, ServiceSection};

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "CITYCHAIN_";
/// What separates sections and keys in an environment override's name.
pub const ENV_SEPARATOR: &str = "__";

/// The top-level keys this crate owns; every other one goes to the service's `T`.
const SHARED_SECTIONS: [&str; 4] = ["service", "grpc", "metrics", "log"];

/// The largest frame length gRPC can express.
const MAX_FRAME_BYTES: usize = u32::MAX as usize;

/// Where the TOML document comes from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Text(String),
}

/// Builds a [`ServiceConfig`] from defaults, a TOML document, environment overrides and
/// explicit values, in that order of priority (later wins).
#[derive(Debug, Clone, Default)]
pub struct ConfigLoader {
    defaults: Vec<(String, toml::Value)>,
    source: Option<Source>,
    env: Option<Vec<(OsString, OsString)>>,
    overrides: Vec<(String, toml::Value)>,
}

impl ConfigLoader {
    /// No file, the process environment, no explicit values.
    pub fn new() -> Self {
        ConfigLoader::default()
    }

    /// Reads the TOML document from `path` (it must exist).
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Some(Source::File(path.into()));
        self
    }

    /// Uses `text` as the TOML document, instead of a file.
    pub fn toml(mut self, text: impl Into<String>) -> Self {
        self.source = Some(Source::Text(text.into()));
        self
    }

    /// Takes environment overrides from `vars` instead of the process environment (tests,
    /// or a supervisor that prepares each child's environment). Variables that are not
    /// `CITYCHAIN_<SECTION>__<KEY>` are ignored as usual.
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Gives the dotted `key` a default below everything else (e.g. `service.name` from
    /// the subcommand that starts the service).
    pub fn default_value(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.defaults.push((key.to_owned(), value.into()));
        self
    }

    /// Sets the dotted `key` above everything else (e.g. from a command-line flag).
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.overrides.push((key.to_owned(), value.into()));
        self
    }

    /// Merges the sources and validates the result.
    pub fn load<T: DeserializeOwned>(self) -> Result<ServiceConfig<T>, ConfigError> {
        let table = self.merged()?;
        decode(table)
    }

    /// Every source merged into one table, before any typing.
    fn merged(self) -> Result<toml::Table, ConfigError> {
        let mut table = toml::Table::new();
        for (key, value) in self.defaults {
            insert_dotted(&mut table, &key, value, "a default")?;
        }
        if let Some(source) = self.source {
            merge(&mut table, parse(source)?);
        }
        let env = match self.env {
            Some(vars) => vars,
            None => std::env::vars_os().collect(),
        };
        for (name, value) in env {
            let Some((var, key, value)) = env_override(name, value)? else {
                continue;
            };
            insert_path(&mut table, &key, value).map_err(|reason| ConfigError::Env {
                var: var.clone(),
                reason,
            })?;
        }
        for (key, value) in self.overrides {
            insert_dotted(&mut table, &key, value, "an explicit value")?;
        }
        Ok(table)
    }
}

fn parse(source: Source) -> Result<toml::Table, ConfigError> {
    let (origin, text) = match source {
        Source::File(path) => {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            (path.display().to_string(), text)
        }
        Source::Text(text) => ("inline TOML".to_owned(), text),
    };
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            origin,
            reason: e.to_string().trim_end().to_owned(),
        })
}

/// Overlays `top` on `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => merge(below, above),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// One environment override: the variable's name, the key path it sets, and the value.
type EnvOverride = (String, Vec<String>, toml::Value);

/// Turns `CITYCHAIN_GRPC__TLS__CERT=value` into (`CITYCHAIN_GRPC__TLS__CERT`,
/// [`grpc`, `tls`, `cert`], value); `None` for variables that are not overrides.
fn env_override(name: OsString, value: OsString) -> Result<Option<EnvOverride>, ConfigError> {
    let Some(name) = name.to_str() else {
        return Ok(None);
    };
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return Ok(None);
    };
    if !rest.contains(ENV_SEPARATOR) {
        return Ok(None);
    }
    let var = name.to_owned();
    let segments: Vec<String> = rest
        .split(ENV_SEPARATOR)
        .map(str::to_ascii_lowercase)
        .collect();
    if segments.iter().any(String::is_empty) {
        return Err(ConfigError::Env {
            var,
            reason: format!("empty section or key between `{ENV_SEPARATOR}` separators"),
        });
    }
    let Some(value) = value.to_str() else {
        return Err(ConfigError::Env {
            var,
            reason: "value is not valid UTF-8".to_owned(),
        });
    };
    Ok(Some((var, segments, env_value(value))))
}

/// A TOML value when the text is one, a plain string otherwise.
fn env_value(raw: &str) -> toml::Value {
    raw.parse::<toml::Value>()
        .unwrap_or_else(|_| toml::Value::String(raw.to_owned()))
}

fn insert_dotted(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
    origin: &str,
) -> Result<(), ConfigError> {
    let segments: Vec<String> = key.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_string(),
            reason: format!("{origin} was given for a malformed dotted key"),
        });
    }
    insert_path(table, &segments, value).map_err(|reason| ConfigError::Invalid {
        key: key.to_owned(),
        value: String::new(),
        reason,
    })
}

/// Sets `path` in `table`, creating sections on the way; refuses to descend into a value.
fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".to_owned());
    };
    let mut current = table;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(inner) => inner,
            other => {
                return Err(format!(
                    "`{}` is a value ({other}), not a section, so `{}` cannot be set below it",
                    path[..=depth].join("."),
                    path.join(".")
                ));
            }
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// The shared sections as they are written, before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawShared {
    service: RawService,
    grpc: GrpcConfig,
    metrics: MetricsConfig,
    log: LogConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawService {
    name: Option<String>,
}

fn decode<T: DeserializeOwned>(table: toml::Table) -> Result<ServiceConfig<T>, ConfigError> {
    let mut shared = toml::Table::new();
    let mut own = toml::Table::new();
    for (key, value) in &table {
        let target = if SHARED_SECTIONS.contains(&key.as_str()) {
            &mut shared
        } else {
            &mut own
        };
        target.insert(key.clone(), value.clone());
    }
    let raw: RawShared = deserialize_tracked(shared, &table)?;
    let extra: T = deserialize_tracked(own, &table)?;
    validate(raw, extra, &table)
}

/// Deserializes `part` reporting unused keys as [`ConfigError::Unknown`] and other failures
/// with the dotted key they happened at; `whole` is searched for the offending value.
fn deserialize_tracked<T: DeserializeOwned>(
    part: toml::Table,
    whole: &toml::Table,
) -> Result<T, ConfigError> {
    let mut unknown: Vec<String> = Vec::new();
    let mut note_unknown = |path: serde_ignored::Path<'_>| unknown.push(ignored_key(&path));
    let result: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        toml::Value::Table(part),
        &mut note_unknown,
    ));
    if let Some(key) = unknown.into_iter().next() {
        return Err(ConfigError::Unknown { key });
    }
    result.map_err(|err| {
        let path = tracked_key(err.path());
        let message = err.into_inner().message().to_owned();
        if let Some(field) = quoted_after(&message, "missing field `") {
            ConfigError::Missing {
                key: join_key(&path, field),
            }
        } else if let Some(field) = quoted_after(&message, "unknown field `") {
            ConfigError::Unknown {
                key: join_key(&path, field),
            }
        } else {
            ConfigError::Invalid {
                value: lookup(whole, &path).unwrap_or_else(|| "absent".to_owned()),
                key: path,
                reason: message,
            }
        }
    })
}

/// `grpc.tls.cert` for a serde_ignored path, leaving out its `Option` and newtype steps.
fn ignored_key(path: &serde_ignored::Path<'_>) -> String {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<String>) {
        use serde_ignored::Path;
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(index.to_string());
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                out.push(key.clone());
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut segments = Vec::new();
    walk(path, &mut segments);
    segments.join(".")
}

/// `grpc.listen` for a serde_path_to_error path; empty at the root.
fn tracked_key(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn join_key(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// The name in serde's "missing field `name`" style messages.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// The value at a dotted key, as TOML, if there is one.
fn lookup(table: &toml::Table, key: &str) -> Option<String> {
    let mut segments = key.split('.');
    let mut value = table.get(segments.next()?)?;
    for segment in segments {
        value = match value {
            toml::Value::Table(inner) => inner.get(segment)?,
            toml::Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value.to_string())
}

fn validate<T>(
    raw: RawShared,
    extra: T,
    table: &toml::Table,
) -> Result<ServiceConfig<T>, ConfigError> {
    let invalid = |key: &str, fallback: String, reason: &str| ConfigError::Invalid {
        key: key.to_owned(),
        value: lookup(table, key).unwrap_or(fallback),
        reason: reason.to_owned(),
    };

    let name = raw.service.name.ok_or_else(|| ConfigError::Missing {
        key: "service.name".to_owned(),
    })?;
    if name.trim().is_empty() {
        return Err(invalid(
            "service.name",
            format!("{name:?}"),
            "must not be empty",
        ));
    }

    let max = raw.grpc.max_request_bytes;
    if max == 0 || max > MAX_FRAME_BYTES {
        return Err(invalid(
            "grpc.max_request_bytes",
            max.to_string(),
            &format!("must be between 1 and {MAX_FRAME_BYTES} (a gRPC frame's length limit)"),
        ));
    }
    if let Some(tls) = &raw.grpc.tls {
        for (key, path) in [
            ("grpc.tls.cert", Some(&tls.cert)),
            ("grpc.tls.key", Some(&tls.key)),
            ("grpc.tls.client_ca", tls.client_ca.as_ref()),
        ] {
            if path.is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(invalid(key, "\"\"".to_owned(), "must be a file path"));
            }
        }
    }

    if raw.metrics.enabled && addresses_collide(raw.metrics.listen, raw.grpc.listen) {
        return Err(invalid(
            "metrics.listen",
            raw.metrics.listen.to_string(),
            "takes the same port as grpc.listen",
        ));
    }

    if let Some(filter) = &raw.log.filter
        && let Err(e) = citychain_telemetry::validate_filter(filter)
    {
        return Err(invalid("log.filter", format!("{filter:?}"), &e.to_string()));
    }

    Ok(ServiceConfig {
        service: ServiceSection { name },
        grpc: raw.grpc,
        metrics: raw.metrics,
        log: raw.log,
        extra,
    })
}

/// Whether two listeners could not both bind: same fixed port, and the same address or
/// either one on every address.
fn addresses_collide(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_map_to_lower_case_dotted_keys() {
        let (_, key, value) =
            env_override("CITYCHAIN_GRPC__TLS__CLIENT_CA".into(), "/ca.pem".into())
                .unwrap()
                .unwrap();
        assert_eq!(key, ["grpc", "tls", "client_ca"]);
        assert_eq!(value, toml::Value::String("/ca.pem".into()));
    }

    #[test]
    fn variables_without_a_separator_are_not_overrides() {
        for name in ["CITYCHAIN_CONFIG", "PATH", "CITY_GRPC__LISTEN"] {
            assert!(
                env_override(name.into(), "x".into()).unwrap().is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn env_values_are_toml_when_they_parse_and_strings_otherwise() {
        let cases = [
            ("true", toml::Value::Boolean(true)),
            ("1024", toml::Value::Integer(1024)),
            ("\"1024\"", toml::Value::String("1024".into())),
            ("0.0.0.0:50051", toml::Value::String("0.0.0.0:50051".into())),
            (
                "info,citychain=debug",
                toml::Value::String("info,citychain=debug".into()),
            ),
            ("json", toml::Value::String("json".into())),
        ];
        for (raw, expected) in cases {
            assert_eq!(env_value(raw), expected, "{raw}");
        }
    }

    #[test]
    fn an_empty_segment_is_refused_naming_the_variable() {
        let err = env_override("CITYCHAIN_GRPC____LISTEN".into(), "x".into()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Env { var, .. } if var == "CITYCHAIN_GRPC____LISTEN"),
            "{err:?}"
        );
    }

    #[test]
    fn merge_keeps_keys_the_top_does_not_set() {
        let mut base: toml::Table = "[grpc]\nlisten = \"a\"\nmax_request_bytes = 1"
            .parse()
            .unwrap();
        merge(&mut base, "[grpc]\nlisten = \"b\"".parse().unwrap());
        assert_eq!(lookup(&base, "grpc.listen").unwrap(), "\"b\"");
        assert_eq!(lookup(&base, "grpc.max_request_bytes").unwrap(), "1");
    }
}
