//! `citychain keys`: create a key file, show a key file's public halves.

use std::path::PathBuf;

use anyhow::{Context, Result};
use citychain_kernel::KeyPair;
use clap::Subcommand;

use crate::files::{random_seed, read_text, write_secret};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new key file (ed25519 signing key and X25519 encryption key), mode 0600.
    New {
        /// Where to write the key file.
        #[arg(long)]
        out: PathBuf,
        /// The member id the keys belong to (omit for a citizen's keys).
        #[arg(long)]
        member_id: Option<String>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print a key file's public keys (never the secrets).
    Show {
        /// The key file.
        file: PathBuf,
    },
}

pub fn run(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::New {
            out,
            member_id,
            force,
        } => {
            if let Some(id) = &member_id {
                citychain_kernel::MemberId::new(id.clone())?;
            }
            let keys = KeyPair::from_seeds(member_id, &random_seed(), &random_seed());
            write_secret(&out, &keys.to_key_file(), force)?;
            println!("wrote {}", out.display());
            print_public(&keys);
            Ok(())
        }
        KeysCommand::Show { file } => {
            let keys = KeyPair::from_key_file(&read_text(&file)?)
                .with_context(|| format!("{} is not a valid key file", file.display()))?;
            print_public(&keys);
            Ok(())
        }
    }
}

fn print_public(keys: &KeyPair) {
    if let Some(id) = &keys.member_id {
        println!("member_id:      {id}");
    }
    println!("signing_key:    {}", keys.signing.public_key());
    println!("encryption_key: {}", keys.encryption.public_key());
}
