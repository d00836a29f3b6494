//! The gRPC API `citychain.ledger.v1.LedgerService`: submission, status, blocks, transactions
//! with their proofs, shortened ids, checkpoints, consistency proofs, members and record
//! types. Every handler converts its
//! request at the edge (naming the bad field), asks the store or the registry, and returns an
//! [`ApiError`], which becomes a status in one place (`error.rs`).

use std::pin::Pin;
use std::sync::Arc;

use citychain_follower::{Admission, Shared};
use citychain_governance::{KeyStatus, MemberStatus, Registry};
use citychain_kernel::merkle::MerkleTree;
use citychain_kernel::proof::TransactionProof;
use citychain_kernel::{Block, BlockHash, Hash32, Height, PublicKey, TxId, ValidatorSet};
use citychain_ledger_domain::keys::{self, TxLocation};
use citychain_ledger_domain::status::Submitted;
use citychain_ledger_domain::{Lookup, TxStatus, decide_status};
use citychain_proto::citychain::kernel::v1 as kpb;
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_proto::citychain::ledger::v1::ledger_service_server::{
    LedgerService, LedgerServiceServer,
};
use citychain_store::Store;
use citychain_store::{Page, PageKey};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::pending::Pending;
use crate::store::{LedgerReader, ResolveError};

/// What the API needs; cloning it is cheap (the watch streams hold a clone).
#[derive(Debug, Clone)]
pub struct LedgerApi<S> {
    reader: LedgerReader<S>,
    shared: Arc<Shared>,
    admission: Admission,
    pending: Arc<Pending>,
    page_key: PageKey,
}

type Reply<T> = Result<Response<T>, Status>;

fn parse_id(field: &'static str, text: &str) -> Result<Hash32, ApiError> {
    let bytes =
        hex::decode(text).map_err(|_| ApiError::field(field, format!("{text:?} is not hex")))?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ApiError::field(field, "must be 32 bytes (64 hex characters)"))?;
    Ok(Hash32(array))
}

fn parse_key(field: &'static str, text: &str) -> Result<PublicKey, ApiError> {
    let hash = parse_id(field, text)?;
    PublicKey::from_bytes(&hash.0).map_err(|err| ApiError::field(field, err.to_string()))
}

