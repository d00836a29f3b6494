//! `citychain demo`: a guided walk through what the running network is for, with the SDK,
//! printing who did what, transaction ids and heights, what a citizen can see, and ending with
//! an offline verification of the whole chain.
//!
//! Today it shows the ledger and governance: departments record signed notes about a citizen,
//! the citizen lists every transaction about them, one transaction's proof is checked offline,
//! and the chain is exported and verified from genesis. The platform services (licence
//! sharing, tokens, finance, medical, coupons) add their scenarios as they are built.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use citychain_client::{LedgerClient, Signer};
use citychain_kernel::proof::TransactionProof;
use citychain_kernel::{Genesis, KeyPair, Role, TxBody};
use citychain_proto::citychain::ledger::v1 as pb;
use clap::Args;

use crate::dev_cmd::Endpoints;
use crate::verify_cmd::{load_genesis, verify_export};

/// How long the demo waits for the ledger to answer (it may be restarting).
const CONNECT_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
#[command(after_help = "\
Run `citychain dev` first; once it prints `ready`:
  citychain demo --home .citychain")]
pub struct DemoArgs {
    /// The home folder of the running `citychain dev` network.
    #[arg(long, value_name = "DIR", default_value = ".citychain")]
    home: PathBuf,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(demo(&args.home))
}

fn key(home: &Path, member: &str) -> Result<KeyPair> {
    let path = home.join("keys").join(format!("{member}.json"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    KeyPair::from_key_file(&text).with_context(|| format!("{} is not a key file", path.display()))
}

/// The member `preferred` if genesis has it, else the first member with `role`.
fn member(genesis: &Genesis, preferred: &str, role: Role) -> Result<String> {
    genesis
        .members
        .iter()
        .find(|m| m.id.as_str() == preferred)
        .or_else(|| genesis.members.iter().find(|m| m.role == role))
        .map(|m| m.id.to_string())
        .with_context(|| format!("genesis has no {role}"))
}

async fn connect(ledger: &str) -> Result<LedgerClient> {
    let started = tokio::time::Instant::now();
    loop {
        match LedgerClient::connect(ledger).await {
            Ok(client) => return Ok(client),
            Err(err) if started.elapsed() > CONNECT_WAIT => {
                return Err(err).context("the ledger does not answer");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn demo(home: &Path) -> Result<()> {
    let endpoints = Endpoints::read(home)?;
    let genesis = load_genesis(&home.join("genesis.json"))?;
    let ledger = endpoints.ledger()?.to_owned();
    let mut client = connect(&ledger).await?;
    if client.chain_id() != &genesis.chain_id {
        bail!(
            "the ledger at {ledger} follows chain {}, {} names chain {}",
            client.chain_id(),
            home.join("genesis.json").display(),
            genesis.chain_id
        );
    }
    // Nonces from the clock, so a second demo on the same chain never reuses one.
    let first_nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_micros() as u64;
    let owner = member(&genesis, "dept.real-estate", Role::Department)?;
    let reader = member(&genesis, "dept.tax", Role::Department)?;
    let bank = member(&genesis, "bank.city-commercial", Role::Bank)?;
    let citizen = "citizen:330102-19900101-0042";
    println!("== citychain demo on chain {} ==", genesis.chain_id);
    println!(
        "ledger: {ledger}; chain at height {}",
        client.tip_height().await?
    );

    let mut ids = Vec::new();
    for (i, (member, what)) in [
        (
            owner.as_str(),
            "registers the deed of flat 12, 8 Lakeside Road",
        ),
        (
            reader.as_str(),
            "records a tax assessment that cites the deed",
        ),
        (
            bank.as_str(),
            "records a mortgage pre-check that cites the deed",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let signer = Signer::new(
            genesis.chain_id.clone(),
            key(home, member)?.signing,
            first_nonce + i as u64,
        );
        let body = TxBody::new("citychain.demo.v1.Note", what.as_bytes().to_vec())
            .with_subjects([citizen, "record:deed-8-lakeside-12"]);
        let tx = client.sign(&signer, body).await?;
        let id = client.submit(&tx).await?;
        let committed = client.wait(&id, Duration::from_secs(60)).await?;
        println!(
            "{member} {what}\n    tx {id} committed at height {} (index {})",
            committed.height, committed.index
        );
        ids.push(id);
    }

    println!("\nWhat the citizen sees: every transaction about {citizen}");
    let listed = client
        .grpc()
        .list_transactions(pb::ListTransactionsRequest {
            filter: Some(pb::list_transactions_request::Filter::Subject(
                citizen.into(),
            )),
            page_size: 100,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    let registry = client
        .grpc()
        .list_members(pb::ListMembersRequest {
            page_size: 100,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    for t in &listed.transactions {
        let by = registry
            .members
            .iter()
            .filter_map(|m| m.member.as_ref())
            .find(|m| hex::encode(&m.signing_key) == t.signer)
            .map_or("a citizen key", |m| m.id.as_str());
        println!("    height {:>6}  {}  by {by}", t.height, t.id);
    }
    let ours = ids
        .iter()
        .filter(|id| listed.transactions.iter().any(|t| &&t.id == id))
        .count();
    println!(
        "    ({} listed, {ours} of them from this demo)",
        listed.transactions.len()
    );

    let proof = client
        .grpc()
        .get_transaction(pb::GetTransactionRequest { id: ids[0].clone() })
        .await?
        .into_inner()
        .proof
        .context("the ledger returned no proof")?;
    let proof = TransactionProof::from_proto(proof)?;
    let verified = proof.verify(&genesis.chain_id)?;
    println!(
        "\nOffline proof of {}: in block {} under its Merkle root, certified by {} of {} validators{}",
        ids[0],
        verified.height,
        verified.signers,
        verified.validators,
        if verified.signed_by_genesis(&genesis) {
            " of the genesis set: verified"
        } else {
            " (a set after genesis: check it with --chain)"
        }
    );

    let export = home.join("demo.export");
    let blocks = crate::chain_cmd::export(&ledger, &genesis, &export).await?;
    let file = std::fs::File::open(&export)
        .with_context(|| format!("cannot open {}", export.display()))?;
    let summary = verify_export(&genesis, std::io::BufReader::new(file), |_, _| {})
        .map_err(|failure| anyhow::anyhow!("the chain does not verify: {failure}"))?;
    println!(
        "\nWhole chain exported to {} and verified from genesis: blocks 1..{blocks}, {} transactions, \
         {} validator signatures checked",
        export.display(),
        summary.transactions,
        summary.precommits
    );
    println!("demo complete");
    Ok(())
}
