//! `citychain dev` and `citychain demo` as a user runs them: dev brings the whole network up
//! and prints `ready`; the demo runs to the end against it and its outcome is checked; a killed
//! service is reported and restarted and the demo still completes; Ctrl-C stops everything;
//! a second run resumes the same chain; `--reset` starts a new one. Each service's `/metrics`
//! is scraped before, during and after the demo's load.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use citychain_scenarios::dev::{citychain, demo, demo_scraped, start, stop};
use citychain_telemetry::exposition::samples;

/// The balance changes the demo printed, by member.
fn deltas(said: &str) -> Vec<(String, i64)> {
    said.lines()
        .filter(|l| l.trim_end().ends_with(')') && l.contains(" -> "))
        .map(|l| {
            let member = l.split_whitespace().next().unwrap().to_string();
            let delta = l.rsplit('(').next().unwrap().trim_end_matches(')');
            (member, delta.parse().unwrap())
        })
        .collect()
}

/// Checks what the demo did, not only that it finished: every balance moved by the rewards
/// and charges of the scenario, the citizen saw each committed read of this run with a
/// verified proof, and the chain and the token journal checked out offline.
fn check_outcome(said: &str) {
    let expected = [
        ("dept.surveying", 7),
        ("dept.housing", 11),
        ("dept.public-security", 5),
        ("dept.tax", 13),
        ("dept.real-estate", 12),
        ("bank.city-commercial", 0),
    ]
    .map(|(m, d)| (m.to_string(), d));
    assert_eq!(deltas(said), expected, "{said}");
    assert!(said.contains("(7 receipts from this demo"), "{said}");
    assert_eq!(said.matches("proof verified").count(), 7, "{said}");
    assert_eq!(
        said.matches("key released, decrypted, signature of")
            .count(),
        6,
        "{said}"
    );
    assert!(
        said.contains("payment failed: the read costs 3, the reader had 0, 3 short"),
        "{said}"
    );
    assert!(said.contains("bank.city-commercial is a bank"), "{said}");
    assert!(said.contains("verified from genesis"), "{said}");
    assert!(said.contains("the service agrees with the chain"), "{said}");
}

/// How many receipts the citizen has in all.
fn receipts(said: &str) -> usize {
    let line = said
        .lines()
        .find(|l| l.contains(" in all for "))
        .unwrap_or_else(|| panic!("no receipts line in:\n{said}"));
    line.split(", ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

/// The platforms' commands against the network under `home`, after one demo.
fn check_cli(home: &Path) {
    let home_arg = home.to_str().unwrap();
    let found = citychain(&[
        "licence",
        "search",
        "--home",
        home_arg,
        "--type",
        "housing.filing",
    ]);
    assert_eq!(found.lines().count(), 1, "{found}");
    assert!(
        found.contains("dept.housing") && found.contains(CITIZEN),
        "{found}"
    );
    let all = citychain(&[
        "licence",
        "search",
        "--home",
        home_arg,
        "--subject",
        CITIZEN,
    ]);
    assert_eq!(all.lines().count(), 4, "{all}");

    let balance = citychain(&["tokens", "balance", "dept.housing", "--home", home_arg]);
    assert!(balance.starts_with("member:dept.housing 11 "), "{balance}");
    let statement = citychain(&["tokens", "statement", "dept.housing", "--home", home_arg]);
    // The filing's reward and the two paid reads of it.
    assert_eq!(statement.lines().count(), 3, "{statement}");
    assert!(
        statement.contains("reward") && statement.contains("+3"),
        "{statement}"
    );
    let supply = citychain(&["tokens", "supply", "--home", home_arg]);
    assert!(supply.starts_with("minted 48 circulating 48"), "{supply}");

    // The citizen's receipts, each proof checked offline by the command.
    let citizen_key = home.join("keys").join("citizen.json");
    let receipts = citychain(&[
        "licence",
        "receipts",
        "--home",
        home_arg,
        "--key",
        citizen_key.to_str().unwrap(),
        "--subject",
        CITIZEN,
    ]);
    assert_eq!(receipts.matches("proof verified").count(), 7, "{receipts}");

    // A department reads a record from the command line and gets the department's bytes.
    let record = found.split_whitespace().nth(2).unwrap();
    let key = home.join("keys").join("dept.surveying.json");
    let read = citychain(&[
        "licence",
        "read",
        "--home",
        home_arg,
        "--key",
        key.to_str().unwrap(),
        "--record",
        record,
        "--purpose",
        "boundary check",
    ]);
    assert!(read.contains("\"contract_no\":\"HZ-"), "{read}");

    // The audit from an export agrees with the service.
    let export = home.join("cli.export");
    citychain(&[
        "chain",
        "export",
        "--home",
        home_arg,
        "--out",
        export.to_str().unwrap(),
    ]);
    let genesis = home.join("genesis.json");
    let audit = citychain(&[
        "tokens",
        "audit",
        genesis.to_str().unwrap(),
        export.to_str().unwrap(),
        "--home",
        home_arg,
    ]);
    assert!(
        audit.contains("the service agrees with the chain"),
        "{audit}"
    );
}

const CITIZEN: &str = "citizen:330102-19900101-0042";

/// Every service's `/metrics` text, by service name, from the URLs `endpoints.json` lists.
fn scrape_all(home: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(home.join("endpoints.json")).unwrap();
    let endpoints: serde_json::Value = serde_json::from_str(&text).unwrap();
    let services = endpoints["services"].as_object().unwrap();
    services
        .iter()
        .map(|(name, e)| {
            let url = e["metrics"].as_str().unwrap();
            (name.clone(), scrape(url))
        })
        .collect()
}

/// One plain HTTP/1.0 GET of `url` (`http://HOST:PORT/PATH`); the body of a 200 answer.
fn scrape(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("{url}: {e}"));
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{url}: {head}"
    );
    body.to_owned()
}

