//! `citychain chain export`: writes the chain a ledger service holds to a file in the export
//! format (docs/formats.md), for `citychain verify` or anyone's own verifier. The file is
//! written to a temporary name and renamed at the end, so an interrupted export never leaves
//! a file that looks complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use citychain_kernel::{Block, ExportWriter, Genesis};
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_proto::citychain::ledger::v1::ledger_service_client::LedgerServiceClient;
use clap::{Args, Subcommand};

use crate::dev_cmd::Endpoints;
use crate::verify_cmd::{Tip, load_genesis};

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Write the chain, from block 1 to the ledger's last applied block, to a file.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  citychain chain export --home .citychain --out chain.export        # the network `citychain dev` runs
  citychain chain export --ledger http://127.0.0.1:7110 --genesis genesis.json --out chain.export
  citychain verify genesis.json chain.export")]
pub struct ExportArgs {
    /// The ledger service's gRPC address (default: the one under --home).
    #[arg(long, value_name = "URL")]
    ledger: Option<String>,
    /// The home folder of a `citychain dev` network: its ledger and genesis are used.
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// The chain's genesis file (default: HOME/genesis.json); its hash goes into the header.
    #[arg(long, value_name = "FILE")]
    genesis: Option<PathBuf>,
    /// Where to write the export.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(cmd: ChainCommand) -> Result<()> {
    match cmd {
        ChainCommand::Export(args) => {
            let (ledger, genesis) = resolve(args.ledger, args.genesis, args.home.as_deref())?;
            let genesis = load_genesis(&genesis)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let last = runtime.block_on(export(&ledger, &genesis, &args.out))?;
            println!(
                "exported blocks 1..{} of chain {} to {}",
                last.map_or(0, |t| t.height.0),
                genesis.chain_id,
                args.out.display()
            );
            if let Some(tip) = last {
                println!(
                    "tip {tip}: check a copy with `citychain verify GENESIS FILE --tip {tip}`"
                );
            }
            Ok(())
        }
    }
}

/// The ledger address and genesis file from the flags, falling back on a dev home folder.
pub fn resolve(
    ledger: Option<String>,
    genesis: Option<PathBuf>,
    home: Option<&Path>,
) -> Result<(String, PathBuf)> {
    let ledger = Endpoints::service_url(ledger.as_ref(), home, "ledger")?;
    let genesis = match (genesis, home) {
        (Some(file), _) => file,
        (None, Some(home)) => home.join("genesis.json"),
        (None, None) => bail!("give --genesis FILE or --home DIR"),
    };
    Ok((ledger, genesis))
}

/// Writes blocks 1 to the ledger's tip to `out` (through a temporary file renamed at the
/// end); returns the last block written (`None` when the chain has no block yet).
pub async fn export(ledger: &str, genesis: &Genesis, out: &Path) -> Result<Option<Tip>> {
    let partial = out.with_extension("partial");
    let file =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut writer = ExportWriter::new(BufWriter::new(file), genesis)?;
    let mut client = LedgerServiceClient::connect(ledger.to_owned())
        .await
        .with_context(|| format!("cannot connect to the ledger at {ledger}"))?
        .max_decoding_message_size(64 << 20);
    let tip = client
        .list_blocks(pb::ListBlocksRequest {
            from_height: 1,
            page_size: 1,
            page_token: String::new(),
        })
        .await?
        .into_inner()
        .tip_height;
    let mut last = None;
    for height in 1..=tip {
        let response = client
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
        last = Some(Tip {
            height: block.header.height,
            hash: block.hash(),
        });
        if height % 1_000 == 0 {
            eprintln!("exported {height} of {tip} blocks");
        }
    }
    let mut file = writer.finish()?;
    file.flush()?;
    drop(file);
    std::fs::rename(&partial, out)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?;
    Ok(last)
}
