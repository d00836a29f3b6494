//! The three streams of a chain and their subjects, and [`ensure_streams`], which creates or
//! updates them idempotently when a service starts.
//!
//! # Naming
//!
//! For chain id `C`, stream-name prefix `P` (default `CITYCHAIN`) and subject prefix `s`
//! (default `citychain`):
//!
//! | stream          | subjects            | what it holds                                    |
//! | --------------- | ------------------- | ------------------------------------------------ |
//! | `P_C_MEMPOOL`   | `s.C.mempool`       | signed transactions waiting for a block          |
//! | `P_C_CHAIN`     | `s.C.chain`         | committed blocks, one message per height         |
//! | `P_C_EVENTS`    | `s.C.events.>`      | derived events, `s.C.events.<service>.<type>`    |
//!
//! The chain id, prefixes and event tokens are limited to `A-Z a-z 0-9 _ -`, so a name is both
//! a valid stream name and a single subject token, and two chains on one NATS never overlap.
//!
//! Object store and key-value buckets follow the stream names: bucket `b` of chain `C` is
//! `P_C_b` ([`StreamsConfig::object_bucket`], [`StreamsConfig::kv_bucket`]). JetStream backs
//! them with streams `OBJ_P_C_b` and `KV_P_C_b`, so they never clash with the streams above
//! nor with each other, even for the same `b`.
//!
//! # Limits
//!
//! All three use file storage, limits retention and "discard new": when a stream is full,
//! publishing fails instead of JetStream silently dropping old data. CHAIN never expires and
//! has no size limit (configuring one is an error) and denies message deletion and purge by
//! default. MEMPOOL keeps transactions for 24 hours and at most 1 GiB by default. In a cluster,
//! set `replicas = 3` and run the servers with `sync_interval: always` (DESIGN §5).
//!
//! ```toml
//! [streams]
//! chain_id = "city-main"
//! replicas = 3                  # every stream, unless overridden below
//! [streams.mempool]
//! max_age = "12h"               # "0s" means no limit
//! max_bytes = 536870912
//! ```

use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use serde::Deserialize;

use crate::bus::Bus;
use crate::config::human_duration;
use crate::error::BusError;

/// Which of a chain's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Transactions waiting to be ordered.
    Mempool,
    /// Committed blocks.
    Chain,
    /// Events derived by the services.
    Events,
}

impl StreamKind {
    /// All kinds, in the order [`ensure_streams`] creates them.
    pub const ALL: [StreamKind; 3] = [StreamKind::Mempool, StreamKind::Chain, StreamKind::Events];

    fn suffix(self) -> &'static str {
        match self {
            StreamKind::Mempool => "MEMPOOL",
            StreamKind::Chain => "CHAIN",
            StreamKind::Events => "EVENTS",
        }
    }
}

/// Limits of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Copies kept by the cluster (1 on a single server, 3 in production).
    pub replicas: usize,
    /// How long JetStream remembers `Nats-Msg-Id`s to drop duplicates. A replay after this
    /// window is not caught by JetStream, so consumers still de-duplicate by id or height.
    pub duplicate_window: Duration,
    /// Largest message accepted, in bytes; `None` leaves it to the server's `max_payload`.
    pub max_message_size: Option<u32>,
    /// Size cap in bytes; `None` for no cap. Not allowed on CHAIN.
    pub max_bytes: Option<u64>,
    /// Age after which messages are removed; `None` keeps them. Not allowed on CHAIN.
    pub max_age: Option<Duration>,
    /// Refuse deleting or purging messages. Once set on a stream it cannot be unset.
    pub deny_delete: bool,
}

