//! Crash safety of the projection runner on the embedded store: a child process applies a
//! deterministic chain of blocks and is killed with SIGKILL several times mid-run, restarting
//! each time from `applied_height() + 1`. At the end its store must equal, key for key, a
//! clean replay of the same chain, and its applied height must be the last block's: no block
//! lost, none applied twice.
//!
//! The child is this test binary itself, run again with an environment variable naming the
//! store file and a test filter selecting `crash_child_process`, which does nothing unless that
//! variable is set. It reports each applied height on stdout, which is how the parent picks
//! its moments to kill it and checks that every block reported as applied survived the kill.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use citychain_store::{
    ApplyOutcome, EmbeddedStore, Entry, Projection, ProjectionRunner, Retryable, Scan, Store,
    StoreError, Transaction,
};

/// Names the store file; set only in the child.
const CHILD_ENV: &str = "CITYCHAIN_STORE_CRASH_CHILD";
/// The chain's seed; set it to replay a run.
const SEED_ENV: &str = "CITYCHAIN_STORE_CRASH_SEED";
const BLOCKS: u64 = 2_000;
const KEYS: u64 = 300;
const KILLS: u64 = 5;

// ---- the chain and its projection -------------------------------------------------------------

/// One operation of a block. Every one reads before it writes, so applying blocks out of order,
/// twice, or not at all changes the outcome.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Replaces a key's value with a hash of its old value.
    Mix {
        key: u64,
        salt: u64,
    },
    /// Sets `to` to a hash of `from`'s value, or deletes `to` if `from` has none.
    Copy {
        from: u64,
        to: u64,
    },
    Delete {
        key: u64,
    },
}

#[derive(Debug)]
struct Block {
    ops: Vec<Op>,
}

/// The block at `height` of the chain drawn from `seed`.
fn block(seed: u64, height: u64) -> Block {
    let mut hasher = blake3::Hasher::new_derive_key("citychain-store crash test block");
    hasher.update(&seed.to_le_bytes());
    hasher.update(&height.to_le_bytes());
    let mut stream = hasher.finalize_xof();
    let mut draw = |below: u64| {
        let mut bytes = [0u8; 8];
        stream.fill(&mut bytes);
        u64::from_le_bytes(bytes) % below
    };
    let count = 1 + draw(6);
    let ops = (0..count)
        .map(|_| match draw(10) {
            0..6 => Op::Mix {
                key: draw(KEYS),
                salt: draw(u64::MAX),
            },
            6..8 => Op::Copy {
                from: draw(KEYS),
                to: draw(KEYS),
            },
            _ => Op::Delete { key: draw(KEYS) },
        })
        .collect();
    Block { ops }
}

fn key(index: u64) -> Vec<u8> {
    format!("key/{index:04}").into_bytes()
}

fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

struct Mixer;

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct MixerError(#[from] StoreError);

impl Retryable for MixerError {
    fn is_retryable(&self) -> bool {
        self.0.is_retryable()
    }
}

impl Projection for Mixer {
    type Block = Block;
    type Error = MixerError;

    fn name(&self) -> &str {
        "mixer"
    }

    async fn apply<T: Transaction>(
        &self,
        txn: &mut T,
        height: u64,
        block: &Block,
    ) -> Result<(), MixerError> {
        let height_bytes = height.to_le_bytes();
        let mut digest = txn.get(b"digest").await?.unwrap_or_default();
        for op in &block.ops {
            let written = match *op {
                Op::Mix { key: index, salt } => {
                    let old = txn.get(&key(index)).await?.unwrap_or_default();
                    let new = hash(&[b"mix", &old, &salt.to_le_bytes(), &height_bytes]);
                    let length = 8 + (salt % 25) as usize;
                    txn.put(&key(index), &new[..length])?;
                    new[..length].to_vec()
                }
                Op::Copy { from, to } => match txn.get(&key(from)).await? {
                    Some(value) => {
                        let new = hash(&[b"copy", &value, &height_bytes]);
                        txn.put(&key(to), &new[..16])?;
                        new[..16].to_vec()
                    }
                    None => {
                        txn.delete(&key(to))?;
                        Vec::new()
                    }
                },
                Op::Delete { key: index } => {
                    txn.delete(&key(index))?;
                    Vec::new()
                }
            };
            digest = hash(&[&digest, &height_bytes, &written]).to_vec();
        }
        txn.put(b"digest", &digest)?;
        Ok(())
    }
}

async fn contents(store: &EmbeddedStore) -> Vec<Entry> {
    store
        .begin()
        .await
        .unwrap()
        .scan(&Scan::all())
        .await
        .unwrap()
}

// ---- the child -------------------------------------------------------------------------------

/// The child's routine: applies the chain from where the store left off, reporting each height.
/// Does nothing in an ordinary test run.
#[test]
fn crash_child_process() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(SEED_ENV)
        .expect("seed")
        .parse()
        .expect("a numeric seed");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(&path).await.expect("open the store");
        let runner = ProjectionRunner::new(store, Mixer);
        let start = runner.applied_height().await.expect("applied height") + 1;
        println!("resume {start}");
        for height in start..=BLOCKS {
            let outcome = runner.apply_block(height, &block(seed, height)).await;
            assert_eq!(
                outcome.expect("apply"),
                ApplyOutcome::Applied,
                "height {height}"
            );
            println!("applied {height}");
        }
        println!("done");
    });
}

