//! `citychain bench consensus`: the verification ceiling first, then one run per rate.
//!
//! Every run gets a fresh cluster (new genesis, nats-server, streams and block stores), so a
//! backlog left by a saturated run cannot slow the next one, and every run starts at height 1:
//! transaction expiries are set from that, with the validators' `max_ttl` raised to cover
//! the heights a run can reach.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use citychain_consensus::{ConsensusSection, Status};
use citychain_kernel::{ChainId, Height, SigningKey};
use tokio::sync::oneshot;

use super::cluster::{Chain, Cluster};
use super::load::{Workload, publish_open_loop, sign_workload};
use super::observe::{Observed, Observer};
use super::report::{BLOCKS_CSV_HEADER, RunInputs, RunResult, block_rows, table};
use super::verify;
use crate::bench_cmd::ConsensusArgs;
use crate::files::random_seed;

/// How long a run may go without a single new commit before it is cut short.
const STALL: Duration = Duration::from_secs(5);

/// Blocks per second a chain cannot exceed: block times are whole milliseconds and strictly
/// increase. Sizes `max_ttl` so that no transaction of a run can expire.
const MAX_BLOCKS_PER_S: f64 = 1_000.0;

/// Runs the benchmark as `args` says and prints its results.
pub async fn run(args: ConsensusArgs, cores: usize) -> Result<()> {
    let rates = args.rate.map_or_else(|| args.rates.clone(), |r| vec![r]);
    let signer_seeds: Vec<[u8; 32]> = (0..args.signers).map(|_| random_seed()).collect();
    let signers: Arc<Vec<SigningKey>> =
        Arc::new(signer_seeds.iter().map(SigningKey::from_seed).collect());

    eprintln!(
        "measuring batch signature verification ({} transactions a batch) on {cores} threads \
         for {} s",
        verify::BATCH,
        args.verify_secs
    );
    let verified = {
        let signers = signers.clone();
        let (tx_bytes, secs) = (args.tx_bytes, args.verify_secs);
        tokio::task::spawn_blocking(move || {
            let chain_id = ChainId::new("citychain-bench")?;
            verify::measure(&chain_id, &signers, tx_bytes, cores, secs)
        })
        .await
        .context("the verification threads failed")??
    };
    eprintln!(
        "verified {:.0} tx/s on {} threads: ceiling {:.0} tx/s for each of {} validators",
        verified.tx_per_s,
        verified.threads,
        verified.tx_per_s / args.validators as f64,
        args.validators
    );

    let mut blocks_csv = match &args.blocks_csv {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(file, "{BLOCKS_CSV_HEADER}")?;
            Some(file)
        }
        None => None,
    };
    let mut results = Vec::new();
    for (n, &rate_asked) in rates.iter().enumerate() {
        let label = format!("[{}/{}]", n + 1, rates.len());
        let (result, seen) = one_run(
            &args,
            &label,
            rate_asked,
            (&signer_seeds, &signers),
            cores,
            verified.tx_per_s,
        )
        .await?;
        if let Some(file) = &mut blocks_csv {
            let rows = block_rows(n + 1, rate_asked, &seen.observed, seen.t0, seen.t0_unix_ms);
            file.write_all(rows.as_bytes())?;
        }
        eprintln!(
            "{label} sent {:.0} tx/s, committed {} of {} at {:.0} tx/s, p50 {} ms, p99 {} ms",
            result.sent_tx_per_s,
            result.committed_txs,
            result.offered_txs,
            result.committed_tx_per_s,
            result.p50_ms.map_or("-".into(), |v| format!("{v:.0}")),
            result.p99_ms.map_or("-".into(), |v| format!("{v:.0}")),
        );
        if args.json {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", result.json_line())?;
            out.flush()?;
        }
        results.push(result);
    }
    if !args.json {
        print!("{}", table(&results));
    }
    Ok(())
}