impl StreamSettings {
    /// Defaults for a stream kind: see the module documentation.
    pub fn default_for(kind: StreamKind) -> Self {
        const MIB: u32 = 1024 * 1024;
        match kind {
            StreamKind::Mempool => Self {
                replicas: 1,
                duplicate_window: Duration::from_secs(10 * 60),
                max_message_size: Some(MIB),
                max_bytes: Some(1024 * u64::from(MIB)),
                max_age: Some(Duration::from_secs(24 * 60 * 60)),
                deny_delete: false,
            },
            StreamKind::Chain => Self {
                replicas: 1,
                duplicate_window: Duration::from_secs(2 * 60),
                max_message_size: None,
                max_bytes: None,
                max_age: None,
                deny_delete: true,
            },
            StreamKind::Events => Self {
                replicas: 1,
                duplicate_window: Duration::from_secs(10 * 60),
                max_message_size: Some(MIB),
                max_bytes: None,
                max_age: None,
                deny_delete: false,
            },
        }
    }
}

/// The streams of one chain: names, subjects and limits. Deserializes from TOML (see the module
/// documentation); only `chain_id` is required.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawStreamsConfig")]
pub struct StreamsConfig {
    chain_id: String,
    name_prefix: String,
    subject_prefix: String,
    /// MEMPOOL limits.
    pub mempool: StreamSettings,
    /// CHAIN limits.
    pub chain: StreamSettings,
    /// EVENTS limits.
    pub events: StreamSettings,
}

impl StreamsConfig {
    /// Default streams for `chain_id`.
    pub fn new(chain_id: impl Into<String>) -> Result<Self, BusError> {
        Self::with_prefixes(chain_id, "CITYCHAIN", "citychain")
    }

    /// Streams for `chain_id` with other stream-name and subject prefixes (say, to run two
    /// test networks against one server).
    pub fn with_prefixes(
        chain_id: impl Into<String>,
        name_prefix: impl Into<String>,
        subject_prefix: impl Into<String>,
    ) -> Result<Self, BusError> {
        let config = Self {
            chain_id: chain_id.into(),
            name_prefix: name_prefix.into(),
            subject_prefix: subject_prefix.into(),
            mempool: StreamSettings::default_for(StreamKind::Mempool),
            chain: StreamSettings::default_for(StreamKind::Chain),
            events: StreamSettings::default_for(StreamKind::Events),
        };
        config.validate()?;
        Ok(config)
    }

    /// Sets the replica count of all three streams.
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.mempool.replicas = replicas;
        self.chain.replicas = replicas;
        self.events.replicas = replicas;
        self
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// The limits of one stream.
    pub fn settings(&self, kind: StreamKind) -> &StreamSettings {
        match kind {
            StreamKind::Mempool => &self.mempool,
            StreamKind::Chain => &self.chain,
            StreamKind::Events => &self.events,
        }
    }

    /// The stream's name, e.g. `CITYCHAIN_city-main_CHAIN`.
    pub fn stream_name(&self, kind: StreamKind) -> String {
        format!("{}_{}_{}", self.name_prefix, self.chain_id, kind.suffix())
    }

    /// `citychain.<chain_id>`: the prefix of every subject of this chain.
    pub fn chain_subject_prefix(&self) -> String {
        format!("{}.{}", self.subject_prefix, self.chain_id)
    }

    /// `citychain.<chain_id>.mempool`: where transactions are submitted.
    pub fn mempool_subject(&self) -> String {
        format!("{}.{}.mempool", self.subject_prefix, self.chain_id)
    }

    /// `citychain.<chain_id>.chain`: where committed blocks are appended.
    pub fn chain_subject(&self) -> String {
        format!("{}.{}.chain", self.subject_prefix, self.chain_id)
    }

    /// `citychain.<chain_id>.events.<service>.<event_type>`: where a service publishes one kind
    /// of derived event. Both parts must be non-empty tokens of `A-Z a-z 0-9 _ -`.
    pub fn event_subject(&self, service: &str, event_type: &str) -> Result<String, BusError> {
        check_token("service", service)?;
        check_token("event type", event_type)?;
        Ok(format!(
            "{}.{}.events.{service}.{event_type}",
            self.subject_prefix, self.chain_id
        ))
    }

