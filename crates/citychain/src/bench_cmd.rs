//! `citychain bench`: benchmarks that run on this machine.
//!
//! `citychain bench consensus` starts a local nats-server and a cluster of validators in this
//! process, offers signed transactions at constant rates, and reports committed throughput and
//! commit latency next to this machine's signature verification ceiling. How it measures is
//! described in `bench/mod.rs` and in `docs/performance.md`.

#[path = "bench/mod.rs"]
mod bench;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Committed transactions per second and commit latency of local validators.
    ///
    /// Starts a nats-server and the validators on this machine, pre-signs licence reads,
    /// publishes them to MEMPOOL at a constant rate whatever the commits do (open loop), and
    /// measures each transaction's latency from its intended send time to the arrival of its
    /// block in CHAIN. Without --rate it sweeps several rates, each on a fresh cluster.
    Consensus(ConsensusArgs),
}

/// Options of `citychain bench consensus`.
#[derive(Debug, Clone, Args)]
pub struct ConsensusArgs {
    /// Offer this many transactions per second in a single run (default: sweep --rates).
    #[arg(long, value_name = "TX_PER_S")]
    pub rate: Option<f64>,
    /// Rates swept when --rate is not given, comma-separated.
    #[arg(
        long,
        value_name = "TX_PER_S,...",
        value_delimiter = ',',
        default_value = "1000,2000,4000,6000,8000",
        conflicts_with = "rate"
    )]
    pub rates: Vec<f64>,
    /// How long each run offers transactions, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub duration: f64,
    /// After the last send, wait at most this long for the remaining transactions to commit.
    #[arg(long, value_name = "SECS", default_value_t = 15.0)]
    pub drain: f64,
    /// Print one JSON object per run (JSON Lines on stdout) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Validators in the cluster; must be 3f + 1: 1, 4, 7, ...
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub validators: usize,
    /// Size of each encoded signed transaction, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 300)]
    pub tx_bytes: usize,
    /// Distinct signer keys the transactions are spread over.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub signers: usize,
    /// The validators' max_block_txs: transactions per block at most.
    #[arg(long, value_name = "N", default_value_t = 3000)]
    pub max_block_txs: usize,
    /// The validators' heartbeat_ms: how long an idle proposer waits before an empty block.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub heartbeat_ms: u64,
    /// The publisher wakes at most this often and sends every transaction due; 1 sends as
    /// evenly as the timer allows, larger values offer the same rate in bursts.
    #[arg(long, value_name = "MS", default_value_t = 1)]
    pub burst_ms: u64,
    /// How long to measure batch signature verification before the runs, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub verify_secs: f64,
    /// Also write one CSV line per block seen (height, proposal and arrival times, size,
    /// round) of every run to this file.
    #[arg(long, value_name = "FILE")]
    pub blocks_csv: Option<PathBuf>,
    /// Trace every transaction, as in production: each message carries a trace context of
    /// its own (as a traced client's would), the validators open their `consensus.tx` and
    /// `consensus.decide` spans, and every span goes through a batch processor to an
    /// exporter that counts and drops them, so the cost is the tracing's, not a collector's.
    /// Compare with a run without it.
    #[arg(long)]
    pub tracing: bool,
    /// Tokio worker threads shared by the validators and the load (default: one per core,
    /// at least 2).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Consensus(args) => {
            check(&args)?;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let workers = args.workers.unwrap_or(cores).max(2);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name("bench-worker")
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(async move {
                let exported = args.tracing.then(bench::tracing::install).transpose()?;
                bench::consensus::run(args, cores).await?;
                if let Some((guard, spans)) = exported {
                    guard.shutdown().context("cannot flush the spans")?;
                    eprintln!("tracing: {} spans exported", spans.count());
                }
                Ok(())
            })
        }
    }
}

fn check(args: &ConsensusArgs) -> Result<()> {
    let rates = args.rate.map_or_else(|| args.rates.clone(), |r| vec![r]);
    if rates.is_empty() {
        bail!("no rate to run: give --rate or --rates");
    }
    if let Some(bad) = rates.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
        bail!("rate {bad} must be a positive number of transactions per second");
    }
    for (name, secs) in [
        ("--duration", args.duration),
        ("--drain", args.drain),
        ("--verify-secs", args.verify_secs),
    ] {
        if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
            bail!("{name} {secs} must be a positive number of seconds, at most a day");
        }
    }
    if args.validators == 0 || args.validators % 3 != 1 {
        bail!(
            "--validators {} must be 3f + 1: 1, 4, 7, 10, ...",
            args.validators
        );
    }
    if args.signers == 0 {
        bail!("--signers must be at least 1");
    }
    if args.burst_ms == 0 || args.burst_ms > 10_000 {
        bail!("--burst-ms {} must be 1 to 10000", args.burst_ms);
    }
    if args.max_block_txs == 0 {
        bail!("--max-block-txs must be at least 1");
    }
    for rate in rates {
        let count = rate * args.duration;
        if count < 1.0 {
            bail!("{rate} tx/s for {} s offers no transaction", args.duration);
        }
        if count > 10_000_000.0 {
            bail!(
                "{rate} tx/s for {} s is {count:.0} transactions; the benchmark signs them all \
                 in memory first, keep it under 10 million",
                args.duration
            );
        }
    }
    Ok(())
}
