//! The audit: rebuilds the token journal from a chain export alone (no NATS, no running
//! service), with the same projection the service runs and the follower's own audit of each
//! block, into a temporary store, and sums it up. Any member can run it and compare the
//! figures with a running token service's (`ListBalances`, `GetSupply`, `GetJournalHash`):
//! equal chains give equal figures, byte for byte. The CLI exposes it as
//! `citychain tokens audit GENESIS EXPORT`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use citychain_follower::{FollowerError, ReplayError, Replayer};
use citychain_kernel::{ExportError, ExportReader, Genesis, Hash32};
use citychain_store::{EmbeddedStore, Store, StoreError, read_applied_height};
use citychain_tokens_domain::Account;
use thiserror::Error;

use crate::journal::{self, TokensStoreError};
use crate::projection::{PROJECTION_NAME, TokensProjection};

/// What the journal rebuilt from an export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSummary {
    /// The last block of the export (0 for an export without blocks).
    pub height: u64,
    /// Every account an entry touched, with its balance, in account order.
    pub balances: Vec<(Account, i64)>,
    /// Tokens minted (minus the mint's balance; every member's balance sums to it).
    pub supply: u64,
    /// The journal's state hash after `height`.
    pub journal_hash: Hash32,
    /// Events in the journal's history.
    pub events: u64,
}

/// Why the audit could not rebuild the journal.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The export file cannot be opened.
    #[error("cannot open the export {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The export is malformed, truncated, or of another chain.
    #[error("the export {path} is not a valid export of this chain: {source}")]
    Export {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: ExportError,
    },
    /// A block of the export fails the chain's audit.
    #[error("the export {path} is not a valid chain: {reason}")]
    Chain {
        /// The file.
        path: PathBuf,
        /// The block and what is wrong with it.
        reason: String,
    },
    /// The temporary store failed.
    #[error("audit store: {0}")]
    Store(#[from] StoreError),
    /// The journal could not be built (a failure of ours, or an inconsistent journal).
    #[error("rebuilding the token journal failed: {0}")]
    Journal(#[from] FollowerError<TokensStoreError>),
    /// The rebuilt journal cannot be read.
    #[error(transparent)]
    Read(#[from] TokensStoreError),
}

/// Rebuilds the token journal from the export at `export` (checked against `genesis`) and
/// returns its summary. The store is a temporary file, removed afterwards.
pub async fn replay_export(genesis: &Genesis, export: &Path) -> Result<AuditSummary, AuditError> {
    let path = export.to_path_buf();
    let file = File::open(export).map_err(|source| AuditError::Open {
        path: path.clone(),
        source,
    })?;
    let export_error = |source| AuditError::Export {
        path: path.clone(),
        source,
    };
    let mut reader =
        ExportReader::new(BufReader::with_capacity(1 << 20, file)).map_err(export_error)?;
    reader.check_genesis(genesis).map_err(export_error)?;

    let dir = tempfile::tempdir().map_err(|source| AuditError::Open {
        path: std::env::temp_dir(),
        source,
    })?;
    let store = EmbeddedStore::open(dir.path().join("tokens-audit.redb")).await?;
    let mut replayer = Replayer::resume(genesis, store.clone(), TokensProjection).await?;
    for block in reader.by_ref() {
        let block = block.map_err(export_error)?;
        match replayer.apply_block(&block).await {
            Ok(_) => {}
            Err(ReplayError::Refused { height, reason }) => {
                return Err(AuditError::Chain {
                    path,
                    reason: format!("block {height}: {reason}"),
                });
            }
            Err(ReplayError::Follower(err)) => return Err(AuditError::Journal(err)),
        }
    }
    if !reader.is_complete() {
        return Err(export_error(ExportError::MissingTrailer {
            height: reader.next_height(),
            blocks: reader.blocks_read(),
        }));
    }
    summarise(&store).await
}

/// The summary of the token journal in `store`.
pub async fn summarise<S: Store>(store: &S) -> Result<AuditSummary, AuditError> {
    let mut txn = store.begin().await?;
    let height = read_applied_height(&mut txn, PROJECTION_NAME).await?;
    let balances: Vec<(Account, i64)> = journal::all_balances(&mut txn)
        .await?
        .into_iter()
        .map(|(account, stored)| (account, stored.balance))
        .collect();
    let supply = balances
        .iter()
        .find(|(account, _)| account.is_mint())
        .map_or(0, |(_, balance)| balance.unsigned_abs());
    let history = journal::history(&mut txn).await?;
    let journal_hash = journal::current_state_hash(&mut txn).await?;
    Ok(AuditSummary {
        height,
        balances,
        supply,
        journal_hash,
        events: history.events,
    })
}
