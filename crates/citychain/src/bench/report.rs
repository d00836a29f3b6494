//! A run's figures, how they are computed from what was sent and seen, and how they are
//! printed: a table for people, one JSON object per run for tools.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::load::SendReport;
use super::observe::Observed;

/// Everything reported about one run. Latencies are `None` when the percentile falls among
/// transactions that never committed.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Validators in the cluster.
    pub validators: usize,
    /// Mean encoded size of a signed transaction.
    pub tx_bytes: f64,
    /// How long transactions were offered.
    pub duration_s: f64,
    /// The rate asked for.
    pub offered_tx_per_s: f64,
    /// The rate the publisher achieved.
    pub sent_tx_per_s: f64,
    /// Transactions offered.
    pub offered_txs: usize,
    /// Publishes that failed or were not acknowledged.
    pub publish_failures: usize,
    /// How far behind its schedule the publisher fell, at most.
    pub max_send_lag_ms: f64,
    /// Transactions seen in CHAIN.
    pub committed_txs: usize,
    /// Offered transactions not in CHAIN when the run ended.
    pub uncommitted_txs: usize,
    /// Committed transactions per second (see the module documentation of `bench`).
    pub committed_tx_per_s: f64,
    /// Latency percentiles from the intended send time to the block's arrival in CHAIN.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// The largest latency of a committed transaction.
    pub max_ms: Option<f64>,
    /// Of committed transactions: from the intended send time to the time the proposer gave
    /// the block (publishing, MEMPOOL, the validators' intake, waiting for the next height).
    pub p50_to_proposal_ms: Option<f64>,
    /// 99th percentile of the same.
    pub p99_to_proposal_ms: Option<f64>,
    /// Of committed transactions: from the block's proposal to its arrival in CHAIN
    /// (spreading and checking the block, voting, storing, appending).
    pub p50_proposal_to_chain_ms: Option<f64>,
    /// 99th percentile of the same.
    pub p99_proposal_to_chain_ms: Option<f64>,
    /// Blocks that carried workload transactions.
    pub blocks: usize,
    /// Mean transactions per such block.
    pub mean_block_txs: f64,
    /// Most transactions in one block.
    pub max_block_txs: usize,
    /// Mean time between blocks that carried workload transactions.
    pub mean_block_interval_ms: f64,
    /// Blocks of the run decided after round 0 (a round change: a timeout or a refused
    /// proposal).
    pub blocks_after_round_0: usize,
    /// The deepest mempool any validator reported while the run went on.
    pub max_mempool_depth: u64,
    /// CPU time of this process (validators, load and reader) per second of the run.
    pub bench_cpu_cores: Option<f64>,
    /// CPU time of the nats-server per second of the run.
    pub nats_cpu_cores: Option<f64>,
    /// Cores of this machine.
    pub cores: usize,
    /// Signatures verified per second on all cores by the batch verifier.
    pub verify_all_cores_tx_per_s: f64,
    /// That rate divided by the validators, which share this machine's cores: each one
    /// verifies every transaction at least once.
    pub verify_ceiling_tx_per_s: f64,
    /// Committed throughput as a share of the ceiling.
    pub share_of_ceiling: f64,
}

/// The inputs a [`RunResult`] is computed from.
pub struct RunInputs<'a> {
    pub validators: usize,
    pub tx_bytes: f64,
    pub rate: f64,
    pub duration: f64,
    pub t0: Instant,
    /// `t0` on the wall clock, milliseconds since the Unix epoch.
    pub t0_unix_ms: f64,
    pub sent: &'a SendReport,
    pub seen: &'a Observed,
    pub max_mempool_depth: u64,
    pub bench_cpu_cores: Option<f64>,
    pub nats_cpu_cores: Option<f64>,
    pub cores: usize,
    pub verify_all_cores_tx_per_s: f64,
}

