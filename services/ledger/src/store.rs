//! The ledger's store: the [`ChainProjection`] that writes each audited block with its indexes
//! (the follower adds the applied height and its checkpoint, with the governance registry, to
//! the same atomic commit), and the reads the API serves from it.
//! The key layout is [`citychain_ledger_domain::keys`].

use std::sync::Arc;

use citychain_follower::{AuditedBlock, ChainProjection, Shared};
use citychain_kernel::{Block, BlockHash, BlockHeader, Hash32, Height, PublicKey};
use citychain_kernel::{TxId, ValidatorSet};
use citychain_ledger_domain::keys::{self, TxLocation};
use citychain_ledger_domain::{IndexEntry, MAX_MATCHES, PrefixError, index_block, prefix_range};
use citychain_store::{
    Page, Retryable, Scan, Store, StoreError, Transaction, put_pieces, read_pieces,
};
use opentelemetry::trace::TraceContextExt as _;
use thiserror::Error;

/// The name the applied height and the follower's checkpoint are kept under.
pub const PROJECTION_NAME: &str = "ledger";

/// The store failed, or holds something it cannot read.
#[derive(Debug, Error)]
pub enum LedgerStoreError {
    /// The store failed.
    #[error("ledger store: {0}")]
    Store(#[from] StoreError),
    /// An index entry is damaged.
    #[error("ledger index entry {key} is damaged")]
    Index {
        /// The key, in hex.
        key: String,
    },
    /// The stored block at a height is not the block that was applied there: its bytes do
    /// not match their seal, or its hash, certificate or link to the block before does not
    /// match what the ledger stored beside it.
    #[error("stored block {height} is damaged: {what}")]
    Damaged {
        /// Its height.
        height: u64,
        /// What does not match.
        what: String,
    },
}

impl LedgerStoreError {
    /// The height of the stored block this error finds damaged, if it is about one.
    pub fn damaged_block(&self) -> Option<u64> {
        match self {
            LedgerStoreError::Damaged { height, .. } => Some(*height),
            _ => None,
        }
    }
}

/// The stored block at `height` and its encoding, checked: the bytes against their seal, the
/// decoded block against the hash the ledger indexed for the height, its certificate's target
/// against that hash, its transactions against the header's root, and its link against the
/// previous height's indexed hash. `None` if no block is
/// stored there; damage is [`LedgerStoreError::Damaged`], never the damaged bytes.
async fn verified_block<T: Transaction>(
    txn: &mut T,
    height: Height,
) -> Result<Option<(Block, Vec<u8>)>, LedgerStoreError> {
    let fail = |what: String| LedgerStoreError::Damaged {
        height: height.0,
        what,
    };
    let bytes = match read_pieces(txn, &keys::block(height)).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(err) if err.is_corruption() => return Err(fail(err.to_string())),
        Err(err) => return Err(err.into()),
    };
    let block = Block::decode(&bytes).map_err(|e| fail(format!("it does not decode: {e}")))?;
    let hash = block.hash();
    match indexed_hash(txn, height).await? {
        Some(indexed) if indexed == hash => {}
        Some(indexed) => {
            return Err(fail(format!(
                "it hashes to {hash}, the index holds {indexed} for this height"
            )));
        }
        None => return Err(fail("no hash is indexed for this height".into())),
    }
    if block.header.height != height || block.certificate.block_hash != hash {
        return Err(fail("its height or certificate names another block".into()));
    }
    // The transactions against the header's root (a block stored before blocks were sealed
    // is checked by this and the hashes alone).
    block
        .verify_structure(&block.header.chain_id)
        .map_err(|e| fail(format!("its transactions do not match its header: {e}")))?;
    if let Some(previous) = height.0.checked_sub(1).filter(|h| *h > 0)
        && indexed_hash(txn, Height(previous)).await? != Some(block.header.prev_hash)
    {
        return Err(fail(format!(
            "its prev_hash {} is not the indexed hash of block {previous}",
            block.header.prev_hash
        )));
    }
    Ok(Some((block, bytes)))
}

