//! `citychain serve consensus` as an operator runs it: four validator processes on one
//! nats-server become healthy, commit transactions submitted to MEMPOOL and report them over
//! gRPC; a validator stopped with SIGTERM or killed with SIGKILL catches up when restarted
//! with the same configuration; a misconfigured start fails naming the file or the key.
//!
//! Every child process sits in a guard that kills it on drop, so a failing test leaves no
//! validator running.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use citychain_bus::access;
use citychain_bus::{Bus, BusConfig, HeaderMap, StreamsConfig, connect, ensure_streams};
use citychain_kernel::{Height, SignedTx, SigningKey};
use citychain_proto::citychain::consensus::v1::GetStatusRequest;
use citychain_proto::citychain::consensus::v1::GetStatusResponse;
use citychain_proto::citychain::consensus::v1::consensus_service_client::ConsensusServiceClient;
use citychain_testkit::genesis::{TestNetwork, network};
use citychain_testkit::nats::{self, NatsServer};
use citychain_testkit::reflection::{Version, list_services};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SERVICE_NAME: &str = "citychain.consensus.v1.ConsensusService";

/// Seed of the test network's keys; printed so a failure can be replayed.
const SEED: u64 = 41;

fn citychain() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_citychain"));
    // The test's own environment must not reconfigure the children.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CITYCHAIN_") {
            command.env_remove(name);
        }
    }
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port nobody listens on right now (the listener is closed before the child binds it).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
}

/// A child process that is killed and reaped when dropped.
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One validator: its files and addresses, and its process while it runs.
struct Validator {
    member: String,
    config: PathBuf,
    log: PathBuf,
    grpc: SocketAddr,
    metrics: SocketAddr,
    process: Option<Running>,
}

impl Validator {
    fn start(&mut self) {
        assert!(self.process.is_none(), "{} is already running", self.member);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = citychain()
            .args(["serve", "consensus", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("citychain serve starts");
        self.process = Some(Running { child });
    }

    fn pid(&self) -> u32 {
        self.process.as_ref().expect("running").child.id()
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", self.pid());
        let mut running = self.process.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = running.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within 15 s of SIGTERM\n{}",
                self.member,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the process stops wherever it is.
    fn kill(&mut self) {
        let mut running = self.process.take().expect("running");
        running.child.kill().expect("SIGKILL");
        running.child.wait().expect("reaped");
    }

    /// Panics with the log if the process has exited.
    fn assert_alive(&mut self) {
        if let Some(running) = self.process.as_mut()
            && let Some(status) = running.child.try_wait().expect("wait")
        {
            panic!("{} exited with {status}\n{}", self.member, self.log_tail());
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!(
            "--- last lines of {}'s log ---\n{}",
            self.member,
            lines[start..].join("\n")
        )
    }

    fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    async fn health(&self) -> Option<i32> {
        let channel = tonic::transport::Endpoint::from_shared(self.url())
            .ok()?
            .connect()
            .await
            .ok()?;
        let mut client = HealthClient::new(channel);
        let request = HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        };
        Some(client.check(request).await.ok()?.into_inner().status)
    }

    async fn status(&self) -> Option<GetStatusResponse> {
        let mut client = ConsensusServiceClient::connect(self.url()).await.ok()?;
        Some(
            client
                .get_status(GetStatusRequest {})
                .await
                .ok()?
                .into_inner(),
        )
    }

    /// `GET /metrics`, as text.
    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(self.metrics).expect("metrics port");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.metrics
        )
        .unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).unwrap();
        body
    }
}

/// A nats-server, a four-validator genesis on disk, and one configuration per validator.
struct Network {
    _dir: tempfile::TempDir,
    nats: NatsServer,
    net: TestNetwork,
    validators: Vec<Validator>,
    next_nonce: u64,
}

impl Network {
    async fn new() -> Network {
        eprintln!("test network seed {SEED}");
        let dir = tempfile::tempdir().unwrap();
        let net = network(4, SEED);
        let streams = StreamsConfig::new(net.genesis.chain_id.as_str()).unwrap();
        let nats = nats::for_network(&net, &streams, |builder| builder).await;
        let genesis = net.write_to(dir.path()).expect("genesis written");
        let validators = net
            .genesis
            .validators
            .iter()
            .map(|member| {
                let member = member.to_string();
                let grpc = free_addr();
                let metrics = free_addr();
                let config = dir.path().join(format!("{member}.toml"));
                let toml = validator_config(
                    &genesis,
                    &dir.path().join("keys").join(format!("{member}.json")),
                    &dir.path().join("data").join(&member),
                    &nats.user(&access::validator_user(&member)),
                    grpc,
                    metrics,
                );
                std::fs::write(&config, toml).unwrap();
                Validator {
                    log: dir.path().join(format!("{member}.log")),
                    member,
                    config,
                    grpc,
                    metrics,
                    process: None,
                }
            })
            .collect();
        Network {
            _dir: dir,
            nats,
            net,
            validators,
            next_nonce: 1,
        }
    }

