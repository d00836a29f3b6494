//! `citychain tx`: look a committed transaction up on the ledger. `tx trace ID` prints the
//! OpenTelemetry trace id it was submitted under, to paste into a tracing backend's search
//! and see its whole flow: the submit call, its wait in each validator's mempool, the block's
//! commit and what every service did with it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_proto::citychain::ledger::v1::ledger_service_client::LedgerServiceClient;
use clap::{Args, Subcommand};

use crate::dev_cmd::Endpoints;

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Print the 32-hex trace id a committed transaction was submitted under.
    ///
    /// The ledger records it when it applies the transaction's block with the trace context
    /// the validators published beside it. Exits 1 when the transaction is not on the chain,
    /// or the ledger applied it without its trace context.
    #[command(after_help = "\
Example:
  citychain tx trace 9f2c…e41a --home .citychain
  # then search the trace id in Tempo or Jaeger")]
    Trace {
        /// The transaction id (64 hex digits).
        id: String,
        #[command(flatten)]
        ledger: LedgerAddr,
    },
}

/// Where the ledger is.
#[derive(Debug, Args)]
pub struct LedgerAddr {
    /// The ledger service's gRPC address.
    #[arg(long, value_name = "URL")]
    ledger: Option<String>,
    /// The home folder of a `citychain dev` network: its ledger is used.
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
}

pub fn run(cmd: TxCommand) -> Result<()> {
    match cmd {
        TxCommand::Trace { id, ledger } => {
            let url =
                Endpoints::service_url(ledger.ledger.as_ref(), ledger.home.as_deref(), "ledger")?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let trace_id = runtime.block_on(trace_id(&url, &id))?;
            println!("{trace_id}");
            Ok(())
        }
    }
}

/// The trace id of transaction `id`, from the ledger at `url`.
async fn trace_id(url: &str, id: &str) -> Result<String> {
    let mut client = LedgerServiceClient::connect(url.to_owned())
        .await
        .with_context(|| format!("cannot connect to the ledger at {url}"))?;
    let found = client
        .get_transaction(pb::GetTransactionRequest { id: id.to_owned() })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    if found.trace_id.is_empty() {
        bail!(
            "transaction {} committed at height {} but the ledger holds no trace id for it: \
             its block was applied without the validators' trace header (repaired from a \
             validator, or the ledger's store was rebuilt)",
            found.id,
            found.height
        );
    }
    Ok(found.trace_id)
}
