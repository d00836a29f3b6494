//! `citychain licence`: upload a record, read one (submit the read, wait for the key grant,
//! decrypt and check the department's signature), search the catalogue, and list a citizen's
//! receipts, against a running licence service.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use citychain_client::{Expected, LedgerClient, LicenceClient, Signer, open_read};
use citychain_kernel::proof::TransactionProof;
use citychain_kernel::{Height, KeyPair, TxId};
use citychain_proto::citychain::licence::v1 as lpb;
use citychain_records::{ReadTarget, read_body};
use clap::{Args, Subcommand};

use crate::dev_cmd::Endpoints;

/// How long `read` waits for the grant.
const READ_WAIT: Duration = Duration::from_secs(60);

/// How many heights ahead a transaction of this command may commit.
const TTL: u64 = 100;

#[derive(Debug, Subcommand)]
pub enum LicenceCommand {
    /// Upload a record signed by its owning department.
    #[command(after_help = "\
Example:
  citychain licence upload --home .citychain --key .citychain/keys/dept.housing.json \\
      --type housing.filing --subject citizen:330102-19900101-0042 --payload filing.json")]
    Upload {
        /// The department's key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The record type.
        #[arg(long = "type", value_name = "TYPE")]
        record_type: String,
        /// Whom the record is about.
        #[arg(long)]
        subject: String,
        /// The payload: a JSON object with the record type's fields.
        #[arg(long, value_name = "FILE")]
        payload: PathBuf,
        #[command(flatten)]
        service: Services,
    },
    /// Read a record: the read is recorded on the chain, paid, then the key released to you.
    Read {
        /// The reader's key file (its X25519 secret opens the record).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The record id.
        #[arg(long, value_name = "ID")]
        record: String,
        /// Why you read it; shown to the subject.
        #[arg(long)]
        purpose: String,
        /// Write the payload here instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        service: Services,
    },
    /// List record metadata (never payloads), oldest first.
    Search {
        /// Only records about this subject.
        #[arg(long)]
        subject: Option<String>,
        /// Only records of this type.
        #[arg(long = "type", value_name = "TYPE")]
        record_type: Option<String>,
        /// Only records of this department.
        #[arg(long)]
        owner: Option<String>,
        /// From this height.
        #[arg(long, default_value_t = 0)]
        from_height: u64,
        /// Up to this height (0: the tip).
        #[arg(long, default_value_t = 0)]
        to_height: u64,
        #[command(flatten)]
        service: Services,
    },
    /// Who read a subject's records: a citizen signs the query with their own key.
    Receipts {
        /// The citizen's key file (bound to the subject by a department).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The subject.
        #[arg(long)]
        subject: String,
        /// The genesis file, to check each receipt's proof offline (default: under --home).
        #[arg(long, value_name = "FILE")]
        genesis: Option<PathBuf>,
        #[command(flatten)]
        service: Services,
    },
}

/// Where the licence service and the ledger are.
#[derive(Debug, Args)]
pub struct Services {
    /// The licence service's gRPC address.
    #[arg(long, value_name = "URL")]
    licence: Option<String>,
    /// The ledger's gRPC address (for the chain's height and the commit).
    #[arg(long, value_name = "URL")]
    ledger: Option<String>,
    /// The home folder of a `citychain dev` network: its services are used.
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
}

impl Services {
    fn resolve(&self, service: &str, explicit: &Option<String>) -> Result<String> {
        Endpoints::service_url(explicit.as_ref(), self.home.as_deref(), service)
    }

    async fn connect(&self) -> Result<(LicenceClient, LedgerClient)> {
        let licence = LicenceClient::connect(&self.resolve("licence", &self.licence)?).await?;
        let ledger = LedgerClient::connect(&self.resolve("ledger", &self.ledger)?).await?;
        Ok((licence, ledger))
    }
}

fn key(path: &Path) -> Result<KeyPair> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    KeyPair::from_key_file(&text).with_context(|| format!("{} is not a key file", path.display()))
}

fn clock_nonce() -> Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_micros() as u64)
}

