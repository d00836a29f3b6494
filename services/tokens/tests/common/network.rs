//! A small network for the token service's tests, against a real nats-server: four
//! validators (the consensus service's `run`) and a ledger (its `serve`) to submit through.
//! The token service itself is started by the tests, with its own `serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use citychain_bus::{Bus, BusConfig, StreamKind, StreamsConfig, connect, ensure_streams};
use citychain_client::LedgerClient;
use citychain_consensus::{ConsensusSection, Status, ValidatorSetup};
use citychain_ledger::LedgerConfig;
use citychain_runtime::{ConfigLoader, ServiceConfig, Shutdown};
use citychain_store::EmbeddedStore;
use citychain_testkit::genesis::TestNetwork;
use citychain_testkit::grpc::free_addr;
use citychain_testkit::nats::NatsServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic_health::pb::health_check_response::ServingStatus;

/// Validators and a ledger over one nats-server.
#[derive(Debug)]
pub struct Harness {
    /// The nats-server.
    pub nats: NatsServer,
    /// The members and their keys.
    pub net: TestNetwork,
    /// The chain's streams.
    pub streams: StreamsConfig,
    /// Working files: genesis, keys, stores.
    pub dir: tempfile::TempDir,
    validators: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
    ledger: Option<(Shutdown, JoinHandle<()>)>,
    ledger_addr: SocketAddr,
}

async fn open(path: PathBuf) -> EmbeddedStore {
    for _ in 0..100 {
        if let Ok(store) = EmbeddedStore::open(&path).await {
            return store;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("store {} stays locked", path.display());
}

impl Harness {
    /// Starts nats-server, writes genesis, starts every validator and the ledger.
    pub async fn start(net: TestNetwork) -> Harness {
        let nats = NatsServer::start().await.expect("nats-server starts");
        let bus = connect(&BusConfig::with_url(nats.url())).await.unwrap();
        let streams = StreamsConfig::new(net.genesis.chain_id.as_str()).unwrap();
        ensure_streams(&bus, &streams).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        net.write_to(dir.path()).unwrap();
        let mut harness = Harness {
            nats,
            net,
            streams,
            dir,
            validators: Vec::new(),
            ledger: None,
            ledger_addr: free_addr(),
        };
        for i in 0..harness.net.genesis.validators.len() {
            harness.start_validator(i).await;
        }
        harness.start_ledger().await;
        harness
    }

    async fn start_validator(&mut self, i: usize) {
        let member = self.net.genesis.validators[i].to_string();
        let data = self.dir.path().join(format!("consensus-{member}"));
        std::fs::create_dir_all(&data).unwrap();
        let store = open(data.join("blocks.redb")).await;
        let setup = ValidatorSetup {
            genesis: self.net.genesis.clone(),
            key: self.net.keys[&member].signing.clone(),
            section: ConsensusSection {
                data_dir: data,
                heartbeat_ms: 200,
                ..ConsensusSection::default()
            },
            streams: self.streams.clone(),
        };
        let bus = self.bus().await;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let status: Arc<Mutex<Status>> = Arc::default();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stop_rx.await;
            };
            if let Err(err) = citychain_consensus::run(setup, bus, store, status, stopped).await {
                panic!("validator {member} failed: {err}");
            }
        });
        self.validators.push((stop_tx, task));
    }

    async fn start_ledger(&mut self) {
        let text = format!(
            r#"
[service]
name = "ledger"
[grpc]
listen = "{grpc}"
[metrics]
enabled = false
[chain]
genesis = "{genesis}"
[ledger]
data_dir = "{data}"
repair_timeout_ms = 500
[nats]
urls = ["{nats}"]
request_timeout = "2s"
"#,
            grpc = self.ledger_addr,
            genesis = self.genesis_path().display(),
            data = self.dir.path().join("ledger").display(),
            nats = self.nats.url(),
        );
        let config: ServiceConfig<LedgerConfig> = ConfigLoader::new()
            .toml(text)
            .env(Vec::<(String, String)>::new())
            .load()
            .expect("a valid ledger configuration");
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(err) = citychain_ledger::serve(config, stop).await {
                panic!("ledger failed: {err}");
            }
        });
        self.ledger = Some((shutdown, task));
        for _ in 0..300 {
            let health =
                citychain_testkit::grpc::health(self.ledger_addr, citychain_ledger::SERVICE_NAME)
                    .await;
            if health == Some(ServingStatus::Serving as i32) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the ledger did not become SERVING");
    }

    /// The genesis file.
    pub fn genesis_path(&self) -> PathBuf {
        self.dir.path().join("genesis.json")
    }

    /// A fresh NATS connection.
    pub async fn bus(&self) -> Bus {
        connect(&BusConfig::with_url(self.nats.url()))
            .await
            .unwrap()
    }

    /// The last height on CHAIN.
    pub async fn chain_height(&self) -> u64 {
        let stream = self.streams.stream_name(StreamKind::Chain);
        self.bus()
            .await
            .stream_state(&stream)
            .await
            .unwrap()
            .last_sequence
    }

    /// A client of the ledger; waits until the chain has its first block.
    pub async fn client(&self) -> LedgerClient {
        let addr = format!("http://{}", self.ledger_addr);
        for _ in 0..300 {
            if let Ok(client) = LedgerClient::connect(&addr).await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no ledger client: the chain has no block");
    }

    /// Stops the ledger and the validators cleanly.
    pub async fn stop(mut self) {
        if let Some((shutdown, task)) = self.ledger.take() {
            shutdown.trigger();
            task.await.expect("the ledger stopped cleanly");
        }
        for (stop, task) in self.validators.drain(..) {
            let _ = stop.send(());
            task.await.expect("a validator stopped cleanly");
        }
    }
}