/// The block hash indexed for `height`, if any.
async fn indexed_hash<T: Transaction>(
    txn: &mut T,
    height: Height,
) -> Result<Option<BlockHash>, LedgerStoreError> {
    let key = keys::hash_by_height(height);
    match txn.get(&key).await? {
        Some(value) => Ok(Some(BlockHash(
            Hash32::from_slice("block hash", &value).map_err(|_| damaged(&key))?,
        ))),
        None => Ok(None),
    }
}

/// Why a shortened id could not be looked up.
#[derive(Debug, Error)]
pub enum ResolveError {
    /// The prefix is malformed.
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] LedgerStoreError),
}

impl Retryable for LedgerStoreError {
    fn is_retryable(&self) -> bool {
        matches!(self, LedgerStoreError::Store(err) if err.is_retryable())
    }
}

/// Writes audited blocks and their indexes, and each validator set that signed one.
#[derive(Debug, Default)]
pub struct LedgerProjection;

impl ChainProjection for LedgerProjection {
    type Error = LedgerStoreError;

    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    async fn apply<T: Transaction>(
        &self,
        txn: &mut T,
        audited: &AuditedBlock,
    ) -> Result<(), LedgerStoreError> {
        put_pieces(txn, &keys::block(audited.height()), &audited.bytes).await?;
        for IndexEntry { key, value } in index_block(&audited.block) {
            txn.put(&key, &value)?;
        }
        for (index, cx) in &audited.traces {
            let trace_id = cx.span().span_context().trace_id();
            if let Some(tx) = audited.block.txs.get(*index) {
                txn.put(&keys::tx_trace(&tx.id()), &trace_id.to_bytes())?;
            }
        }
        // A set signs many blocks; it is stored once, for proofs of any of them.
        let set_key = keys::validators(&audited.block.header.validators_hash);
        if txn.get(&set_key).await?.is_none() {
            txn.put(&set_key, &keys::encode_validators(&audited.validators))?;
        }
        Ok(())
    }

    async fn check_applied<T: Transaction>(
        &self,
        txn: &mut T,
        applied: Height,
    ) -> Result<Option<String>, LedgerStoreError> {
        match verified_block(txn, applied).await {
            Ok(Some(_)) => Ok(None),
            Ok(None) => Ok(Some(format!("block {applied} is applied but not stored"))),
            Err(err @ (LedgerStoreError::Damaged { .. } | LedgerStoreError::Index { .. })) => {
                Ok(Some(err.to_string()))
            }
            Err(err) => Err(err),
        }
    }

    async fn repair<T: Transaction>(
        &self,
        txn: &mut T,
        height: Height,
        copy: &Block,
    ) -> Result<bool, LedgerStoreError> {
        // The index was written with the block it names, in the same commit, and is read
        // apart from the block's pieces: a copy with that hash is the block applied here.
        let Ok(Some(indexed)) = indexed_hash(txn, height).await else {
            return Ok(false);
        };
        if copy.hash() != indexed {
            return Ok(false);
        }
        put_pieces(txn, &keys::block(height), &copy.encode()).await?;
        Ok(true)
    }
}

/// Brings the indexes of the blocks already in `store` up to [`keys::INDEX_VERSION`]: a
/// ledger that indexed its blocks with an older layout writes every entry of the current one
/// for each stored block (entries it has are rewritten with the same bytes), then records
/// the version. Runs before the follower starts, so no block is applied meanwhile; returns how
/// many blocks were re-indexed (0 when the store was current).
pub async fn upgrade_indexes<S: Store + Clone>(store: &S) -> Result<u64, LedgerStoreError> {
    let mut txn = store.begin().await?;
    let version = match txn.get(keys::INDEX_VERSION_KEY).await? {
        Some(value) => u32::from_be_bytes(
            value
                .as_slice()
                .try_into()
                .map_err(|_| damaged(keys::INDEX_VERSION_KEY))?,
        ),
        None => 0,
    };
    drop(txn);
    if version >= keys::INDEX_VERSION {
        return Ok(0);
    }
    let reader = LedgerReader::new(store.clone());
    let mut height = Height(1);
    let mut done = 0;
    // Blocks are re-indexed in batches, one commit each, kept well under the store's write
    // limit (a full block's entries take about a megabyte); an interrupted upgrade starts
    // again and rewrites the same entries.
    let budget = store.limits().max_write_set_size / 4;
    loop {
        let mut txn = store.begin().await?;
        let (mut in_batch, mut bytes, mut last) = (0u64, 0usize, false);
        while bytes < budget {
            let Some(block) = reader.block(height).await? else {
                last = true;
                break;
            };
            for IndexEntry { key, value } in index_block(&block) {
                bytes += key.len() + value.len();
                txn.put(&key, &value)?;
            }
            in_batch += 1;
            height = Height(height.0 + 1);
        }
        if last {
            txn.put(keys::INDEX_VERSION_KEY, &keys::INDEX_VERSION.to_be_bytes())?;
        }
        txn.commit().await?;
        done += in_batch;
        if last {
            break;
        }
        tracing::info!(up_to = height.0 - 1, "ledger: re-indexing stored blocks");
    }
    if done > 0 {
        tracing::info!(
            blocks = done,
            from = version,
            to = keys::INDEX_VERSION,
            "ledger: indexes upgraded"
        );
    }
    Ok(done)
}

