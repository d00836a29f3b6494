//! `citychain demo`: a guided walk through what the running network is for, with the SDK,
//! printing who did what, transaction ids and heights, balances, what a citizen can see, and
//! ending with offline checks of the whole chain and of every token balance.
//!
//! The scenario is the real estate transfer of the reference platform: governance declares the
//! record types of the departments involved and allocates tokens; surveying and mapping,
//! housing transaction filing and public security upload their records about the buyer; the tax
//! bureau reads the filing and the identity record and uploads its deed tax assessment; the
//! real estate registration centre reads all four to register the transfer. A bank's read
//! without tokens is not paid and releases nothing; a bank's read the policy forbids is refused.
//! Every read is a receipt on the chain, and the citizen lists them with proofs.
//!
//! It can run any number of times on one chain: every run uploads new records (a new contract
//! number), so every run earns and pays the same amounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use citychain_client::{Committed, Expected, LedgerClient, LicenceClient, Signer, open_read};
use citychain_governance::{Action, FieldKind, ProposalId, RecordType, approve_body, propose_body};
use citychain_kernel::{Genesis, Height, KeyPair, MemberId, Role, SignedTx, TxBody, TxId};
use citychain_proto::citychain::tokens::v1 as tpb;
use citychain_proto::citychain::tokens::v1::token_service_client::TokenServiceClient;
use citychain_records::{ReadTarget, bind_subject_body, read_body};
use citychain_runtime::grpc::health_status;
use clap::Args;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::dev_cmd::Endpoints;
use crate::files::write_secret;
use crate::licence_cmd::print_receipts;
use crate::verify_cmd::{load_genesis, verify_export};

/// How long the demo waits for a service to answer (it may be restarting).
const CONNECT_WAIT: Duration = Duration::from_secs(60);

/// How long it waits for a transaction or a key grant.
const WAIT: Duration = Duration::from_secs(90);

/// How many heights ahead its transactions may commit.
const TTL: u64 = 200;

/// The citizen buying the flat.
const CITIZEN: &str = "citizen:330102-19900101-0042";

const SURVEYING: &str = "dept.surveying";
const HOUSING: &str = "dept.housing";
const SECURITY: &str = "dept.public-security";
const TAX: &str = "dept.tax";
const REGISTRY: &str = "dept.real-estate";
const BANK: &str = "bank.city-commercial";

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

