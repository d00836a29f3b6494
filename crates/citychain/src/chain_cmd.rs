//! `citychain chain export`: writes the chain a ledger service holds to a file in the export
//! format (docs/formats.md), for `citychain verify` or anyone's own verifier. The file is
//! written to a temporary name and renamed at the end, so an interrupted export never leaves
//! a file that looks complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use citychain_kernel::{Block, ExportWriter};
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_proto::citychain::ledger::v1::ledger_service_client::LedgerServiceClient;
use clap::{Args, Subcommand};

use crate::verify_cmd::load_genesis;

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Write the chain, from block 1 to the ledger's last applied block, to a file.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  citychain chain export --ledger http://127.0.0.1:7101 --genesis genesis.json --out chain.export
  citychain verify genesis.json chain.export")]
pub struct ExportArgs {
    /// The ledger service's gRPC address.
    #[arg(long, value_name = "URL")]
    ledger: String,
    /// The chain's genesis file (its hash is written into the export's header).
    #[arg(long, value_name = "FILE")]
    genesis: PathBuf,
    /// Where to write the export.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(cmd: ChainCommand) -> Result<()> {
    match cmd {
        ChainCommand::Export(args) => export(args),
    }
}

fn export(args: ExportArgs) -> Result<()> {
    let genesis = load_genesis(&args.genesis)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let partial = args.out.with_extension("partial");
    let file =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut writer = ExportWriter::new(BufWriter::new(file), &genesis)?;
    let blocks = runtime.block_on(async {
        let mut ledger = LedgerServiceClient::connect(args.ledger.clone())
            .await
            .with_context(|| format!("cannot connect to the ledger at {}", args.ledger))?
            .max_decoding_message_size(64 << 20);
        let tip = ledger
            .list_blocks(pb::ListBlocksRequest {
                from_height: 1,
                page_size: 1,
                page_token: String::new(),
            })
            .await?
            .into_inner()
            .tip_height;
        for height in 1..=tip {
            let response = ledger
                .get_block(pb::GetBlockRequest {
                    at: Some(pb::get_block_request::At::Height(height)),
                })
                .await
                .with_context(|| format!("cannot fetch block {height}"))?
                .into_inner();
            let Some(proto) = response.block else {
                bail!("the ledger returned no block for height {height}");
            };
            let block = Block::decode(&prost::Message::encode_to_vec(&proto))
                .with_context(|| format!("the ledger's block {height} does not decode"))?;
            writer.push(&block)?;
            if height % 1_000 == 0 {
                eprintln!("exported {height} of {tip} blocks");
            }
        }
        Ok::<u64, anyhow::Error>(tip)
    })?;
    let mut out = writer.finish()?;
    out.flush()?;
    drop(out);
    std::fs::rename(&partial, &args.out).with_context(|| {
        format!(
            "cannot rename {} to {}",
            partial.display(),
            args.out.display()
        )
    })?;
    println!(
        "exported blocks 1..{blocks} of chain {} to {}",
        genesis.chain_id,
        args.out.display()
    );
    Ok(())
}