/// Reads the ledger's store. A block found damaged is reported to the follower's
/// [`Shared`] (if given), which makes the service NOT_SERVING until the follower has
/// rewritten it from CHAIN.
#[derive(Debug, Clone)]
pub struct LedgerReader<S> {
    store: S,
    reports: Option<Arc<Shared>>,
}

fn damaged(key: &[u8]) -> LedgerStoreError {
    LedgerStoreError::Index {
        key: hex::encode(key),
    }
}

fn u64_value(key: &[u8], value: &[u8]) -> Result<u64, LedgerStoreError> {
    Ok(u64::from_be_bytes(
        value.try_into().map_err(|_| damaged(key))?,
    ))
}

fn id_value(key: &[u8], value: &[u8]) -> Result<TxId, LedgerStoreError> {
    let bytes: [u8; 32] = value.try_into().map_err(|_| damaged(key))?;
    Ok(TxId(Hash32(bytes)))
}

impl<S: Store> LedgerReader<S> {
    /// Reads `store`.
    pub fn new(store: S) -> Self {
        LedgerReader {
            store,
            reports: None,
        }
    }

    /// Reads `store`, reporting damaged blocks to `shared`.
    pub fn reporting_to(store: S, shared: Arc<Shared>) -> Self {
        LedgerReader {
            store,
            reports: Some(shared),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The block at `height`, if applied, checked (see [`verified_block`]).
    pub async fn block(&self, height: Height) -> Result<Option<Block>, LedgerStoreError> {
        let mut txn = self.store.begin().await?;
        match verified_block(&mut txn, height).await {
            Ok(found) => Ok(found.map(|(block, _)| block)),
            Err(err) => {
                if let (Some(shared), Some(at)) = (&self.reports, err.damaged_block()) {
                    shared.report_damage(Height(at), err.to_string());
                }
                Err(err)
            }
        }
    }

    /// The height of the block with `hash`, if applied.
    pub async fn height_of(&self, hash: &BlockHash) -> Result<Option<Height>, LedgerStoreError> {
        let key = keys::height_by_hash(hash);
        let mut txn = self.store.begin().await?;
        match txn.get(&key).await? {
            Some(v) => Ok(Some(Height(u64_value(&key, &v)?))),
            None => Ok(None),
        }
    }

    /// Where transaction `id` committed, if it did.
    pub async fn location(&self, id: &TxId) -> Result<Option<TxLocation>, LedgerStoreError> {
        let key = keys::tx_location(id);
        let mut txn = self.store.begin().await?;
        match txn.get(&key).await? {
            Some(v) => Ok(Some(TxLocation::decode(&v).ok_or_else(|| damaged(&key))?)),
            None => Ok(None),
        }
    }

    /// The trace id transaction `id` was submitted under, when it was applied with its trace
    /// header (32 lowercase hex digits).
    pub async fn trace_id(&self, id: &TxId) -> Result<Option<String>, LedgerStoreError> {
        let key = keys::tx_trace(id);
        let mut txn = self.store.begin().await?;
        match txn.get(&key).await? {
            Some(v) => {
                let bytes: [u8; 16] = v.try_into().map_err(|_| damaged(&key))?;
                Ok(Some(
                    opentelemetry::trace::TraceId::from_bytes(bytes).to_string(),
                ))
            }
            None => Ok(None),
        }
    }

    /// The committed transaction holding (signer, nonce), if any.
    pub async fn nonce_holder(
        &self,
        signer: &PublicKey,
        nonce: u64,
    ) -> Result<Option<TxId>, LedgerStoreError> {
        let key = keys::nonce(signer, nonce);
        let mut txn = self.store.begin().await?;
        match txn.get(&key).await? {
            Some(v) => Ok(Some(id_value(&key, &v)?)),
            None => Ok(None),
        }
    }

    /// The validator set whose hash is `hash`, if it signed an applied block.
    pub async fn validators(
        &self,
        hash: &Hash32,
    ) -> Result<Option<ValidatorSet>, LedgerStoreError> {
        let key = keys::validators(hash);
        let mut txn = self.store.begin().await?;
        match txn.get(&key).await? {
            Some(v) => Ok(Some(
                keys::decode_validators(&v).ok_or_else(|| damaged(&key))?,
            )),
            None => Ok(None),
        }
    }

    /// The hashes of blocks 1 to `to`, in order (fewer if fewer are applied).
    pub async fn block_hashes(&self, to: Height) -> Result<Vec<[u8; 32]>, LedgerStoreError> {
        let end = keys::hash_by_height(Height(to.0.saturating_add(1)));
        let mut txn = self.store.begin().await?;
        let entries = txn
            .scan(&Scan::range(keys::HASHES_BY_HEIGHT..end.as_slice()))
            .await?;
        entries
            .into_iter()
            .map(|(key, value)| value.as_slice().try_into().map_err(|_| damaged(&key)))
            .collect()
    }

    /// One page of the transaction ids under `prefix` (a signer's or a subject's), with the
    /// key of the last entry returned.
    pub async fn tx_page(
        &self,
        prefix: &[u8],
        page: &Page,
    ) -> Result<(Vec<(TxLocation, TxId)>, Option<Vec<u8>>), LedgerStoreError> {
        let end = citychain_store::prefix_end(prefix);
        let scan = match &end {
            Some(end) => Scan::range(page.start.as_slice()..end.as_slice()),
            None => Scan::range(page.start.as_slice()..),
        }
        .limit(page.size);
        let mut txn = self.store.begin().await?;
        let entries = txn.scan(&scan).await?;
        let last = entries.last().map(|(key, _)| key.clone());
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let location = key
                .len()
                .checked_sub(12)
                .and_then(|at| TxLocation::decode(&key[at..]))
                .ok_or_else(|| damaged(&key))?;
            out.push((location, id_value(&key, &value)?));
        }
        Ok((out, last))
    }

    /// The 32-byte keys under `table` (committed transaction ids, or block hashes) that start
    /// with the hex `prefix`, at most [`MAX_MATCHES`], and whether there are more.
    pub async fn resolve_prefix(
        &self,
        table: &[u8],
        prefix: &str,
    ) -> Result<(Vec<Hash32>, bool), ResolveError> {
        let (start, high) = prefix_range(table, prefix)?;
        let end = citychain_store::prefix_end(&high);
        let scan = match &end {
            Some(end) => Scan::range(start.as_slice()..end.as_slice()),
            None => Scan::range(start.as_slice()..),
        }
        .limit(MAX_MATCHES + 1);
        let mut txn = self.store.begin().await.map_err(LedgerStoreError::from)?;
        let entries = txn.scan(&scan).await.map_err(LedgerStoreError::from)?;
        let truncated = entries.len() > MAX_MATCHES;
        let mut out = Vec::with_capacity(entries.len().min(MAX_MATCHES));
        for (key, _) in entries.into_iter().take(MAX_MATCHES) {
            let id: [u8; 32] = key
                .get(table.len()..)
                .and_then(|rest| rest.try_into().ok())
                .ok_or_else(|| damaged(&key))?;
            out.push(Hash32(id));
        }
        Ok((out, truncated))
    }

    /// The headers of blocks from `from` upwards, at most `limit`.
    pub async fn headers_from(
        &self,
        from: Height,
        limit: usize,
    ) -> Result<Vec<BlockHeader>, LedgerStoreError> {
        let mut out = Vec::new();
        let mut height = from;
        while out.len() < limit {
            match self.block(height).await? {
                Some(block) => out.push(block.header),
                None => break,
            }
            height = Height(height.0 + 1);
        }
        Ok(out)
    }
}