    /// `citychain.<chain_id>.blocks.<validator>`: where the validator with that key (lowercase
    /// hex) answers block requests: 8 bytes of big-endian height in, the block's canonical
    /// encoding out (empty when it does not have it). Not a stream: request/reply.
    pub fn block_service_subject(&self, validator: &str) -> String {
        format!(
            "{}.{}.blocks.{validator}",
            self.subject_prefix, self.chain_id
        )
    }

    /// `CITYCHAIN_<chain_id>_<name>`: the name of the chain's object store bucket `name`, for
    /// [`Bus::object_store`]. `name` must be a non-empty token of `A-Z a-z 0-9 _ -`.
    pub fn object_bucket(&self, name: &str) -> Result<String, BusError> {
        check_token("object bucket", name)?;
        Ok(format!("{}_{}_{name}", self.name_prefix, self.chain_id))
    }

    /// `CITYCHAIN_<chain_id>_<name>`: the name of the chain's key-value bucket `name`, for
    /// [`Bus::kv`]. `name` must be a non-empty token of `A-Z a-z 0-9 _ -`.
    pub fn kv_bucket(&self, name: &str) -> Result<String, BusError> {
        check_token("key-value bucket", name)?;
        Ok(format!("{}_{}_{name}", self.name_prefix, self.chain_id))
    }

    /// `citychain.<chain_id>.events.<service>.*`: every kind of event one service publishes,
    /// for a consumer's filter.
    pub fn service_events(&self, service: &str) -> Result<String, BusError> {
        check_token("service", service)?;
        Ok(format!(
            "{}.{}.events.{service}.*",
            self.subject_prefix, self.chain_id
        ))
    }

    /// `citychain.<chain_id>.events.>`: every event, for filters.
    pub fn events_wildcard(&self) -> String {
        format!("{}.{}.events.>", self.subject_prefix, self.chain_id)
    }

    /// The subjects a stream captures.
    pub fn subjects(&self, kind: StreamKind) -> Vec<String> {
        vec![match kind {
            StreamKind::Mempool => self.mempool_subject(),
            StreamKind::Chain => self.chain_subject(),
            StreamKind::Events => self.events_wildcard(),
        }]
    }

    /// The JetStream configuration [`ensure_streams`] applies for a stream.
    pub fn stream_config(&self, kind: StreamKind) -> Config {
        let settings = self.settings(kind);
        let limit = |value: Option<u64>| value.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        Config {
            name: self.stream_name(kind),
            description: Some(format!(
                "citychain {} of chain {}",
                kind.suffix().to_lowercase(),
                self.chain_id
            )),
            subjects: self.subjects(kind),
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::New,
            num_replicas: settings.replicas,
            duplicate_window: settings.duplicate_window,
            max_message_size: settings
                .max_message_size
                .map_or(-1, |v| i32::try_from(v).unwrap_or(i32::MAX)),
            max_bytes: limit(settings.max_bytes),
            max_messages: -1,
            max_messages_per_subject: -1,
            max_age: settings.max_age.unwrap_or(Duration::ZERO),
            deny_delete: settings.deny_delete,
            deny_purge: settings.deny_delete,
            // Lets any replica answer direct gets, for readers that accept slightly stale data.
            allow_direct: true,
            ..Config::default()
        }
    }

