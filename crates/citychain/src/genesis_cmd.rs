//! `citychain genesis`: create a genesis document with keys for every member, and validate
//! one.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use citychain_kernel::genesis::{
    MemberPlan, Role, build_genesis, department_plans, sample_member_plans, service_member_plans,
};
use citychain_kernel::{Genesis, KeyPair};
use clap::Subcommand;
use serde::Deserialize;

use crate::files::{random_seed, read_text, write_secret};

#[derive(Debug, Subcommand)]
pub enum GenesisCommand {
    /// Create `DIR/genesis.json` and one key file per member in `DIR/keys/`.
    ///
    /// The first departments are the validators. Members come from the built-in departments,
    /// the service identities (`service.tokens`, whose key signs the token platform's
    /// verdicts), `--sample-members`, a `--members` file and `--member` flags, in that order.
    Init {
        /// How many validators (departments); must be 3f + 1: 1, 4, 7, 10, ...
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// How many departments in all (at least the validators).
        #[arg(long)]
        departments: Option<usize>,
        /// Add the sample banks, hospital, insurer, enterprise, bureau and auditor.
        #[arg(long)]
        sample_members: bool,
        /// A JSON file with a list of members: `[{"id": "...", "name": "...", "role": "bank"}]`.
        #[arg(long)]
        members: Option<PathBuf>,
        /// One more member as `ID:ROLE:NAME`, e.g. `bank.harbour:bank:Harbour Bank`. Repeatable.
        #[arg(long = "member", value_name = "ID:ROLE:NAME")]
        member: Vec<String>,
        /// The chain's name.
        #[arg(long, default_value = "citychain-local")]
        chain_id: String,
        /// Genesis time in milliseconds since the Unix epoch (default: now).
        #[arg(long)]
        genesis_time_ms: Option<u64>,
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Check a genesis file; exit 0 when valid, otherwise name the bad entry and exit 1.
    Validate {
        /// The genesis file.
        file: PathBuf,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberEntry {
    id: String,
    name: String,
    role: String,
}

fn parse_role(role: &str, context: &str) -> Result<Role> {
    Role::parse(role).with_context(|| {
        let known: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
        format!(
            "{context}: role {role:?} is not one of {}",
            known.join(", ")
        )
    })
}

fn parse_member_flag(flag: &str) -> Result<MemberPlan> {
    let mut parts = flag.splitn(3, ':');
    let (Some(id), Some(role), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("--member {flag:?} must be ID:ROLE:NAME");
    };
    Ok(MemberPlan {
        id: id.to_string(),
        name: name.to_string(),
        role: parse_role(role, &format!("--member {flag:?}"))?,
    })
}

fn read_members_file(path: &Path) -> Result<Vec<MemberPlan>> {
    let entries: Vec<MemberEntry> = serde_json::from_str(&read_text(path)?)
        .with_context(|| format!("{} is not a list of members", path.display()))?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(MemberPlan {
                role: parse_role(&e.role, &format!("{} entry {i}", path.display()))?,
                id: e.id,
                name: e.name,
            })
        })
        .collect()
}

/// Writes `DIR/genesis.json` and `DIR/keys/<member>.json` (owner-only); refuses to replace
/// existing files unless `force`. Returns the genesis file's path.
pub fn write_network(
    out: &Path,
    genesis: &Genesis,
    keys: &[KeyPair],
    force: bool,
) -> Result<PathBuf> {
    let key_dir = out.join("keys");
    std::fs::create_dir_all(&key_dir)
        .with_context(|| format!("cannot create {}", key_dir.display()))?;
    let genesis_path = out.join("genesis.json");
    if genesis_path.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            genesis_path.display()
        );
    }
    for key in keys {
        let id = key.member_id.as_deref().expect("planned members have ids");
        write_secret(
            &key_dir.join(format!("{id}.json")),
            &key.to_key_file(),
            force,
        )?;
    }
    std::fs::write(&genesis_path, genesis.to_json())
        .with_context(|| format!("cannot write {}", genesis_path.display()))?;
    Ok(genesis_path)
}

pub fn run(cmd: GenesisCommand) -> Result<()> {
    match cmd {
        GenesisCommand::Init {
            validators,
            departments,
            sample_members,
            members,
            member,
            chain_id,
            genesis_time_ms,
            out,
            force,
        } => {
            let departments = departments.unwrap_or(validators);
            if departments < validators {
                bail!("--departments {departments} is fewer than --validators {validators}");
            }
            let mut plans = department_plans(departments);
            // Every chain needs the identities of the services that sign verdicts.
            plans.extend(service_member_plans());
            if sample_members {
                plans.extend(sample_member_plans());
            }
            if let Some(path) = &members {
                plans.extend(read_members_file(path)?);
            }
            for flag in &member {
                plans.push(parse_member_flag(flag)?);
            }
            let time = match genesis_time_ms {
                Some(t) => t,
                None => SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .context("the system clock is before 1970")?
                    .as_millis() as u64,
            };
            let (genesis, keys) = build_genesis(&chain_id, time, &plans, validators, random_seed)?;
            let genesis_path = write_network(&out, &genesis, &keys, force)?;
            println!(
                "wrote {} (chain {}, {} members, {} validators, hash {})",
                genesis_path.display(),
                genesis.chain_id,
                genesis.members.len(),
                genesis.validators.len(),
                genesis.hash()
            );
            println!(
                "wrote {} key files to {}",
                keys.len(),
                out.join("keys").display()
            );
            Ok(())
        }
        GenesisCommand::Validate { file } => {
            let genesis = Genesis::from_json(&read_text(&file)?)
                .with_context(|| format!("{} is not a valid genesis", file.display()))?;
            let set = genesis.validator_set();
            println!(
                "{} is valid: chain {}, {} members, {} validators (tolerates {} faulty, quorum {}), hash {}",
                file.display(),
                genesis.chain_id,
                genesis.members.len(),
                set.len(),
                set.max_faulty(),
                set.quorum(),
                genesis.hash()
            );
            Ok(())
        }
    }
}
