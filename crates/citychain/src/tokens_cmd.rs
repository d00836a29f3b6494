//! `citychain tokens`: balances, statements and supply from a running token service, and the
//! audit that recomputes every balance from a chain export alone and compares it with the
//! service.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use citychain_proto::citychain::tokens::v1 as tpb;
use citychain_proto::citychain::tokens::v1::token_service_client::TokenServiceClient;
use citychain_tokens::audit::replay_export;
use clap::{Args, Subcommand};
use tonic::transport::Channel;

use crate::dev_cmd::Endpoints;
use crate::verify_cmd::load_genesis;

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// An account's balance: `member:<id>`, a bare member id, or `mint`.
    Balance {
        /// The account.
        account: String,
        #[command(flatten)]
        service: TokensAddr,
    },
    /// An account's journal entries, oldest first, with the transaction each came from.
    Statement {
        /// The account.
        account: String,
        /// Entries to show at most.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        service: TokensAddr,
    },
    /// Tokens minted and in circulation.
    Supply {
        #[command(flatten)]
        service: TokensAddr,
    },
    /// Recompute every balance from a chain export alone and compare with the service.
    ///
    /// Exits 1 and prints each difference if the service disagrees with the chain.
    #[command(after_help = "\
Example:
  citychain chain export --home .citychain --out chain.export
  citychain tokens audit .citychain/genesis.json chain.export --home .citychain")]
    Audit {
        /// The genesis file.
        genesis: PathBuf,
        /// A chain export (`citychain chain export`).
        export: PathBuf,
        #[command(flatten)]
        service: TokensAddr,
    },
}

/// Where the token service is.
#[derive(Debug, Args)]
pub struct TokensAddr {
    /// The token service's gRPC address.
    #[arg(long, value_name = "URL")]
    tokens: Option<String>,
    /// The home folder of a `citychain dev` network: its token service is used.
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
}

impl TokensAddr {
    fn resolve(&self) -> Result<String> {
        Endpoints::service_url(self.tokens.as_ref(), self.home.as_deref(), "tokens")
    }
}

pub fn run(cmd: TokensCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cmd {
            TokensCommand::Balance { account, service } => {
                let mut client = connect(&service.resolve()?).await?;
                let balance = client
                    .get_balance(tpb::GetBalanceRequest { account })
                    .await?
                    .into_inner();
                println!(
                    "{} {} (at height {})",
                    balance.account, balance.balance, balance.height
                );
                Ok(())
            }
            TokensCommand::Statement {
                account,
                limit,
                service,
            } => statement(&service.resolve()?, account, limit).await,
            TokensCommand::Supply { service } => {
                let mut client = connect(&service.resolve()?).await?;
                let supply = client
                    .get_supply(tpb::GetSupplyRequest {})
                    .await?
                    .into_inner();
                println!(
                    "minted {} circulating {} (at height {})",
                    supply.minted, supply.circulating, supply.height
                );
                Ok(())
            }
            TokensCommand::Audit {
                genesis,
                export,
                service,
            } => {
                let differences = audit(&genesis, &export, &service.resolve()?).await?;
                if differences > 0 {
                    bail!("the token service disagrees with the chain in {differences} places");
                }
                Ok(())
            }
        }
    })
}

async fn connect(addr: &str) -> Result<TokenServiceClient<Channel>> {
    TokenServiceClient::connect(addr.to_owned())
        .await
        .with_context(|| format!("cannot connect to the token service at {addr}"))
}

async fn statement(addr: &str, account: String, limit: usize) -> Result<()> {
    let mut client = connect(addr).await?;
    let mut token = String::new();
    let mut shown = 0;
    loop {
        let page = client
            .get_statement(tpb::GetStatementRequest {
                account: account.clone(),
                page_size: 100,
                page_token: token,
            })
            .await?
            .into_inner();
        for e in &page.entries {
            if shown == limit {
                return Ok(());
            }
            let source = e.source.clone().unwrap_or_default();
            let amount = if e.credit > 0 {
                format!("+{}", e.credit)
            } else {
                format!("-{}", e.debit)
            };
            println!(
                "height {:>6} #{:<3} {:<7} {amount:>8}  balance {:>8}  {} {}",
                source.height, source.index, e.kind, e.balance_after, e.counterparty, source.tx_id
            );
            shown += 1;
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        token = page.next_page_token;
    }
}

/// Rebuilds the journal from `export` and compares it with the token service at `addr` at the
/// export's last height; prints the comparison and returns the number of differences.
pub async fn audit(genesis: &Path, export: &Path, addr: &str) -> Result<usize> {
    let genesis = load_genesis(genesis)?;
    let rebuilt = replay_export(&genesis, export).await?;
    let mut client = connect(addr).await?;
    // The service may still be applying the export's last blocks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let supply = client
            .get_supply(tpb::GetSupplyRequest {})
            .await?
            .into_inner();
        if supply.height >= rebuilt.height {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the token service is at height {}, behind the export's {}",
                supply.height,
                rebuilt.height
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut differences = 0;
    let service_hash = client
        .get_journal_hash(tpb::GetJournalHashRequest {
            height: rebuilt.height,
        })
        .await
        .with_context(|| {
            format!(
                "the token service has no journal hash for height {}",
                rebuilt.height
            )
        })?
        .into_inner();
    if service_hash.hash != rebuilt.journal_hash.to_hex() {
        println!(
            "journal hash at height {}: the chain gives {}, the service {}",
            rebuilt.height, rebuilt.journal_hash, service_hash.hash
        );
        differences += 1;
    }
    let mut service = std::collections::BTreeMap::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_balances(tpb::ListBalancesRequest {
                page_size: 100,
                page_token: token,
            })
            .await?
            .into_inner();
        for b in page.balances {
            service.insert(b.account, b.balance);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    for (account, balance) in &rebuilt.balances {
        let text = account.text();
        match service.remove(&text) {
            Some(found) if found == *balance => {}
            found => {
                println!(
                    "{text}: the chain gives {balance}, the service {}",
                    found.map_or("nothing".to_string(), |f| f.to_string())
                );
                differences += 1;
            }
        }
    }
    for (account, balance) in service.into_iter().filter(|(_, b)| *b != 0) {
        println!("{account}: the service has {balance}, the chain nothing");
        differences += 1;
    }
    println!(
        "  token audit at height {}: {} accounts, supply {}, journal {} — {}",
        rebuilt.height,
        rebuilt.balances.len(),
        rebuilt.supply,
        rebuilt.journal_hash,
        if differences == 0 {
            "the service agrees with the chain".to_string()
        } else {
            format!("{differences} differences")
        }
    );
    Ok(differences)
}