    /// Checks names and the rules the streams must keep (CHAIN never expires).
    pub fn validate(&self) -> Result<(), BusError> {
        check_token("chain id", &self.chain_id)?;
        check_token("stream name prefix", &self.name_prefix)?;
        check_token("subject prefix", &self.subject_prefix)?;
        if self.chain.max_age.is_some() || self.chain.max_bytes.is_some() {
            return Err(BusError::Config(format!(
                "stream {} keeps the whole chain: it cannot have max_age ({:?}) or max_bytes ({:?})",
                self.stream_name(StreamKind::Chain),
                self.chain.max_age,
                self.chain.max_bytes
            )));
        }
        for kind in StreamKind::ALL {
            let settings = self.settings(kind);
            if settings.replicas == 0 || settings.replicas > 5 {
                return Err(BusError::Config(format!(
                    "stream {}: replicas must be 1 to 5, not {}",
                    self.stream_name(kind),
                    settings.replicas
                )));
            }
            if let Some(max_age) = settings.max_age
                && settings.duplicate_window > max_age
            {
                return Err(BusError::Config(format!(
                    "stream {}: duplicate_window {:?} exceeds max_age {max_age:?}",
                    self.stream_name(kind),
                    settings.duplicate_window
                )));
            }
        }
        Ok(())
    }
}

fn check_token(what: &str, value: &str) -> Result<(), BusError> {
    let valid = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(BusError::Config(format!(
            "{what} {value:?} must be non-empty and use only A-Z a-z 0-9 _ -"
        )))
    }
}

/// What [`ensure_streams`] did to one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsuredStream {
    /// Which stream.
    pub kind: StreamKind,
    /// Its name.
    pub name: String,
    /// True if it did not exist before; false if it existed and its configuration was
    /// re-applied (a no-op when nothing changed).
    pub created: bool,
}

/// Whether a process creates the chain's streams or only uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamsUse {
    /// Creates the streams, or updates them to this configuration (validators do).
    Manage,
    /// Waits until the streams exist (platform services, which may not change them).
    Follow,
}

/// What a service does first on NATS: connects as NATS user `user` (named `default_name`
/// unless the configuration names the client, so the server's connection list tells services
/// apart; with replies on the user's own inbox, [`crate::access::inbox_prefix`], unless the
/// configuration names another) and, as `usage` says, creates or updates chain `chain_id`'s
/// streams with `replicas` replicas, or waits until they exist.
pub async fn connect_to_chain(
    config: &crate::config::BusConfig,
    user: &str,
    default_name: &str,
    chain_id: &str,
    replicas: usize,
    usage: StreamsUse,
) -> Result<(Bus, StreamsConfig), BusError> {
    let mut config = config.clone();
    if config.client_name == crate::config::BusConfig::default().client_name {
        config.client_name = default_name.to_owned();
    }
    // A user may subscribe only on its own inbox: without one named, replies go there.
    config
        .inbox_prefix
        .get_or_insert_with(|| crate::access::inbox_prefix(user));
    let bus = crate::bus::connect(&config).await?;
    let streams = StreamsConfig::new(chain_id)?.with_replicas(replicas);
    match usage {
        StreamsUse::Manage => {
            ensure_streams(&bus, &streams).await?;
        }
        StreamsUse::Follow => wait_for_streams(&bus, &streams).await?,
    }
    Ok((bus, streams))
}

/// How often [`wait_for_streams`] looks again, and how often it says it is still waiting.
const STREAM_POLL: Duration = Duration::from_millis(250);
const STREAM_WAIT_NOTE: Duration = Duration::from_secs(5);

/// Waits until the chain's three streams exist (validators create them), saying every few
/// seconds what it waits for. Fails on any answer but "not found".
pub async fn wait_for_streams(bus: &Bus, config: &StreamsConfig) -> Result<(), BusError> {
    let js = bus.jetstream();
    let started = std::time::Instant::now();
    let mut noted = Duration::ZERO;
    for kind in StreamKind::ALL {
        let name = config.stream_name(kind);
        loop {
            match js.get_stream(&name).await {
                Ok(_) => break,
                Err(err) => match err.kind() {
                    GetStreamErrorKind::JetStream(js_err)
                        if js_err.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                    {
                        if started.elapsed() >= noted + STREAM_WAIT_NOTE {
                            noted = started.elapsed();
                            tracing::info!(
                                stream = %name,
                                waited_s = noted.as_secs(),
                                "waiting for the stream: the validators create it"
                            );
                        }
                        tokio::time::sleep(STREAM_POLL).await;
                    }
                    _ => {
                        return Err(BusError::Stream {
                            stream: name,
                            reason: format!("look-up failed: {err}"),
                        });
                    }
                },
            }
        }
    }
    Ok(())
}