async fn one_run(
    args: &ConsensusArgs,
    label: &str,
    rate: f64,
    (signer_seeds, signers): (&[[u8; 32]], &Arc<Vec<SigningKey>>),
    cores: usize,
    verify_tx_per_s: f64,
) -> Result<(RunResult, Seen)> {
    let count = (rate * args.duration).round().max(1.0) as usize;
    eprintln!(
        "{label} {rate:.0} tx/s for {} s: signing {count} transactions, starting {} validators",
        args.duration, args.validators
    );
    let chain = Chain::new(args.validators, signer_seeds)?;
    // Heights start at 1 on a fresh chain; an expiry of max_ttl is valid from there on.
    let max_ttl = ((args.duration + args.drain + 10.0) * MAX_BLOCKS_PER_S).max(1_000.0) as u64;
    let workload = {
        let signers = signers.clone();
        let chain_id = chain.genesis.chain_id.clone();
        let tx_bytes = args.tx_bytes;
        tokio::task::spawn_blocking(move || {
            sign_workload(&chain_id, &signers, count, Height(max_ttl), tx_bytes, cores)
        })
        .await
        .context("the signing threads failed")??
    };
    let section = ConsensusSection {
        max_block_txs: args.max_block_txs,
        heartbeat_ms: args.heartbeat_ms,
        max_ttl,
        ..ConsensusSection::default()
    };
    let cluster = Cluster::start(&chain, &section).await?;
    let outcome = drive(args, &cluster, workload, rate, cores, verify_tx_per_s).await;
    let stopped = cluster.stop().await;
    let result = outcome?;
    stopped?;
    Ok(result)
}

/// Offers the workload to a running cluster and measures what it commits.
async fn drive(
    args: &ConsensusArgs,
    cluster: &Cluster,
    workload: Workload,
    rate: f64,
    cores: usize,
    verify_tx_per_s: f64,
) -> Result<(RunResult, Seen)> {
    let reader = cluster.connect("bench-reader").await?;
    // Two blocks: every validator is up and the cluster reaches consensus.
    cluster
        .wait_for_height(&reader, 2, Duration::from_secs(30))
        .await?;
    let Workload {
        txs,
        index,
        mean_bytes,
    } = workload;
    let mut observer = Observer::start(reader, cluster.streams(), Arc::new(index)).await?;
    let publisher = cluster.connect("bench-publisher").await?;
    let subject = cluster.streams().mempool_subject();
    let count = txs.len();

    let sampler = MempoolSampler::start(cluster.status_handles());
    let cpu_before = CpuSample::take(cluster.nats_pid());
    let t0 = Instant::now();
    let t0_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1_000.0);
    let burst = Duration::from_millis(args.burst_ms);
    let sent = publish_open_loop(
        publisher,
        subject,
        Arc::new(txs),
        (rate, t0, burst),
        args.tracing,
    )
    .await;
    cluster.check_running()?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.drain);
    observer.wait_for(count, deadline, STALL).await;
    let cpu_after = CpuSample::take(cluster.nats_pid());
    let max_mempool_depth = sampler.finish().await;
    let seen = observer.finish().await;
    cluster.check_running()?;
    if let Some(error) = &seen.error {
        bail!("reading CHAIN failed: {error}");
    }
    let (bench_cpu_cores, nats_cpu_cores) = cpu_before.cores_until(&cpu_after);
    let result = RunResult::compute(RunInputs {
        validators: args.validators,
        tx_bytes: mean_bytes,
        rate,
        duration: args.duration,
        t0,
        t0_unix_ms,
        sent: &sent,
        seen: &seen,
        max_mempool_depth,
        bench_cpu_cores,
        nats_cpu_cores,
        cores,
        verify_all_cores_tx_per_s: verify_tx_per_s,
    });
    Ok((
        result,
        Seen {
            observed: seen,
            t0,
            t0_unix_ms,
        },
    ))
}

/// What the CHAIN reader saw in a run, with the run's start.
struct Seen {
    observed: Observed,
    t0: Instant,
    t0_unix_ms: f64,
}

/// Polls the validators' status for the deepest mempool seen.
struct MempoolSampler {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl MempoolSampler {
    fn start(statuses: Vec<Arc<Mutex<Status>>>) -> MempoolSampler {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut deepest = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = &mut stopped => return deepest,
                    _ = tick.tick() => {
                        for status in &statuses {
                            if let Ok(s) = status.lock() {
                                deepest = deepest.max(s.mempool_depth);
                            }
                        }
                    }
                }
            }
        });
        MempoolSampler { stop, task }
    }

    async fn finish(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}

/// CPU time used so far by this process and by the nats-server, from `/proc`.
struct CpuSample {
    at: Instant,
    own: Option<f64>,
    nats: Option<f64>,
}

/// Clock ticks per second of `/proc/*/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3, utime field 14 and stime field 15.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_S)
}

impl CpuSample {
    fn take(nats_pid: Option<u32>) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            own: cpu_seconds("/proc/self/stat"),
            nats: nats_pid.and_then(|pid| cpu_seconds(&format!("/proc/{pid}/stat"))),
        }
    }

    /// Cores used on average between two samples, for this process and the nats-server.
    fn cores_until(&self, later: &CpuSample) -> (Option<f64>, Option<f64>) {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let per = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / wall);
        (per(self.own, later.own), per(self.nats, later.nats))
    }
}
