//! The parts of a service's `serve` that every service repeats: reading the files named in
//! its configuration with errors that name them, and running its servers beside its main
//! loop so that one failing stops the others and none outlives the process by long.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use citychain_kernel::{Genesis, GenesisError};
use citychain_store::{Backend, EmbeddedStore, ServiceStore, StoreConfig, StoreError};
use thiserror::Error;
use tokio_util::task::AbortOnDropHandle;

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::config::MetricsConfig;
use crate::grpc::{GrpcError, GrpcServer};
use crate::metrics::{MetricsError, serve_metrics_on};
use crate::shutdown::Shutdown;

/// How long servers get to finish calls in flight once the service's main loop has stopped;
/// a client holding a stream open (a health watch) must not keep the process up.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A file named in a service's configuration could not be used.
#[derive(Debug, Error)]
pub enum FileError {
    /// It could not be read.
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        /// Which file it is (`genesis file`, `validator key file`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The genesis file does not hold a valid genesis.
    #[error("genesis file {path} is invalid: {source}")]
    Genesis {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: GenesisError,
    },
}

/// A server task ended abnormally.
#[derive(Debug, Error)]
#[error("the {what} task ended abnormally: {reason}")]
pub struct TaskError {
    /// Which task.
    pub what: &'static str,
    /// What Tokio said.
    pub reason: String,
}

/// A service's servers could not start, failed, or did not end cleanly.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The gRPC server could not bind its port, or failed.
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    /// The metrics endpoint could not bind its port, or failed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A server task panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// A service's gRPC server and (when enabled) its `/metrics` endpoint, running until their
/// stop fires; one failing fires the stop for the whole service.
#[derive(Debug)]
pub struct Servers {
    grpc: AbortOnDropHandle<Result<(), GrpcError>>,
    metrics: Option<AbortOnDropHandle<Result<(), MetricsError>>>,
}

impl Servers {
    /// Binds both ports first (so a port in use is reported before anything runs), then
    /// serves `server` on `grpc` and the Prometheus registry on `metrics` until `stop`.
    pub async fn start(
        server: GrpcServer,
        grpc: SocketAddr,
        metrics: &MetricsConfig,
        stop: &Shutdown,
    ) -> Result<Servers, ServerError> {
        let grpc_listener = TcpListener::bind(grpc)
            .await
            .map_err(|source| GrpcError::Bind { addr: grpc, source })?;
        let metrics_listener = if metrics.enabled {
            let addr = metrics.listen;
            Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| MetricsError::Bind { addr, source })?,
            )
        } else {
            None
        };
        let grpc = spawn_owned(stop_all_on_error(
            server.serve_on(grpc_listener, stop.clone()),
            stop.clone(),
        ));
        let metrics = metrics_listener.map(|listener| {
            spawn_owned(stop_all_on_error(
                serve_metrics_on(
                    listener,
                    citychain_telemetry::prometheus_registry(),
                    stop.clone(),
                ),
                stop.clone(),
            ))
        });
        Ok(Servers { grpc, metrics })
    }

    /// Waits for both servers to end after the stop fired (see [`drain`]); the first error.
    pub async fn drain(self) -> Result<(), ServerError> {
        let grpc = drain("gRPC server", self.grpc).await;
        let metrics = match self.metrics {
            Some(task) => drain("metrics endpoint", task).await,
            None => Ok(Ok(())),
        };
        grpc??;
        metrics??;
        Ok(())
    }
}

/// A service's store could not be opened.
#[derive(Debug, Error)]
pub enum StoreOpenError {
    /// The `[store]` section asks for what this build or backend cannot do, or FoundationDB
    /// could not be opened.
    #[error("cannot open the store: {0}")]
    Backend(StoreError),
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A damaged store file could not be moved out of the way.
    #[error("cannot move the damaged store {path} aside: {source}")]
    MoveAside {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store's file could not be opened (damaged, or open in another process).
    #[error("cannot open the store {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What the store said.
        source: StoreError,
    },
}

/// Opens (creating if need be) the embedded store `file` in `data_dir`.
pub async fn open_embedded_store(
    data_dir: &Path,
    file: &str,
) -> Result<EmbeddedStore, StoreOpenError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreOpenError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let path = data_dir.join(file);
    EmbeddedStore::open(&path)
        .await
        .map_err(|source| StoreOpenError::Open { path, source })
}

/// The file name of service `service`'s embedded store in its data folder.
pub fn embedded_store_file(service: &str) -> String {
    format!("{service}.redb")
}

/// Renames a damaged store file out of the way, to `<file>.damaged` (or `.damaged.1`,
/// `.damaged.2`, ... if that is taken), so that an empty store can be opened in its place
/// and the operator keeps the damaged one for inspection. Returns the new name.
pub fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let mut name = path.as_os_str().to_owned();
    name.push(".damaged");
    let base = PathBuf::from(name);
    let mut target = base.clone();
    let mut n = 0u32;
    while target.exists() {
        n += 1;
        let mut numbered = base.as_os_str().to_owned();
        numbered.push(format!(".{n}"));
        target = PathBuf::from(numbered);
    }
    std::fs::rename(path, &target)?;
    Ok(target)
}

