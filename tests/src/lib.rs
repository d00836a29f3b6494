//! A whole network in one test process, against a real nats-server: four validators (the
//! consensus service's `run`) and the ledger, licence and token services (each its `serve`,
//! with its gRPC API on a free port). Each part can be stopped, killed and started again.

pub mod dev;
pub mod platform;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use citychain_bus::{StreamsConfig, connect, ensure_streams};
use citychain_client::{LedgerClient, Signer};
use citychain_consensus::{ConsensusSection, Status, ValidatorSetup};
use citychain_governance::{Action, ProposalId, approve_body, propose_body};
use citychain_kernel::Role;
use citychain_ledger::{LedgerConfig, SERVICE_NAME as LEDGER};
use citychain_runtime::{ConfigLoader, ServiceConfig, Shutdown};
use citychain_store::EmbeddedStore;
use citychain_testkit::genesis::TestNetwork;
use citychain_testkit::grpc::free_addr;
use citychain_testkit::nats::{NatsServer, NatsServerBuilder};
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
    running: BTreeMap<Service, (Shutdown, JoinHandle<()>)>,
    /// The ledger's gRPC address.
    pub ledger_addr: SocketAddr,
    /// The licence service's gRPC address.
    pub licence_addr: SocketAddr,
    /// The token service's gRPC address.
    pub tokens_addr: SocketAddr,
}

/// A service the network can run beside its validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// The ledger.
    Ledger,
    /// The licence platform.
    Licence,
    /// The token platform.
    Tokens,
}

impl Service {
    /// Its configuration section and store name.
    pub fn name(self) -> &'static str {
        match self {
            Service::Ledger => "ledger",
            Service::Licence => "licence",
            Service::Tokens => "tokens",
        }
    }

    /// The name its health service reports.
    pub fn health_name(self) -> &'static str {
        match self {
            Service::Ledger => LEDGER,
            Service::Licence => citychain_licence::SERVICE_NAME,
            Service::Tokens => citychain_tokens::SERVICE_NAME,
        }
    }
}

