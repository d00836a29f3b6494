//! A whole network in one test process, against a real nats-server: four validators (the
//! consensus service's `run`) and a ledger service (its `serve`, with its gRPC API on a free
//! port). Each part can be stopped, killed and started again.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use citychain_bus::{BusConfig, StreamsConfig, connect, ensure_streams};
use citychain_client::LedgerClient;
use citychain_consensus::{ConsensusSection, Status, ValidatorSetup};
use citychain_ledger::{LedgerConfig, SERVICE_NAME as LEDGER};
use citychain_runtime::{ConfigLoader, ServiceConfig, Shutdown};
use citychain_store::EmbeddedStore;
use citychain_testkit::genesis::TestNetwork;
use citychain_testkit::grpc::free_addr;
use citychain_testkit::nats::NatsServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic_health::pb::health_check_response::ServingStatus;

/// A running validator: how to stop it and its task.
type Running = (oneshot::Sender<()>, JoinHandle<()>);

/// A network of validators and one ledger.
#[derive(Debug)]
pub struct Network {
    /// The nats-server.
    pub nats: NatsServer,
    /// The members and their keys.
    pub net: TestNetwork,
    /// The chain's streams.
    pub streams: StreamsConfig,
    /// Working files: genesis, keys, stores.
    pub dir: tempfile::TempDir,
    validators: Vec<Option<Running>>,
    ledger: Option<(Shutdown, JoinHandle<()>)>,
    /// The ledger's gRPC address.
    pub ledger_addr: SocketAddr,
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

impl Network {
    /// Starts nats-server and writes genesis for `net`; nothing else runs yet.
    pub async fn new(net: TestNetwork) -> Network {
        let nats = NatsServer::start().await.expect("nats-server starts");
        let bus = connect(&BusConfig::with_url(nats.url()))
            .await
            .expect("connect");
        let streams = StreamsConfig::new(net.genesis.chain_id.as_str()).unwrap();
        ensure_streams(&bus, &streams).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        net.write_to(dir.path()).unwrap();
        let validators = net.genesis.validators.iter().map(|_| None).collect();
        Network {
            nats,
            net,
            streams,
            dir,
            validators,
            ledger: None,
            ledger_addr: free_addr(),
        }
    }

    /// Starts validator `i`.
    pub async fn start_validator(&mut self, i: usize) {
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
        let bus = connect(&BusConfig::with_url(self.nats.url()))
            .await
            .unwrap();
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
        self.validators[i] = Some((stop_tx, task));
    }

    /// Stops validator `i` cleanly.
    pub async fn stop_validator(&mut self, i: usize) {
        if let Some((stop, task)) = self.validators[i].take() {
            let _ = stop.send(());
            task.await.expect("validator stopped cleanly");
        }
    }

    /// A fresh NATS connection.
    pub async fn bus(&self) -> citychain_bus::Bus {
        connect(&BusConfig::with_url(self.nats.url()))
            .await
            .unwrap()
    }

    /// The last height on CHAIN.
    pub async fn chain_height(&self) -> u64 {
        let bus = self.bus().await;
        let stream = self.streams.stream_name(citychain_bus::StreamKind::Chain);
        bus.stream_state(&stream).await.unwrap().last_sequence
    }

    /// Waits until the ledger has applied block `height`.
    pub async fn wait_ledger_at(&self, client: &mut LedgerClient, height: u64) {
        for _ in 0..300 {
            if client.tip_height().await.unwrap() >= height {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the ledger did not reach height {height}");
    }

    /// Starts every validator.
    pub async fn start_validators(&mut self) {
        for i in 0..self.validators.len() {
            self.start_validator(i).await;
        }
    }

    /// The ledger's configuration.
    pub fn ledger_config(&self, data: &str) -> ServiceConfig<LedgerConfig> {
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
            genesis = self.dir.path().join("genesis.json").display(),
            data = self.dir.path().join(data).display(),
            nats = self.nats.url(),
        );
        ConfigLoader::new()
            .toml(text)
            .env(Vec::<(String, String)>::new())
            .load()
            .expect("a valid ledger configuration")
    }

    /// Starts the ledger on data directory `data` and waits until it reports SERVING.
    pub async fn start_ledger(&mut self, data: &str) {
        let config = self.ledger_config(data);
        let store = self.dir.path().join(data).join("ledger.redb");
        if store.exists() {
            // A killed ledger's tasks may still be closing the file.
            drop(open(store).await);
        }
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(err) = citychain_ledger::serve(config, stop).await {
                panic!("ledger failed: {err}");
            }
        });
        self.ledger = Some((shutdown, task));
        self.wait_ledger_serving().await;
    }

    /// Waits until the ledger's health says SERVING.
    pub async fn wait_ledger_serving(&self) {
        for _ in 0..300 {
            if self.ledger_health().await == Some(ServingStatus::Serving as i32) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the ledger did not become SERVING");
    }

    /// The ledger's health status, if it answers.
    pub async fn ledger_health(&self) -> Option<i32> {
        citychain_testkit::grpc::health(self.ledger_addr, LEDGER).await
    }

    /// Kills the ledger where it stands (its task is aborted mid-work, like a SIGKILL).
    pub async fn kill_ledger(&mut self) {
        if let Some((_, task)) = self.ledger.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops the ledger cleanly.
    pub async fn stop_ledger(&mut self) {
        if let Some((shutdown, task)) = self.ledger.take() {
            shutdown.trigger();
            task.await.expect("ledger stopped cleanly");
        }
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
}
