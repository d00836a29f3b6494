//! `citychain serve`: runs the named services in this process. Services register here as
//! they are built; asking for one that this build does not contain is an error that lists
//! what is available.

use anyhow::{Result, bail};
use clap::Args;

/// The services this build can run.
const AVAILABLE: &[&str] = &[];

/// The services the system is made of, in the order they depend on each other.
const PLANNED: &[&str] = &[
    "consensus",
    "ledger",
    "licence",
    "tokens",
    "finance",
    "medical",
    "coupons",
];

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The services to run, e.g. `consensus ledger`.
    #[arg(required = true, value_name = "SERVICE")]
    services: Vec<String>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    for name in &args.services {
        if !AVAILABLE.contains(&name.as_str()) {
            let known = if PLANNED.contains(&name.as_str()) {
                "it is part of the design but not in this build yet"
            } else {
                "it is not a citychain service"
            };
            let available = if AVAILABLE.is_empty() {
                "none yet".to_string()
            } else {
                AVAILABLE.join(", ")
            };
            bail!("cannot serve {name:?}: {known} (services available: {available})");
        }
    }
    bail!("no service is available in this build yet")
}