impl<S: Store + Clone + 'static> LedgerApi<S> {
    /// The API over `store`, following `shared`, submitting through `admission`, knowing
    /// of uncommitted transactions from `pending` (which [`crate::pending::watch_mempool`]
    /// feeds), tagging its page tokens with `page_key`.
    pub fn new(
        store: S,
        shared: Arc<Shared>,
        admission: Admission,
        pending: Arc<Pending>,
        page_key: PageKey,
    ) -> Self {
        LedgerApi {
            reader: LedgerReader::reporting_to(store, shared.clone()),
            shared,
            admission,
            pending,
            page_key,
        }
    }

    /// The tonic service.
    pub fn into_server(self) -> LedgerServiceServer<Self> {
        LedgerServiceServer::new(self)
    }

    fn registry(&self) -> Arc<Registry> {
        self.shared.registry()
    }

    async fn submit(&self, bytes: Vec<u8>) -> Result<pb::SubmitTransactionResponse, ApiError> {
        let tx = self.admission.decode(&bytes)?;
        let id = tx.id();
        // A committed transaction sent again is a duplicate, even once its expiry has passed.
        if self.reader.location(&id).await?.is_some() {
            return Ok(pb::SubmitTransactionResponse {
                id: id.to_string(),
                duplicate: true,
            });
        }
        self.admission.admit(&tx)?;
        if let Some(holder) = self.reader.nonce_holder(tx.signer(), tx.nonce()).await? {
            return Err(ApiError::Expiry(format!(
                "nonce {} of signer {} was used by transaction {holder}",
                tx.nonce(),
                tx.signer()
            )));
        }
        let appended = self.admission.publish(&tx).await?;
        self.pending.remember(&tx, self.shared.applied());
        Ok(pb::SubmitTransactionResponse {
            id: id.to_string(),
            duplicate: appended.duplicate,
        })
    }

    async fn status(&self, id: &TxId) -> Result<(TxStatus, Height), ApiError> {
        let applied = self.shared.applied();
        let committed = self.reader.location(id).await?;
        let submitted = match self.pending.get(id) {
            Some(r) => Some(Submitted {
                expiry: r.expiry,
                nonce_taken_by: self.reader.nonce_holder(&r.signer, r.nonce).await?,
            }),
            None => None,
        };
        let lookup = Lookup {
            applied,
            committed,
            submitted,
        };
        Ok((decide_status(id, &lookup), applied))
    }

    async fn block_at(&self, height: Height) -> Result<Block, ApiError> {
        self.reader.block(height).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "block {} is not on the chain; the ledger has applied blocks 1 to {}",
                height.0,
                self.shared.applied().0
            ))
        })
    }

    /// The validator set that signed `block` (stored when the block was applied).
    async fn validators_of(&self, block: &Block) -> Result<ValidatorSet, ApiError> {
        self.reader
            .validators(&block.header.validators_hash)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "the validator set of block {} is not stored",
                    block.header.height.0
                ))
            })
    }

    async fn get_transaction(&self, id: &str) -> Result<pb::GetTransactionResponse, ApiError> {
        let id = TxId(parse_id("id", id)?);
        let location =
            self.reader.location(&id).await?.ok_or_else(|| {
                ApiError::NotFound(format!("transaction {id} is not on the chain"))
            })?;
        let block = self.block_at(location.height).await?;
        let validators = self.validators_of(&block).await?;
        let proof = TransactionProof::build(&block, u64::from(location.index), &validators)
            .map_err(|err| ApiError::NotFound(format!("cannot build the proof: {err}")))?;
        let signer = block.txs[location.index as usize].signer();
        let signer_member = match self.registry().key(signer) {
            Some(record) => record.member.to_string(),
            None => String::new(),
        };
        let trace_id = self.reader.trace_id(&id).await?.unwrap_or_default();
        Ok(pb::GetTransactionResponse {
            proof: Some(proof.to_proto()),
            id: id.to_string(),
            height: location.height.0,
            index: location.index,
            signer_member,
            trace_id,
        })
    }

    async fn list_transactions(
        &self,
        req: pb::ListTransactionsRequest,
    ) -> Result<pb::ListTransactionsResponse, ApiError> {
        let prefix = match &req.filter {
            Some(pb::list_transactions_request::Filter::Signer(key)) => {
                keys::by_signer_prefix(&parse_key("signer", key)?)
            }
            Some(pb::list_transactions_request::Filter::Subject(subject)) => {
                if citychain_kernel::tx::subject_problem(subject).is_some() {
                    return Err(ApiError::field(
                        "subject",
                        format!(
                            "must be 1 to {} visible ASCII characters",
                            citychain_kernel::tx::MAX_SUBJECT_BYTES
                        ),
                    ));
                }
                keys::by_subject_prefix(subject)
            }
            Some(pb::list_transactions_request::Filter::TypeUrl(type_url)) => {
                let limit = citychain_kernel::tx::MAX_TYPE_URL_BYTES;
                if type_url.is_empty() || type_url.len() > limit {
                    return Err(ApiError::field(
                        "type_url",
                        format!("must be 1 to {limit} bytes"),
                    ));
                }
                keys::by_type_prefix(type_url)
            }
            None => {
                return Err(ApiError::field(
                    "filter",
                    "give a signer, a subject or a type_url",
                ));
            }
        };
        let page = self
            .page_key
            .list(&prefix, req.page_size, &req.page_token)?;
        let (entries, last) = self.reader.tx_page(&prefix, &page).await?;
        let mut transactions = Vec::with_capacity(entries.len());
        let mut block: Option<Block> = None;
        for (location, id) in &entries {
            if block.as_ref().map(|b| b.header.height) != Some(location.height) {
                block = Some(self.block_at(location.height).await?);
            }
            let Some(tx) = block
                .as_ref()
                .and_then(|b| b.txs.get(location.index as usize))
            else {
                continue;
            };
            transactions.push(pb::TransactionRef {
                id: id.to_string(),
                height: location.height.0,
                index: location.index,
                type_url: tx.body().type_url.clone(),
                signer: tx.signer().to_string(),
            });
        }
        Ok(pb::ListTransactionsResponse {
            next_page_token: page.next_token(entries.len(), last.as_deref()),
            transactions,
        })
    }

    async fn list_blocks(
        &self,
        req: pb::ListBlocksRequest,
    ) -> Result<pb::ListBlocksResponse, ApiError> {
        let from = Height(req.from_height.max(1));
        let page = Page::new(
            &self.page_key,
            keys::HASHES_BY_HEIGHT,
            keys::hash_by_height(from),
            req.page_size,
            &req.page_token,
        )?;
        let start = page
            .start
            .get(keys::HASHES_BY_HEIGHT.len()..keys::HASHES_BY_HEIGHT.len() + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(from, |b| Height(u64::from_be_bytes(b)));
        let start = if req.page_token.is_empty() {
            start
        } else {
            Height(start.0 + 1)
        };
        let headers = self.reader.headers_from(start, page.size).await?;
        let last_key = headers.last().map(|h| keys::hash_by_height(h.height));
        Ok(pb::ListBlocksResponse {
            next_page_token: page.next_token(headers.len(), last_key.as_deref()),
            blocks: headers
                .into_iter()
                .map(|header| pb::BlockSummary {
                    hash: header.hash().to_string(),
                    header: Some(header.to_proto()),
                })
                .collect(),
            tip_height: self.shared.applied().0,
        })
    }

    async fn checkpoint(&self, height: u64) -> Result<pb::Checkpoint, ApiError> {
        let applied = self.shared.applied();
        let height = if height == 0 { applied } else { Height(height) };
        if height.0 == 0 {
            return Err(ApiError::NotFound("no block is on the chain yet".into()));
        }
        let block = self.block_at(height).await?;
        let validators = self.validators_of(&block).await?;
        let hashes = self.reader.block_hashes(height).await?;
        let history_root = MerkleTree::new(&hashes).root();
        Ok(pb::Checkpoint {
            height: height.0,
            header: Some(block.header.to_proto()),
            certificate: Some(block.certificate.to_proto()),
            validators: validators
                .validators()
                .iter()
                .map(|v| kpb::ProofValidator {
                    member_id: v.member_id.to_string(),
                    key: v.key.as_bytes().to_vec(),
                })
                .collect(),
            history_root: history_root.0.to_vec(),
        })
    }

    async fn consistency(
        &self,
        req: pb::GetConsistencyProofRequest,
    ) -> Result<pb::ConsistencyProof, ApiError> {
        let applied = self.shared.applied();
        let to = if req.to_height == 0 {
            applied.0
        } else {
            req.to_height
        };
        if to > applied.0 {
            return Err(ApiError::NotFound(format!(
                "to_height {to} is beyond the applied height {}",
                applied.0
            )));
        }
        if req.from_height == 0 || req.from_height > to {
            return Err(ApiError::field(
                "from_height",
                format!("must be 1 to to_height ({to})"),
            ));
        }
        let hashes = self.reader.block_hashes(Height(to)).await?;
        let tree = MerkleTree::new(&hashes);
        let proof = tree
            .consistency_proof(req.from_height, to)
            .map_err(|err| ApiError::field("from_height", err.to_string()))?;
        let from_root = tree
            .root_at(req.from_height)
            .map_err(|err| ApiError::field("from_height", err.to_string()))?;
        Ok(pb::ConsistencyProof {
            from_height: req.from_height,
            to_height: to,
            from_root: from_root.0.to_vec(),
            to_root: tree.root().0.to_vec(),
            path: proof.path.iter().map(|h| h.0.to_vec()).collect(),
        })
    }
}