/// The sum of metric `name`'s samples whose labels include `labels`, or `None` when the
/// exposition has no such sample.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = samples(text, name, labels);
    (!found.is_empty()).then(|| found.iter().sum())
}

/// Checks each service's metrics across the demo's load: the RPC counters of the services
/// the demo calls and every validator's height grew, each service reports its own
/// instruments, and every metric the Grafana dashboard queries exists.
fn check_metrics(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) {
    let grew = |service: &str, name: &str, labels: &[(&str, &str)]| {
        let was = metric(&before[service], name, labels).unwrap_or(0.0);
        let is = metric(&after[service], name, labels)
            .unwrap_or_else(|| panic!("{service} exposes no {name}{labels:?}"));
        assert!(is > was, "{service}'s {name}{labels:?} stayed at {was}");
    };
    for service in ["ledger", "licence", "tokens"] {
        grew(service, "rpc_server_duration_seconds_count", &[]);
        grew(
            service,
            "rpc_server_duration_seconds_count",
            &[("rpc_grpc_status_code", "0")],
        );
        grew(service, &format!("{service}_applied_height"), &[]);
        let lag = [("service", service)];
        assert!(
            metric(&after[service], "projection_lag", &lag).is_some(),
            "{service}"
        );
    }
    // The demo's refused reads are errors, counted apart.
    grew(
        "licence",
        "rpc_server_duration_seconds_count",
        &[("rpc_grpc_status_code", "7")],
    );
    grew("ledger", "jetstream_ack_duration_seconds_count", &[]);
    let validators: Vec<&String> = after
        .keys()
        .filter(|k| k.starts_with("consensus"))
        .collect();
    assert_eq!(validators.len(), 4, "{:?}", after.keys());
    for validator in validators {
        for name in [
            "consensus_height",
            "consensus_committed_transactions_total",
            "consensus_commit_latency_seconds_count",
            "consensus_rounds_per_height_count",
            "jetstream_publish_duration_seconds_count",
        ] {
            grew(validator, name, &[]);
        }
        for name in ["consensus_round", "consensus_mempool_depth"] {
            assert!(
                metric(&after[validator], name, &[]).is_some(),
                "{validator}: {name}"
            );
        }
    }
    let dashboard = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/observability/grafana-dashboard.json"),
    )
    .unwrap();
    let exposed: String = after.values().map(String::as_str).collect();
    let queried: BTreeSet<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            [
                "rpc_",
                "consensus_",
                "projection_",
                "jetstream_",
                "ledger_",
                "licence_",
                "tokens_",
            ]
            .iter()
            .any(|p| w.starts_with(p))
        })
        .collect();
    assert!(queried.len() >= 10, "{queried:?}");
    // Metric names start a line; label names follow a `{` or a `,`.
    for name in queried {
        let found = exposed.lines().any(|l| {
            l.starts_with(name)
                || l.contains(&format!("{{{name}="))
                || l.contains(&format!(",{name}="))
        });
        assert!(
            found,
            "the dashboard queries {name}, which no service exposes"
        );
    }
}

