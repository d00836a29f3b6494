//! `citychain proof`: build a transaction proof from a verified chain export, and verify a
//! proof offline, anchoring its validator set in the genesis or in a verified export.
//!
//! A proof file holds the canonical protobuf encoding of `citychain.kernel.v1.TransactionProof`
//! (see docs/formats.md).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use citychain_kernel::proof::MAX_PROOF_BYTES;
use citychain_kernel::{Block, BlockHash, Genesis, Height, TransactionProof, VerifiedProof};
use clap::Subcommand;

use crate::verify_cmd::{load_genesis, verify_file};

#[derive(Debug, Subcommand)]
pub enum ProofCommand {
    /// Verify a transaction proof: the transaction's signature, its Merkle path to the block's
    /// tx_root, the header's commit certificate and the validator set that signed it.
    ///
    /// A proof signed by the genesis validator set is trusted as it is. A proof signed by any
    /// other set needs `--chain`: the export is verified from genesis and the proof's block
    /// header must be the one the chain has at that height. Prints the transaction id,
    /// height, index and signer, then "verified"; exits 1 naming what failed otherwise.
    Verify {
        /// The genesis file (JSON) of the chain.
        #[arg(long)]
        genesis: PathBuf,
        /// The proof file (protobuf TransactionProof).
        proof: PathBuf,
        /// A chain export to anchor the proof's block in (verified in full first).
        #[arg(long, value_name = "EXPORT")]
        chain: Option<PathBuf>,
    },
    /// Write the proof of transaction INDEX of block HEIGHT, taken from a chain export that is
    /// verified in full first.
    Build {
        /// The genesis file (JSON) of the chain.
        #[arg(long)]
        genesis: PathBuf,
        /// The chain export holding the block.
        #[arg(long, value_name = "EXPORT")]
        chain: PathBuf,
        /// The block's height.
        #[arg(long)]
        height: u64,
        /// The transaction's position in the block, from 0.
        #[arg(long)]
        index: u64,
        /// Where to write the proof.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Progress lines for the exports these commands verify.
const PROGRESS_EVERY: u64 = 10_000;

pub fn run(cmd: ProofCommand) -> Result<()> {
    match cmd {
        ProofCommand::Verify {
            genesis,
            proof,
            chain,
        } => verify(&genesis, &proof, chain.as_deref()),
        ProofCommand::Build {
            genesis,
            chain,
            height,
            index,
            out,
        } => build(&genesis, &chain, Height(height), index, &out),
    }
}

fn read_proof(path: &Path) -> Result<TransactionProof> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    // One byte past the limit is enough to refuse an oversized file without reading it all.
    file.take(MAX_PROOF_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    TransactionProof::decode(&bytes)
        .with_context(|| format!("{} is not a transaction proof", path.display()))
}

/// The hash of the block at `height` in the export at `path`, after verifying all of it.
fn anchor(genesis: &Genesis, path: &Path, height: Height) -> Result<BlockHash> {
    let mut found = None;
    let summary = verify_file(genesis, path, None, PROGRESS_EVERY, |block| {
        if block.header.height == height {
            found = Some(block.hash());
        }
    })?;
    match found {
        Some(hash) => Ok(hash),
        None => bail!(
            "{} ends at block {}, it has no block {height}",
            path.display(),
            summary.last.map_or(0, |h| h.0)
        ),
    }
}

fn signer_name(genesis: &Genesis, verified: &VerifiedProof) -> String {
    let key = verified.tx.signer();
    match genesis.members.iter().find(|m| &m.signing_key == key) {
        Some(member) => format!("{key} ({})", member.id),
        None => format!("{key} (not a genesis member)"),
    }
}

fn verify(genesis_path: &Path, proof_path: &Path, chain: Option<&Path>) -> Result<()> {
    let genesis = load_genesis(genesis_path)?;
    let proof = read_proof(proof_path)?;
    let verified = proof
        .verify(&genesis.chain_id)
        .with_context(|| format!("{} is refused", proof_path.display()))?;
    let genesis_set = verified.signed_by_genesis(&genesis);
    let trust = match chain {
        Some(export) => {
            let hash = anchor(&genesis, export, verified.height)?;
            if hash != verified.block_hash {
                bail!(
                    "{} is refused: its block {} has hash {}, the verified chain {} has {} at that height",
                    proof_path.display(),
                    verified.height,
                    verified.block_hash,
                    export.display(),
                    hash
                );
            }
            format!(
                "block {} of {}, verified from genesis",
                verified.height,
                export.display()
            )
        }
        None if genesis_set => "the genesis validator set".to_string(),
        None => bail!(
            "{} is signed by validator set {}, which is not the genesis set {}; pass --chain \
             EXPORT to check its block against a verified chain",
            proof_path.display(),
            verified.validators_hash,
            genesis.validator_set().hash()
        ),
    };
    println!("transaction: {}", verified.tx.id());
    println!("height:      {}", verified.height);
    println!("index:       {}", verified.index);
    println!("signer:      {}", signer_name(&genesis, &verified));
    println!("block:       {}", verified.block_hash);
    println!(
        "certificate: {} of {} validators (set {})",
        verified.signers, verified.validators, verified.validators_hash
    );
    println!("anchored in: {trust}");
    println!("verified");
    Ok(())
}

fn build(genesis_path: &Path, export: &Path, height: Height, index: u64, out: &Path) -> Result<()> {
    let genesis = load_genesis(genesis_path)?;
    let mut block: Option<Block> = None;
    verify_file(&genesis, export, None, PROGRESS_EVERY, |b| {
        if b.header.height == height {
            block = Some(b.clone());
        }
    })?;
    let Some(block) = block else {
        bail!("{} has no block {height}", export.display());
    };
    // The export was verified with the genesis validator set, so that is the set to include.
    let proof = TransactionProof::build(&block, index, &genesis.validator_set())
        .with_context(|| format!("cannot build the proof from {}", export.display()))?;
    std::fs::write(out, proof.encode())
        .with_context(|| format!("cannot write {}", out.display()))?;
    let tx_id = block
        .txs
        .get(index as usize)
        .map(|t| t.id().to_string())
        .unwrap_or_default();
    println!(
        "wrote {} (transaction {tx_id}, block {height}, index {index})",
        out.display()
    );
    Ok(())
}
