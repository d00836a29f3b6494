//! Deterministic simulations of a four-validator network, named by fault model.
//!
//! Replay one seed with `SIM_SEED=<seed> cargo test -p citychain-consensus-domain n4f1`.

use citychain_consensus_domain::sim::{SimConfig, SimReport, run, run_with};

fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a u64")],
        Err(_) => default.collect(),
    }
}

#[test]
fn n4f1_sim_500_seeds() {
    let mut failures: Vec<SimReport> = Vec::new();
    let mut evidence = 0;
    let mut max_virtual_ms = 0;
    let mut undecodable = 0;
    let mut drops = std::collections::BTreeMap::new();
    let all = seeds(0..500);
    for &seed in &all {
        let report = run(seed, 1);
        evidence += report.evidence;
        undecodable += report.undecodable;
        for (label, count) in &report.drops {
            *drops.entry(*label).or_insert(0u64) += count;
        }
        max_virtual_ms = max_virtual_ms.max(report.virtual_ms);
        if !report.violations.is_empty() {
            failures.push(report);
        }
    }
    let failing: Vec<u64> = failures.iter().map(|r| r.seed).collect();
    assert!(
        failures.is_empty(),
        "violations with 1 Byzantine of 4 at seeds {failing:?} (replay with SIM_SEED=<seed>); first: {:?}",
        failures.first().map(|r| &r.violations)
    );
    println!(
        "n4f1: evidence {evidence}, undecodable {undecodable}, drops {drops:?}, slowest run {max_virtual_ms} virtual ms"
    );
    if all.len() > 1 {
        assert!(
            evidence > 0,
            "equivocating Byzantine validators never produced evidence"
        );
        // Every kind of junk the adversary sends must have been seen and refused.
        for label in [
            "non_validator",
            "bad_signature",
            "far_future_height",
            "wrong_proposer",
            "wrong_chain",
        ] {
            assert!(drops.contains_key(label), "no {label} drop in {drops:?}");
        }
        assert!(undecodable > 0, "no undecodable message was injected");
    }
}

#[test]
fn n4f0_sim_progresses() {
    for seed in seeds(0..50) {
        let report = run(seed, 0);
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}",
            report.violations
        );
    }
}

#[test]
fn n4f2_sim_finds_a_fork() {
    // With 2 Byzantine of 4 (more than f = 1) safety is not guaranteed, and the checker must
    // be able to see it fail.
    let found = (0..50u64).map(|seed| run(seed, 2)).find(SimReport::forked);
    let report = found.expect("no fork found with 2 Byzantine of 4 in 50 seeds");
    println!(
        "n4f2: fork at seed {}: {:?}",
        report.seed, report.violations
    );
}

#[test]
fn a_seed_replays_exactly() {
    let a = run(7, 1);
    let b = run(7, 1);
    assert_eq!(a.honest_heights, b.honest_heights);
    assert_eq!(a.delivered, b.delivered);
    assert_eq!(a.virtual_ms, b.virtual_ms);
    assert_eq!(a.drops, b.drops);
}

/// Honest validators crash and restart mid-height, given back only their decided blocks and
/// what they signed: none of them ever signs two conflicting messages, and safety holds.
#[test]
fn n4f1_sim_crash_restarts_never_equivocate() {
    let mut failures = Vec::new();
    for seed in seeds(0..150) {
        let mut cfg = SimConfig::n4(seed, 1);
        cfg.restart_every_ms = 2_000;
        let report = run_with(cfg);
        if !report.violations.is_empty() {
            failures.push((seed, report.violations));
        }
    }
    assert!(
        failures.is_empty(),
        "violations with crash-restarts at seeds {:?} (replay with SIM_SEED=<seed>); first: {:?}",
        failures.iter().map(|f| f.0).collect::<Vec<_>>(),
        failures.first()
    );
}