impl<S: Store + Clone + 'static> LedgerApi<S> {
    async fn resolve_prefix(
        &self,
        req: pb::ResolvePrefixRequest,
    ) -> Result<pb::ResolvePrefixResponse, ApiError> {
        use pb::resolve_prefix_request::Kind;
        let table = match Kind::try_from(req.kind) {
            Ok(Kind::Transaction) => keys::TX_LOCATIONS,
            Ok(Kind::Block) => keys::HEIGHTS_BY_HASH,
            _ => {
                return Err(ApiError::field(
                    "kind",
                    format!("{} is not KIND_TRANSACTION or KIND_BLOCK", req.kind),
                ));
            }
        };
        let (matches, truncated) = self
            .reader
            .resolve_prefix(table, &req.prefix)
            .await
            .map_err(|err| match err {
                ResolveError::Prefix(err) => ApiError::field("prefix", err.to_string()),
                ResolveError::Store(err) => err.into(),
            })?;
        Ok(pb::ResolvePrefixResponse {
            matches: matches.iter().map(|h| hex::encode(h.0)).collect(),
            truncated,
        })
    }

    fn list_record_types(
        &self,
        req: pb::ListRecordTypesRequest,
    ) -> Result<pb::ListRecordTypesResponse, ApiError> {
        // Pages over the names, as if they were keys under `r/`.
        let prefix = b"r/";
        let page = self.page_key.list(prefix, req.page_size, &req.page_token)?;
        let after = page.start.get(prefix.len()..).unwrap_or_default().to_vec();
        let registry = self.registry();
        let record_types: Vec<_> = registry
            .record_types()
            .filter(|t| t.name.as_str().as_bytes() >= after.as_slice())
            .take(page.size)
            .map(|t| t.to_proto())
            .collect();
        let last_key = record_types.last().map(|t| {
            let mut key = prefix.to_vec();
            key.extend_from_slice(t.name.as_bytes());
            key
        });
        Ok(pb::ListRecordTypesResponse {
            next_page_token: page.next_token(record_types.len(), last_key.as_deref()),
            record_types,
        })
    }
}