    fn logs(&self) -> String {
        self.validators
            .iter()
            .map(Validator::log_tail)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until validator `i` answers SERVING for the consensus API.
    async fn wait_serving(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.validators[i].assert_alive();
            if self.validators[i].health().await == Some(ServingStatus::Serving as i32) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not SERVING after 20 s\n{}",
                self.validators[i].member,
                self.validators[i].log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn statuses(&mut self, which: &[usize]) -> Vec<GetStatusResponse> {
        let mut all = Vec::new();
        for &i in which {
            self.validators[i].assert_alive();
            let status = self.validators[i]
                .status()
                .await
                .unwrap_or_else(|| panic!("{} answers GetStatus", self.validators[i].member));
            all.push(status);
        }
        all
    }

    /// Waits until every validator in `which` has committed `txs` transactions and reached
    /// `height`; returns their statuses then.
    async fn wait_for(&mut self, which: &[usize], txs: u64, height: u64) -> Vec<GetStatusResponse> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let statuses = self.statuses(which).await;
            if statuses
                .iter()
                .all(|s| s.committed_txs >= txs && s.height >= height)
            {
                return statuses;
            }
            if Instant::now() >= deadline {
                let seen: Vec<_> = statuses
                    .iter()
                    .map(|s| (s.member_id.clone(), s.height, s.committed_txs))
                    .collect();
                panic!(
                    "want {txs} transactions and height {height}, have (member, height, txs) \
                     {seen:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Signs `count` transactions from the sample members and appends them to MEMPOOL, with
    /// the transaction id as the message id.
    async fn submit(&mut self, bus: &Bus, count: usize) {
        let signers: Vec<SigningKey> = self
            .net
            .transaction_signers()
            .filter(|(id, _)| !self.validators.iter().any(|v| v.member == *id))
            .map(|(_, k)| k.signing.clone())
            .collect();
        let streams = StreamsConfig::new(self.net.genesis.chain_id.as_str()).unwrap();
        for i in 0..count {
            let tx = SignedTx::sign(
                &self.net.genesis.chain_id,
                &signers[i % signers.len()],
                self.next_nonce,
                Height(900),
                citychain_testkit::note(&format!("put {i}")),
            )
            .unwrap();
            self.next_nonce += 1;
            bus.publish_idempotent(
                &streams.mempool_subject(),
                &tx.id().to_string(),
                tx.bytes().to_vec().into(),
                HeaderMap::new(),
            )
            .await
            .expect("appended to MEMPOOL");
        }
    }
}

fn validator_config(
    genesis: &Path,
    key: &Path,
    data: &Path,
    nats: &BusConfig,
    grpc: SocketAddr,
    metrics: SocketAddr,
) -> String {
    format!(
        r#"[service]
name = "consensus"

[grpc]
listen = "{grpc}"

[metrics]
enabled = true
listen = "{metrics}"

[log]
filter = "info"

[chain]
genesis = "{genesis}"

[consensus]
validator_key = "{key}"
data_dir = "{data}"
heartbeat_ms = 300

[nats]
{nats}"#,
        genesis = genesis.display(),
        key = key.display(),
        data = data.display(),
        nats = nats.to_toml(),
    )
}

fn highest(statuses: &[GetStatusResponse]) -> u64 {
    statuses.iter().map(|s| s.height).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n4_validator_processes_commit_and_a_restarted_one_catches_up() {
    let mut network = Network::new().await;
    for i in 0..4 {
        network.validators[i].start();
    }
    for i in 0..4 {
        network.wait_serving(i).await;
    }
    let bus = connect(&network.nats.operator()).await.unwrap();
    let streams = StreamsConfig::new(network.net.genesis.chain_id.as_str()).unwrap();
    ensure_streams(&bus, &streams).await.unwrap();

    // Given four healthy validators, who say who they are.
    let all = [0, 1, 2, 3];
    let first = network.statuses(&all).await;
    for (status, validator) in first.iter().zip(&network.validators) {
        assert_eq!(status.chain_id, "city-test");
        assert_eq!(status.member_id, validator.member);
        assert_eq!(status.validator_key.len(), 64);
    }
    // Reflection, in both protocols, advertises exactly what a validator serves.
    for version in [Version::V1, Version::V1Alpha] {
        let listed = list_services(&network.validators[0].url(), version)
            .await
            .unwrap();
        let mut expected = vec![SERVICE_NAME];
        expected.extend(citychain_runtime::grpc::BUILT_IN_SERVICES);
        expected.sort_unstable();
        assert_eq!(listed, expected, "{version:?}");
    }

    // When transactions are submitted, every validator commits all of them, and heights grow.
    network.submit(&bus, 12).await;
    let start = highest(&first);
    let after = network.wait_for(&all, 12, start + 2).await;
    for status in &after {
        assert_eq!(status.committed_txs, 12, "{}", status.member_id);
    }
    let metrics = network.validators[0].metrics();
    assert!(metrics.contains("consensus_height"), "{metrics}");

    // A validator stopped with SIGTERM exits cleanly; the other three go on committing.
    let exit = network.validators[3].terminate();
    assert!(exit.success(), "SIGTERM exit {exit}\n{}", network.logs());
    // The chain moves on by several blocks while it is down.
    let before = highest(&network.statuses(&[0, 1, 2]).await);
    network.submit(&bus, 6).await;
    let three = network.wait_for(&[0, 1, 2], 18, before + 5).await;

    // Restarted with the same configuration, it catches up with the others.
    network.validators[3].start();
    network.wait_serving(3).await;
    network.wait_for(&[3], 18, highest(&three)).await;

    // A validator killed where it stands also catches up, including what it missed.
    network.validators[1].kill();
    let before = highest(&network.statuses(&[0, 2, 3]).await);
    network.submit(&bus, 6).await;
    let three = network.wait_for(&[0, 2, 3], 24, before + 5).await;
    network.validators[1].start();
    network.wait_serving(1).await;
    let end = network.wait_for(&all, 24, highest(&three)).await;
    for status in &end {
        eprintln!(
            "{}: height {}, {} transactions, dropped {:?}",
            status.member_id, status.height, status.committed_txs, status.dropped
        );
        assert_eq!(status.committed_txs, 24, "{}", status.member_id);
    }
}

fn serve_with(config: &Path, extra: &[&str]) -> Output {
    citychain()
        .args(["serve", "consensus", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .expect("the binary runs")
}

/// A configuration whose files exist (unless a test removes them) and whose NATS is
/// unreachable: every test below must fail before it gets that far.
fn write_config(dir: &Path, body_after: &str) -> PathBuf {
    let net = network(4, SEED);
    let genesis = net.write_to(dir).unwrap();
    let member = net.genesis.validators[0].to_string();
    let mut toml = validator_config(
        &genesis,
        &dir.join("keys").join(format!("{member}.json")),
        &dir.join("data"),
        &BusConfig::with_url("nats://127.0.0.1:1"),
        free_addr(),
        free_addr(),
    );
    toml.push_str(body_after);
    let path = dir.join("consensus.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn a_missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let out = serve_with(&path, &[]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains(path.to_str().unwrap()), "{said}");
}

#[test]
fn bad_values_are_refused_naming_the_file_and_the_key() {
    // (what is appended to a good configuration, what the error must name)
    let cases: &[(&str, &[&str])] = &[
        ("\n[grpc.tls]\nbogus = 1\n", &["grpc.tls"]),
        ("\n[store]\npath = \"x\"\n", &["store"]),
    ];
    for (extra, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), extra);
        let out = serve_with(&path, &[]);
        assert!(!out.status.success(), "{extra:?} was accepted");
        let said = text(&out.stderr);
        for fragment in *expected {
            assert!(said.contains(fragment), "{extra:?}: {said}");
        }
        assert!(said.contains(path.to_str().unwrap()), "{extra:?}: {said}");
    }

    // A value of the wrong type, in place of a good one.
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        good.replace("heartbeat_ms = 300", "heartbeat_ms = \"soon\""),
    )
    .unwrap();
    let out = serve_with(&path, &[]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("consensus.heartbeat_ms"), "{said}");
    assert!(said.contains(path.to_str().unwrap()), "{said}");

    // The same through the environment.
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    let out = citychain()
        .args(["serve", "consensus", "--config"])
        .arg(&path)
        .env("CITYCHAIN_CONSENSUS__MAX_TTL", "forever")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("consensus.max_ttl"), "{said}");
}

#[test]
fn missing_or_wrong_genesis_and_key_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");

    // A key file that does not exist, given on the command line.
    let absent = dir.path().join("keys").join("nobody.json");
    let out = serve_with(&path, &["--validator-key", absent.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains(absent.to_str().unwrap()), "{said}");

    // A member's key that is not a validator's.
    let net = network(4, SEED);
    let member = net
        .keys
        .keys()
        .find(|id| {
            !net.genesis
                .validators
                .iter()
                .any(|v| v.as_str() == id.as_str())
        })
        .unwrap();
    let other = dir.path().join("keys").join(format!("{member}.json"));
    let out = serve_with(&path, &["--validator-key", other.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("not a validator"), "{said}");
    assert!(said.contains(other.to_str().unwrap()), "{said}");

    // No genesis file.
    let genesis = dir.path().join("genesis.json");
    std::fs::remove_file(&genesis).unwrap();
    let out = serve_with(&path, &[]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains(genesis.to_str().unwrap()), "{said}");
}

#[test]
fn one_service_per_process_and_a_config_is_required() {
    let out = citychain()
        .args(["serve", "consensus", "consensus"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("one"), "{}", text(&out.stderr));

    let out = citychain().args(["serve", "consensus"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--config"),
        "{}",
        text(&out.stderr)
    );
}