fn load<T: serde::de::DeserializeOwned>(text: String) -> ServiceConfig<T> {
    ConfigLoader::new()
        .toml(text)
        .env(Vec::<(String, String)>::new())
        .load()
        .expect("a valid service configuration")
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

/// Waits until no process or task holds the lock on the store file at `path` (a killed
/// service's tasks may still be closing it), without opening it as a store: a test may
/// have damaged it on purpose.
pub async fn wait_unlocked(path: &Path) {
    for _ in 0..100 {
        let file = std::fs::File::open(path).unwrap();
        if file.try_lock().is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("store {} stays locked", path.display());
}

impl Network {
    /// Starts nats-server and writes genesis for `net`; nothing else runs yet.
    pub async fn new(net: TestNetwork) -> Network {
        Network::with_nats(net, |builder| builder).await
    }

    /// [`Network::new`] with the four validators and a ledger (data directory `ledger`)
    /// running, and a client of the ledger.
    pub async fn with_ledger(net: TestNetwork) -> (Network, LedgerClient) {
        let mut net = Network::new(net).await;
        net.start_validators().await;
        net.start_ledger("ledger").await;
        let client = net.client().await;
        (net, client)
    }

    /// [`Network::new`], with users of the test's own added to the nats-server by `more`.
    pub async fn with_nats(
        net: TestNetwork,
        more: impl FnOnce(NatsServerBuilder) -> NatsServerBuilder,
    ) -> Network {
        let streams = StreamsConfig::new(net.genesis.chain_id.as_str()).unwrap();
        let nats = citychain_testkit::nats::for_network(&net, &streams, more).await;
        let bus = connect(&nats.operator()).await.expect("connect");
        ensure_streams(&bus, &streams).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        net.write_to(dir.path()).unwrap();
        let service_key = citychain_kernel::KeyPair::from_seeds(None, &[0x11; 32], &[0x12; 32]);
        std::fs::write(dir.path().join("licence.key"), service_key.to_key_file()).unwrap();
        let validators = net.genesis.validators.iter().map(|_| None).collect();
        Network {
            nats,
            net,
            streams,
            dir,
            validators,
            running: BTreeMap::new(),
            ledger_addr: free_addr(),
            licence_addr: free_addr(),
            tokens_addr: free_addr(),
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
        let bus = connect(
            &self
                .nats
                .user(&citychain_testkit::nats::validator_user(&self.net, i)),
        )
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

    /// Whether validator `i` was started and its task is still running (a validator that
    /// fails ends its task).
    pub fn validator_running(&self, i: usize) -> bool {
        self.validators[i]
            .as_ref()
            .is_some_and(|(_, task)| !task.is_finished())
    }

    /// A fresh NATS connection as the operator.
    pub async fn bus(&self) -> citychain_bus::Bus {
        connect(&self.nats.operator()).await.unwrap()
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

    /// The TOML configuration of `service` on data directory `data`.
    fn config_text(&self, service: Service, data: &str) -> String {
        let own = match service {
            Service::Ledger => "repair_timeout_ms = 500".to_string(),
            Service::Tokens => format!(
                "repair_timeout_ms = 500\nkey_file = {:?}",
                self.dir
                    .path()
                    .join("keys/service.tokens.json")
                    .display()
                    .to_string()
            ),
            Service::Licence => format!(
                "repair_timeout_ms = 500\nkey_file = {:?}",
                self.dir.path().join("licence.key").display().to_string()
            ),
        };
        format!(
            r#"
[service]
name = "{name}"
[grpc]
listen = "{grpc}"
[metrics]
enabled = false
[chain]
genesis = "{genesis}"
[{name}]
data_dir = "{data}"
{own}
[nats]
{nats}request_timeout = "2s"
"#,
            name = service.name(),
            grpc = self.addr(service),
            genesis = self.dir.path().join("genesis.json").display(),
            data = self.dir.path().join(data).display(),
            nats = self.nats.user(service.name()).to_toml(),
        )
    }

    /// The ledger's configuration.
    pub fn ledger_config(&self, data: &str) -> ServiceConfig<LedgerConfig> {
        load(self.config_text(Service::Ledger, data))
    }

    /// The gRPC address of `service`.
    pub fn addr(&self, service: Service) -> SocketAddr {
        match service {
            Service::Ledger => self.ledger_addr,
            Service::Licence => self.licence_addr,
            Service::Tokens => self.tokens_addr,
        }
    }

    /// Starts `service` on data directory `data` and waits until it reports SERVING.
    pub async fn start(&mut self, service: Service, data: &str) {
        let text = self.config_text(service, data);
        let store = self
            .dir
            .path()
            .join(data)
            .join(format!("{}.redb", service.name()));
        if store.exists() {
            // A killed service's tasks may still be closing the file.
            wait_unlocked(&store).await;
        }
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let outcome = match service {
                Service::Ledger => citychain_ledger::serve(load(text), stop)
                    .await
                    .map_err(|e| e.to_string()),
                Service::Licence => citychain_licence::serve(load(text), stop)
                    .await
                    .map_err(|e| e.to_string()),
                Service::Tokens => citychain_tokens::serve(load(text), stop)
                    .await
                    .map_err(|e| e.to_string()),
            };
            if let Err(err) = outcome {
                panic!("{} failed: {err}", service.name());
            }
        });
        self.running.insert(service, (shutdown, task));
        self.wait_serving(service).await;
    }

    /// Starts the ledger on data directory `data` and waits until it reports SERVING.
    pub async fn start_ledger(&mut self, data: &str) {
        self.start(Service::Ledger, data).await;
    }

    /// Waits until `service`'s health says SERVING.
    pub async fn wait_serving(&self, service: Service) {
        for _ in 0..300 {
            if self.health(service).await == Some(ServingStatus::Serving as i32) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} did not become SERVING", service.name());
    }

    /// `service`'s health status, if it answers.
    pub async fn health(&self, service: Service) -> Option<i32> {
        citychain_testkit::grpc::health(self.addr(service), service.health_name()).await
    }

    /// The ledger's health status, if it answers.
    pub async fn ledger_health(&self) -> Option<i32> {
        self.health(Service::Ledger).await
    }

    /// Kills `service` where it stands (its task is aborted mid-work, like a SIGKILL).
    pub async fn kill(&mut self, service: Service) {
        if let Some((_, task)) = self.running.remove(&service) {
            task.abort();
            let _ = task.await;
        }
    }

    /// Kills the ledger where it stands.
    pub async fn kill_ledger(&mut self) {
        self.kill(Service::Ledger).await;
    }

    /// Stops `service` cleanly.
    pub async fn stop(&mut self, service: Service) {
        if let Some((shutdown, task)) = self.running.remove(&service) {
            shutdown.trigger();
            task.await.expect("service stopped cleanly");
        }
    }

    /// Stops the ledger cleanly.
    pub async fn stop_ledger(&mut self) {
        self.stop(Service::Ledger).await;
    }

    /// A signer for `member`'s genesis key whose nonces start at `first_nonce`.
    pub fn signer(&self, member: &str, first_nonce: u64) -> Signer {
        Signer::new(
            self.net.genesis.chain_id.clone(),
            self.net.keys[member].signing.clone(),
            first_nonce,
        )
    }

    /// The genesis departments, in genesis order.
    pub fn departments(&self) -> Vec<String> {
        self.net
            .genesis
            .members
            .iter()
            .filter(|m| m.role == Role::Department)
            .map(|m| m.id.to_string())
            .collect()
    }

    /// Passes `action` through governance: the first department proposes it and as many
    /// others approve as two thirds of the departments need. Returns the height at which the
    /// last approval committed; the action is in force from the next height.
    pub async fn pass(&self, client: &mut LedgerClient, id: &str, action: &Action) -> u64 {
        let depts = self.departments();
        let needed = (depts.len() * 2).div_ceil(3);
        let proposal = ProposalId::new(id).unwrap();
        // Distinct nonces per proposal: the id's hash picks a range of its own.
        let nonce = u64::from_le_bytes(
            blake3::hash(id.as_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap(),
        ) >> 16;
        let mut height = client
            .submit_and_wait(
                &self.signer(&depts[0], nonce),
                propose_body(&proposal, action),
            )
            .await
            .unwrap_or_else(|e| panic!("proposal {id}: {e}"))
            .height;
        for dept in &depts[1..needed] {
            height = client
                .submit_and_wait(&self.signer(dept, nonce), approve_body(&proposal))
                .await
                .unwrap_or_else(|e| panic!("approval of {id} by {dept}: {e}"))
                .height;
        }
        height
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

/// The `citychain` binary the workspace build put beside this test's own executable
/// (`target/<profile>/citychain`), or the one `CITYCHAIN_BIN` names. A workspace test run
/// (`scripts/test`, `cargo nextest run --workspace`) builds it first; running this package
/// alone does not, so build it (`cargo build -p citychain`) before, or the test runs an old
/// binary.
pub fn citychain_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CITYCHAIN_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("tests run from target/<profile>/deps");
    let binary = profile_dir.join(format!("citychain{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p citychain` (the workspace test run does), \
         or name a binary in CITYCHAIN_BIN",
        binary.display()
    );
    binary
}
