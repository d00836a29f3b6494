//! `citychain bench consensus` end to end at a tiny load: it starts its own nats-server and
//! validators, commits what it offers, and prints one JSON object per run with the figures
//! the documentation promises.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn consensus_bench_commits_a_small_load_and_prints_json_lines() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_citychain"))
        .args([
            "bench",
            "consensus",
            "--rate",
            "200",
            "--duration",
            "2",
            "--drain",
            "10",
            "--verify-secs",
            "0.5",
            "--signers",
            "64",
            "--json",
        ])
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a 2 s run took {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("[1/1]"),
        "a progress line per run on stderr:\n{stderr}"
    );

    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object for one run:\n{stdout}");
    let run: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON object");

    let number = |field: &str| {
        run.get(field)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("{field} is a number in {run}"))
    };
    assert_eq!(number("validators"), 4.0);
    let tx_bytes = number("tx_bytes");
    assert!((297.0..=303.0).contains(&tx_bytes), "tx_bytes {tx_bytes}");
    assert_eq!(number("offered_tx_per_s"), 200.0);
    assert_eq!(number("offered_txs"), 400.0);
    assert_eq!(
        number("committed_txs"),
        400.0,
        "everything commits at 200 tx/s"
    );
    assert_eq!(number("uncommitted_txs"), 0.0);
    let committed = number("committed_tx_per_s");
    assert!(
        committed > 100.0 && committed <= 210.0,
        "committed {committed}"
    );
    let (p50, p90, p99) = (number("p50_ms"), number("p90_ms"), number("p99_ms"));
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{p50} {p90} {p99}");
    assert!(number("verify_ceiling_tx_per_s") > 0.0);
    assert!(number("share_of_ceiling") > 0.0);
}
