//! The load: licence reads signed before a run starts, and the open-loop publisher that puts
//! them on MEMPOOL at their intended send times. A read is a body the chain admits from any
//! member, and its purpose is free text, so padding it sizes the transaction.
//!
//! Every transaction has its own (signer, nonce) pair: signers take turns, nonces count up
//! from 1, so the replay rules never refuse one and no two are the same transaction. The
//! read's purpose is padded so that the encoded signed transaction has the requested size.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use citychain_bus::{Bus, trace};
use citychain_kernel::{ChainId, Hash32, Height, SignedTx, SigningKey, TxBody, TxId};
use citychain_records::{MAX_PURPOSE_BYTES, ReadTarget, read_body};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;

/// The subject every bench read declares.
const BENCH_SUBJECT: &str = "citizen:bench";

/// One signed transaction ready to publish.
pub struct Prepared {
    /// Its id, as the message id that lets JetStream drop a repeated publish.
    pub msg_id: String,
    /// The encoded signed transaction.
    pub bytes: Bytes,
}

/// A run's transactions in send order, and where each id sits in that order.
pub struct Workload {
    pub txs: Vec<Prepared>,
    pub index: HashMap<TxId, u32>,
    /// Mean encoded size.
    pub mean_bytes: f64,
}

/// A bench read: of a record named by the nonce, for a purpose naming the nonce and padded
/// with `filler` letters (a purpose is at most [`MAX_PURPOSE_BYTES`], which bounds `filler`).
fn body(nonce: u64, filler: usize) -> TxBody {
    let mut purpose = format!("bench {nonce:016x} ");
    purpose.extend((0..filler).map(|i| char::from(b'a' + (i % 26) as u8)));
    let mut record = [0u8; 32];
    record[..8].copy_from_slice(&nonce.to_be_bytes());
    let record = TxId(Hash32(record));
    read_body(&ReadTarget::Record(record), BENCH_SUBJECT, &purpose)
}

/// The longest filler a bench read's purpose holds.
const MAX_FILLER: usize = MAX_PURPOSE_BYTES - "bench 0000000000000000 ".len();

/// Signs one read whose encoding is `target` bytes, or as close as the encoding allows.
/// `filler` is the current guess of the filler length; it is updated for the next call.
fn sign_sized(
    chain_id: &ChainId,
    key: &SigningKey,
    nonce: u64,
    expiry: Height,
    target: usize,
    filler: &mut usize,
) -> Result<SignedTx> {
    let mut tx = SignedTx::sign(chain_id, key, nonce, expiry, body(nonce, *filler))?;
    // The filler's length prefix and the nonce's varint can shift the size by a byte or two;
    // two corrections settle it.
    for _ in 0..2 {
        let size = tx.bytes().len();
        if size == target {
            break;
        }
        let corrected = (*filler + target).saturating_sub(size).min(MAX_FILLER);
        if corrected == *filler {
            break;
        }
        *filler = corrected;
        tx = SignedTx::sign(chain_id, key, nonce, expiry, body(nonce, *filler))?;
    }
    Ok(tx)
}

/// The smallest filler that reaches `target` bytes, checked by signing one probe.
fn calibrate(chain_id: &ChainId, key: &SigningKey, expiry: Height, target: usize) -> Result<usize> {
    let bare = SignedTx::sign(chain_id, key, 1, expiry, body(1, 0))?;
    let minimum = bare.bytes().len();
    let maximum = SignedTx::sign(chain_id, key, 1, expiry, body(1, MAX_FILLER))?
        .bytes()
        .len();
    if target < minimum || target > maximum {
        bail!(
            "--tx-bytes {target} is out of range: a bench transaction (a licence read) is \
             {minimum} to {maximum} bytes"
        );
    }
    let mut filler = target - minimum;
    sign_sized(chain_id, key, 1, expiry, target, &mut filler)?;
    Ok(filler)
}

