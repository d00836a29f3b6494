//! The gRPC API `citychain.tokens.v1.TokenService`: balances, statements, the supply, the
//! journal's state hash at a height, and every balance for audits. Each answer is read from
//! one store snapshot, with the applied height of that same snapshot, so a balance and the
//! height it claims always agree. Errors become statuses in one place (`error.rs`).

use std::sync::Arc;

use citychain_follower::Shared;
use citychain_proto::citychain::tokens::v1 as pb;
use citychain_proto::citychain::tokens::v1::token_service_server::{
    TokenService, TokenServiceServer,
};
use citychain_store::{Page, PageKey, Scan, Store, Transaction, prefix_end, read_applied_height};
use citychain_tokens_domain::Account;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::journal;
use crate::keys;
use crate::projection::PROJECTION_NAME;

/// What the API needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct TokensApi<S> {
    store: S,
    shared: Arc<Shared>,
    page_key: PageKey,
}

type Reply<T> = Result<Response<T>, Status>;

/// One page of the keys under `prefix`, from `page`'s start.
async fn page_of<T: Transaction>(
    txn: &mut T,
    prefix: &[u8],
    page: &Page,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ApiError> {
    let end = prefix_end(prefix);
    let scan = match &end {
        Some(end) => Scan::range(page.start.as_slice()..end.as_slice()),
        None => Scan::range(page.start.as_slice()..),
    }
    .limit(page.size);
    Ok(txn.scan(&scan).await?)
}

impl<S: Store + Clone + 'static> TokensApi<S> {
    /// The API over `store`, whose follower publishes to `shared`, tagging its page tokens
    /// with `page_key`.
    pub fn new(store: S, shared: Arc<Shared>, page_key: PageKey) -> Self {
        TokensApi {
            store,
            shared,
            page_key,
        }
    }

    /// The tonic service.
    pub fn into_server(self) -> TokenServiceServer<Self> {
        TokenServiceServer::new(self)
    }

    /// Reads an account, refusing one that is neither the mint, nor a member the registry
    /// knows, nor touched by an entry (a member since removed keeps its account).
    async fn known_account<T: Transaction>(
        &self,
        txn: &mut T,
        text: &str,
    ) -> Result<(Account, Option<journal::StoredBalance>), ApiError> {
        let account = Account::parse(text)?;
        let stored = journal::stored_balance(txn, &account).await?;
        let known = match &account {
            Account::Mint => true,
            Account::Member(id) => stored.is_some() || self.shared.registry().member(id).is_some(),
        };
        if !known {
            return Err(ApiError::UnknownAccount {
                account: account.text(),
            });
        }
        Ok((account, stored))
    }

    /// An account's balance at the last applied height.
    pub async fn balance(&self, account: &str) -> Result<pb::Balance, ApiError> {
        let mut txn = self.store.begin().await?;
        let height = read_applied_height(&mut txn, PROJECTION_NAME).await?;
        let (account, stored) = self.known_account(&mut txn, account).await?;
        Ok(pb::Balance {
            account: account.text(),
            balance: stored.map_or(0, |s| s.balance),
            height,
        })
    }

    /// A page of an account's statement, oldest first.
    pub async fn statement(
        &self,
        req: &pb::GetStatementRequest,
    ) -> Result<pb::Statement, ApiError> {
        let mut txn = self.store.begin().await?;
        let (account, _) = self.known_account(&mut txn, &req.account).await?;
        let prefix = keys::statement_prefix(&account);
        let page = self
            .page_key
            .list(&prefix, req.page_size, &req.page_token)?;
        let rows = page_of(&mut txn, &prefix, &page).await?;
        let last = rows.last().map(|(key, _)| key.clone());
        let entries = rows
            .iter()
            .map(|(key, value)| journal::decode_entry(key, value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pb::Statement {
            next_page_token: page.next_token(entries.len(), last.as_deref()),
            entries,
        })
    }

    /// Tokens minted, and the sum of the members' balances.
    pub async fn supply(&self) -> Result<pb::Supply, ApiError> {
        let mut txn = self.store.begin().await?;
        let height = read_applied_height(&mut txn, PROJECTION_NAME).await?;
        let mut minted = 0u64;
        let mut circulating: u128 = 0;
        for (account, stored) in journal::all_balances(&mut txn).await? {
            match account {
                Account::Mint => minted = stored.balance.unsigned_abs(),
                Account::Member(_) => {
                    circulating = circulating
                        .checked_add(u128::from(stored.balance.unsigned_abs()))
                        .ok_or_else(|| journal::damaged(keys::BALANCES, "balances overflow"))?;
                }
            }
        }
        let circulating = u64::try_from(circulating)
            .map_err(|_| journal::damaged(keys::BALANCES, "balances overflow"))?;
        Ok(pb::Supply {
            minted,
            circulating,
            height,
        })
    }

    /// The state hash after `height` (0: the last applied height).
    pub async fn journal_hash(&self, height: u64) -> Result<pb::JournalHash, ApiError> {
        let mut txn = self.store.begin().await?;
        let applied = read_applied_height(&mut txn, PROJECTION_NAME).await?;
        let height = if height == 0 { applied } else { height };
        if height > applied {
            return Err(ApiError::NotApplied {
                asked: height,
                applied,
            });
        }
        let hash = journal::state_hash_at(&mut txn, height).await?;
        Ok(pb::JournalHash {
            height,
            hash: hash.to_hex(),
        })
    }

    /// A page of every balance, in account order.
    pub async fn list_balances(
        &self,
        req: &pb::ListBalancesRequest,
    ) -> Result<pb::ListBalancesResponse, ApiError> {
        let mut txn = self.store.begin().await?;
        let height = read_applied_height(&mut txn, PROJECTION_NAME).await?;
        let prefix = keys::BALANCES;
        let page = self.page_key.list(prefix, req.page_size, &req.page_token)?;
        let rows = page_of(&mut txn, prefix, &page).await?;
        let last = rows.last().map(|(key, _)| key.clone());
        let mut balances = Vec::with_capacity(rows.len());
        for (key, value) in &rows {
            let account = journal::account_of_balance_key(key)?;
            let stored = journal::StoredBalance::decode(key, value)?;
            balances.push(pb::Balance {
                account: account.text(),
                balance: stored.balance,
                height,
            });
        }
        Ok(pb::ListBalancesResponse {
            next_page_token: page.next_token(balances.len(), last.as_deref()),
            balances,
        })
    }
}

#[tonic::async_trait]
impl<S: Store + Clone + 'static> TokenService for TokensApi<S> {
    async fn get_balance(&self, request: Request<pb::GetBalanceRequest>) -> Reply<pb::Balance> {
        Ok(Response::new(
            self.balance(&request.into_inner().account).await?,
        ))
    }

    async fn get_statement(
        &self,
        request: Request<pb::GetStatementRequest>,
    ) -> Reply<pb::Statement> {
        Ok(Response::new(self.statement(&request.into_inner()).await?))
    }

    async fn get_supply(&self, _request: Request<pb::GetSupplyRequest>) -> Reply<pb::Supply> {
        Ok(Response::new(self.supply().await?))
    }

    async fn get_journal_hash(
        &self,
        request: Request<pb::GetJournalHashRequest>,
    ) -> Reply<pb::JournalHash> {
        Ok(Response::new(
            self.journal_hash(request.into_inner().height).await?,
        ))
    }

    async fn list_balances(
        &self,
        request: Request<pb::ListBalancesRequest>,
    ) -> Reply<pb::ListBalancesResponse> {
        Ok(Response::new(
            self.list_balances(&request.into_inner()).await?,
        ))
    }
}
