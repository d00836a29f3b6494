//! A cluster of in-process validators against a real nats-server, for the fault-model tests.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use citychain_bus::{Bus, HeaderMap, StreamKind, StreamsConfig, connect, ensure_streams};
use citychain_consensus::{ConsensusSection, Status, ValidatorSetup, run};
use citychain_consensus_domain::Envelope;
use citychain_kernel::{Block, ChainVerifier, Height, SignedTx, SigningKey};
use citychain_store::EmbeddedStore;
use citychain_testkit::genesis::{TestNetwork, network};
use citychain_testkit::nats::{self, NatsServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Member {
    pub setup: ValidatorSetup,
    pub dir: tempfile::TempDir,
    pub status: Arc<Mutex<Status>>,
    pub running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

pub struct Cluster {
    pub nats: NatsServer,
    pub bus: Bus,
    pub net: TestNetwork,
    pub streams: StreamsConfig,
    pub members: Vec<Member>,
}

pub fn section(dir: &std::path::Path) -> ConsensusSection {
    ConsensusSection {
        data_dir: dir.to_path_buf(),
        heartbeat_ms: 300,
        max_block_txs: 500,
        ..ConsensusSection::default()
    }
}

impl Cluster {
    /// Starts a nats-server and `n` validators (not yet running).
    pub async fn new(n: usize, seed: u64) -> Cluster {
        let net = network(n, seed);
        let streams = StreamsConfig::new(net.genesis.chain_id.as_str()).unwrap();
        let nats = nats::for_network(&net, &streams, |builder| builder).await;
        let bus = connect(&nats.operator()).await.expect("connect");
        ensure_streams(&bus, &streams).await.unwrap();
        let members = net
            .validator_keys()
            .into_iter()
            .map(|k| {
                let dir = tempfile::tempdir().unwrap();
                Member {
                    setup: ValidatorSetup {
                        genesis: net.genesis.clone(),
                        key: k.signing.clone(),
                        section: section(dir.path()),
                        streams: streams.clone(),
                    },
                    dir,
                    status: Arc::default(),
                    running: None,
                }
            })
            .collect();
        Cluster {
            nats,
            bus,
            net,
            streams,
            members,
        }
    }

    /// Opens validator `i`'s block store, waiting while a stopped validator's tasks finish
    /// closing it.
    pub async fn open_store(&self, i: usize) -> EmbeddedStore {
        let path = self.members[i].dir.path().join("blocks.redb");
        for _ in 0..100 {
            if let Ok(store) = EmbeddedStore::open(&path).await {
                return store;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("block store of validator {i} stays locked");
    }

    /// Starts validator `i` on its own store and NATS connection.
    pub async fn start(&mut self, i: usize) {
        let user = self.nats.user(&nats::validator_user(&self.net, i));
        let store = self.open_store(i).await;
        let m = &mut self.members[i];
        let bus = connect(&user).await.unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let setup = m.setup.clone();
        let status = m.status.clone();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stop_rx.await;
            };
            if let Err(err) = run(setup, bus, store, status, stopped).await {
                panic!("validator failed: {err}");
            }
        });
        m.running = Some((stop_tx, task));
    }

    /// Four validators, running, that have committed `count` transactions.
    pub async fn with_committed(seed: u64, count: usize) -> Cluster {
        let mut cluster = Cluster::new(4, seed).await;
        cluster.start_all().await;
        let txs = cluster.transactions(count, 1);
        cluster.submit(&txs).await;
        cluster.wait_for_txs(count, 60).await;
        cluster
    }

    pub async fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.start(i).await;
        }
    }

    /// Kills validator `i` where it stands (its task is aborted mid-work).
    pub async fn kill(&mut self, i: usize) {
        if let Some((_, task)) = self.members[i].running.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops validator `i` cleanly.
    pub async fn stop(&mut self, i: usize) {
        if let Some((stop, task)) = self.members[i].running.take() {
            let _ = stop.send(());
            task.await.expect("validator ran without error");
        }
    }

    /// Signed transactions: `count` key-value puts of about 300 bytes from the sample members.
    pub fn transactions(&self, count: usize, first_nonce: u64) -> Vec<SignedTx> {
        let signers: Vec<SigningKey> = self
            .net
            .transaction_signers()
            .map(|(_, k)| k.signing.clone())
            .collect();
        (0..count)
            .map(|i| {
                SignedTx::sign(
                    &self.net.genesis.chain_id,
                    &signers[i % signers.len()],
                    first_nonce + i as u64,
                    Height(900),
                    citychain_testkit::note(&format!("put {i:06} {}", "p".repeat(190))),
                )
                .unwrap()
            })
            .collect()
    }

    pub async fn submit(&self, txs: &[SignedTx]) {
        let subject = self.streams.mempool_subject();
        for tx in txs {
            self.bus
                .publish_idempotent(
                    &subject,
                    &tx.id().to_string(),
                    tx.bytes().to_vec().into(),
                    HeaderMap::new(),
                )
                .await
                .unwrap();
        }
    }

    /// Every block in CHAIN, verified from genesis.
    pub async fn chain(&self) -> Vec<Block> {
        let stream = self.streams.stream_name(StreamKind::Chain);
        let last = self.bus.stream_state(&stream).await.unwrap().last_sequence;
        let mut verifier = ChainVerifier::new(&self.net.genesis);
        let mut blocks = Vec::new();
        for seq in 1..=last {
            let msg = self.bus.get_message(&stream, seq).await.unwrap();
            let block = Block::decode(&msg.payload).unwrap();
            verifier
                .push(&block)
                .unwrap_or_else(|e| panic!("CHAIN block {seq}: {e}"));
            assert_eq!(
                msg.msg_id.as_deref(),
                Some(block.hash().to_string().as_str())
            );
            blocks.push(block);
        }
        blocks
    }

    pub async fn committed_txs(&self) -> usize {
        self.chain().await.iter().map(|b| b.txs.len()).sum()
    }

    /// Waits until CHAIN holds at least `txs` transactions, or panics after `secs`.
    pub async fn wait_for_txs(&self, txs: usize, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let have = self.committed_txs().await;
            if have >= txs {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {have} of {txs} transactions committed after {secs} s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Publishes `messages` once each on the consensus broadcast subject, as a validator of
    /// the test's own making would (the harness connects as the operator).
    pub async fn broadcast(&self, messages: &[Envelope]) {
        let subject = format!("citychain.{}.consensus.all", self.net.genesis.chain_id);
        for message in messages {
            self.bus
                .client()
                .publish(subject.clone(), message.encode().into())
                .await
                .unwrap();
        }
    }

    pub async fn chain_height(&self) -> u64 {
        let stream = self.streams.stream_name(StreamKind::Chain);
        self.bus.stream_state(&stream).await.unwrap().last_sequence
    }
}