/// Creates the chain's three streams, or updates them to `config` if they exist. Safe to call
/// on every start and from several services at once: a second call changes nothing, and a call
/// with new limits or replicas updates the streams in place.
pub async fn ensure_streams(
    bus: &Bus,
    config: &StreamsConfig,
) -> Result<Vec<EnsuredStream>, BusError> {
    config.validate()?;
    let mut ensured = Vec::with_capacity(StreamKind::ALL.len());
    for kind in StreamKind::ALL {
        let stream_config = config.stream_config(kind);
        let name = stream_config.name.clone();
        let created = ensure_one(bus, stream_config).await?;
        tracing::info!(stream = %name, created, "stream ensured");
        ensured.push(EnsuredStream {
            kind,
            name,
            created,
        });
    }
    Ok(ensured)
}

async fn ensure_one(bus: &Bus, config: Config) -> Result<bool, BusError> {
    let js = bus.jetstream();
    let name = config.name.clone();
    let stream_error = |reason: String| BusError::Stream {
        stream: name.clone(),
        reason,
    };
    match js.get_stream(&name).await {
        Ok(_) => {}
        Err(err) => match err.kind() {
            GetStreamErrorKind::JetStream(js_err)
                if js_err.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                match js.create_stream(config.clone()).await {
                    Ok(_) => return Ok(true),
                    // Another service created it between our look-up and create: update it.
                    Err(create_err)
                        if matches!(
                            create_err.kind(),
                            CreateStreamErrorKind::JetStream(ref e)
                                if e.error_code() == ErrorCode::STREAM_NAME_EXIST
                        ) => {}
                    Err(create_err) => {
                        return Err(stream_error(format!("create failed: {create_err}")));
                    }
                }
            }
            _ => return Err(stream_error(format!("look-up failed: {err}"))),
        },
    }
    js.update_stream(&config)
        .await
        .map_err(|err| stream_error(format!("update failed: {err}")))?;
    Ok(false)
}

/// The TOML shape of [`StreamsConfig`]: every limit optional, merged onto the defaults of its
/// stream kind, so overriding one limit keeps the others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStreamsConfig {
    chain_id: String,
    #[serde(default = "default_name_prefix")]
    name_prefix: String,
    #[serde(default = "default_subject_prefix")]
    subject_prefix: String,
    #[serde(default)]
    replicas: Option<usize>,
    #[serde(default)]
    mempool: RawStreamSettings,
    #[serde(default)]
    chain: RawStreamSettings,
    #[serde(default)]
    events: RawStreamSettings,
}

fn default_name_prefix() -> String {
    "CITYCHAIN".to_owned()
}

