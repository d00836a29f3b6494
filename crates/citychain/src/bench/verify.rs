//! This machine's signature verification rate: every core verifies batches of pre-signed
//! transactions with the kernel's batch verifier, the same call a validator makes on what it
//! pulls from MEMPOOL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use citychain_kernel::tx::verify_transactions;
use citychain_kernel::{ChainId, Height, SignedTx, SigningKey};

use super::load::sign_workload;

/// Transactions per batch, as a validator pulls them from MEMPOOL.
pub const BATCH: usize = 1024;

/// The measured rate.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRate {
    /// Threads that verified, one per core.
    pub threads: usize,
    /// Signatures verified per second on all of them together.
    pub tx_per_s: f64,
}

/// Verifies batches of [`BATCH`] transactions of `tx_bytes` bytes on `threads` threads for
/// about `secs` seconds.
pub fn measure(
    chain_id: &ChainId,
    signers: &[SigningKey],
    tx_bytes: usize,
    threads: usize,
    secs: f64,
) -> Result<VerifyRate> {
    let workload = sign_workload(chain_id, signers, BATCH, Height(1_000), tx_bytes, threads)?;
    let batch: Vec<SignedTx> = workload
        .txs
        .iter()
        .map(|p| SignedTx::decode(&p.bytes))
        .collect::<Result<_, _>>()?;
    if verify_transactions(&batch).is_err() {
        bail!("the benchmark's own transactions do not verify");
    }
    let batch = Arc::new(batch);
    let length = Duration::from_secs_f64(secs);
    let rates: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let batch = batch.clone();
                scope.spawn(move || {
                    let start = Instant::now();
                    let mut verified = 0usize;
                    while start.elapsed() < length {
                        // The result is known to be Ok; the work is what is measured.
                        let _ = std::hint::black_box(verify_transactions(&batch));
                        verified += batch.len();
                    }
                    verified as f64 / start.elapsed().as_secs_f64()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0.0))
            .collect()
    });
    Ok(VerifyRate {
        threads,
        tx_per_s: rates.iter().sum(),
    })
}