/// Checks the scrapes taken while the demo ran: between two of them the ledger's RPC counter
/// and a validator's height grew, so `/metrics` moves with the load, not only after it.
fn check_growth_under_load(during: &[BTreeMap<String, String>]) {
    assert!(
        during.len() >= 2,
        "only {} scrapes during the demo",
        during.len()
    );
    let series = |service: &str, name: &str| -> Vec<f64> {
        during
            .iter()
            .map(|scrape| metric(&scrape[service], name, &[]).unwrap_or(0.0))
            .collect()
    };
    let rose = |values: &[f64]| values.windows(2).any(|w| w[1] > w[0]);
    let calls = series("ledger", "rpc_server_duration_seconds_count");
    assert!(
        rose(&calls),
        "the ledger's RPC count never grew during the demo: {calls:?}"
    );
    let validator = during[0]
        .keys()
        .find(|k| k.starts_with("consensus"))
        .unwrap()
        .clone();
    let heights = series(&validator, "consensus_height");
    assert!(
        rose(&heights),
        "{validator}'s height never grew during the demo: {heights:?}"
    );
}

fn pid(home: &Path, service: &str) -> u32 {
    let text = std::fs::read_to_string(home.join("endpoints.json")).unwrap();
    let endpoints: serde_json::Value = serde_json::from_str(&text).unwrap();
    endpoints["services"][service]["pid"].as_u64().unwrap() as u32
}

#[test]
fn dev_runs_the_demo_survives_a_killed_service_resumes_and_resets() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");

    let dev = start(&home, &[]);
    let idle = scrape_all(&home);
    let (first, during) = demo_scraped(&home, scrape_all);
    check_metrics(&idle, &scrape_all(&home));
    check_growth_under_load(&during);
    check_outcome(&first);
    assert_eq!(receipts(&first), 7, "{first}");
    for file in [
        "genesis.json",
        "endpoints.json",
        "logs/ledger.log",
        "logs/licence.log",
    ] {
        assert!(home.join(file).exists(), "{file} is missing");
    }
    check_cli(&home);

    // Killed services are reported and restarted; the demo still completes, with the same
    // results.
    let killed: Vec<(&str, u32)> = ["licence", "tokens", "ledger"]
        .into_iter()
        .map(|s| (s, pid(&home, s)))
        .collect();
    for (_, pid) in &killed {
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
    }
    let second = demo(&home);
    check_outcome(&second);
    assert_eq!(receipts(&second), 15, "{second}");
    let said = std::fs::read_to_string(home.with_extension("stderr")).unwrap();
    for (service, old) in &killed {
        assert!(said.contains(&format!("[dev] {service} exited")), "{said}");
        assert_ne!(pid(&home, service), *old, "a new {service} process runs");
    }
    stop(dev);

    // A second run keeps the chain.
    let dev = start(&home, &[]);
    let third = demo(&home);
    check_outcome(&third);
    assert_eq!(receipts(&third), 22, "{third}");
    stop(dev);

    // --reset starts over.
    let dev = start(&home, &["--reset"]);
    let fresh = demo(&home);
    check_outcome(&fresh);
    assert_eq!(receipts(&fresh), 7, "{fresh}");
    stop(dev);
}