fn default_subject_prefix() -> String {
    "citychain".to_owned()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStreamSettings {
    replicas: Option<usize>,
    #[serde(default, deserialize_with = "human_duration::option")]
    duplicate_window: Option<Duration>,
    max_message_size: Option<u32>,
    max_bytes: Option<u64>,
    #[serde(default, deserialize_with = "human_duration::option")]
    max_age: Option<Duration>,
    deny_delete: Option<bool>,
}

impl RawStreamSettings {
    fn apply(self, kind: StreamKind, replicas: Option<usize>) -> StreamSettings {
        let mut settings = StreamSettings::default_for(kind);
        if let Some(replicas) = self.replicas.or(replicas) {
            settings.replicas = replicas;
        }
        if let Some(window) = self.duplicate_window {
            settings.duplicate_window = window;
        }
        // Zero means "no limit", the only way to lift a default limit from TOML.
        if let Some(size) = self.max_message_size {
            settings.max_message_size = (size > 0).then_some(size);
        }
        if let Some(bytes) = self.max_bytes {
            settings.max_bytes = (bytes > 0).then_some(bytes);
        }
        if let Some(age) = self.max_age {
            settings.max_age = (!age.is_zero()).then_some(age);
        }
        if let Some(deny) = self.deny_delete {
            settings.deny_delete = deny;
        }
        settings
    }
}

impl TryFrom<RawStreamsConfig> for StreamsConfig {
    type Error = BusError;

    fn try_from(raw: RawStreamsConfig) -> Result<Self, BusError> {
        let config = StreamsConfig {
            mempool: raw.mempool.apply(StreamKind::Mempool, raw.replicas),
            chain: raw.chain.apply(StreamKind::Chain, raw.replicas),
            events: raw.events.apply(StreamKind::Events, raw.replicas),
            chain_id: raw.chain_id,
            name_prefix: raw.name_prefix,
            subject_prefix: raw.subject_prefix,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_subjects() {
        let config = StreamsConfig::new("city-main").unwrap();
        assert_eq!(
            config.stream_name(StreamKind::Chain),
            "CITYCHAIN_city-main_CHAIN"
        );
        assert_eq!(config.mempool_subject(), "citychain.city-main.mempool");
        assert_eq!(config.chain_subject(), "citychain.city-main.chain");
        assert_eq!(config.events_wildcard(), "citychain.city-main.events.>");
        assert_eq!(
            config.event_subject("tokens", "ReadPaid").unwrap(),
            "citychain.city-main.events.tokens.ReadPaid"
        );
        assert!(config.event_subject("tokens", "a.b").is_err());
    }

    #[test]
    fn bucket_names_carry_the_chain() {
        let config = StreamsConfig::new("city-main").unwrap();
        assert_eq!(
            config.object_bucket("records").unwrap(),
            "CITYCHAIN_city-main_records"
        );
        assert_eq!(
            config.kv_bucket("record-keys").unwrap(),
            "CITYCHAIN_city-main_record-keys"
        );
        for bad in ["", "a.b", "a b", "a*", "a>"] {
            assert!(config.object_bucket(bad).is_err(), "{bad:?} accepted");
            assert!(config.kv_bucket(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn invalid_chain_ids_are_refused() {
        for bad in ["", "a.b", "a b", "a*", "a>", "a/b"] {
            assert!(StreamsConfig::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn chain_never_expires() {
        let mut config = StreamsConfig::new("c").unwrap();
        assert_eq!(
            config.stream_config(StreamKind::Chain).max_age,
            Duration::ZERO
        );
        assert_eq!(config.stream_config(StreamKind::Chain).max_bytes, -1);
        config.chain.max_age = Some(Duration::from_secs(60));
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("CITYCHAIN_c_CHAIN"), "{err}");
    }

    #[test]
    fn toml_overrides_merge_onto_kind_defaults() {
        let config: StreamsConfig = toml::from_str(
            r#"
            chain_id = "city"
            replicas = 3
            [mempool]
            max_age = "12h"
            [events]
            replicas = 1
            max_bytes = 0
            "#,
        )
        .unwrap();
        assert_eq!(config.mempool.replicas, 3);
        assert_eq!(config.chain.replicas, 3);
        assert_eq!(config.events.replicas, 1);
        assert_eq!(config.mempool.max_age, Some(Duration::from_secs(12 * 3600)));
        // Untouched mempool defaults stay.
        assert_eq!(config.mempool.max_bytes, Some(1 << 30));
        assert_eq!(config.events.max_bytes, None);

        let bad = toml::from_str::<StreamsConfig>("chain_id = \"city\"\n[chain]\nmax_age = \"1d\"");
        assert!(bad.is_err());
    }
}