/// Nearest-rank percentile `p` of `sorted`, where `missing` more values are infinitely large.
fn percentile(sorted: &[f64], missing: usize, p: f64) -> Option<f64> {
    let n = sorted.len() + missing;
    if n == 0 {
        return None;
    }
    let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// `value` with `digits` decimals, so the JSON carries no false precision.
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

impl RunResult {
    /// Computes the figures of one run.
    pub fn compute(input: RunInputs<'_>) -> RunResult {
        let RunInputs {
            validators,
            tx_bytes,
            rate,
            duration,
            t0,
            t0_unix_ms,
            sent,
            seen,
            ..
        } = input;
        let offered = seen.committed_in.len();
        let mut latencies = Vec::with_capacity(offered);
        let mut to_proposal = Vec::with_capacity(offered);
        let mut after_proposal = Vec::with_capacity(offered);
        let mut last_commit = None::<Instant>;
        for (i, block) in seen.committed_in.iter().enumerate() {
            let Some(block) = block.and_then(|b| seen.blocks.get(b as usize)) else {
                continue;
            };
            let offset = Duration::from_secs_f64(i as f64 / rate);
            let latency = ms(block.at.saturating_duration_since(t0 + offset));
            // The proposer's clock is this machine's clock.
            let waited =
                (block.proposed_unix_ms as f64 - (t0_unix_ms + ms(offset))).clamp(0.0, latency);
            latencies.push(latency);
            to_proposal.push(waited);
            after_proposal.push(latency - waited);
            last_commit = Some(last_commit.map_or(block.at, |l| l.max(block.at)));
        }
        for values in [&mut latencies, &mut to_proposal, &mut after_proposal] {
            values.sort_by(f64::total_cmp);
        }
        let committed = latencies.len();
        let missing = offered - committed;
        let committed_tx_per_s = match last_commit {
            Some(last) => committed as f64 / last.duration_since(t0).as_secs_f64().max(1e-3),
            None => 0.0,
        };

        let loaded: Vec<_> = seen
            .blocks
            .iter()
            .filter(|b| b.at >= t0 && last_commit.is_some_and(|l| b.at <= l) && b.txs > 0)
            .collect();
        let blocks = loaded.len();
        let mean_block_interval_ms = match (loaded.first(), loaded.last()) {
            (Some(first), Some(last)) if blocks > 1 => {
                ms(last.at.duration_since(first.at)) / (blocks - 1) as f64
            }
            _ => 0.0,
        };
        let blocks_after_round_0 = seen
            .blocks
            .iter()
            .filter(|b| b.at >= t0 && b.round > 0)
            .count();

        let send_window = sent.elapsed.as_secs_f64().max(duration);
        let verify_ceiling = input.verify_all_cores_tx_per_s / validators as f64;
        let share = if verify_ceiling > 0.0 {
            committed_tx_per_s / verify_ceiling
        } else {
            0.0
        };
        RunResult {
            validators,
            tx_bytes: round(tx_bytes, 1),
            duration_s: duration,
            offered_tx_per_s: rate,
            sent_tx_per_s: round(sent.sent as f64 / send_window, 1),
            offered_txs: offered,
            publish_failures: sent.failed,
            max_send_lag_ms: round(ms(sent.max_lag), 1),
            committed_txs: committed,
            uncommitted_txs: missing,
            committed_tx_per_s: round(committed_tx_per_s, 1),
            p50_ms: percentile(&latencies, missing, 50.0).map(|v| round(v, 1)),
            p90_ms: percentile(&latencies, missing, 90.0).map(|v| round(v, 1)),
            p99_ms: percentile(&latencies, missing, 99.0).map(|v| round(v, 1)),
            max_ms: latencies.last().map(|v| round(*v, 1)),
            p50_to_proposal_ms: percentile(&to_proposal, 0, 50.0).map(|v| round(v, 1)),
            p99_to_proposal_ms: percentile(&to_proposal, 0, 99.0).map(|v| round(v, 1)),
            p50_proposal_to_chain_ms: percentile(&after_proposal, 0, 50.0).map(|v| round(v, 1)),
            p99_proposal_to_chain_ms: percentile(&after_proposal, 0, 99.0).map(|v| round(v, 1)),
            blocks,
            mean_block_txs: round(
                if blocks == 0 {
                    0.0
                } else {
                    loaded.iter().map(|b| b.txs).sum::<usize>() as f64 / blocks as f64
                },
                1,
            ),
            max_block_txs: loaded.iter().map(|b| b.txs).max().unwrap_or(0),
            mean_block_interval_ms: round(mean_block_interval_ms, 1),
            blocks_after_round_0,
            max_mempool_depth: input.max_mempool_depth,
            bench_cpu_cores: input.bench_cpu_cores.map(|v| round(v, 2)),
            nats_cpu_cores: input.nats_cpu_cores.map(|v| round(v, 2)),
            cores: input.cores,
            verify_all_cores_tx_per_s: round(input.verify_all_cores_tx_per_s, 0),
            verify_ceiling_tx_per_s: round(verify_ceiling, 0),
            share_of_ceiling: round(share, 4),
        }
    }

    /// One line of JSON.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"))
    }
}

