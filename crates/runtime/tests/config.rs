//! Loading a service configuration: sources, priorities, and errors that name the key.

use std::io::Write as _;

use citychain_runtime::config::{
    ConfigError, ConfigLoader, DEFAULT_MAX_REQUEST_BYTES, NoExtra, ServiceConfig,
};
use citychain_telemetry::LogFormat;
use serde::Deserialize;

const NO_ENV: [(&str, &str); 0] = [];

fn load_toml(text: &str) -> Result<ServiceConfig, ConfigError> {
    ConfigLoader::new().toml(text).env(NO_ENV).load()
}

#[derive(Debug, Default, Deserialize, PartialEq)]
struct LedgerSections {
    nats: Nats,
    #[serde(default)]
    chain: Option<Chain>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
struct Nats {
    url: String,
    #[serde(default)]
    stream_replicas: u8,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
struct Chain {
    id: String,
}

#[test]
fn a_file_is_read_and_an_environment_override_wins_over_it() {
    // given a file
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        r#"
        [service]
        name = "ledger"

        [grpc]
        listen = "127.0.0.1:7000"
        max_request_bytes = 2048

        [log]
        format = "json"
        "#
    )
    .unwrap();

    // when the environment overrides one of its keys and adds another
    let config: ServiceConfig = ConfigLoader::new()
        .file(file.path())
        .env([
            ("CITYCHAIN_GRPC__LISTEN", "127.0.0.1:7001"),
            ("CITYCHAIN_METRICS__ENABLED", "false"),
            ("CITYCHAIN_LOG__FILTER", "info,citychain=debug"),
            ("CITYCHAIN_CONFIG", "ignored: not an override"),
            ("HOME", "/root"),
        ])
        .load()
        .unwrap();

    // then the environment wins, and the file fills in the rest
    assert_eq!(config.grpc.listen, "127.0.0.1:7001".parse().unwrap());
    assert_eq!(config.grpc.max_request_bytes, 2048);
    assert!(!config.metrics.enabled);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.filter.as_deref(), Some("info,citychain=debug"));
    assert_eq!(config.service.name, "ledger");
    assert_eq!(config.telemetry().filter, "info,citychain=debug");
}

#[test]
fn defaults_fill_everything_but_the_service_name() {
    let config = load_toml("[service]\nname = \"tokens\"").unwrap();
    assert_eq!(config.grpc.listen, "0.0.0.0:50051".parse().unwrap());
    assert_eq!(config.grpc.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES);
    assert_eq!(config.grpc.tls, None);
    assert!(config.metrics.enabled);
    assert_eq!(config.metrics.listen, "0.0.0.0:9090".parse().unwrap());
    assert_eq!(config.log.format, LogFormat::Human);
    assert_eq!(config.extra, NoExtra {});
}

#[test]
fn explicit_values_beat_the_environment_and_defaults_lose_to_the_file() {
    let config: ServiceConfig = ConfigLoader::new()
        .toml("[grpc]\nlisten = \"127.0.0.1:1\"")
        .env([("CITYCHAIN_GRPC__LISTEN", "127.0.0.1:2")])
        .default_value("service.name", "from-default")
        .default_value("grpc.listen", "127.0.0.1:3")
        .set("grpc.max_request_bytes", 4096)
        .set("grpc.listen", "127.0.0.1:4")
        .load()
        .unwrap();
    assert_eq!(config.service.name, "from-default");
    assert_eq!(config.grpc.listen, "127.0.0.1:4".parse().unwrap());
    assert_eq!(config.grpc.max_request_bytes, 4096);
}

#[test]
fn a_bad_value_is_refused_naming_the_key_and_the_value() {
    let err =
        load_toml("[service]\nname = \"x\"\n[grpc]\nlisten = \"not-an-address\"").unwrap_err();
    match &err {
        ConfigError::Invalid { key, value, .. } => {
            assert_eq!(key, "grpc.listen");
            assert_eq!(value, "\"not-an-address\"");
        }
        other => panic!("expected Invalid for grpc.listen, got {other:?}"),
    }
    assert!(err.to_string().contains("grpc.listen"), "{err}");
}

#[test]
fn a_bad_value_from_the_environment_names_the_key() {
    let err = ConfigLoader::new()
        .toml("[service]\nname = \"x\"")
        .env([("CITYCHAIN_GRPC__MAX_REQUEST_BYTES", "lots")])
        .load::<NoExtra>()
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, value, .. }
            if key == "grpc.max_request_bytes" && value == "\"lots\""),
        "{err:?}"
    );
}

