//! `citychain dev`: the whole network on one machine. It starts a local nats-server (JetStream
//! data under the home folder), creates a genesis with four validator departments and the
//! sample members unless one exists, runs every service as its own `citychain serve` process,
//! waits for each health check, writes `HOME/endpoints.json` and prints `ready`. Service logs
//! go to the terminal prefixed by service and to `HOME/logs/<service>.log`. A service that
//! exits is reported and restarted; Ctrl-C (or SIGTERM) stops everything cleanly, and the next
//! run resumes the same chain (`--reset` starts over).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use citychain_bus::access;
use citychain_bus::local::NatsServer;
use citychain_kernel::genesis::{
    build_genesis, department_plans, sample_member_plans, service_member_id, service_member_plans,
};
use citychain_kernel::{Genesis, KeyPair};
use citychain_runtime::grpc::health_status;
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::files::{random_seed, write_secret};
use crate::genesis_cmd::write_network;

/// The validators a development network has.
const VALIDATORS: usize = 4;

/// How long every service gets to report SERVING.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a stopping service gets before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The licence service's key file under `HOME/keys/`.
const LICENCE_KEY_FILE: &str = "licence-service.json";

/// The file the other commands read with `--home`.
pub const ENDPOINTS_FILE: &str = "endpoints.json";

#[derive(Debug, Args)]
#[command(after_help = "\
Ports: nats-server on BASE, validators' gRPC on BASE+1.., the ledger's gRPC on BASE+10,
the token service's on BASE+11, the licence service's on BASE+12; each service's metrics on
its gRPC port + 100.

Examples:
  citychain dev                       # state in ./.citychain
  citychain dev --home /tmp/city --base-port 17100
  citychain dev --reset               # forget the chain and start a new one
  citychain demo --home .citychain    # in another terminal, once `ready` is printed")]
pub struct DevArgs {
    /// Where the network keeps its state: genesis, keys, NATS data, stores, logs.
    #[arg(long, value_name = "DIR", default_value = ".citychain")]
    home: PathBuf,
    /// Delete the state and start a new chain.
    #[arg(long)]
    reset: bool,
    /// The first of the local ports the network uses (see below).
    #[arg(long, value_name = "PORT", default_value_t = 7100)]
    base_port: u16,
}

/// One service's addresses, as `endpoints.json` lists them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    /// Its gRPC address, `http://HOST:PORT`.
    pub grpc: String,
    /// Its Prometheus endpoint, `http://HOST:PORT/metrics`.
    pub metrics: String,
    /// The process id of its current process.
    pub pid: Option<u32>,
}

/// `HOME/endpoints.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoints {
    /// The chain.
    pub chain_id: String,
    /// The nats-server's URL.
    pub nats: String,
    /// The nkey seed file of the server's `operator` user, who may do anything (the server
    /// refuses connections without a known nkey).
    #[serde(default)]
    pub nats_operator_seed: String,
    /// Every service by name (`consensus-<member>`, `ledger`).
    pub services: BTreeMap<String, Endpoint>,
}

impl Endpoints {
    /// Reads `HOME/endpoints.json`, saying how to get one when it is missing.
    pub fn read(home: &Path) -> Result<Endpoints> {
        let path = home.join(ENDPOINTS_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}; is `citychain dev --home {}` running?",
                path.display(),
                home.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }

    /// The gRPC address of `service`: `explicit` when given, else the one the network under
    /// `home` lists; fails naming the flags when neither is given.
    pub fn service_url(
        explicit: Option<&String>,
        home: Option<&Path>,
        service: &str,
    ) -> Result<String> {
        match (explicit, home) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(home)) => Ok(Endpoints::read(home)?.grpc(service)?.to_owned()),
            (None, None) => bail!("give --{service} URL or --home DIR"),
        }
    }

    /// The ledger's gRPC address.
    pub fn ledger(&self) -> Result<&str> {
        self.grpc("ledger")
    }

    /// The gRPC address of `service`.
    pub fn grpc(&self, service: &str) -> Result<&str> {
        self.services
            .get(service)
            .map(|e| e.grpc.as_str())
            .with_context(|| format!("endpoints.json lists no {service} service"))
    }

    fn write(&self, home: &Path) -> Result<()> {
        let path = home.join(ENDPOINTS_FILE);
        let partial = home.join("endpoints.json.partial");
        std::fs::write(&partial, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// One service process to run.
#[derive(Debug, Clone)]
struct Service {
    name: String,
    args: Vec<String>,
    grpc: SocketAddr,
    metrics: SocketAddr,
    health_name: &'static str,
}

pub fn run(args: DevArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(dev(args))
}

async fn dev(args: DevArgs) -> Result<()> {
    let home = args.home.clone();
    if args.reset && home.exists() {
        std::fs::remove_dir_all(&home)
            .with_context(|| format!("cannot delete {}", home.display()))?;
        eprintln!("[dev] deleted {}: starting a new chain", home.display());
    }
    std::fs::create_dir_all(home.join("logs"))
        .with_context(|| format!("cannot create {}", home.display()))?;
    let genesis = ensure_genesis(&home)?;
    let services = plan(&home, &genesis, args.base_port)?;
    check_ports(args.base_port, &services)?;

    eprintln!("[dev] starting nats-server on port {}", args.base_port);
    // A user per validator and per service, each with only its own permissions; new nkeys on
    // every start (the configurations written below name them).
    let streams = citychain_bus::StreamsConfig::new(genesis.chain_id.as_str())?;
    let members: Vec<String> = genesis.validators.iter().map(|m| m.to_string()).collect();
    let mut nats = NatsServer::builder()
        .store_dir(home.join("nats"))
        .port(args.base_port)
        .chain_users(
            &streams,
            access::chain_users(members.iter().map(String::as_str)),
        )
        .start()
        .await
        .context("cannot start nats-server")?;
    write_configs(&home, &nats, &services)?;

    let exe = std::env::current_exe().context("cannot find the citychain binary")?;
    let endpoints = Arc::new(Mutex::new(Endpoints {
        chain_id: genesis.chain_id.to_string(),
        nats: nats.url(),
        nats_operator_seed: nats
            .seed_file(citychain_bus::local::OPERATOR_USER)
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
        services: services
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    Endpoint {
                        grpc: format!("http://{}", s.grpc),
                        metrics: format!("http://{}/metrics", s.metrics),
                        pid: None,
                    },
                )
            })
            .collect(),
    }));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut supervisors = tokio::task::JoinSet::new();
    for service in &services {
        supervisors.spawn(supervise(
            exe.clone(),
            home.clone(),
            service.clone(),
            endpoints.clone(),
            stop_rx.clone(),
        ));
    }

    let started = tokio::select! {
        result = wait_healthy(&services) => result,
        () = stop_signal() => Err(anyhow::anyhow!("interrupted while starting")),
    };
    let outcome = match started {
        Ok(()) => {
            let current = endpoints.lock().map(|e| e.clone()).ok();
            if let Some(current) = current {
                current.write(&home)?;
                for (name, e) in &current.services {
                    println!("{name:<32} gRPC {}  metrics {}", e.grpc, e.metrics);
                }
            }
            println!("ready");
            let _ = std::io::stdout().flush();
            stop_signal().await;
            eprintln!("[dev] stopping");
            Ok(())
        }
        Err(err) => Err(err),
    };
    let _ = stop_tx.send(true);
    while supervisors.join_next().await.is_some() {}
    let _ = std::fs::remove_file(home.join(ENDPOINTS_FILE));
    nats.stop().await.context("cannot stop nats-server")?;
    eprintln!(
        "[dev] stopped; `citychain dev --home {}` resumes this chain",
        home.display()
    );
    outcome
}