/// A member as the API shows it.
fn member_record(registry: &Registry, id: &citychain_kernel::MemberId) -> Option<pb::MemberRecord> {
    let record = registry.member(id)?;
    let retired_keys = registry
        .keys()
        .filter(|(_, k)| &k.member == id)
        .filter_map(|(key, k)| match k.status {
            KeyStatus::Active => None,
            KeyStatus::Rotated { from } => Some(pb::RetiredKey {
                key: key.as_bytes().to_vec(),
                refused_from: from.0,
                why: "rotated".into(),
                valid_from: k.since.0,
            }),
            KeyStatus::Revoked { from } => Some(pb::RetiredKey {
                key: key.as_bytes().to_vec(),
                refused_from: from.0,
                why: "revoked".into(),
                valid_from: k.since.0,
            }),
        })
        .collect();
    let key_since = record
        .signing_key
        .and_then(|key| registry.key(&key))
        .map_or(0, |k| k.since.0);
    Some(pb::MemberRecord {
        member: Some(kpb::Member {
            id: id.to_string(),
            name: record.name.clone(),
            role: record.role.to_proto() as i32,
            signing_key: record
                .signing_key
                .map(|k| k.as_bytes().to_vec())
                .unwrap_or_default(),
            encryption_key: record.encryption_key.0.to_vec(),
        }),
        status: match record.status {
            MemberStatus::Active => "active",
            MemberStatus::Suspended => "suspended",
        }
        .into(),
        validator: registry.validators().contains(id),
        retired_keys,
        key_since,
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::TransactionStatus, Status>> + Send>>;

fn status_message(id: &TxId, status: &TxStatus, observed: Height) -> pb::TransactionStatus {
    use pb::transaction_status::State;
    let mut out = pb::TransactionStatus {
        id: id.to_string(),
        observed_height: observed.0,
        ..Default::default()
    };
    match status {
        TxStatus::Pending | TxStatus::Unknown => out.state = State::Pending as i32,
        TxStatus::Committed(TxLocation { height, index }) => {
            out.state = State::Committed as i32;
            out.height = height.0;
            out.index = *index;
        }
        TxStatus::Rejected(reason) => {
            out.state = State::Rejected as i32;
            out.reason = reason.clone();
        }
    }
    out
}

#[tonic::async_trait]
impl<S: Store + Clone + 'static> LedgerService for LedgerApi<S> {
    async fn submit_transaction(
        &self,
        request: Request<pb::SubmitTransactionRequest>,
    ) -> Reply<pb::SubmitTransactionResponse> {
        Ok(Response::new(
            self.submit(request.into_inner().transaction).await?,
        ))
    }

    type WatchTransactionStream = WatchStream;

    async fn watch_transaction(
        &self,
        request: Request<pb::WatchTransactionRequest>,
    ) -> Reply<WatchStream> {
        let id = TxId(parse_id("id", &request.into_inner().id)?);
        let (first, observed) = self.status(&id).await?;
        if first == TxStatus::Unknown {
            return Err(ApiError::NotFound(format!(
                "transaction {id} is neither on the chain nor waiting in MEMPOOL"
            ))
            .into());
        }
        let api = self.clone();
        let mut applied = self.shared.applied.subscribe();
        let stream = async_stream_of(move |sender| async move {
            let mut status = first;
            let mut observed = observed;
            loop {
                let terminal = !matches!(status, TxStatus::Pending);
                if sender
                    .send(Ok(status_message(&id, &status, observed)))
                    .await
                    .is_err()
                    || terminal
                {
                    return;
                }
                // Wait for a new block, and report again only when the status changed. A client
                // that goes away ends the task at once, even while no block comes (the task
                // holds the store, which a stopping ledger must be able to close).
                loop {
                    tokio::select! {
                        () = sender.closed() => return,
                        changed = applied.changed() => if changed.is_err() {
                            return;
                        },
                    }
                    match api.status(&id).await {
                        Ok((next, at)) if next != status => {
                            status = next;
                            observed = at;
                            break;
                        }
                        Ok(_) => {}
                        Err(err) => {
                            let _ = sender.send(Err(err.into())).await;
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn get_block(
        &self,
        request: Request<pb::GetBlockRequest>,
    ) -> Reply<pb::GetBlockResponse> {
        let height = match request.into_inner().at {
            Some(pb::get_block_request::At::Height(h)) => Height(h),
            Some(pb::get_block_request::At::Hash(hash)) => {
                let hash = BlockHash(parse_id("hash", &hash)?);
                self.reader
                    .height_of(&hash)
                    .await
                    .map_err(ApiError::from)?
                    .ok_or_else(|| {
                        ApiError::NotFound(format!("no block with hash {hash} is on the chain"))
                    })?
            }
            None => return Err(ApiError::field("at", "give a height or a hash").into()),
        };
        let block = self.block_at(height).await?;
        Ok(Response::new(pb::GetBlockResponse {
            hash: block.hash().to_string(),
            block: Some(block.to_proto()),
        }))
    }

    async fn list_blocks(
        &self,
        request: Request<pb::ListBlocksRequest>,
    ) -> Reply<pb::ListBlocksResponse> {
        Ok(Response::new(
            LedgerApi::list_blocks(self, request.into_inner()).await?,
        ))
    }

    async fn get_transaction(
        &self,
        request: Request<pb::GetTransactionRequest>,
    ) -> Reply<pb::GetTransactionResponse> {
        Ok(Response::new(
            LedgerApi::get_transaction(self, &request.into_inner().id).await?,
        ))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Reply<pb::ListTransactionsResponse> {
        Ok(Response::new(
            LedgerApi::list_transactions(self, request.into_inner()).await?,
        ))
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Reply<pb::Checkpoint> {
        Ok(Response::new(
            self.checkpoint(request.into_inner().height).await?,
        ))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Reply<pb::ConsistencyProof> {
        Ok(Response::new(self.consistency(request.into_inner()).await?))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Reply<pb::ListMembersResponse> {
        let req = request.into_inner();
        let prefix = b"m/";
        let page = self
            .page_key
            .list(prefix, req.page_size, &req.page_token)
            .map_err(ApiError::from)?;
        let registry = self.registry();
        let after = page.start.get(prefix.len()..).unwrap_or_default().to_vec();
        let members: Vec<pb::MemberRecord> = registry
            .members()
            .filter(|(id, _)| id.as_str().as_bytes() >= after.as_slice())
            .take(page.size)
            .filter_map(|(id, _)| member_record(&registry, id))
            .collect();
        let last_key = members.last().and_then(|m| m.member.as_ref()).map(|m| {
            let mut key = prefix.to_vec();
            key.extend_from_slice(m.id.as_bytes());
            key
        });
        Ok(Response::new(pb::ListMembersResponse {
            next_page_token: page.next_token(members.len(), last_key.as_deref()),
            members,
        }))
    }

    async fn resolve_prefix(
        &self,
        request: Request<pb::ResolvePrefixRequest>,
    ) -> Reply<pb::ResolvePrefixResponse> {
        Ok(Response::new(
            LedgerApi::resolve_prefix(self, request.into_inner()).await?,
        ))
    }

    async fn list_record_types(
        &self,
        request: Request<pb::ListRecordTypesRequest>,
    ) -> Reply<pb::ListRecordTypesResponse> {
        Ok(Response::new(LedgerApi::list_record_types(
            self,
            request.into_inner(),
        )?))
    }

    async fn get_member(&self, request: Request<pb::GetMemberRequest>) -> Reply<pb::MemberRecord> {
        let id = request.into_inner().id;
        let member_id = citychain_kernel::MemberId::new(id.clone())
            .map_err(|err| ApiError::field("id", err.to_string()))?;
        let registry = self.registry();
        let record = member_record(&registry, &member_id)
            .ok_or_else(|| ApiError::NotFound(format!("no member {id:?}")))?;
        Ok(Response::new(record))
    }
}

/// A stream fed by a task that sends into a bounded channel; the task stops when the client
/// goes away.
fn async_stream_of<F, Fut>(body: F) -> WatchStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::TransactionStatus, Status>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(body(sender));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}