// ---- the parent ------------------------------------------------------------------------------

/// A running child and the lines it prints.
struct Run {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Run {
    fn start(path: &Path, seed: u64) -> Run {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "crash_child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, path)
            .env(SEED_ENV, seed.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the child");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Run { child, lines }
    }

    /// The next report of the child: `resume n`, `applied n` or `done`; `None` once it has exited.
    fn next_report(&mut self) -> Option<Report> {
        for line in self.lines.by_ref() {
            let line = line.expect("read the child's output");
            // The harness may have written "test crash_child_process ... " on the same line.
            let words: Vec<&str> = line.split_whitespace().collect();
            let report = match words.as_slice() {
                [.., "resume", height] => Report::Resume(height.parse().expect("a height")),
                [.., "applied", height] => Report::Applied(height.parse().expect("a height")),
                [.., "done"] => Report::Done,
                _ => continue, // the harness's own lines
            };
            return Some(report);
        }
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    Resume(u64),
    Applied(u64),
    Done,
}

/// Follows a child's reports: checks the resume point against what earlier runs reported, and
/// keeps `last_reported` up to date.
fn follow(report: Report, last_reported: &mut u64, finished: &mut bool) {
    match report {
        Report::Resume(height) => {
            // Every block reported applied was durable, so the child resumes after it; at most
            // one more block (committed, killed before it was reported) may have been applied.
            assert!(
                height == *last_reported + 1 || height == *last_reported + 2,
                "resumed at {height} after {last_reported} was reported applied"
            );
            *last_reported = height - 1;
        }
        Report::Applied(height) => {
            assert_eq!(height, *last_reported + 1, "blocks are reported in order");
            *last_reported = height;
        }
        Report::Done => *finished = true,
    }
}

#[test]
fn sigkill_at_any_moment_neither_loses_nor_repeats_a_block() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let seed = match std::env::var(SEED_ENV) {
        Ok(seed) => seed.parse().expect("a numeric seed"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    println!("crash test seed: {seed} (replay with {SEED_ENV}={seed})");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");

    // Where to kill: spread over the run, each shifted by up to ±100 blocks, then a pause of
    // up to 2 ms so the kill lands at varying points of a block's transaction and commit.
    let mut plan = blake3::Hasher::new_derive_key("citychain-store crash test kills")
        .update(&seed.to_le_bytes())
        .finalize_xof();
    let mut draw = |below: u64| {
        let mut bytes = [0u8; 8];
        plan.fill(&mut bytes);
        u64::from_le_bytes(bytes) % below
    };
    let kills: Vec<(u64, Duration)> = (1..=KILLS)
        .map(|i| {
            let target = i * BLOCKS / (KILLS + 1) + draw(200) - 100;
            (target, Duration::from_micros(draw(2_000)))
        })
        .collect();

    let mut last_reported = 0;
    let mut finished = false;
    let mut killed_at = Vec::new();
    for (target, pause) in kills {
        if finished {
            break;
        }
        let mut run = Run::start(&path, seed);
        loop {
            let report = run.next_report().unwrap_or_else(|| {
                panic!(
                    "the child exited before block {target}: {:?}",
                    run.child.wait()
                )
            });
            follow(report, &mut last_reported, &mut finished);
            if finished || last_reported >= target {
                break;
            }
        }
        std::thread::sleep(pause);
        run.child.kill().expect("SIGKILL the child");
        let status = run.child.wait().expect("reap the child");
        // Reports already written before the kill still count.
        while let Some(report) = run.next_report() {
            follow(report, &mut last_reported, &mut finished);
        }
        killed_at.push(last_reported);
        println!("killed after block {last_reported} was reported ({status})");
    }

    let mut run = Run::start(&path, seed);
    while let Some(report) = run.next_report() {
        follow(report, &mut last_reported, &mut finished);
    }
    let status = run.child.wait().expect("reap the child");
    assert!(status.success(), "the last run failed: {status}");
    assert!(finished, "the last run did not finish");
    assert_eq!(last_reported, BLOCKS);
    assert!(
        killed_at.len() as u64 == KILLS,
        "killed {} times, not {KILLS}",
        killed_at.len()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let crashed = EmbeddedStore::open(&path).await.unwrap();
        let crashed = ProjectionRunner::new(crashed, Mixer);
        assert_eq!(crashed.applied_height().await.unwrap(), BLOCKS);

        let clean = ProjectionRunner::new(EmbeddedStore::in_memory().await.unwrap(), Mixer);
        for height in 1..=BLOCKS {
            clean
                .apply_block(height, &block(seed, height))
                .await
                .unwrap();
        }
        let got = contents(crashed.store()).await;
        let want = contents(clean.store()).await;
        assert!(
            want.len() > KEYS as usize / 2,
            "the chain touched {} keys",
            want.len()
        );
        if got != want {
            let differing = got.iter().zip(&want).position(|(a, b)| a != b);
            panic!(
                "seed {seed}: the store killed at {killed_at:?} differs from a clean replay \
                 ({} vs {} entries, first difference at entry {differing:?})",
                got.len(),
                want.len()
            );
        }
        println!(
            "{} entries equal to a clean replay after kills at {killed_at:?}",
            got.len()
        );
    });
}
