//! `citychain serve`: runs the named services in this process. Services register here as
//! they are built; asking for one that this build does not contain is an error that lists
//! what is available.
//!
//! For now a process runs exactly one service; serving several in one process
//! (`serve consensus ledger`) comes once there is more than one to combine.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use citychain_consensus::ConsensusConfig;
use citychain_ledger::LedgerConfig;
use citychain_licence::LicenceConfig;
use citychain_runtime::config::{ConfigError, ConfigLoader, ServiceConfig};
use citychain_runtime::shutdown::Shutdown;
use citychain_tokens::TokensConfig;
use clap::Args;

/// The services this build can run.
const AVAILABLE: &[&str] = &["consensus", "ledger", "licence", "tokens"];

/// The services the system is made of, in the order they depend on each other.
const PLANNED: &[&str] = &[
    "consensus",
    "ledger",
    "licence",
    "tokens",
    "finance",
    "medical",
    "coupons",
];

/// Worker threads at least, whatever the machine: the validator's engine and its network
/// tasks must not wait behind a busy gRPC call.
const MIN_WORKER_THREADS: usize = 2;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  citychain serve consensus --config /etc/citychain/consensus.toml
  citychain serve consensus --config consensus.toml --validator-key keys/dept-1.json
  citychain serve ledger --config /etc/citychain/ledger.toml
  citychain serve licence --config /etc/citychain/licence.toml
  citychain serve tokens --config /etc/citychain/tokens.toml

Any config key can be overridden from the environment as CITYCHAIN_<SECTION>__<KEY>, e.g.
CITYCHAIN_GRPC__LISTEN=0.0.0.0:7000. SIGTERM or Ctrl-C stops the service gracefully.")]
pub struct ServeArgs {
    /// The service to run (available: consensus, ledger, licence, tokens). One per process.
    #[arg(required = true, value_name = "SERVICE")]
    services: Vec<String>,
    /// The service's TOML configuration file.
    #[arg(long, value_name = "FILE", env = "CITYCHAIN_CONFIG")]
    config: Option<PathBuf>,
    /// The validator's key file; overrides `consensus.validator_key` (consensus only).
    #[arg(long, value_name = "FILE")]
    validator_key: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    for name in &args.services {
        if !AVAILABLE.contains(&name.as_str()) {
            let known = if PLANNED.contains(&name.as_str()) {
                "it is part of the design but not in this build yet"
            } else {
                "it is not a citychain service"
            };
            let available = if AVAILABLE.is_empty() {
                "none yet".to_string()
            } else {
                AVAILABLE.join(", ")
            };
            bail!("cannot serve {name:?}: {known} (services available: {available})");
        }
    }
    if args.services.len() > 1 {
        bail!(
            "cannot serve {} in one process yet: run one `citychain serve <SERVICE>` per service",
            args.services.join(" ")
        );
    }
    match args.services[0].as_str() {
        "consensus" => serve_consensus(&args),
        "ledger" => serve_ledger(&args),
        "licence" => {
            no_validator_key(&args, "licence")?;
            run_service(
                load_config::<LicenceConfig>(&args, "licence")?,
                "licence",
                citychain_licence::serve,
            )
        }
        "tokens" => {
            no_validator_key(&args, "tokens")?;
            run_service(
                load_config::<TokensConfig>(&args, "tokens")?,
                "tokens",
                citychain_tokens::serve,
            )
        }
        other => bail!("{other:?} is listed as available but has no entry point"),
    }
}

fn serve_consensus(args: &ServeArgs) -> Result<()> {
    let config = load_config::<ConsensusConfig>(args, "consensus")?;
    run_service(config, "consensus", citychain_consensus::serve)
}

fn no_validator_key(args: &ServeArgs, service: &str) -> Result<()> {
    if args.validator_key.is_some() {
        bail!("--validator-key is for the consensus service; the {service} service signs nothing");
    }
    Ok(())
}

fn serve_ledger(args: &ServeArgs) -> Result<()> {
    no_validator_key(args, "ledger")?;
    let config = load_config::<LedgerConfig>(args, "ledger")?;
    run_service(config, "ledger", citychain_ledger::serve)
}

/// Sets up telemetry and signals, then runs one service's `serve` to its end.
fn run_service<T, F, E>(
    config: ServiceConfig<T>,
    name: &'static str,
    serve: impl FnOnce(ServiceConfig<T>, Shutdown) -> F,
) -> Result<()>
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let runtime = runtime()?;
    runtime.block_on(async move {
        let _telemetry = citychain_telemetry::init(config.telemetry())
            .context("cannot set up logging and telemetry")?;
        let shutdown = Shutdown::on_signals().context("cannot install signal handlers")?;
        let outcome = serve(config, shutdown)
            .await
            .map_err(|err| one_line(name, err));
        // After the service's last store transaction: FoundationDB's client must be stopped
        // before the process exits.
        citychain_store::ServiceStore::shutdown_process();
        outcome
    })
}

/// Reads `--config` with `CITYCHAIN_*` overrides; `--validator-key`, when given, wins over
/// both.
fn load_config<T: serde::de::DeserializeOwned>(
    args: &ServeArgs,
    service: &str,
) -> Result<ServiceConfig<T>> {
    let Some(path) = &args.config else {
        bail!("serve {service} needs --config FILE (or CITYCHAIN_CONFIG)");
    };
    let mut loader = ConfigLoader::new()
        .default_value("service.name", service)
        .file(path);
    if let Some(key) = &args.validator_key {
        let Some(text) = key.to_str() else {
            bail!("--validator-key {} is not valid UTF-8", key.display());
        };
        loader = loader.set("consensus.validator_key", text);
    }
    loader.load().map_err(|err| match err {
        // These already name the file.
        ConfigError::Read { .. } | ConfigError::Syntax { .. } => anyhow!("{err}"),
        other => anyhow!("config file {}: {other}", path.display()),
    })
}

/// The error as one line. Our errors already quote their cause in their message, so
/// printing the source chain as well (`{:#}`) would say it twice.
fn one_line(service: &str, err: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{service}: {err}")
}

/// A multi-threaded runtime with one worker per core, and at least [`MIN_WORKER_THREADS`].
fn runtime() -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.max(MIN_WORKER_THREADS))
        .thread_name("citychain-worker")
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
