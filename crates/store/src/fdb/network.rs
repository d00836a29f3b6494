//! FoundationDB's client network thread: started once per process, on the first
//! `FdbStore::open`, and stopped by [`stop_network`].
//!
//! The FoundationDB client runs all its I/O on one network thread per process, which can be
//! started once and, once stopped, never again. This module owns that thread's lifetime, so
//! this crate must be the only code in the process that boots FoundationDB.

use std::sync::{Mutex, MutexGuard};

use foundationdb::api::{FdbApiBuilder, NetworkAutoStop};

use crate::error::StoreError;

enum Network {
    /// Not started yet.
    Idle,
    /// Running; dropping the handle stops the thread and waits for it.
    Running { _handle: NetworkAutoStop },
    /// Stopped, or failed to start: FoundationDB cannot be started again in this process.
    Gone(&'static str),
}

static NETWORK: Mutex<Network> = Mutex::new(Network::Idle);

fn network() -> MutexGuard<'static, Network> {
    NETWORK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the network thread unless it is running. Errors if it was stopped or could not start.
pub(crate) fn ensure_started() -> Result<(), StoreError> {
    let mut network = network();
    match &*network {
        Network::Running { .. } => Ok(()),
        Network::Gone(why) => Err(StoreError::Backend(format!(
            "FoundationDB's client network {why}; it cannot be started again in this process"
        ))),
        Network::Idle => {
            // Selecting the API version can happen once per process, even if it fails, so a
            // failure here is final.
            let builder = match FdbApiBuilder::default().build() {
                Ok(builder) => builder,
                Err(error) => {
                    *network = Network::Gone("failed to start");
                    return Err(StoreError::Backend(format!(
                        "cannot select the FoundationDB API version: {error} ({})",
                        error.code()
                    )));
                }
            };
            // SAFETY: `boot` requires that the handle it returns be dropped before the process
            // exits (an abort is fine). The handle is kept in `NETWORK` and dropped by
            // `stop_network`, which `FdbStore`'s documentation requires the application to call
            // before it exits.
            #[allow(unsafe_code)]
            let booted = unsafe { builder.boot() };
            match booted {
                Ok(handle) => {
                    tracing::info!("FoundationDB client network started");
                    *network = Network::Running { _handle: handle };
                    Ok(())
                }
                Err(error) => {
                    *network = Network::Gone("failed to start");
                    Err(StoreError::Backend(format!(
                        "cannot start FoundationDB's client network: {error} ({})",
                        error.code()
                    )))
                }
            }
        }
    }
}

/// Stops FoundationDB's client network thread and waits for it to finish. Call it once, before
/// the process exits, after every `FdbStore` and transaction is done with; afterwards no
/// `FdbStore` can be opened or used in this process. Does nothing if the network never started.
pub fn stop_network() {
    let mut network = network();
    if matches!(*network, Network::Running { .. }) {
        // Replacing the handle drops it, which stops the thread and waits for it.
        *network = Network::Gone("was stopped");
        tracing::info!("FoundationDB client network stopped");
    }
}
