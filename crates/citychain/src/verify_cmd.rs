//! `citychain verify`: checks a chain export offline against a genesis file, block by block,
//! and names the first height that fails.
//!
//! The walk is [`verify_export`], which tests call directly; the command only opens files and
//! prints. This file is self-contained (it uses no other module of the binary) so tests can
//! include it as it is.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use citychain_governance::{AuditError, ChainAuditor};
use citychain_kernel::{
    Block, BlockError, BlockHash, ChainId, ExportError, ExportReader, Genesis, Hash32, Height,
    PublicKey,
};
use clap::Args;
use thiserror::Error;

/// Arguments of `citychain verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The genesis file (JSON) the chain starts from.
    pub genesis: PathBuf,
    /// The chain export file to check (format in docs/formats.md).
    pub file: PathBuf,
    /// Print a progress line to stderr every this many blocks (0: never).
    #[arg(long, default_value_t = 10_000, value_name = "BLOCKS")]
    pub progress_every: u64,
}

/// What a verified export contained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The chain.
    pub chain_id: ChainId,
    /// The genesis hash the export names (and the genesis has).
    pub genesis_hash: Hash32,
    /// The first height checked (none for an export without blocks).
    pub first: Option<Height>,
    /// The last height checked.
    pub last: Option<Height>,
    /// The last block's hash (zero without blocks).
    pub last_hash: BlockHash,
    /// Blocks checked.
    pub blocks: u64,
    /// Transactions whose signatures were checked.
    pub transactions: u64,
    /// Precommit signatures verified across all certificates.
    pub precommits: u64,
    /// The distinct validators whose precommits were verified.
    pub validators: BTreeSet<PublicKey>,
}

/// Why an export was refused.
#[derive(Debug, Error)]
pub enum VerifyReason {
    /// The file is malformed, truncated, for another genesis, or its trailer is wrong.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// A block breaks a chain rule (link, height, time, root, signatures, certificate).
    #[error("{0}")]
    Chain(BlockError),
    /// A block carries a transaction whose signer governance refuses at that height, or
    /// governance cannot apply it.
    #[error("{0}")]
    Governance(Box<AuditError>),
}

/// The first failure found: where (`None` for the file header) and why.
#[derive(Debug, Error)]
pub struct VerifyFailure {
    /// The height of the first bad block, or `None` when the file header is wrong.
    pub height: Option<Height>,
    /// What is wrong.
    pub reason: VerifyReason,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.reason, self.height) {
            // Export errors already say where they are.
            (VerifyReason::Export(e), _) => write!(f, "{e}"),
            (
                VerifyReason::Chain(BlockError::PrevHash {
                    found, expected, ..
                }),
                Some(h),
            ) => {
                write!(
                    f,
                    "block {h}: prev_hash {found} does not link to block {} (whose hash is {expected})",
                    h.0.saturating_sub(1)
                )
            }
            (VerifyReason::Chain(e), Some(h)) => write!(f, "block {h}: {e}"),
            (VerifyReason::Chain(e), None) => write!(f, "{e}"),
            // Audit errors name their block themselves.
            (VerifyReason::Governance(e), _) => write!(f, "{e}"),
        }
    }
}

/// The chain rules every block is pushed through. This is the one place that names them, so a
/// rule set with the same `push(&Block)` shape (one that follows governance) replaces
/// `ChainVerifier` here and nowhere else.
fn chain_rules(genesis: &Genesis) -> ChainAuditor {
    ChainAuditor::new(genesis)
}

/// Reads an export from `reader` and checks it against `genesis`: the header names this
/// chain and genesis hash, every block passes the chain rules in height order from 1, and the
/// trailer's count and hash match. `on_block` sees each block after it passed, with the
/// running summary (for progress lines, or to pick out a block).
pub fn verify_export<R: Read>(
    genesis: &Genesis,
    reader: R,
    mut on_block: impl FnMut(&Block, &Summary),
) -> Result<Summary, VerifyFailure> {
    let header_failure = |e: ExportError| VerifyFailure {
        height: e.height(),
        reason: VerifyReason::Export(e),
    };
    let mut export = ExportReader::new(reader).map_err(header_failure)?;
    export.check_genesis(genesis).map_err(header_failure)?;
    let mut rules = chain_rules(genesis);
    let mut summary = Summary {
        chain_id: export.chain_id().clone(),
        genesis_hash: export.genesis_hash(),
        first: None,
        last: None,
        last_hash: BlockHash(Hash32::ZERO),
        blocks: 0,
        transactions: 0,
        precommits: 0,
        validators: BTreeSet::new(),
    };
    for item in export.by_ref() {
        let block = item.map_err(|e| VerifyFailure {
            height: e.height(),
            reason: VerifyReason::Export(e),
        })?;
        let height = block.header.height;
        rules.push(&block).map_err(|e| VerifyFailure {
            height: Some(height),
            reason: match e {
                AuditError::Block { source, .. } => VerifyReason::Chain(source),
                other => VerifyReason::Governance(Box::new(other)),
            },
        })?;
        summary.first.get_or_insert(height);
        summary.last = Some(height);
        summary.last_hash = block.hash();
        summary.blocks += 1;
        summary.transactions += block.txs.len() as u64;
        summary.precommits += block.certificate.signatures.len() as u64;
        summary
            .validators
            .extend(block.certificate.signatures.iter().map(|(key, _)| *key));
        on_block(&block, &summary);
    }
    if !export.is_complete() {
        // The reader stops only after a verified trailer or an error it has yielded.
        let height = export.next_height();
        return Err(VerifyFailure {
            height: Some(height),
            reason: VerifyReason::Export(ExportError::MissingTrailer {
                height,
                blocks: export.blocks_read(),
            }),
        });
    }
    Ok(summary)
}

/// Reads and checks a genesis file, naming it in the error.
pub fn load_genesis(path: &Path) -> Result<Genesis> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Genesis::from_json(&text).with_context(|| format!("{} is not a valid genesis", path.display()))
}

/// Verifies the export at `path` against `genesis`, printing progress every `every` blocks.
pub fn verify_file(
    genesis: &Genesis,
    path: &Path,
    every: u64,
    mut on_block: impl FnMut(&Block),
) -> Result<Summary> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    let outcome = verify_export(genesis, reader, |block, summary| {
        if every > 0 && summary.blocks % every == 0 {
            eprintln!(
                "checked {} blocks up to height {} ({} transactions)",
                summary.blocks, block.header.height, summary.transactions
            );
        }
        on_block(block);
    });
    match outcome {
        Ok(summary) => Ok(summary),
        Err(failure) => bail!("{} is not a valid chain: {failure}", path.display()),
    }
}

fn heights(summary: &Summary) -> String {
    match (summary.first, summary.last) {
        (Some(first), Some(last)) => format!("{first}..{last}"),
        _ => "none (the export holds no blocks)".to_string(),
    }
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let genesis = load_genesis(&args.genesis)?;
    let summary = verify_file(&genesis, &args.file, args.progress_every, |_| {})?;
    println!(
        "verified {} against genesis {} (chain {})",
        args.file.display(),
        summary.genesis_hash,
        summary.chain_id
    );
    println!("heights:      {}", heights(&summary));
    println!("blocks:       {}", summary.blocks);
    println!("transactions: {}", summary.transactions);
    println!(
        "validators:   {} distinct, {} precommit signatures verified",
        summary.validators.len(),
        summary.precommits
    );
    println!("last block:   {}", summary.last_hash);
    println!("trailer:      block count and blake3 match");
    Ok(())
}
