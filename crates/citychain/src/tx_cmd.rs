//! `citychain tx`: look transactions up on the ledger. `tx show` prints one with its body
//! decoded by type, its status and where it committed (and writes its proof on request);
//! `tx list` pages through a signer's, a subject's or a body type's committed transactions;
//! `tx trace` prints the OpenTelemetry trace id it was submitted under, to paste into a
//! tracing backend's search and see its whole flow.

use std::path::PathBuf;

use anyhow::{Result, bail};
use citychain_proto::citychain::ledger::v1 as pb;
use clap::{ArgGroup, Args, Subcommand};

use crate::lookup::tx::{self, ListBy};
use crate::lookup::{Ledger, LedgerAddr, Output, block_on};

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Show one transaction: status, height and index, signer, nonce, expiry, subjects and
    /// its body decoded by type.
    ///
    /// ID is the transaction id, or a prefix of at least 8 hex digits that only one committed
    /// transaction starts with (an ambiguous prefix is refused, listing the matches). A
    /// transaction that waits in MEMPOOL, or can no longer commit, is shown with its status.
    #[command(after_help = "\
Examples:
  citychain tx show 9f2ce41a --home .citychain
  citychain tx show 9f2ce41a --home .citychain --proof read.proof
  citychain proof verify --genesis .citychain/genesis.json read.proof")]
    Show {
        /// The transaction id or a prefix of it.
        id: String,
        /// Write the transaction's proof (protobuf TransactionProof) to FILE, for
        /// `citychain proof verify`.
        #[arg(long, value_name = "FILE")]
        proof: Option<PathBuf>,
        #[command(flatten)]
        ledger: LedgerAddr,
        #[command(flatten)]
        output: Output,
    },
    /// List committed transactions, oldest first, of a signer, a subject or a body type.
    #[command(after_help = "\
Examples:
  citychain tx list --signer dept.tax --home .citychain
  citychain tx list --subject citizen:330102-19900101-0042 --home .citychain --all
  citychain tx list --type citychain.licence.v1.Read --home .citychain --json")]
    List {
        #[command(flatten)]
        by: ListArgs,
        /// Transactions per page (1 to 100; 0 means 20).
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        /// Continue after the page that printed this token.
        #[arg(long, default_value = "")]
        page_token: String,
        /// Every page, not just one.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        ledger: LedgerAddr,
        #[command(flatten)]
        output: Output,
    },
    /// Print the 32-hex trace id a committed transaction was submitted under.
    ///
    /// The ledger records it when it applies the transaction's block with the trace context
    /// the validators published beside it. Exits 1 when the transaction is not on the chain,
    /// or the ledger applied it without its trace context.
    #[command(after_help = "\
Example:
  citychain tx trace 9f2ce41a --home .citychain
  # then search the trace id in Tempo or Jaeger")]
    Trace {
        /// The transaction id, or a prefix of at least 8 hex digits.
        id: String,
        #[command(flatten)]
        ledger: LedgerAddr,
    },
}

/// What `tx list` lists: exactly one of these.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("by").required(true).args(["signer", "subject", "type_url"])))]
pub struct ListArgs {
    /// A member id (its active key) or a key in hex.
    #[arg(long, value_name = "MEMBER|KEY")]
    signer: Option<String>,
    /// A declared subject, e.g. citizen:330102-19900101-0042.
    #[arg(long)]
    subject: Option<String>,
    /// A body type, e.g. citychain.licence.v1.Read.
    #[arg(long = "type", value_name = "TYPE")]
    type_url: Option<String>,
}

impl ListArgs {
    fn by(self) -> Result<ListBy> {
        match (self.signer, self.subject, self.type_url) {
            (Some(signer), None, None) => Ok(ListBy::Signer(signer)),
            (None, Some(subject), None) => Ok(ListBy::Subject(subject)),
            (None, None, Some(type_url)) => Ok(ListBy::Type(type_url)),
            _ => bail!("give one of --signer, --subject and --type"),
        }
    }
}

pub fn run(cmd: TxCommand) -> Result<()> {
    match cmd {
        TxCommand::Show {
            id,
            proof,
            ledger,
            output,
        } => block_on(async {
            let mut ledger = Ledger::connect(&ledger).await?;
            let shown = tx::show(&mut ledger, &id, proof.as_deref()).await?;
            output.print(&shown, tx::show_text)
        }),
        TxCommand::List {
            by,
            page_size,
            page_token,
            all,
            ledger,
            output,
        } => block_on(async {
            let by = by.by()?;
            let mut ledger = Ledger::connect(&ledger).await?;
            let page = tx::list(&mut ledger, &by, page_size, &page_token, all).await?;
            output.print(&page, tx::list_text)
        }),
        TxCommand::Trace { id, ledger } => block_on(async {
            let mut ledger = Ledger::connect(&ledger).await?;
            let trace_id = trace_id(&mut ledger, &id).await?;
            println!("{trace_id}");
            Ok(())
        }),
    }
}

/// The trace id of transaction `id` (or the one a prefix names).
async fn trace_id(ledger: &mut Ledger, id: &str) -> Result<String> {
    use citychain_proto::citychain::ledger::v1::resolve_prefix_request::Kind;
    let id = ledger.resolve(Kind::Transaction, id).await?;
    let found = ledger
        .grpc()
        .get_transaction(pb::GetTransactionRequest { id })
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
