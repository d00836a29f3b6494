//! A local cluster for one run: a nats-server with JetStream and the chain's streams, and the
//! validators running as tasks of this process. Each validator has its own NATS connection and
//! its own embedded block store in a temporary directory, as separate processes would.
//! Everything is removed when the cluster is stopped or dropped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use citychain_bus::access;
use citychain_bus::local::NatsServer;
use citychain_bus::{Bus, BusConfig, StreamKind, StreamsConfig, connect, ensure_streams};
use citychain_consensus::{ConsensusSection, Status, ValidatorError, ValidatorSetup};
use citychain_kernel::Genesis;
use citychain_kernel::genesis::{MemberPlan, Role, build_genesis, department_plans};
use citychain_kernel::keys::KeyPair;
use citychain_store::EmbeddedStore;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::files::random_seed;

/// The largest NATS message the local server accepts. A proposed block travels in one message,
/// so the default of 1 MB would cap blocks at about 3,000 transactions of 300 bytes.
const MAX_PAYLOAD: &str = "max_payload: 8MB";

/// A new chain: its genesis and the validators' keys, in validator order.
pub struct Chain {
    pub genesis: Genesis,
    pub validator_keys: Vec<KeyPair>,
}

impl Chain {
    /// A chain of `validators` departments, all of them validators, with keys from the
    /// operating system's random source, and one enterprise member per load signer (signing
    /// with the key of that seed), since governance admits only members' transactions.
    pub fn new(validators: usize, signer_seeds: &[[u8; 32]]) -> Result<Chain> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_millis() as u64;
        let mut plans = department_plans(validators);
        plans.extend((0..signer_seeds.len()).map(|i| MemberPlan {
            id: format!("bench.load-{i}"),
            name: format!("Load signer {i}"),
            role: Role::Enterprise,
        }));
        // Seeds are drawn two per member (signing, then encryption), in plan order.
        let mut draws = 0usize;
        let seed = || {
            let member = draws / 2;
            let signing = draws.is_multiple_of(2);
            draws += 1;
            match member.checked_sub(validators) {
                Some(signer) if signing => signer_seeds[signer],
                _ => random_seed(),
            }
        };
        let (genesis, keys) = build_genesis("citychain-bench", now, &plans, validators, seed)
            .context("cannot build the benchmark genesis")?;
        Ok(Chain {
            genesis,
            validator_keys: keys.into_iter().take(validators).collect(),
        })
    }
}

struct Validator {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ValidatorError>>,
    status: Arc<Mutex<Status>>,
    _dir: TempDir,
}

/// A running nats-server and validators.
pub struct Cluster {
    nats: NatsServer,
    streams: StreamsConfig,
    validators: Vec<Validator>,
}

impl Cluster {
    /// Starts the nats-server, creates the streams and starts one validator per key.
    pub async fn start(chain: &Chain, section: &ConsensusSection) -> Result<Cluster> {
        let streams = StreamsConfig::new(chain.genesis.chain_id.as_str())?;
        // The benchmark's load comes from a ledger's user: it submits to MEMPOOL and reads CHAIN.
        let members: Vec<String> = chain
            .genesis
            .validators
            .iter()
            .map(|m| m.to_string())
            .collect();
        let nats = NatsServer::builder()
            .config(MAX_PAYLOAD)
            .chain_users(
                &streams,
                access::chain_users(members.iter().map(String::as_str)),
            )
            .start()
            .await
            .context("cannot start a local nats-server")?;
        let admin = connect(&nats.operator()).await?;
        ensure_streams(&admin, &streams).await?;
        let mut cluster = Cluster {
            nats,
            streams,
            validators: Vec::new(),
        };
        for key in &chain.validator_keys {
            let dir = tempfile::Builder::new()
                .prefix("citychain-bench-validator-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let store = EmbeddedStore::open(dir.path().join("blocks.redb"))
                .await
                .context("cannot open a validator's block store")?;
            // The user of the member this key is the validator of, whose consumer it keeps.
            let public = key.signing.public_key();
            let member = chain
                .genesis
                .validator_set()
                .get(&public)
                .map(|v| v.member_id.clone())
                .with_context(|| format!("key {public} is no validator of the benchmark chain"))?;
            let user = access::validator_user(member.as_str());
            let bus = connect(&cluster.nats.user(&user)).await?;
            let setup = ValidatorSetup {
                genesis: chain.genesis.clone(),
                key: key.signing.clone(),
                section: ConsensusSection {
                    data_dir: dir.path().to_path_buf(),
                    ..section.clone()
                },
                streams: cluster.streams.clone(),
            };
            let status = Arc::new(Mutex::new(Status::default()));
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(citychain_consensus::run(
                setup,
                bus,
                store,
                status.clone(),
                async move {
                    let _ = stopped.await;
                },
            ));
            cluster.validators.push(Validator {
                stop,
                task,
                status,
                _dir: dir,
            });
        }
        Ok(cluster)
    }

    /// A new NATS connection to the cluster's server as the ledger's user (which submits to
    /// MEMPOOL and reads CHAIN), shown in the server's connection list as `name`.
    pub async fn connect(&self, name: &str) -> Result<Bus> {
        let config = BusConfig {
            client_name: name.to_owned(),
            ..self.nats.user(access::Role::Ledger.name())
        };
        Ok(connect(&config).await?)
    }

    /// The chain's streams.
    pub fn streams(&self) -> &StreamsConfig {
        &self.streams
    }

    /// The nats-server's process id.
    pub fn nats_pid(&self) -> Option<u32> {
        self.nats.pid()
    }

    /// Where each validator reports its status.
    pub fn status_handles(&self) -> Vec<Arc<Mutex<Status>>> {
        self.validators.iter().map(|v| v.status.clone()).collect()
    }

    /// Fails if a validator has stopped by itself.
    pub fn check_running(&self) -> Result<()> {
        match self.validators.iter().position(|v| v.task.is_finished()) {
            Some(i) => bail!("validator {i} stopped during the run"),
            None => Ok(()),
        }
    }

    /// Waits until CHAIN holds `height` blocks, failing after `timeout`.
    pub async fn wait_for_height(&self, bus: &Bus, height: u64, timeout: Duration) -> Result<()> {
        let stream = self.streams.stream_name(StreamKind::Chain);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = bus.stream_state(&stream).await?.last_sequence;
            if last >= height {
                return Ok(());
            }
            self.check_running()?;
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the validators committed {last} of {height} blocks within {timeout:?}; \
                     is the cluster able to reach consensus?"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every validator cleanly, reporting the first that failed, then the nats-server.
    pub async fn stop(mut self) -> Result<()> {
        let mut first_error = None;
        for (i, validator) in std::mem::take(&mut self.validators).into_iter().enumerate() {
            let _ = validator.stop.send(());
            let outcome = match tokio::time::timeout(Duration::from_secs(10), validator.task).await
            {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(err))) => Err(anyhow!("validator {i} failed: {err}")),
                Ok(Err(err)) => Err(anyhow!("validator {i} panicked: {err}")),
                Err(_) => Err(anyhow!("validator {i} did not stop within 10 s")),
            };
            if let Err(err) = outcome
                && first_error.is_none()
            {
                first_error = Some(err);
            }
        }
        drop(self);
        match first_error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// A cluster abandoned on an error path stops its validators before the server goes.
impl Drop for Cluster {
    fn drop(&mut self) {
        for validator in &self.validators {
            validator.task.abort();
        }
    }
}