/// Opens the store `config` names for service `service`: the embedded store
/// `<data_dir>/<service>.redb`, or its FoundationDB subspace.
pub async fn open_service_store(
    config: &StoreConfig,
    data_dir: &Path,
    service: &str,
) -> Result<ServiceStore, StoreOpenError> {
    config.check().map_err(StoreOpenError::Backend)?;
    match config.backend {
        Backend::Embedded => Ok(ServiceStore::Embedded(
            open_embedded_store(data_dir, &embedded_store_file(service)).await?,
        )),
        Backend::Foundationdb => ServiceStore::open_foundationdb(config, service)
            .await
            .map_err(StoreOpenError::Backend),
    }
}

/// Reads a text file named in the configuration; the error says which file it is.
pub fn read_text(what: &'static str, path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and checks the genesis file.
pub fn load_genesis(path: &Path) -> Result<Genesis, FileError> {
    let text = read_text("genesis file", path)?;
    Genesis::from_json(&text).map_err(|source| FileError::Genesis {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs a server; if it fails, fires `stop` so the service's other parts stop too.
pub async fn stop_all_on_error<E>(
    server: impl Future<Output = Result<(), E>>,
    stop: Shutdown,
) -> Result<(), E> {
    let result = server.await;
    if result.is_err() {
        stop.trigger();
    }
    result
}

/// Spawns one of a service's tasks so that it ends with the service: dropping the handle
/// (the service's future was dropped, as a killed process's tasks die with it) aborts it.
pub fn spawn_owned<T: Send + 'static>(
    task: impl Future<Output = T> + Send + 'static,
) -> AbortOnDropHandle<T> {
    AbortOnDropHandle::new(tokio::spawn(task))
}

/// Waits for a server task to finish after its stop fired, for at most [`DRAIN_TIMEOUT`];
/// calls still open then are closed.
pub async fn drain<E>(
    what: &'static str,
    mut task: AbortOnDropHandle<Result<(), E>>,
) -> Result<Result<(), E>, TaskError> {
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut task).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(join)) => Err(TaskError {
            what,
            reason: join.to_string(),
        }),
        Err(_) => {
            tracing::warn!(
                server = what,
                "calls still open after {DRAIN_TIMEOUT:?}; closing them"
            );
            task.abort();
            Ok(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_service_store_is_the_embedded_file_unless_the_section_asks_for_more() {
        use citychain_store::{Store, Transaction};
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = open_service_store(&StoreConfig::default(), &data, "ledger")
            .await
            .unwrap();
        assert!(matches!(store, ServiceStore::Embedded(_)));
        assert!(data.join("ledger.redb").exists());
        let mut txn = store.begin().await.unwrap();
        txn.put(b"k", b"v").unwrap();
        txn.commit().await.unwrap();

        let fdb = StoreConfig {
            backend: Backend::Foundationdb,
            ..StoreConfig::default()
        };
        // A build without FoundationDB support refuses it, naming the build that has it.
        if fdb.check().is_err() {
            let err = open_service_store(&fdb, &data, "ledger").await.unwrap_err();
            assert!(err.to_string().contains("--features foundationdb"), "{err}");
        }
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let err = open_service_store(&StoreConfig::default(), &file, "ledger")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("a-file"), "{err}");
    }

    #[test]
    fn a_missing_genesis_file_is_named() {
        let err = load_genesis(Path::new("/nonexistent/genesis.json")).unwrap_err();
        let said = err.to_string();
        assert!(
            said.contains("genesis file /nonexistent/genesis.json"),
            "{said}"
        );
    }

    #[test]
    fn a_bad_genesis_file_is_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genesis.json");
        std::fs::write(&path, "{}").unwrap();
        let err = load_genesis(&path).unwrap_err();
        assert!(matches!(err, FileError::Genesis { .. }), "{err}");
        assert!(err.to_string().contains("genesis.json is invalid"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_server_stops_the_others() {
        let stop = Shutdown::new();
        let failing = stop_all_on_error(async { Err::<(), _>("bind failed") }, stop.clone());
        assert!(failing.await.is_err());
        tokio::time::timeout(Duration::from_secs(1), stop.wait())
            .await
            .expect("stop fired");
    }

    #[tokio::test]
    async fn a_dropped_handle_aborts_its_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = spawn_owned(async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        });
        drop(task);
        assert!(rx.await.is_err(), "the task's sender was dropped with it");
    }

    #[tokio::test]
    async fn drain_reports_a_panicked_task() {
        let task = spawn_owned(async {
            if true {
                panic!("boom");
            }
            Ok::<(), ()>(())
        });
        let err = drain("test", task).await.unwrap_err();
        assert!(
            err.to_string().contains("the test task ended abnormally"),
            "{err}"
        );
    }
}
