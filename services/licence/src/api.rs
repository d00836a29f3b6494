//! The gRPC API `citychain.licence.v1.LicenceService`: uploads (checked, sealed, stored, then
//! submitted), reads (checked against the policy, then submitted), a read's state and its key
//! grant once released, record metadata and search, and a citizen's receipts with proofs.
//! Every handler converts its request at the edge and returns an [`ApiError`], which becomes a
//! status in one place (`error.rs`).

use std::ops::Bound;
use std::sync::Arc;

use citychain_follower::{Admission, Shared};
use citychain_governance::{MAX_NAME_BYTES, RecordTypeName};
use citychain_kernel::proof::TransactionProof;
use citychain_kernel::{Hash32, Height, MemberId, TxId};
use citychain_licence_domain::keys::{self, RecordIndex};
use citychain_proto::citychain::licence::v1 as lpb;
use citychain_proto::citychain::licence::v1::licence_service_server::{
    LicenceService, LicenceServiceServer,
};
use citychain_records::catalogue;
use citychain_records::{
    LicenceBody, READ_TYPE_URL, RECEIPTS_QUERY_TYPE_URL, UPLOAD_TYPE_URL, check_payload,
    decide_read, decide_upload,
};
use citychain_store::{Page, PageKey, Scan, Store, Transaction, prefix_end};
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::release::{ReadFacts, read_facts};
use crate::vault::Vault;

/// Index entries read per step while filtering a search.
const SEARCH_BATCH: usize = 200;

/// What the API needs; cloning it is cheap.
#[derive(Debug, Clone)]
pub struct LicenceApi<S> {
    store: S,
    shared: Arc<Shared>,
    admission: Admission,
    vault: Vault,
    page_key: PageKey,
}

type Reply<T> = Result<Response<T>, Status>;

fn parse_id(field: &'static str, text: &str) -> Result<TxId, ApiError> {
    let bytes =
        hex::decode(text).map_err(|_| ApiError::field(field, format!("{text:?} is not hex")))?;
    Hash32::from_slice(field, &bytes)
        .map(TxId)
        .map_err(|_| ApiError::field(field, "must be 32 bytes (64 hex characters)"))
}

/// Refuses a search filter no record could match, naming its bound: a subject as transactions
/// declare them, a record type name as governance declares them, a member id.
fn check_filters(req: &lpb::SearchRecordsRequest) -> Result<(), ApiError> {
    if !req.subject.is_empty() && citychain_kernel::tx::subject_problem(&req.subject).is_some() {
        return Err(ApiError::field(
            "subject",
            format!(
                "must be 1 to {} visible ASCII characters",
                citychain_kernel::tx::MAX_SUBJECT_BYTES
            ),
        ));
    }
    if !req.record_type.is_empty() {
        if req.record_type.len() > MAX_NAME_BYTES {
            return Err(ApiError::field(
                "record_type",
                format!(
                    "is {} bytes, the limit is {MAX_NAME_BYTES}",
                    req.record_type.len()
                ),
            ));
        }
        RecordTypeName::new("record_type", req.record_type.as_str())
            .map_err(|err| ApiError::field("record_type", err.to_string()))?;
    }
    if !req.owner.is_empty() {
        MemberId::new(req.owner.as_str())
            .map_err(|err| ApiError::field("owner", err.to_string()))?;
    }
    Ok(())
}

fn wrong_body(expected: &'static str, found: &str) -> ApiError {
    ApiError::WrongBody {
        expected,
        found: found.to_string(),
    }
}