#[test]
fn out_of_range_values_are_refused() {
    let cases = [
        ("[grpc]\nmax_request_bytes = 0", "grpc.max_request_bytes"),
        ("[service]\nname = \"  \"", "service.name"),
        ("[log]\nfilter = \"[[\"", "log.filter"),
        ("[log]\nformat = \"xml\"", "log.format"),
        ("[grpc]\nlisten = \"127.0.0.1:9090\"", "metrics.listen"),
        ("[metrics]\nlisten = \"0.0.0.0:50051\"", "metrics.listen"),
    ];
    for (text, expected) in cases {
        let text = if text.contains("[service]") {
            text.to_owned()
        } else {
            format!("[service]\nname = \"x\"\n{text}")
        };
        let err = load_toml(&text).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == expected),
            "{text}: {err:?}"
        );
    }
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let cases = [
        ("[service]\nname = \"x\"\nid = 1", "service.id"),
        (
            "[service]\nname = \"x\"\n[grpc]\nlistn = \"127.0.0.1:1\"",
            "grpc.listn",
        ),
        (
            "[service]\nname = \"x\"\n[grpc.tls]\ncert = \"c\"\nkey = \"k\"\nclient_cert = \"x\"",
            "grpc.tls.client_cert",
        ),
        (
            "[service]\nname = \"x\"\n[nats]\nurl = \"nats://x\"",
            "nats",
        ),
        ("top = 1\n[service]\nname = \"x\"", "top"),
    ];
    for (text, expected) in cases {
        let err = load_toml(text).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Unknown { key } if key == expected),
            "{text}: {err:?}"
        );
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[test]
fn an_unknown_key_set_from_the_environment_is_refused_too() {
    let err = ConfigLoader::new()
        .toml("[service]\nname = \"x\"")
        .env([("CITYCHAIN_METRICS__LISTN", "0.0.0.0:1")])
        .load::<NoExtra>()
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Unknown { key } if key == "metrics.listn"),
        "{err:?}"
    );
}

#[test]
fn missing_required_keys_are_named() {
    let cases = [
        ("[grpc]\nlisten = \"127.0.0.1:1\"", "service.name"),
        (
            "[service]\nname = \"x\"\n[grpc.tls]\ncert = \"/c.pem\"",
            "grpc.tls.key",
        ),
    ];
    for (text, expected) in cases {
        let err = load_toml(text).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Missing { key } if key == expected),
            "{text}: {err:?}"
        );
    }
}

#[test]
fn tls_paths_are_read_as_given() {
    let config = load_toml(
        "[service]\nname = \"x\"\n[grpc.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\nclient_ca = \"/ca.pem\"",
    )
    .unwrap();
    let tls = config.grpc.tls.unwrap();
    assert_eq!(tls.cert.to_str(), Some("/c.pem"));
    assert_eq!(tls.key.to_str(), Some("/k.pem"));
    assert_eq!(tls.client_ca.unwrap().to_str(), Some("/ca.pem"));
}

#[test]
fn a_service_embeds_its_own_sections_and_they_take_overrides() {
    let config: ServiceConfig<LedgerSections> = ConfigLoader::new()
        .toml("[service]\nname = \"ledger\"\n[nats]\nurl = \"nats://file:4222\"")
        .env([
            ("CITYCHAIN_NATS__URL", "nats://env:4222"),
            ("CITYCHAIN_NATS__STREAM_REPLICAS", "3"),
            ("CITYCHAIN_CHAIN__ID", "citychain-test"),
        ])
        .load()
        .unwrap();
    assert_eq!(config.extra.nats.url, "nats://env:4222");
    assert_eq!(config.extra.nats.stream_replicas, 3);
    assert_eq!(config.extra.chain.unwrap().id, "citychain-test");
}

#[test]
fn a_service_section_reports_its_own_unknown_missing_and_bad_keys() {
    let load = |text: &str| {
        ConfigLoader::new()
            .toml(format!("[service]\nname = \"ledger\"\n{text}"))
            .env(NO_ENV)
            .load::<LedgerSections>()
            .unwrap_err()
    };
    let err = load("[nats]\nurl = \"n\"\nurll = \"typo\"");
    assert!(
        matches!(&err, ConfigError::Unknown { key } if key == "nats.urll"),
        "{err:?}"
    );

    let err = load("[nats]\nstream_replicas = 1");
    assert!(
        matches!(&err, ConfigError::Missing { key } if key == "nats.url"),
        "{err:?}"
    );

    let err = load("[nats]\nurl = \"n\"\nstream_replicas = 300");
    assert!(
        matches!(&err, ConfigError::Invalid { key, value, .. }
            if key == "nats.stream_replicas" && value == "300"),
        "{err:?}"
    );

    let err = load("[nats]\nurl = \"n\"\n[chain]\nid = \"c\"\nheight = 1");
    assert!(
        matches!(&err, ConfigError::Unknown { key } if key == "chain.height"),
        "{err:?}"
    );
}

#[test]
fn a_file_that_is_missing_or_not_toml_is_reported() {
    let err = ServiceConfig::<NoExtra>::load("/nonexistent/citychain.toml").unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");

    let err = load_toml("[service\nname = 1").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
}

#[test]
fn an_override_below_a_plain_value_is_refused_naming_the_variable() {
    let err = ConfigLoader::new()
        .toml("[service]\nname = \"x\"")
        .env([("CITYCHAIN_SERVICE__NAME__INNER", "y")])
        .load::<NoExtra>()
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Env { var, .. } if var == "CITYCHAIN_SERVICE__NAME__INNER"),
        "{err:?}"
    );
}