pub fn run(cmd: LicenceCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cmd {
            LicenceCommand::Upload {
                key: key_file,
                record_type,
                subject,
                payload,
                service,
            } => {
                let payload = std::fs::read(&payload)
                    .with_context(|| format!("cannot read {}", payload.display()))?;
                let (mut licence, mut ledger) = service.connect().await?;
                let signer = Signer::new(
                    ledger.chain_id().clone(),
                    key(&key_file)?.signing,
                    clock_nonce()?,
                );
                let expiry = Height(ledger.tip_height().await? + TTL);
                let id = licence
                    .upload(&signer, expiry, &record_type, &subject, &payload)
                    .await?;
                eprintln!("uploaded record {id}; waiting for it to commit");
                let committed = ledger.wait_on_chain(&id, READ_WAIT).await?;
                println!(
                    "record {id} committed at height {} (index {})",
                    committed.height, committed.index
                );
                Ok(())
            }
            LicenceCommand::Read {
                key: key_file,
                record,
                purpose,
                out,
                service,
            } => {
                let (mut licence, mut ledger) = service.connect().await?;
                let keys = key(&key_file)?;
                let record_id: TxId = record
                    .parse()
                    .with_context(|| format!("--record {record:?} is not a record id"))?;
                let info = licence
                    .grpc()
                    .get_record(lpb::GetRecordRequest {
                        record_id: record.clone(),
                    })
                    .await?
                    .into_inner();
                let signer = Signer::new(
                    ledger.chain_id().clone(),
                    keys.signing.clone(),
                    clock_nonce()?,
                );
                let expiry = Height(ledger.tip_height().await? + TTL);
                let body = read_body(&ReadTarget::Record(record_id), &info.subject, &purpose);
                let submitted = licence.submit_read(&signer, expiry, body).await?;
                eprintln!(
                    "read {} submitted (price {}); waiting for its receipt and payment",
                    submitted.read_id, submitted.price
                );
                let state = licence.wait_read(&submitted.read_id, READ_WAIT).await?;
                let expected = Expected {
                    chain_id: ledger.chain_id().clone(),
                    read_id: submitted.read_id.parse()?,
                    record_id: Some(record_id),
                };
                let opened = open_read(&state, &keys.encryption, &expected)?;
                let signer = ledger.confirm_upload(&opened).await?;
                eprintln!(
                    "read {} committed at height {}; key released; the record is {signer}'s \
                     upload on the chain, its signature verified",
                    state.read_id, state.height
                );
                match out {
                    Some(path) => std::fs::write(&path, &opened.payload)
                        .with_context(|| format!("cannot write {}", path.display()))?,
                    None => println!("{}", String::from_utf8_lossy(&opened.payload)),
                }
                Ok(())
            }
            LicenceCommand::Search {
                subject,
                record_type,
                owner,
                from_height,
                to_height,
                service,
            } => {
                let mut licence =
                    LicenceClient::connect(&service.resolve("licence", &service.licence)?).await?;
                let mut token = String::new();
                loop {
                    let page = licence
                        .grpc()
                        .search_records(lpb::SearchRecordsRequest {
                            subject: subject.clone().unwrap_or_default(),
                            record_type: record_type.clone().unwrap_or_default(),
                            owner: owner.clone().unwrap_or_default(),
                            from_height,
                            to_height,
                            page_size: 100,
                            page_token: token,
                        })
                        .await?
                        .into_inner();
                    for r in &page.records {
                        println!(
                            "height {:>6}  {}  {:<20} {:<24} {}  {} bytes",
                            r.height,
                            r.record_id,
                            r.record_type,
                            r.owner,
                            r.subject,
                            r.payload_size
                        );
                    }
                    if page.next_page_token.is_empty() {
                        return Ok(());
                    }
                    token = page.next_page_token;
                }
            }
            LicenceCommand::Receipts {
                key: key_file,
                subject,
                genesis,
                service,
            } => {
                let genesis_path = match (&genesis, &service.home) {
                    (Some(file), _) => file.clone(),
                    (None, Some(home)) => home.join("genesis.json"),
                    (None, None) => bail!("give --genesis FILE or --home DIR"),
                };
                let genesis = crate::verify_cmd::load_genesis(&genesis_path)?;
                let (mut licence, mut ledger) = service.connect().await?;
                let citizen = Signer::new(
                    ledger.chain_id().clone(),
                    key(&key_file)?.signing,
                    clock_nonce()?,
                );
                let expiry = Height(ledger.tip_height().await? + TTL);
                let list = licence.receipts(&citizen, expiry, &subject, "").await?;
                print_receipts(&list.receipts, &genesis)?;
                Ok(())
            }
        }
    })
}

/// Prints receipts, checking each proof offline against `genesis`.
pub fn print_receipts(
    receipts: &[lpb::Receipt],
    genesis: &citychain_kernel::Genesis,
) -> Result<()> {
    for r in receipts {
        let proof = r
            .proof
            .clone()
            .with_context(|| format!("receipt {} has no proof", r.read_id))?;
        let verified = TransactionProof::from_proto(proof)?.verify(&genesis.chain_id)?;
        let check = if verified.signed_by_genesis(genesis) {
            "proof verified"
        } else {
            "proof verified against a later validator set"
        };
        let state = lpb::read_state::State::try_from(r.state)
            .map(|s| s.as_str_name().trim_start_matches("STATE_").to_lowercase())
            .unwrap_or_default();
        println!(
            "    height {:>6}  {:<22} read {} ({}) for {:?}: {state}; {check}",
            r.height,
            r.reader,
            r.record_type,
            &r.record_id[..12.min(r.record_id.len())],
            r.purpose
        );
    }
    Ok(())
}
