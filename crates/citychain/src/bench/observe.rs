//! The CHAIN reader: a durable consumer that decodes every block as it arrives and dates the
//! commit of each benchmark transaction it carries by the block's arrival.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use citychain_bus::{Bus, ConsumerSpec, StartPosition, StreamKind, StreamsConfig};
use citychain_kernel::{Block, TxId};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// One block as the reader saw it.
#[derive(Debug, Clone)]
pub struct BlockSeen {
    /// Its height.
    pub height: u64,
    /// When it was delivered.
    pub at: Instant,
    /// The time its proposer gave it, milliseconds since the Unix epoch.
    pub proposed_unix_ms: u64,
    /// Its transactions.
    pub txs: usize,
    /// The round it was decided in.
    pub round: u32,
}

/// What the reader saw until it was stopped.
#[derive(Debug, Default)]
pub struct Observed {
    /// For transaction `i` of the workload, the index in `blocks` of the block carrying it.
    pub committed_in: Vec<Option<u32>>,
    /// Every block, in height order.
    pub blocks: Vec<BlockSeen>,
    /// Why reading stopped early, if it did.
    pub error: Option<String>,
}

/// A running reader.
pub struct Observer {
    committed: watch::Receiver<usize>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Observed>,
}

impl Observer {
    /// Starts reading CHAIN from its first block.
    pub async fn start(
        bus: Bus,
        streams: &StreamsConfig,
        index: Arc<HashMap<TxId, u32>>,
    ) -> Result<Observer> {
        let stream = streams.stream_name(StreamKind::Chain);
        let spec = ConsumerSpec::new("bench-observer")
            .start_at(StartPosition::All)
            .ack_wait(Duration::from_secs(60));
        let mut consumer = bus
            .durable_consumer(&stream, &spec)
            .await
            .context("cannot read CHAIN")?;
        let (committed_tx, committed) = watch::channel(0usize);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut seen = Observed {
                committed_in: vec![None; index.len()],
                ..Observed::default()
            };
            let mut count = 0usize;
            loop {
                let delivery = tokio::select! {
                    _ = &mut stopped => break,
                    delivery = consumer.next() => delivery,
                };
                let at = Instant::now();
                let delivery = match delivery {
                    Ok(d) => d,
                    Err(err) => {
                        seen.error = Some(err.to_string());
                        break;
                    }
                };
                let _ = delivery.ack().await;
                let block = match Block::decode(&delivery.payload) {
                    Ok(b) => b,
                    Err(err) => {
                        seen.error = Some(format!(
                            "CHAIN message {} is not a block: {err}",
                            delivery.stream_sequence
                        ));
                        break;
                    }
                };
                let here = seen.blocks.len() as u32;
                for tx in &block.txs {
                    if let Some(&i) = index.get(&tx.id())
                        && let Some(slot) = seen.committed_in.get_mut(i as usize)
                        && slot.is_none()
                    {
                        *slot = Some(here);
                        count += 1;
                    }
                }
                seen.blocks.push(BlockSeen {
                    height: block.header.height.0,
                    at,
                    proposed_unix_ms: block.header.time_unix_ms,
                    txs: block.txs.len(),
                    round: block.certificate.round,
                });
                let _ = committed_tx.send(count);
            }
            seen
        });
        Ok(Observer {
            committed,
            stop,
            task,
        })
    }

    /// Workload transactions seen committed so far.
    pub fn committed(&self) -> usize {
        *self.committed.borrow()
    }

    /// Waits until `target` transactions are committed, or until `deadline`, or until no new
    /// one has committed for `stall`. Returns whether the target was reached.
    pub async fn wait_for(&mut self, target: usize, deadline: Instant, stall: Duration) -> bool {
        let mut last = self.committed();
        let mut last_progress = Instant::now();
        loop {
            if self.committed() >= target {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || now.duration_since(last_progress) >= stall {
                return false;
            }
            let wake = deadline.min(last_progress + stall);
            let changed = tokio::time::timeout_at(wake.into(), self.committed.changed()).await;
            if matches!(changed, Ok(Err(_))) {
                return self.committed() >= target; // The reader stopped.
            }
            let now_count = self.committed();
            if now_count > last {
                last = now_count;
                last_progress = Instant::now();
            }
        }
    }

    /// Stops reading and returns what was seen.
    pub async fn finish(self) -> Observed {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_else(|err| Observed {
            error: Some(format!("the CHAIN reader panicked: {err}")),
            ..Observed::default()
        })
    }
}
