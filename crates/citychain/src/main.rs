//! The one citychain binary: key, genesis and NATS user tooling, `serve` for the services,
//! `dev` and `demo`, `bench`, `chain export`, lookups on a running network (`block`, `tx`,
//! `member`, `record-type`), the platforms' clients `licence` and `tokens`, and the offline
//! checks `verify` and `proof`.
//!
//! Every subcommand has `--help`. Errors print one line naming what was wrong and exit
//! non-zero; `anyhow` is used only here, at the edge.

mod bench_cmd;
mod chain_cmd;
mod demo_cmd;
mod dev_cmd;
mod files;
mod genesis_cmd;
mod keys_cmd;
mod licence_cmd;
mod lookup;
mod lookup_cmd;
mod nats_cmd;
mod proof_cmd;
mod serve_cmd;
mod tokens_cmd;
mod tx_cmd;
mod verify_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// citychain: a permissioned ledger shared by a city's departments, banks, hospitals,
/// insurers and enterprises.
#[derive(Debug, Parser)]
#[command(name = "citychain", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and inspect member and citizen keys.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Create and check genesis documents.
    #[command(subcommand)]
    Genesis(genesis_cmd::GenesisCommand),
    /// Make the NATS users of a chain: nkeys and permissions for its servers and services.
    #[command(subcommand)]
    Nats(nats_cmd::NatsCommand),
    /// Run one or more services in this process.
    Serve(serve_cmd::ServeArgs),
    /// Measure throughput and latency on this machine.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCommand),
    /// Check a chain export offline against a genesis file: every hash link, height, time,
    /// Merkle root, transaction signature and commit certificate, the file's trailer, and the
    /// chain's rules (validator sets, proposer turns, expiry, repeats and replays, signers'
    /// permissions); with --tip, that the export reaches a block known from elsewhere.
    ///
    /// Prints the heights, blocks, transactions and validator signatures checked; on failure
    /// exits 1 with one line naming the first bad height and what is wrong.
    Verify(verify_cmd::VerifyArgs),
    /// Run the whole network on this machine: nats-server, four validators, every service.
    Dev(dev_cmd::DevArgs),
    /// Walk through the platforms' scenarios against the network `citychain dev` runs.
    Demo(demo_cmd::DemoArgs),
    /// Export the chain from a running ledger service.
    #[command(subcommand)]
    Chain(chain_cmd::ChainCommand),
    /// Build and verify transaction proofs (offline).
    #[command(subcommand)]
    Proof(proof_cmd::ProofCommand),
    /// The licence platform: upload, read, search records, and a citizen's receipts.
    #[command(subcommand)]
    Licence(licence_cmd::LicenceCommand),
    /// The token platform: balances, statements, supply, and the audit from the chain.
    #[command(subcommand)]
    Tokens(tokens_cmd::TokensCommand),
    /// Look blocks up on the ledger: header, transactions, certificate signers.
    #[command(subcommand)]
    Block(lookup_cmd::BlockCommand),
    /// Look transactions up on the ledger: one decoded, lists by signer, subject or type,
    /// and the trace id to find a flow in a tracing backend.
    #[command(subcommand)]
    Tx(tx_cmd::TxCommand),
    /// Look the consortium's members up: roles, status, keys by height.
    #[command(subcommand)]
    Member(lookup_cmd::MemberCommand),
    /// Look the licence platform's record types up: fields, owner, price, reward, readers.
    #[command(subcommand, name = "record-type")]
    RecordType(lookup_cmd::RecordTypeCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Keys(cmd) => keys_cmd::run(cmd),
        Command::Genesis(cmd) => genesis_cmd::run(cmd),
        Command::Nats(cmd) => nats_cmd::run(cmd),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Bench(cmd) => bench_cmd::run(cmd),
        Command::Verify(args) => verify_cmd::run(args),
        Command::Proof(cmd) => proof_cmd::run(cmd),
        Command::Chain(cmd) => chain_cmd::run(cmd),
        Command::Dev(args) => dev_cmd::run(args),
        Command::Demo(args) => demo_cmd::run(args),
        Command::Licence(cmd) => licence_cmd::run(cmd),
        Command::Tokens(cmd) => tokens_cmd::run(cmd),
        Command::Block(cmd) => lookup_cmd::run_block(cmd),
        Command::Tx(cmd) => tx_cmd::run(cmd),
        Command::Member(cmd) => lookup_cmd::run_member(cmd),
        Command::RecordType(cmd) => lookup_cmd::run_record_type(cmd),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