/// Reads `HOME/genesis.json`, or creates it with keys for 4 departments and the samples.
fn ensure_genesis(home: &Path) -> Result<Genesis> {
    let path = home.join("genesis.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let genesis = Genesis::from_json(&text)
            .with_context(|| format!("{} is not a valid genesis", path.display()))?;
        let identity = service_member_id("tokens");
        if !genesis.members.iter().any(|m| m.id.as_str() == identity) {
            bail!(
                "{} predates service identities: it has no member {identity}, whose key signs \
                 the token platform's verdicts; start a new chain in another --home (or delete \
                 {})",
                path.display(),
                home.display()
            );
        }
        eprintln!(
            "[dev] resuming chain {} from {}",
            genesis.chain_id,
            path.display()
        );
        return Ok(genesis);
    }
    // The first seven named departments: the four validators and the three more the real
    // estate transfer of the demo needs (surveying, housing).
    let mut plans = department_plans(VALIDATORS + 3);
    plans.extend(sample_member_plans());
    plans.extend(service_member_plans());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_millis() as u64;
    let (genesis, keys) = build_genesis("citychain-dev", now, &plans, VALIDATORS, random_seed)?;
    write_network(home, &genesis, &keys, false)?;
    // The licence service's own key, which seals the record keys it keeps.
    let service_key = KeyPair::from_seeds(None, &random_seed(), &random_seed());
    write_secret(
        &home.join("keys").join(LICENCE_KEY_FILE),
        &service_key.to_key_file(),
        false,
    )?;
    eprintln!(
        "[dev] created chain {} with {} members ({} validators) in {}",
        genesis.chain_id,
        genesis.members.len(),
        VALIDATORS,
        home.display()
    );
    Ok(genesis)
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The services and their ports.
fn plan(home: &Path, genesis: &Genesis, base: u16) -> Result<Vec<Service>> {
    if base > u16::MAX - 300 {
        bail!(
            "--base-port {base} leaves no room for the network's ports (it needs BASE..BASE+200)"
        );
    }
    let config = |name: &str| home.join("config").join(format!("{name}.toml"));
    let mut services: Vec<Service> = genesis
        .validators
        .iter()
        .enumerate()
        .map(|(i, member)| {
            let name = format!("consensus-{member}");
            let grpc = base + 1 + i as u16;
            Service {
                args: vec![
                    "serve".into(),
                    "consensus".into(),
                    "--config".into(),
                    config(&name).display().to_string(),
                ],
                name,
                grpc: local(grpc),
                metrics: local(grpc + 100),
                health_name: citychain_consensus::SERVICE_NAME,
            }
        })
        .collect();
    for (offset, name, health_name) in [
        (10, "ledger", citychain_ledger::SERVICE_NAME),
        (11, "tokens", citychain_tokens::SERVICE_NAME),
        (12, "licence", citychain_licence::SERVICE_NAME),
    ] {
        services.push(Service {
            name: name.into(),
            args: vec![
                "serve".into(),
                name.into(),
                "--config".into(),
                config(name).display().to_string(),
            ],
            grpc: local(base + offset),
            metrics: local(base + 100 + offset),
            health_name,
        });
    }
    Ok(services)
}

/// Refuses to start when a port the network needs is taken, naming it.
fn check_ports(base: u16, services: &[Service]) -> Result<()> {
    let mut ports = vec![local(base)];
    for s in services {
        ports.push(s.grpc);
        ports.push(s.metrics);
    }
    for addr in ports {
        if TcpListener::bind(addr).is_err() {
            bail!(
                "port {} is in use (is another `citychain dev` running?); choose other ports \
                 with --base-port",
                addr.port()
            );
        }
    }
    Ok(())
}

/// Writes each service's TOML configuration under `HOME/config/`.
fn write_configs(home: &Path, nats: &NatsServer, services: &[Service]) -> Result<()> {
    let dir = home.join("config");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let genesis_file = home.join("genesis.json");
    for service in services {
        let user = match service.name.strip_prefix("consensus-") {
            Some(member) => access::validator_user(member),
            None => service.name.clone(),
        };
        let own = match service.name.strip_prefix("consensus-") {
            Some(member) => format!(
                "[consensus]\nvalidator_key = {key:?}\ndata_dir = {data:?}\nheartbeat_ms = 1000\n",
                key = home.join("keys").join(format!("{member}.json")),
                data = home.join("data").join(&service.name),
            ),
            None if service.name == "licence" => format!(
                "[licence]\ndata_dir = {data:?}\nkey_file = {key:?}\n",
                data = home.join("data").join(&service.name),
                key = home.join("keys").join(LICENCE_KEY_FILE),
            ),
            None if service.name == "tokens" => format!(
                "[tokens]\ndata_dir = {data:?}\nkey_file = {key:?}\n",
                data = home.join("data").join(&service.name),
                key = home
                    .join("keys")
                    .join(format!("{}.json", service_member_id("tokens"))),
            ),
            None => format!(
                "[{name}]\ndata_dir = {data:?}\n",
                name = service.name,
                data = home.join("data").join(&service.name)
            ),
        };
        let text = format!(
            "# Written by `citychain dev`; rewritten on every start.\n\
             [grpc]\nlisten = \"{grpc}\"\n\n[metrics]\nlisten = \"{metrics}\"\n\n\
             [chain]\ngenesis = {genesis:?}\n\n{own}\n[nats]\n{nats}",
            grpc = service.grpc,
            metrics = service.metrics,
            genesis = genesis_file,
            nats = nats.user(&user).to_toml(),
        );
        let path = dir.join(format!("{}.toml", service.name));
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Runs one service, restarting it whenever it exits, until `stop` turns true.
async fn supervise(
    exe: PathBuf,
    home: PathBuf,
    service: Service,
    endpoints: Arc<Mutex<Endpoints>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut restarts = 0u32;
    loop {
        let mut child = match spawn(&exe, &home, &service) {
            Ok(child) => child,
            Err(err) => {
                eprintln!("[dev] cannot start {}: {err:#}", service.name);
                return;
            }
        };
        let pid = child.id();
        if let Ok(mut e) = endpoints.lock() {
            if let Some(entry) = e.services.get_mut(&service.name) {
                entry.pid = pid;
            }
            if restarts > 0 {
                let _ = e.write(&home);
            }
        }
        tokio::select! {
            status = child.wait() => {
                if *stop.borrow() {
                    return;
                }
                restarts += 1;
                let said = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                eprintln!(
                    "[dev] {} exited ({said}); restarting it (restart {restarts})",
                    service.name
                );
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            _ = stop.changed() => {
                terminate(&mut child, &service.name).await;
                return;
            }
        }
    }
}

/// Starts the service's process with its output prefixed and logged.
fn spawn(exe: &Path, home: &Path, service: &Service) -> Result<Child> {
    let mut child = Command::new(exe)
        .args(&service.args)
        .env("CITYCHAIN_SERVICE__NAME", &service.name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let log = home.join("logs").join(format!("{}.log", service.name));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let file = Arc::new(Mutex::new(file));
    if let Some(out) = child.stdout.take() {
        tokio::spawn(relay(out, service.name.clone(), file.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(relay(err, service.name.clone(), file));
    }
    Ok(child)
}

/// Copies a child's output line by line to our stderr, prefixed, and to its log file.
async fn relay(
    output: impl tokio::io::AsyncRead + Unpin,
    name: String,
    file: Arc<Mutex<std::fs::File>>,
) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{name}] {line}");
        if let Ok(mut file) = file.lock() {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// Asks a service to stop (SIGTERM), and kills it if it has not within [`STOP_TIMEOUT`].
async fn terminate(child: &mut Child, name: &str) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        eprintln!("[dev] {name} did not stop within {STOP_TIMEOUT:?}; killing it");
        let _ = child.kill().await;
    }
}

/// Waits until every service reports SERVING, with a progress line.
async fn wait_healthy(services: &[Service]) -> Result<()> {
    let started = tokio::time::Instant::now();
    let mut last = usize::MAX;
    loop {
        let mut healthy = 0;
        let mut waiting = Vec::new();
        for s in services {
            if health_status(s.grpc, s.health_name).await == Some(ServingStatus::Serving as i32) {
                healthy += 1;
            } else {
                waiting.push(s.name.as_str());
            }
        }
        if healthy != last {
            eprintln!("[dev] {healthy} of {} services healthy", services.len());
            last = healthy;
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "not healthy after {START_TIMEOUT:?}: {} (see the logs under the home folder)",
                waiting.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
