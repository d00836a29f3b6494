//! What the ledger knows of transactions that have not committed: every transaction on
//! MEMPOOL, whichever service admitted it, so `WatchTransaction` streams PENDING for a
//! transaction submitted through the licence service (or any other) as for one submitted
//! here.
//!
//! [`watch_mempool`] reads MEMPOOL in order without acknowledging anything (the validators'
//! durable consumers are untouched), starting as many messages back as it remembers, so a
//! restarted ledger knows again what is still waiting. Each message is checked as a submission
//! to this ledger would be (canonical encoding, this chain, signature, an expiry the chain can
//! still meet within `max_ttl`, a signer governance lets send the body) before it is
//! remembered: anything else is what the validators drop too, and is skipped with a log line,
//! never reported as PENDING.
//! Submissions through this ledger are remembered at once as well, before MEMPOOL echoes them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use citychain_bus::{Bus, StreamKind, StreamsConfig, Tail};
use citychain_follower::Admission;
use citychain_kernel::{Height, PublicKey, SignedTx, TxId};
use citychain_runtime::Shutdown;

/// Transactions remembered at most; past it, those whose expiry has passed are forgotten,
/// then the ones with the smallest ids.
pub const MAX_REMEMBERED: usize = 100_000;

/// What is remembered of a transaction that may not have committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    /// Its signer.
    pub signer: PublicKey,
    /// Its nonce.
    pub nonce: u64,
    /// The last height it may commit at.
    pub expiry: Height,
}

/// The transactions seen on MEMPOOL or submitted here, by id.
#[derive(Debug)]
pub struct Pending {
    limit: usize,
    seen: Mutex<BTreeMap<TxId, Remembered>>,
}

impl Default for Pending {
    fn default() -> Self {
        Pending::new(MAX_REMEMBERED)
    }
}

impl Pending {
    /// Remembers at most `limit` transactions.
    pub fn new(limit: usize) -> Self {
        Pending {
            limit,
            seen: Mutex::default(),
        }
    }

    /// Remembers `tx`; `applied` is the ledger's applied height, to forget expired ones when
    /// full.
    pub fn remember(&self, tx: &SignedTx, applied: Height) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(
            tx.id(),
            Remembered {
                signer: *tx.signer(),
                nonce: tx.nonce(),
                expiry: tx.expiry(),
            },
        );
        if seen.len() > self.limit {
            // Evict down to nine tenths in one pass, so a full map is not scanned again at
            // every new transaction.
            let keep = self.limit - self.limit / 10;
            seen.retain(|_, r| r.expiry >= applied);
            while seen.len() > keep {
                seen.pop_first();
            }
        }
    }

    /// What is remembered of `id`.
    pub fn get(&self, id: &TxId) -> Option<Remembered> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
    }
}

/// How long to wait before reading MEMPOOL again after NATS failed.
const RETRY: Duration = Duration::from_secs(1);

/// Follows MEMPOOL into `pending` until `stop` fires, remembering what `admission` would
/// admit. NATS failures are logged and retried from the next unread message; they never stop
/// the ledger.
pub async fn watch_mempool(
    bus: Bus,
    streams: StreamsConfig,
    admission: Admission,
    pending: Arc<Pending>,
    stop: Shutdown,
) -> Result<(), String> {
    let stream = streams.stream_name(StreamKind::Mempool);
    let mut next: Option<u64> = None;
    let stopped = stop.wait();
    tokio::pin!(stopped);
    loop {
        let opened = tokio::select! {
            () = &mut stopped => return Ok(()),
            opened = open_tail(&bus, &stream, next, pending.limit) => opened,
        };
        let mut tail = match opened {
            Ok(tail) => tail,
            Err(err) => {
                tracing::warn!(error = %err, "ledger: cannot read MEMPOOL; retrying");
                tokio::select! {
                    () = &mut stopped => return Ok(()),
                    () = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        loop {
            let message = tokio::select! {
                () = &mut stopped => return Ok(()),
                message = tail.next() => message,
            };
            match message {
                Some(Ok(message)) => {
                    next = Some(message.sequence + 1);
                    let checked = admission
                        .decode(&message.payload)
                        .and_then(|tx| admission.admit(&tx).map(|_| tx));
                    match checked {
                        Ok(tx) => pending.remember(&tx, admission.applied()),
                        Err(err) => tracing::debug!(
                            sequence = message.sequence,
                            error = %err,
                            "ledger: a MEMPOOL message would not be admitted; not remembered"
                        ),
                    }
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "ledger: reading MEMPOOL failed; reopening");
                    break;
                }
                None => break,
            }
        }
        tokio::select! {
            () = &mut stopped => return Ok(()),
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// A tail of MEMPOOL from `next`, or, the first time, from `limit` messages back.
async fn open_tail(
    bus: &Bus,
    stream: &str,
    next: Option<u64>,
    limit: usize,
) -> Result<Tail, String> {
    let from = match next {
        Some(next) => next,
        None => {
            let state = bus.stream_state(stream).await.map_err(|e| e.to_string())?;
            let back = state.last_sequence.saturating_sub(limit as u64) + 1;
            back.max(state.first_sequence)
        }
    };
    bus.tail(stream, from).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use citychain_kernel::{ChainId, SigningKey, TxBody};

    use super::*;

    fn tx(nonce: u64, expiry: u64) -> SignedTx {
        let key = SigningKey::from_seed(&[7; 32]);
        let chain = ChainId::new("test").unwrap();
        let body = TxBody::new("citychain.test.v1.Noop", vec![]);
        SignedTx::sign(&chain, &key, nonce, Height(expiry), body).unwrap()
    }

    #[test]
    fn remembers_what_it_saw_and_forgets_the_expired_first_when_full() {
        let pending = Pending::new(10);
        let first = tx(0, 5);
        pending.remember(&first, Height(1));
        assert_eq!(
            pending.get(&first.id()).map(|r| (r.nonce, r.expiry)),
            Some((0, Height(5)))
        );
        for nonce in 1..=9 {
            pending.remember(&tx(nonce, 100), Height(6));
        }
        assert!((1..=9).all(|nonce| pending.get(&tx(nonce, 100).id()).is_some()));
        // One past the limit, at a height where `first` has expired: it goes, then the
        // smallest ids, down to nine tenths of the limit.
        pending.remember(&tx(10, 100), Height(6));
        assert_eq!(pending.get(&first.id()), None);
        let kept = (1..=10).filter(|&n| pending.get(&tx(n, 100).id()).is_some());
        assert_eq!(kept.count(), 9);
    }
}