/// Signs `count` reads of `tx_bytes` bytes each, spread over `signers`, on `threads` threads.
pub fn sign_workload(
    chain_id: &ChainId,
    signers: &[SigningKey],
    count: usize,
    expiry: Height,
    tx_bytes: usize,
    threads: usize,
) -> Result<Workload> {
    let first = signers.first().context("no signer keys")?;
    let filler = calibrate(chain_id, first, expiry, tx_bytes)?;
    let threads = threads.clamp(1, count.max(1));
    let chunk = count.div_ceil(threads);
    let parts: Vec<Result<Vec<SignedTx>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = t * chunk;
                let end = (start + chunk).min(count);
                scope.spawn(move || {
                    let mut filler = filler;
                    (start..end)
                        .map(|i| {
                            let key = &signers[i % signers.len()];
                            let nonce = i as u64 + 1;
                            sign_sized(chain_id, key, nonce, expiry, tx_bytes, &mut filler)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a signing thread panicked"))
            })
            .collect()
    });
    let mut txs = Vec::with_capacity(count);
    let mut index = HashMap::with_capacity(count);
    let mut total_bytes = 0usize;
    for part in parts {
        for tx in part? {
            index.insert(tx.id(), txs.len() as u32);
            total_bytes += tx.bytes().len();
            txs.push(Prepared {
                msg_id: tx.id().to_string(),
                bytes: Bytes::copy_from_slice(tx.bytes()),
            });
        }
    }
    Ok(Workload {
        mean_bytes: total_bytes as f64 / txs.len().max(1) as f64,
        txs,
        index,
    })
}

/// How the publisher did.
#[derive(Debug, Clone, Default)]
pub struct SendReport {
    /// Transactions handed to the connection.
    pub sent: usize,
    /// From the first intended send time to the last actual send.
    pub elapsed: Duration,
    /// How far a send fell behind its intended time, at most.
    pub max_lag: Duration,
    /// Publishes JetStream acknowledged as stored.
    pub stored: usize,
    /// Publishes acknowledged as duplicates (none are expected).
    pub duplicates: usize,
    /// Publishes that failed or were not acknowledged; these transactions cannot commit.
    pub failed: usize,
}

/// Publishes `txs[i]` on `subject` at `t0 + i / rate`, never waiting for acknowledgements:
/// they are collected by a separate task, so the send rate is bounded only by the client and
/// by JetStream's limit of unacknowledged publishes (5,000 by default). Wakes at most once
/// per `burst` and sends everything due (the timer's resolution is 1 ms anyway). Returns
/// when every publish has been acknowledged or has failed. With `traced`, each transaction's
/// message carries a `traceparent` of its own, as a traced client's would; the ids are made
/// up here rather than by spans, since a real client's tracing runs on its own machine, not
/// on the cores the validators share with this load.
pub async fn publish_open_loop(
    bus: Bus,
    subject: String,
    txs: Arc<Vec<Prepared>>,
    (rate, t0, burst): (f64, Instant, Duration),
    traced: bool,
) -> SendReport {
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel::<PublishAckFuture>();
    let collector = tokio::spawn(async move {
        let mut pending = FuturesUnordered::new();
        let mut counts = (0usize, 0usize, 0usize);
        loop {
            tokio::select! {
                Some(ack) = acks_rx.recv() => pending.push(ack.into_future()),
                Some(outcome) = pending.next(), if !pending.is_empty() => match outcome {
                    Ok(ack) if ack.duplicate => counts.1 += 1,
                    Ok(_) => counts.0 += 1,
                    Err(_) => counts.2 += 1,
                },
                else => break,
            }
        }
        counts
    });

    let trace_base = traced.then(|| {
        let mut seed = [0u8; 16];
        getrandom::fill(&mut seed).expect("the operating system's random source is available");
        u128::from_le_bytes(seed)
    });
    let mut report = SendReport::default();
    let mut failed_sends = 0usize;
    let mut next = 0usize;
    let count = txs.len();
    while next < count {
        let woke = Instant::now();
        let due = ((t0.elapsed().as_secs_f64() * rate) as usize + 1).min(count);
        while next < due {
            let tx = &txs[next];
            let mut message = PublishMessage::build()
                .payload(tx.bytes.clone())
                .message_id(tx.msg_id.as_str());
            if let Some(base) = trace_base {
                let parent = format!("00-{:032x}-{:016x}-01", base ^ next as u128, next + 1);
                message = message.header(trace::TRACEPARENT, parent.as_str());
            }
            match bus.jetstream().send_publish(subject.clone(), message).await {
                Ok(ack) => {
                    let _ = acks_tx.send(ack);
                }
                Err(_) => failed_sends += 1,
            }
            next += 1;
        }
        let now = t0.elapsed();
        let intended = Duration::from_secs_f64((next - 1) as f64 / rate);
        report.max_lag = report.max_lag.max(now.saturating_sub(intended));
        if next < count {
            let at = (t0 + Duration::from_secs_f64(next as f64 / rate)).max(woke + burst);
            tokio::time::sleep_until(at.into()).await;
        }
    }
    report.sent = count - failed_sends;
    report.elapsed = t0.elapsed();
    drop(acks_tx);
    let (stored, duplicates, failed) = collector.await.unwrap_or((0, 0, count));
    report.stored = stored;
    report.duplicates = duplicates;
    report.failed = failed + failed_sends;
    report
}
