//! `citychain dev` and `citychain demo` run as a user runs them, for the scenarios that check
//! the network they bring up: start dev and wait for `ready`, run the demo, run any command
//! and check it succeeded, stop dev with Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::citychain_binary;

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `citychain` with `args`; returns its standard output after checking it succeeded.
pub fn citychain(args: &[&str]) -> String {
    let out = Command::new(citychain_binary())
        .args(args)
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(
        out.status.success(),
        "citychain {}: {said}\n{}",
        args.join(" "),
        text(&out.stderr)
    );
    said
}

/// A running `citychain dev`, killed if the test fails half way.
#[derive(Debug)]
pub struct Dev {
    /// The dev process.
    pub child: Child,
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

pub fn start(home: &Path, extra: &[&str]) -> Dev {
    let port = base_port().to_string();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.with_extension("stderr"))
        .unwrap();
    let mut child = Command::new(citychain_binary())
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

pub fn stop(mut dev: Dev) {
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
pub fn demo(home: &Path) -> String {
    demo_scraped(home, |_| ()).0
}

/// Runs the demo like [`demo`], calling `scrape` every 200 ms while it runs; returns the
/// demo's output and what `scrape` returned each time.
pub fn demo_scraped<T>(home: &Path, scrape: impl Fn(&Path) -> T) -> (String, Vec<T>) {
    let child = Command::new(citychain_binary())
        .args(["demo", "--home", home.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (done_tx, done) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done_tx.send(());
        out
    });
    let mut scrapes = Vec::new();
    while done.recv_timeout(Duration::from_millis(200)).is_err() {
        scrapes.push(scrape(home));
    }
    let out = waiter.join().unwrap().unwrap();
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", text(&out.stderr));
    assert!(said.contains("demo complete"), "{said}");
    (said, scrapes)
}

/// Runs `citychain` with `args` expecting it to fail; returns what it printed on standard
/// error.
pub fn citychain_fails(args: &[&str]) -> String {
    let out = Command::new(citychain_binary())
        .args(args)
        .output()
        .unwrap();
    let said = text(&out.stderr);
    assert!(
        !out.status.success(),
        "citychain {} succeeded: {}",
        args.join(" "),
        text(&out.stdout)
    );
    said
}
