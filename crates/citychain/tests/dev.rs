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

/// How many transactions about the demo's citizen the citizen saw.
fn listed(said: &str) -> usize {
    let line = said
        .lines()
        .find(|l| l.contains(" listed, "))
        .unwrap_or_else(|| panic!("no listing in:\n{said}"));
    line.trim()
        .trim_start_matches('(')
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn ledger_pid(home: &Path) -> u32 {
    let text = std::fs::read_to_string(home.join("endpoints.json")).unwrap();
    let endpoints: serde_json::Value = serde_json::from_str(&text).unwrap();
    endpoints["services"]["ledger"]["pid"].as_u64().unwrap() as u32
}

#[test]
fn dev_runs_the_demo_survives_a_killed_service_resumes_and_resets() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");

    let dev = start(&home, &[]);
    let first = demo(&home);
    assert_eq!(listed(&first), 3, "{first}");
    assert!(first.contains("of the genesis set: verified"), "{first}");
    assert!(first.contains("verified from genesis"), "{first}");
    for file in ["genesis.json", "endpoints.json", "logs/ledger.log"] {
        assert!(home.join(file).exists(), "{file} is missing");
    }

    // A killed service is reported and restarted; the demo still completes.
    let killed = ledger_pid(&home);
    Command::new("kill")
        .args(["-KILL", &killed.to_string()])
        .status()
        .unwrap();
    let second = demo(&home);
    assert_eq!(listed(&second), 6, "{second}");
    let said = std::fs::read_to_string(home.with_extension("stderr")).unwrap();
    assert!(said.contains("[dev] ledger exited"), "{said}");
    assert_ne!(ledger_pid(&home), killed, "a new ledger process runs");
    stop(dev);

    // A second run keeps the chain.
    let dev = start(&home, &[]);
    let third = demo(&home);
    assert_eq!(listed(&third), 9, "{third}");
    stop(dev);

    // --reset starts over.
    let dev = start(&home, &["--reset"]);
    let fresh = demo(&home);
    assert_eq!(listed(&fresh), 3, "{fresh}");
    stop(dev);
}