/// The citizen's key, created under `HOME/keys/` on the first run.
fn citizen_key(home: &Path) -> Result<KeyPair> {
    let path = home.join("keys").join("citizen.json");
    if !path.exists() {
        let keys = KeyPair::from_seeds(
            None,
            &crate::files::random_seed(),
            &crate::files::random_seed(),
        );
        write_secret(&path, &keys.to_key_file(), false)?;
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    KeyPair::from_key_file(&text).with_context(|| format!("{} is not a key file", path.display()))
}

/// Waits until every service of the platforms reports SERVING (one may be restarting).
async fn wait_serving(endpoints: &Endpoints) -> Result<()> {
    let services = [
        ("ledger", citychain_ledger::SERVICE_NAME),
        ("tokens", citychain_tokens::SERVICE_NAME),
        ("licence", citychain_licence::SERVICE_NAME),
    ];
    let started = tokio::time::Instant::now();
    for (service, health_name) in services {
        let url = endpoints.grpc(service)?;
        let addr: std::net::SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("endpoints.json: bad address {url} for {service}"))?;
        while health_status(addr, health_name).await != Some(ServingStatus::Serving as i32) {
            if started.elapsed() > CONNECT_WAIT {
                bail!("the {service} service at {url} is not serving");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

async fn retry<T, E, F, Fut>(what: &str, mut connect: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let started = tokio::time::Instant::now();
    loop {
        match connect().await {
            Ok(client) => return Ok(client),
            Err(err) if started.elapsed() > CONNECT_WAIT => {
                return Err(err).with_context(|| format!("the {what} does not answer"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// The record types of a real estate transfer.
fn record_types() -> Result<Vec<RecordType>> {
    use FieldKind::{Boolean, Date, Document, Integer, Text};
    let departments = [Role::Department];
    Ok(vec![
        RecordType::build(
            "survey.property",
            SURVEYING,
            &[
                ("parcel_id", Text, true),
                ("floor_area_m2", Integer, true),
                ("surveyed_on", Date, true),
                ("floor_plan", Document, false),
            ],
            &departments,
            2,
            5,
        )?,
        RecordType::build(
            "housing.filing",
            HOUSING,
            &[
                ("contract_no", Text, true),
                ("price_cny", Integer, true),
                ("seller", Text, true),
                ("signed_on", Date, true),
            ],
            &[Role::Department, Role::Bank],
            3,
            5,
        )?,
        RecordType::build(
            "identity.resident",
            SECURITY,
            &[("name", Text, true), ("verified", Boolean, true)],
            &departments,
            1,
            3,
        )?,
        RecordType::build(
            "tax.deed-tax",
            TAX,
            &[
                ("contract_no", Text, true),
                ("assessed_cny", Integer, true),
                ("paid", Boolean, true),
            ],
            &departments,
            2,
            5,
        )?,
    ])
}

struct Demo {
    home: PathBuf,
    genesis: Genesis,
    ledger: LedgerClient,
    licence: LicenceClient,
    tokens: TokenServiceClient<Channel>,
    tag: u64,
    signers: BTreeMap<String, Signer>,
}

impl Demo {
    fn signer(&mut self, member: &str) -> Result<&Signer> {
        if !self.signers.contains_key(member) {
            let signer = Signer::new(
                self.genesis.chain_id.clone(),
                key(&self.home, member)?.signing,
                self.tag,
            );
            self.signers.insert(member.to_owned(), signer);
        }
        Ok(&self.signers[member])
    }

    async fn expiry(&mut self) -> Result<Height> {
        Ok(Height(self.ledger.tip_height().await? + TTL))
    }

    async fn sign(&mut self, member: &str, body: TxBody) -> Result<SignedTx> {
        let expiry = self.expiry().await?;
        Ok(self.signer(member)?.sign(body, expiry)?)
    }

    /// Submits every transaction, then waits for all of them.
    async fn commit_all(&mut self, txs: &[SignedTx]) -> Result<Vec<Committed>> {
        for tx in txs {
            self.ledger.submit(tx).await?;
        }
        let mut done = Vec::new();
        for tx in txs {
            done.push(self.ledger.wait(&tx.id().to_string(), WAIT).await?);
        }
        Ok(done)
    }

    fn departments(&self) -> Vec<String> {
        self.genesis
            .members
            .iter()
            .filter(|m| m.role == Role::Department)
            .map(|m| m.id.to_string())
            .collect()
    }

    /// Passes every action: proposals first, then the approvals two thirds need.
    async fn govern(&mut self, actions: &[(String, Action)]) -> Result<u64> {
        let depts = self.departments();
        let needed = (depts.len() * 2).div_ceil(3);
        let mut proposals = Vec::new();
        for (id, action) in actions {
            let id = ProposalId::new(id.clone())?;
            proposals.push(self.sign(&depts[0], propose_body(&id, action)).await?);
        }
        self.commit_all(&proposals).await?;
        let mut approvals = Vec::new();
        for (id, _) in actions {
            let id = ProposalId::new(id.clone())?;
            for dept in &depts[1..needed] {
                approvals.push(self.sign(dept, approve_body(&id)).await?);
            }
        }
        let done = self.commit_all(&approvals).await?;
        Ok(done.iter().map(|c| c.height).max().unwrap_or(0))
    }

    async fn balance(&mut self, member: &str) -> Result<i64> {
        let asked = self
            .tokens
            .get_balance(tpb::GetBalanceRequest {
                account: format!("member:{member}"),
            })
            .await;
        match asked {
            Ok(b) => Ok(b.into_inner().balance),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(0),
            Err(status) => Err(status.into()),
        }
    }

    async fn upload(&mut self, member: &str, record_type: &str, payload: &str) -> Result<TxId> {
        let expiry = self.expiry().await?;
        self.signer(member)?;
        let id = self
            .licence
            .upload(
                &self.signers[member],
                expiry,
                record_type,
                CITIZEN,
                payload.as_bytes(),
            )
            .await
            .with_context(|| format!("{member} uploading {record_type}"))?;
        let committed = self.ledger.wait_on_chain(&id, WAIT).await?;
        println!(
            "  {member:<22} uploads {record_type:<18} record {} at height {}",
            &id[..16],
            committed.height
        );
        id.parse()
            .context("the licence service returned a bad record id")
    }

    /// Reads `record`; prints what happened; returns the read id when it was committed.
    async fn read(
        &mut self,
        member: &str,
        record: TxId,
        record_type: &str,
        purpose: &str,
    ) -> Result<Option<String>> {
        let body = read_body(&ReadTarget::Record(record), CITIZEN, purpose);
        let expiry = self.expiry().await?;
        self.signer(member)?;
        let submitted = match self
            .licence
            .submit_read(&self.signers[member], expiry, body)
            .await
        {
            Ok(submitted) => submitted,
            Err(err) => {
                println!("  {member:<22} reads {record_type:<18} refused: {err}");
                return Ok(None);
            }
        };
        let state = self.licence.wait_read(&submitted.read_id, WAIT).await?;
        let secret = key(&self.home, member)?.encryption;
        let expected = Expected {
            chain_id: self.genesis.chain_id.clone(),
            read_id: submitted.read_id.parse()?,
            record_id: Some(record),
        };
        match open_read(&state, &secret, &expected) {
            Ok(opened) => {
                let signer = self.ledger.confirm_upload(&opened).await?;
                println!(
                    "  {member:<22} reads {record_type:<18} receipt {} at height {}, paid {}; \
                     key released, decrypted, signature of {signer} checked: {}",
                    &state.read_id[..16],
                    state.height,
                    state.price,
                    String::from_utf8_lossy(&opened.payload)
                );
            }
            Err(_) => println!(
                "  {member:<22} reads {record_type:<18} receipt {} at height {}: nothing \
                 released ({})",
                &state.read_id[..16],
                state.height,
                state.reason
            ),
        }
        Ok(Some(submitted.read_id))
    }
}

async fn demo(home: &Path) -> Result<()> {
    let endpoints = Endpoints::read(home)?;
    let genesis = load_genesis(&home.join("genesis.json"))?;
    for member in [SURVEYING, HOUSING, SECURITY, TAX, REGISTRY, BANK] {
        if !genesis.members.iter().any(|m| m.id.as_str() == member) {
            bail!(
                "genesis has no member {member}; start a new development chain with \
                 `citychain dev --reset`"
            );
        }
    }
    wait_serving(&endpoints).await?;
    let ledger_addr = endpoints.ledger()?.to_owned();
    let ledger = retry("ledger", || LedgerClient::connect(&ledger_addr)).await?;
    if ledger.chain_id() != &genesis.chain_id {
        bail!(
            "the ledger at {ledger_addr} follows chain {}, {} names chain {}",
            ledger.chain_id(),
            home.join("genesis.json").display(),
            genesis.chain_id
        );
    }
    let licence_addr = endpoints.grpc("licence")?.to_owned();
    let licence = retry("licence service", || LicenceClient::connect(&licence_addr)).await?;
    let tokens_addr = endpoints.grpc("tokens")?.to_owned();
    let tokens = retry("token service", || {
        TokenServiceClient::connect(tokens_addr.clone())
    })
    .await?;
    // Nonces and contract numbers from the clock, so every run is new on the same chain.
    let tag = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_micros() as u64;
    let mut d = Demo {
        home: home.to_path_buf(),
        genesis: genesis.clone(),
        ledger,
        licence,
        tokens,
        tag,
        signers: BTreeMap::new(),
    };
    println!(
        "== citychain demo on chain {}: a real estate transfer ==",
        genesis.chain_id
    );
    println!("ledger {ledger_addr}, licence {licence_addr}, tokens {tokens_addr}");

    let members = [SURVEYING, HOUSING, SECURITY, TAX, REGISTRY, BANK];
    let mut before = BTreeMap::new();
    for m in members {
        before.insert(m, d.balance(m).await?);
    }

    println!(
        "\n1. Governance declares the record types and allocates tokens (2/3 of departments approve)"
    );
    let mut actions: Vec<(String, Action)> = record_types()?
        .into_iter()
        .map(|rt| {
            (
                format!("demo-{tag}-{}", rt.name),
                Action::DeclareRecordType(rt),
            )
        })
        .collect();
    for (member, amount) in [(TAX, 10), (REGISTRY, 20)] {
        actions.push((
            format!("demo-{tag}-grant-{member}"),
            Action::GrantTokens {
                member: MemberId::new(member)?,
                amount,
            },
        ));
    }
    let passed = d.govern(&actions).await?;
    for rt in record_types()? {
        println!(
            "  {:<18} owned by {:<20} read price {}, upload reward {}",
            rt.name.as_str(),
            rt.owner.as_str(),
            rt.read_price,
            rt.upload_reward
        );
    }
    println!(
        "  grants: {TAX} 10, {REGISTRY} 20; in force from height {}",
        passed + 1
    );
    d.licence.wait_applied(passed, WAIT).await?;

    println!("\n2. Departments upload their records about {CITIZEN}");
    let contract = format!("HZ-{tag}");
    let survey = d
        .upload(
            SURVEYING,
            "survey.property",
            &format!(
                r#"{{"parcel_id":"330102-017-{}","floor_area_m2":89,"surveyed_on":"2026-10-30"}}"#,
                tag % 10_000
            ),
        )
        .await?;
    let filing = d
        .upload(
            HOUSING,
            "housing.filing",
            &format!(
                r#"{{"contract_no":"{contract}","price_cny":3200000,"seller":"citizen:330102-19750312-0017","signed_on":"2026-11-02"}}"#
            ),
        )
        .await?;
    let identity = d
        .upload(
            SECURITY,
            "identity.resident",
            &format!(r#"{{"name":"Li Wei ({tag})","verified":true}}"#),
        )
        .await?;

    println!(
        "\n3. Each department reads what it needs; every read is a receipt on the chain first"
    );
    let mut reads = Vec::new();
    reads.extend(
        d.read(TAX, filing, "housing.filing", "deed tax assessment")
            .await?,
    );
    reads.extend(
        d.read(TAX, identity, "identity.resident", "deed tax assessment")
            .await?,
    );
    let deed_tax = d
        .upload(
            TAX,
            "tax.deed-tax",
            &format!(r#"{{"contract_no":"{contract}","assessed_cny":96000,"paid":true}}"#),
        )
        .await?;
    for (record, record_type) in [
        (survey, "survey.property"),
        (filing, "housing.filing"),
        (deed_tax, "tax.deed-tax"),
        (identity, "identity.resident"),
    ] {
        reads.extend(
            d.read(REGISTRY, record, record_type, "transfer registration")
                .await?,
        );
    }
    println!("  A bank without tokens, and a read the policy forbids:");
    reads.extend(
        d.read(BANK, filing, "housing.filing", "mortgage pre-check")
            .await?,
    );
    reads.extend(
        d.read(BANK, deed_tax, "tax.deed-tax", "mortgage pre-check")
            .await?,
    );

    println!("\n4. Token balances (rewards for uploads, charges for reads)");
    // The token service may still be applying the last blocks: wait until it has seen them.
    let tip = d.ledger.tip_height().await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    while d
        .tokens
        .get_supply(tpb::GetSupplyRequest {})
        .await?
        .into_inner()
        .height
        < tip
    {
        if tokio::time::Instant::now() >= deadline {
            bail!("the token service did not reach height {tip} within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for m in members {
        let now = d.balance(m).await?;
        let was = before[m];
        println!("  {m:<22} {was:>6} -> {now:>6}  ({:+})", now - was);
    }

    println!("\n5. What the citizen sees: who read their records, each receipt proven offline");
    let citizen = citizen_key(home)?;
    let bind = bind_subject_body(CITIZEN, &citizen.signing.public_key());
    let bind = d.sign(SECURITY, bind).await?;
    let bound = d.commit_all(&[bind]).await?;
    d.licence.wait_applied(bound[0].height, WAIT).await?;
    let citizen_signer = Signer::new(genesis.chain_id.clone(), citizen.signing.clone(), tag);
    let expiry = d.expiry().await?;
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = d
            .licence
            .receipts(&citizen_signer, expiry, CITIZEN, &token)
            .await?;
        all.extend(page.receipts);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let ours: Vec<_> = all
        .iter()
        .filter(|r| reads.contains(&r.read_id))
        .cloned()
        .collect();
    print_receipts(&ours, &genesis)?;
    println!(
        "  ({} receipts from this demo, {} in all for {CITIZEN})",
        ours.len(),
        all.len()
    );

    println!("\n6. Offline checks of the whole chain and of every balance");
    let export = home.join("demo.export");
    let tip = crate::chain_cmd::export(&ledger_addr, &genesis, &export).await?;
    let file = std::fs::File::open(&export)
        .with_context(|| format!("cannot open {}", export.display()))?;
    let summary = verify_export(&genesis, std::io::BufReader::new(file), tip, |_, _| {})
        .map_err(|failure| anyhow::anyhow!("the chain does not verify: {failure}"))?;
    println!(
        "  chain exported to {} and verified from genesis up to the ledger's tip: blocks 1..{}, \
         {} transactions, {} validator signatures checked",
        export.display(),
        tip.map_or(0, |t| t.height.0),
        summary.transactions,
        summary.precommits
    );
    let differences =
        crate::tokens_cmd::audit(&home.join("genesis.json"), &export, &tokens_addr).await?;
    if differences > 0 {
        bail!("the token service disagrees with the chain in {differences} places");
    }
    println!("demo complete");
    Ok(())
}
