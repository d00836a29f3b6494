//! The one citychain binary: key and genesis tooling, `serve` for the services, and `bench`.
//!
//! Every subcommand has `--help`. Errors print one line naming what was wrong and exit
//! non-zero; `anyhow` is used only here, at the edge.

mod bench_cmd;
mod files;
mod genesis_cmd;
mod keys_cmd;
mod serve_cmd;

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
    /// Run one or more services in this process.
    Serve(serve_cmd::ServeArgs),
    /// Measure throughput and latency on this machine.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Keys(cmd) => keys_cmd::run(cmd),
        Command::Genesis(cmd) => genesis_cmd::run(cmd),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Bench(cmd) => bench_cmd::run(cmd),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
