//! `citychain verify`: checks a chain export offline against a genesis file, block by block,
//! and names the first height that fails. The rules are the chain's own: heights, links and
//! times; transaction roots and signatures; certificates from the validator set governance put
//! in force; the proposer schedule; expiry heights; no transaction (no signer and nonce) twice
//! in a block or again while an earlier one with it could still commit; every signer allowed
//! to send what it sent. With `--tip HEIGHT:HASH` (a block hash learnt from a member) the
//! export must reach that block, so a copy cut short and given a new trailer is refused.
//!
//! The walk is [`verify_export`], which tests call directly; the command only opens files and
//! prints. This file is self-contained (it uses no other module of the binary) so tests can
//! include it as it is.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

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
#[command(after_help = "\
Examples:
  citychain verify genesis.json chain.export
  citychain verify genesis.json chain.export --tip 1834:9f2c...e1   # refuse a copy cut before block 1834

The tip is a height and block hash from a source other than the file: `citychain chain export`
prints the one it wrote, and any member's ledger answers `citychain block show HEIGHT`.")]
pub struct VerifyArgs {
    /// The genesis file (JSON) the chain starts from.
    pub genesis: PathBuf,
    /// The chain export file to check (format in docs/formats.md).
    pub file: PathBuf,
    /// A block the export must contain, as HEIGHT:HASH (the block hash in hex). Without it a
    /// copy cut short with a rewritten trailer verifies, since the trailer carries no key.
    #[arg(long, value_name = "HEIGHT:HASH")]
    pub tip: Option<Tip>,
    /// Print a progress line to stderr every this many blocks (0: never).
    #[arg(long, default_value_t = 10_000, value_name = "BLOCKS")]
    pub progress_every: u64,
}

/// A block known from outside the export (a member's ledger, the exporter's output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    /// Its height.
    pub height: Height,
    /// Its hash.
    pub hash: BlockHash,
}

impl FromStr for Tip {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (height, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not HEIGHT:HASH (no `:`)"))?;
        let height: u64 = height
            .parse()
            .map_err(|_| format!("`{height}` is not a block height (a whole number from 1)"))?;
        if height == 0 {
            return Err("height 0 is genesis, which has no block; give a height from 1".into());
        }
        let hash = hash
            .parse()
            .map_err(|e| format!("`{hash}` is not a block hash (64 hex digits): {e}"))?;
        Ok(Tip {
            height: Height(height),
            hash,
        })
    }
}

impl fmt::Display for Tip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.height, self.hash)
    }
}

/// How an export disagrees with the tip it was checked against.
#[derive(Debug, Error)]
pub enum TipMismatch {
    /// The export ends before the tip's height.
    #[error(
        "the export ends at height {last} but block {} is known (tip {tip}): the export is cut short",
        tip.height
    )]
    Short {
        /// The tip.
        tip: Tip,
        /// The export's last height (0 without blocks).
        last: u64,
    },
    /// The export's block at the tip's height is another block.
    #[error(
        "block {} hashes to {found}, the tip says {}: either the tip is wrong or the export holds a fork",
        tip.height,
        tip.hash
    )]
    Hash {
        /// The tip.
        tip: Tip,
        /// The export's block hash at that height.
        found: BlockHash,
    },
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
    /// A block breaks a rule that needs the chain before it: a transaction whose signer
    /// governance refuses at that height, a replay of an earlier block's transaction, or
    /// governance that cannot apply.
    #[error("{0}")]
    Governance(Box<AuditError>),
    /// The export does not reach, or does not contain, the tip it was checked against.
    #[error(transparent)]
    Tip(#[from] TipMismatch),
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
            // Audit and tip errors name their block themselves.
            (VerifyReason::Governance(e), _) => write!(f, "{e}"),
            (VerifyReason::Tip(e), _) => write!(f, "{e}"),
        }
    }
}

/// The chain rules every block is pushed through, replays across blocks included. This is
/// the one place that names them, so a rule set with the same `push(&Block)` shape replaces
/// it here and nowhere else.
fn chain_rules(genesis: &Genesis) -> ChainAuditor {
    ChainAuditor::checking_replays(genesis)
}

/// Reads an export from `reader` and checks it against `genesis`: the header names this
/// chain and genesis hash, every block passes the chain rules in height order from 1, the
/// trailer's count and hash match, and, given a `tip`, the export holds that very block.
/// `on_block` sees each block after it passed, with the running summary (for progress lines,
/// or to pick out a block).
pub fn verify_export<R: Read>(
    genesis: &Genesis,
    reader: R,
    tip: Option<Tip>,
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
        let hash = block.hash();
        if let Some(tip) = tip.filter(|t| t.height == height && t.hash != hash) {
            return Err(VerifyFailure {
                height: Some(height),
                reason: TipMismatch::Hash { tip, found: hash }.into(),
            });
        }
        summary.first.get_or_insert(height);
        summary.last = Some(height);
        summary.last_hash = hash;
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
    let last = summary.last.map_or(0, |h| h.0);
    if let Some(tip) = tip.filter(|t| t.height.0 > last) {
        return Err(VerifyFailure {
            height: None,
            reason: TipMismatch::Short { tip, last }.into(),
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

/// Verifies the export at `path` against `genesis` (and `tip`, if given), printing progress
/// every `every` blocks.
pub fn verify_file(
    genesis: &Genesis,
    path: &Path,
    tip: Option<Tip>,
    every: u64,
    mut on_block: impl FnMut(&Block),
) -> Result<Summary> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    let outcome = verify_export(genesis, reader, tip, |block, summary| {
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
    let summary = verify_file(&genesis, &args.file, args.tip, args.progress_every, |_| {})?;
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
    match args.tip {
        Some(tip) => println!("tip:          block {tip} is in the export"),
        None => println!(
            "tip:          not checked (a copy cut short would pass; give --tip HEIGHT:HASH)"
        ),
    }
    println!(
        "rules:        links, times, roots, signatures, certificates, validator sets, proposer \
         turns, expiry, no repeats in a block, no replays, signers' permissions"
    );
    Ok(())
}