/// The header of the per-block CSV.
pub const BLOCKS_CSV_HEADER: &str = "run,offered_tx_per_s,height,proposed_ms,arrived_ms,txs,round";

/// One CSV line per block seen in a run; times are milliseconds since the run's first
/// intended send (negative for the blocks before it).
pub fn block_rows(run: usize, rate: f64, seen: &Observed, t0: Instant, t0_unix_ms: f64) -> String {
    let mut out = String::new();
    for b in &seen.blocks {
        let arrived = if b.at >= t0 {
            ms(b.at.duration_since(t0))
        } else {
            -ms(t0.duration_since(b.at))
        };
        out.push_str(&format!(
            "{run},{rate},{},{:.1},{arrived:.1},{},{}\n",
            b.height,
            b.proposed_unix_ms as f64 - t0_unix_ms,
            b.txs,
            b.round
        ));
    }
    out
}

fn latency(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
}

fn cpu(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// The table of a sweep, headed by what every run shares.
pub fn table(results: &[RunResult]) -> String {
    let mut out = String::new();
    if let Some(first) = results.first() {
        out.push_str(&format!(
            "{} validators, {:.0}-byte transactions, {} cores; batch verification {:.0} tx/s on \
             all cores, ceiling {:.0} tx/s per validator\n\n",
            first.validators,
            first.tx_bytes,
            first.cores,
            first.verify_all_cores_tx_per_s,
            first.verify_ceiling_tx_per_s,
        ));
    }
    out.push_str(
        "offered/s   sent/s  committed/s  ceiling%  p50 ms  p90 ms  p99 ms  uncommitted  \
         blocks  tx/block  round>0  mempool  cpu bench  cpu nats\n",
    );
    for r in results {
        out.push_str(&format!(
            "{:>9.0} {:>8.0} {:>12.0} {:>8.0}% {:>7} {:>7} {:>7} {:>12} {:>7} {:>9.0} {:>8} \
             {:>8} {:>10} {:>9}\n",
            r.offered_tx_per_s,
            r.sent_tx_per_s,
            r.committed_tx_per_s,
            r.share_of_ceiling * 100.0,
            latency(r.p50_ms),
            latency(r.p90_ms),
            latency(r.p99_ms),
            r.uncommitted_txs,
            r.blocks,
            r.mean_block_txs,
            r.blocks_after_round_0,
            r.max_mempool_depth,
            cpu(r.bench_cpu_cores),
            cpu(r.nats_cpu_cores),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_take_the_nearest_rank_and_count_missing_values_as_infinite() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 0, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 0, 100.0), Some(100.0));
        // 100 committed and 2 missing: p99 is rank 101, one of the missing.
        assert_eq!(percentile(&values, 2, 99.0), None);
        assert_eq!(percentile(&values, 2, 50.0), Some(51.0));
        assert_eq!(percentile(&[], 0, 50.0), None);
        assert_eq!(percentile(&[], 3, 50.0), None);
    }
}
