//! `citychain dev` and `citychain demo` as a user runs them: dev brings the whole network up
//! and prints `ready`; the demo runs to the end against it and its outcome is checked; a killed
//! service is reported and restarted and the demo still completes; Ctrl-C stops everything;
//! a second run resumes the same chain; `--reset` starts a new one.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::text;

/// A running `citychain dev`, killed if the test fails half way.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base_port() -> u16 {
    // Below the ephemeral range, so the tests' own nats-servers never take these ports.
    20_000 + (std::process::id() % 1_000) as u16 * 12
}

fn start(home: &Path, extra: &[&str]) -> Dev {
    let port = base_port().to_string();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.with_extension("stderr"))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_citychain"))
        .args([
            "dev",
            "--home",
            home.to_str().unwrap(),
            "--base-port",
            &port,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("citychain dev starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let dev = Dev { child, lines };
    loop {
        match dev.lines.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line == "ready" => return dev,
            Ok(_) => {}
            Err(_) => panic!(
                "citychain dev did not print `ready`; its stderr:\n{}",
                std::fs::read_to_string(home.with_extension("stderr")).unwrap_or_default()
            ),
        }
    }
}

fn stop(mut dev: Dev) {
    let pid = dev.child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    for _ in 0..300 {
        if let Some(status) = dev.child.try_wait().unwrap() {
            assert!(status.success(), "dev exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("citychain dev did not stop on Ctrl-C");
}

/// Runs the demo; returns its output after checking it completed.
fn demo(home: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_citychain"))
        .args(["demo", "--home", home.to_str().unwrap()])
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", text(&out.stderr));
    assert!(said.contains("demo complete"), "{said}");
    said
}

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
        said.matches("key released, decrypted, signature checked")
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
    let first = demo(&home);
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
    assert_eq!(receipts(&second), 14, "{second}");
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
    assert_eq!(receipts(&third), 21, "{third}");
    stop(dev);

    // --reset starts over.
    let dev = start(&home, &["--reset"]);
    let fresh = demo(&home);
    check_outcome(&fresh);
    assert_eq!(receipts(&fresh), 7, "{fresh}");
    stop(dev);
}