impl<S: Store + Clone + 'static> LicenceApi<S> {
    /// The API over `store`, following `shared`, submitting through `admission`, tagging
    /// its page tokens with `page_key`.
    pub fn new(
        store: S,
        shared: Arc<Shared>,
        admission: Admission,
        vault: Vault,
        page_key: PageKey,
    ) -> Self {
        LicenceApi {
            store,
            shared,
            admission,
            vault,
            page_key,
        }
    }

    /// The tonic service.
    pub fn into_server(self) -> LicenceServiceServer<Self> {
        LicenceServiceServer::new(self)
    }

    async fn upload(&self, req: lpb::UploadRequest) -> Result<lpb::UploadResponse, ApiError> {
        let (tx, signer) = self.admission.check(&req.transaction)?;
        let Some(LicenceBody::Upload(upload)) = LicenceBody::decode(tx.body())? else {
            return Err(wrong_body(UPLOAD_TYPE_URL, &tx.body().type_url));
        };
        let registry = self.shared.registry();
        decide_upload(&registry, &signer, &upload)?;
        if let Some(record_type) = registry.record_type(upload.record_type.as_str()) {
            check_payload(record_type, &upload, &req.payload)?;
        }
        let id = tx.id();
        let stored = self.vault.store(&id, &req.payload).await?;
        let appended = self.admission.publish(&tx).await?;
        tracing::info!(record = %id, record_type = %upload.record_type, stored, "upload accepted");
        Ok(lpb::UploadResponse {
            record_id: id.to_string(),
            duplicate: !stored || appended.duplicate,
        })
    }

    async fn submit_read(
        &self,
        req: lpb::SubmitReadRequest,
    ) -> Result<lpb::SubmitReadResponse, ApiError> {
        let (tx, signer) = self.admission.check(&req.transaction)?;
        let Some(LicenceBody::Read {
            target, subject, ..
        }) = LicenceBody::decode(tx.body())?
        else {
            return Err(wrong_body(READ_TYPE_URL, &tx.body().type_url));
        };
        let mut txn = self.store.begin().await?;
        let record = catalogue::resolve(&mut txn, &target).await?;
        drop(txn);
        let access = decide_read(
            &self.shared.registry(),
            &signer,
            &target,
            &subject,
            record.as_ref(),
        )?;
        if self.vault.record_key(&access.record.id).await?.is_none() {
            return Err(ApiError::NotReady(format!(
                "record {} has no stored payload (it was uploaded without the licence service); \
                 a read of it could never be released",
                access.record.id
            )));
        }
        let appended = self.admission.publish(&tx).await?;
        tracing::info!(read = %tx.id(), record = %access.record.id, reader = %access.reader, "read submitted");
        Ok(lpb::SubmitReadResponse {
            read_id: tx.id().to_string(),
            duplicate: appended.duplicate,
            record_id: access.record.id.to_string(),
            price: access.price,
        })
    }

    async fn get_read(&self, req: lpb::GetReadRequest) -> Result<lpb::ReadState, ApiError> {
        let read = parse_id("read_id", &req.read_id)?;
        let mut txn = self.store.begin().await?;
        let Some(facts) = read_facts(&mut txn, &read).await? else {
            return Err(ApiError::NotFound(format!(
                "read {read} has not committed (the chain is at height {}); no key is released \
                 before a read's receipt is on the chain",
                self.shared.applied().0
            )));
        };
        let (reported, reason) = facts.reported();
        let ReadFacts {
            mut state, grant, ..
        } = facts;
        state.state = reported as i32;
        if !reason.is_empty() {
            state.reason = reason;
        }
        state.grant = None;
        if let Some(grant) = grant {
            let record = parse_id("record_id", &state.record_id)?;
            state.upload = txn.get(&keys::upload(&record)).await?.unwrap_or_default();
            state.sealed_payload = self.vault.sealed(&record).await?.ok_or_else(|| {
                ApiError::NotReady(format!("the sealed payload of record {record} is missing"))
            })?;
            state.grant = Some(grant);
        }
        Ok(state)
    }

    async fn get_record(&self, req: lpb::GetRecordRequest) -> Result<lpb::RecordInfo, ApiError> {
        let id = parse_id("record_id", &req.record_id)?;
        let mut txn = self.store.begin().await?;
        catalogue::get_record(&mut txn, &id)
            .await?
            .map(|r| r.to_proto())
            .ok_or_else(|| ApiError::NotFound(format!("no record {id}")))
    }

    async fn search(
        &self,
        req: lpb::SearchRecordsRequest,
    ) -> Result<lpb::SearchRecordsResponse, ApiError> {
        check_filters(&req)?;
        let (index, value) = if !req.subject.is_empty() {
            (RecordIndex::Subject, req.subject.as_str())
        } else if !req.record_type.is_empty() {
            (RecordIndex::RecordType, req.record_type.as_str())
        } else if !req.owner.is_empty() {
            (RecordIndex::Owner, req.owner.as_str())
        } else {
            (RecordIndex::All, "")
        };
        let to = if req.to_height == 0 {
            u64::MAX
        } else {
            req.to_height
        };
        if req.from_height > to {
            return Err(ApiError::field(
                "from_height",
                format!("{} is above to_height {to}", req.from_height),
            ));
        }
        let prefix = index.prefix(value);
        let first = index.key(value, Height(req.from_height), 0);
        let page = Page::new(
            &self.page_key,
            &prefix,
            first,
            req.page_size,
            &req.page_token,
        )?;
        let end = match to.checked_add(1) {
            Some(next) => Bound::Excluded(index.key(value, Height(next), 0)),
            None => prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
        };
        let mut txn = self.store.begin().await?;
        let mut records = Vec::new();
        let mut last_key = None;
        let mut start = Bound::Included(page.start.clone());
        'scan: loop {
            let entries = txn
                .scan(&Scan::between(start.clone(), end.clone()).limit(SEARCH_BATCH))
                .await?;
            let done = entries.len() < SEARCH_BATCH;
            for entry in entries {
                start = Bound::Excluded(entry.0.clone());
                let id = Hash32::from_slice("record index entry", &entry.1)
                    .map_err(|e| ApiError::NotReady(format!("damaged index entry: {e}")))?;
                let Some(record) = catalogue::get_record(&mut txn, &TxId(id)).await? else {
                    continue;
                };
                let matches = (req.subject.is_empty() || record.subject == req.subject)
                    && (req.record_type.is_empty()
                        || record.record_type.as_str() == req.record_type)
                    && (req.owner.is_empty() || record.owner.as_str() == req.owner);
                if matches {
                    records.push(record.to_proto());
                    last_key = Some(entry.0);
                    if records.len() >= page.size {
                        break 'scan;
                    }
                }
            }
            if done {
                break;
            }
        }
        let next_page_token = page.next_token(records.len(), last_key.as_deref());
        Ok(lpb::SearchRecordsResponse {
            records,
            next_page_token,
        })
    }

    async fn receipts(
        &self,
        req: lpb::ListReceiptsRequest,
    ) -> Result<lpb::ListReceiptsResponse, ApiError> {
        let (query, _) = self.admission.check_query(&req.query)?;
        let Some(LicenceBody::ReceiptsQuery { subject }) = LicenceBody::decode(query.body())?
        else {
            return Err(wrong_body(RECEIPTS_QUERY_TYPE_URL, &query.body().type_url));
        };
        let mut txn = self.store.begin().await?;
        if txn
            .get(&keys::binding(&subject, query.signer()))
            .await?
            .is_none()
        {
            return Err(ApiError::Denied(format!(
                "key {} is not bound to subject {subject}; a department binds a citizen's key \
                 with a BindSubject transaction",
                query.signer()
            )));
        }
        let prefix = keys::receipts_prefix(&subject);
        let page = self
            .page_key
            .list(&prefix, req.page_size, &req.page_token)?;
        let end = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let entries = txn
            .scan(&Scan::between(Bound::Included(page.start.clone()), end).limit(page.size))
            .await?;
        let mut receipts = Vec::with_capacity(entries.len());
        for entry in &entries {
            let read = TxId(
                Hash32::from_slice("receipt entry", &entry.1)
                    .map_err(|e| ApiError::NotReady(format!("damaged receipt entry: {e}")))?,
            );
            let Some(facts) = read_facts(&mut txn, &read).await? else {
                continue;
            };
            let proof = match txn.get(&keys::proof(&read)).await? {
                Some(bytes) => Some(
                    TransactionProof::decode(&bytes)
                        .map_err(|e| ApiError::NotReady(format!("damaged proof of {read}: {e}")))?
                        .to_proto(),
                ),
                None => None,
            };
            let (state, _) = facts.reported();
            let record_type = match facts.state.record_id.parse::<TxId>() {
                Ok(record) => catalogue::get_record(&mut txn, &record)
                    .await?
                    .map(|r| r.record_type.to_string())
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            receipts.push(lpb::Receipt {
                read_id: read.to_string(),
                record_id: facts.state.record_id,
                record_type,
                reader: facts.state.reader,
                purpose: facts.state.purpose,
                height: facts.state.height,
                index: facts.state.index,
                time_ms: facts.state.time_ms,
                state: state as i32,
                proof,
            });
        }
        let next_page_token =
            page.next_token(entries.len(), entries.last().map(|e| e.0.as_slice()));
        Ok(lpb::ListReceiptsResponse {
            receipts,
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl<S: Store + Clone + 'static> LicenceService for LicenceApi<S> {
    async fn get_info(&self, _request: Request<lpb::GetInfoRequest>) -> Reply<lpb::Info> {
        Ok(Response::new(lpb::Info {
            chain_id: self.shared.registry().chain_id().to_string(),
            applied_height: self.shared.applied().0,
        }))
    }

    async fn upload(&self, request: Request<lpb::UploadRequest>) -> Reply<lpb::UploadResponse> {
        Ok(Response::new(
            LicenceApi::upload(self, request.into_inner()).await?,
        ))
    }

    async fn submit_read(
        &self,
        request: Request<lpb::SubmitReadRequest>,
    ) -> Reply<lpb::SubmitReadResponse> {
        Ok(Response::new(self.submit_read(request.into_inner()).await?))
    }

    async fn get_read(&self, request: Request<lpb::GetReadRequest>) -> Reply<lpb::ReadState> {
        Ok(Response::new(
            LicenceApi::get_read(self, request.into_inner()).await?,
        ))
    }

    async fn get_record(&self, request: Request<lpb::GetRecordRequest>) -> Reply<lpb::RecordInfo> {
        Ok(Response::new(
            LicenceApi::get_record(self, request.into_inner()).await?,
        ))
    }

    async fn search_records(
        &self,
        request: Request<lpb::SearchRecordsRequest>,
    ) -> Reply<lpb::SearchRecordsResponse> {
        Ok(Response::new(self.search(request.into_inner()).await?))
    }

    async fn list_receipts(
        &self,
        request: Request<lpb::ListReceiptsRequest>,
    ) -> Reply<lpb::ListReceiptsResponse> {
        Ok(Response::new(self.receipts(request.into_inner()).await?))
    }
}
