//! `citychain block`, `citychain member` and `citychain record-type`: the chain's blocks, the
//! consortium's members and the licence platform's record types, looked up on the ledger of
//! a running network (`citychain tx` looks transactions up).

use anyhow::Result;
use clap::Subcommand;

use crate::lookup::block::{self, BlockRef};
use crate::lookup::{Ledger, LedgerAddr, Output, block_on, member, record_type};

#[derive(Debug, Subcommand)]
pub enum BlockCommand {
    /// Show one block: its header, its transactions and the validators that certified it.
    ///
    /// AT is a height, a block hash, or a prefix of at least 8 hex digits of one. A hash
    /// made only of decimal digits is read as a height: pass it with --hash.
    #[command(after_help = "\
Examples:
  citychain block show 12 --home .citychain
  citychain block show 5b0e77c1 --home .citychain --json")]
    Show {
        /// The height, hash or hash prefix.
        at: String,
        /// Read AT as a hash (or prefix) even when it is all decimal digits.
        #[arg(long)]
        hash: bool,
        #[command(flatten)]
        ledger: LedgerAddr,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List every member: id, role, status, whether it validates, and its name.
    List {
        #[command(flatten)]
        ledger: LedgerAddr,
        #[command(flatten)]
        output: Output,
    },
    /// Show one member: role, status, encryption key, and every signing key it has held with
    /// the heights from which each signed and from which it was refused.
    Show {
        /// The member id, e.g. dept.tax.
        id: String,
        #[command(flatten)]
        ledger: LedgerAddr,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordTypeCommand {
    /// List the declared record types: owner, read price, upload reward, readers, fields.
    List {
        #[command(flatten)]
        ledger: LedgerAddr,
        #[command(flatten)]
        output: Output,
    },
}

pub fn run_block(cmd: BlockCommand) -> Result<()> {
    match cmd {
        BlockCommand::Show {
            at,
            hash,
            ledger,
            output,
        } => block_on(async {
            let mut ledger = Ledger::connect(&ledger).await?;
            let shown = block::show(&mut ledger, &BlockRef::parse(&at, hash)).await?;
            output.print(&shown, block::text)
        }),
    }
}

pub fn run_member(cmd: MemberCommand) -> Result<()> {
    match cmd {
        MemberCommand::List { ledger, output } => block_on(async {
            let mut ledger = Ledger::connect(&ledger).await?;
            output.print(&member::list(&mut ledger).await?, member::list_text)
        }),
        MemberCommand::Show { id, ledger, output } => block_on(async {
            let mut ledger = Ledger::connect(&ledger).await?;
            output.print(&member::show(&mut ledger, &id).await?, member::show_text)
        }),
    }
}

pub fn run_record_type(cmd: RecordTypeCommand) -> Result<()> {
    match cmd {
        RecordTypeCommand::List { ledger, output } => block_on(async {
            let mut ledger = Ledger::connect(&ledger).await?;
            output.print(
                &record_type::list(&mut ledger).await?,
                record_type::list_text,
            )
        }),
    }
}
