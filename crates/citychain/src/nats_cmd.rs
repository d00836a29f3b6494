//! `citychain nats users`: the NATS users of a chain, made from its genesis for a deployment.
//!
//! One user per validator and per platform service, plus the operator, each with a fresh
//! nkey and the permissions of the one table in `citychain_bus::access`. The seeds go into
//! files a Secret is made from; the public keys and permissions go into values for the
//! official NATS Helm chart and into an `authorization` block for a nats-server outside
//! Kubernetes, so the servers and the services are configured from the same table.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use citychain_bus::access::{self, User};
use citychain_bus::{StreamsConfig, local::OPERATOR_USER};
use clap::Subcommand;

use crate::files::write_secret;
use crate::verify_cmd::load_genesis;

/// Where the NATS chart's nats-box finds the operator's seed: a Secret of this name in NATS's
/// namespace, holding `operator.nk`.
const OPERATOR_SECRET: &str = "citychain-nats-operator";

#[derive(Debug, Subcommand)]
pub enum NatsCommand {
    /// Make the chain's NATS users: an nkey per validator and per service, and the operator.
    ///
    /// Writes into DIR:
    ///   seeds/validator-<i>.nk   validator i of genesis (the i-th listed), for the pod of
    ///                            ordinal i
    ///   seeds/<service>.nk       ledger, licence, tokens
    ///   operator.nk              an administrator's (nats-box, backups): every permission
    ///   nats-auth-values.yaml    values for the official NATS Helm chart (public keys only)
    ///   authorization.conf       the same users for a nats-server.conf outside Kubernetes
    ///
    /// `seeds/` becomes the Secret the citychain chart's `nats.nkeys.existingSecret` names.
    /// Seed files are mode 0600 and never overwritten unless --force: the running servers
    /// know their public keys.
    #[command(verbatim_doc_comment)]
    Users {
        /// The chain's genesis file (its chain id names the streams; its validators get a
        /// user each).
        #[arg(long)]
        genesis: PathBuf,
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Replace existing files, making new keys for every user.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(cmd: NatsCommand) -> Result<()> {
    match cmd {
        NatsCommand::Users {
            genesis,
            out,
            force,
        } => users(&genesis, &out, force),
    }
}

/// One user to make: its seed file's name (by ordinal for validators, which is what a pod
/// knows), its user name and role.
struct Wanted {
    file: String,
    name: String,
    role: access::Role,
    permissions: access::Permissions,
}

fn users(genesis_path: &Path, out: &Path, force: bool) -> Result<()> {
    let genesis = load_genesis(genesis_path)?;
    let chain_id = genesis.chain_id.as_str();
    let streams = StreamsConfig::new(chain_id)
        .with_context(|| format!("chain id {chain_id:?} cannot name NATS streams"))?;
    let mut wanted = vec![Wanted {
        file: format!("{OPERATOR_USER}.nk"),
        name: OPERATOR_USER.to_owned(),
        role: access::Role::Operator,
        permissions: access::operator_permissions(),
    }];
    let mut validators = 0;
    let chain_users = access::chain_users(genesis.validators.iter().map(|m| m.as_str()));
    let permissions = access::chain_permissions(&chain_users, &streams);
    for ((name, role), permissions) in chain_users.into_iter().zip(permissions) {
        let file = if role == access::Role::Validator {
            validators += 1;
            format!("seeds/validator-{}.nk", validators - 1)
        } else {
            format!("seeds/{name}.nk")
        };
        wanted.push(Wanted {
            file,
            name,
            role,
            permissions,
        });
    }
    let seeds_dir = out.join("seeds");
    std::fs::create_dir_all(&seeds_dir)
        .with_context(|| format!("cannot create {}", seeds_dir.display()))?;
    // Check every file first, so a refusal leaves no half-made set behind.
    let outputs = [
        out.join("nats-auth-values.yaml"),
        out.join("authorization.conf"),
    ];
    if !force {
        for path in wanted
            .iter()
            .map(|w| out.join(&w.file))
            .chain(outputs.iter().cloned())
        {
            if path.exists() {
                bail!(
                    "{} already exists; pass --force to make new keys for every user \
                     (the NATS servers and the Secret must then be updated together)",
                    path.display()
                );
            }
        }
    }

    if force {
        remove_stale_seeds(&seeds_dir, &wanted, out)?;
    }
    println!(
        "chain {chain_id}: {validators} validators, {} services, the operator",
        wanted.len() - validators - 1
    );
    let mut users: Vec<User> = Vec::new();
    for w in &wanted {
        let (user, seed) = access::new_user(&w.name, w.role.name(), w.permissions.clone());
        let path = out.join(&w.file);
        write_secret(&path, &format!("{seed}\n"), true)?;
        println!(
            "wrote {}  (user {}, {}, {})",
            path.display(),
            w.name,
            w.role.name(),
            user.nkey
        );
        users.push(user);
    }

    let header = format!(
        "# The NATS users of chain {chain_id}, written by `citychain nats users` from {}.\n\
         # Public keys and permissions only; the seeds are in seeds/ and operator.nk.\n",
        genesis_path.display()
    );
    let values = format!(
        "{header}#\n\
         #   helm install nats nats/nats -n nats -f deploy/nats-values.yaml -f {}\n#\n\
         # nats-box connects as the operator, from Secret {OPERATOR_SECRET} in NATS's namespace.\n\
         {}natsBox:\n  contexts:\n    default:\n      nkey:\n        \
         secretName: {OPERATOR_SECRET}\n        key: operator.nk\n",
        outputs[0].display(),
        access::nats_chart_values(&users)
    );
    let conf = format!(
        "{header}# Include it in a nats-server.conf: include ./authorization.conf\n{}",
        access::server_config(&users)
    );
    for (path, text, what) in [
        (&outputs[0], values, "values for the NATS Helm chart"),
        (&outputs[1], conf, "the same users for a nats-server.conf"),
    ] {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}  ({what})", path.display());
    }
    println!(
        "next: kubectl create namespace nats\n      \
         kubectl -n nats create secret generic {OPERATOR_SECRET} --from-file={}\n      \
         helm install nats nats/nats -n nats -f deploy/nats-values.yaml -f {}\n      \
         kubectl create namespace citychain\n      \
         kubectl -n citychain create secret generic citychain-nats-users --from-file={}\n      \
         (validator-<i>.json in the validator keys' Secret must be the key of the member \
         validator-<i>.nk is for, listed above)",
        out.join("operator.nk").display(),
        outputs[0].display(),
        seeds_dir.display()
    );
    Ok(())
}

/// Removes seed files in `seeds_dir` that this run does not make (a validator set that shrank,
/// say), so a Secret made from the folder holds only users the servers know.
fn remove_stale_seeds(seeds_dir: &Path, wanted: &[Wanted], out: &Path) -> Result<()> {
    let entries = std::fs::read_dir(seeds_dir)
        .with_context(|| format!("cannot read {}", seeds_dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", seeds_dir.display()))?
            .path();
        let ours = wanted.iter().any(|w| out.join(&w.file) == path);
        if !ours && path.extension().is_some_and(|ext| ext == "nk") {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            println!(
                "removed {}  (a user this genesis does not have)",
                path.display()
            );
        }
    }
    Ok(())
}
