//! Where record payloads and their keys live, outside consensus and outside the service's
//! store: each payload sealed under a key of its own (XChaCha20-Poly1305, bound to the record
//! id) in a JetStream object store named by the record id, and each record key wrapped for the
//! service's own X25519 key in a JetStream key-value bucket. The object store never sees a
//! plaintext and the bucket never sees a bare key.
//!
//! Objects are named by record id (the upload transaction's id, which commits to the payload's
//! hash) rather than by the payload's hash: two records with equal payloads get distinct keys,
//! and a stored object does not reveal that two departments hold the same bytes.
//!
//! A key is created with the bucket's create-if-absent before anything is sealed, so two
//! replicas storing one upload at once agree on one key and both seal under it.

use citychain_bus::{Bus, BusError, Kv, Objects, StreamsConfig};
use citychain_kernel::{EncryptionSecret, TxId};
use citychain_seal::{
    RecordKey, SealError, WrappedKey, custody_context, open_payload, seal_payload, unwrap_key,
    wrap_key,
};
use thiserror::Error;

/// The object store bucket of sealed payloads (its permissions are in the bus's table).
pub use citychain_bus::access::LICENCE_OBJECT_BUCKET as OBJECT_BUCKET;

/// The key-value bucket of record keys sealed for the service.
pub use citychain_bus::access::LICENCE_KEY_BUCKET as KEY_BUCKET;

/// The vault failed.
#[derive(Debug, Error)]
pub enum VaultError {
    /// NATS failed.
    #[error("NATS: {0}")]
    Bus(#[from] BusError),
    /// The key bucket said the key exists but did not return it.
    #[error("record {record}: the key bucket refused a second key but returned none")]
    Missing {
        /// The record.
        record: TxId,
    },
    /// Sealing or opening failed: a stored key or object is damaged, or was sealed for
    /// another service key.
    #[error("record {record}: {source}")]
    Seal {
        /// The record.
        record: TxId,
        /// What failed.
        source: SealError,
    },
}

/// The payloads and keys of the licence platform.
#[derive(Debug, Clone)]
pub struct Vault {
    objects: Objects,
    keys: Kv,
    secret: std::sync::Arc<EncryptionSecret>,
}

impl Vault {
    /// Opens (creating if need be) the chain's buckets, with the service's secret.
    pub async fn open(
        bus: &Bus,
        streams: &StreamsConfig,
        replicas: usize,
        secret: EncryptionSecret,
    ) -> Result<Vault, VaultError> {
        let objects = bus
            .object_store(&streams.object_bucket(OBJECT_BUCKET)?, replicas)
            .await?;
        let keys = bus.kv(&streams.kv_bucket(KEY_BUCKET)?, replicas).await?;
        Ok(Vault {
            objects,
            keys,
            secret: std::sync::Arc::new(secret),
        })
    }

    fn seal_err(record: &TxId) -> impl FnOnce(SealError) -> VaultError + '_ {
        move |source| VaultError::Seal {
            record: *record,
            source,
        }
    }

    /// Stores `payload` sealed for `record`. Returns false if the record was stored before.
    ///
    /// The key is settled first (create-if-absent, then the winner read back), and only then
    /// is the payload sealed under it, so a replica that loses the race, crashes half way or
    /// is retried never leaves an object sealed under a key nobody keeps. A stored object that
    /// does not open under the stored key (a crash between two puts) is sealed again.
    pub async fn store(&self, record: &TxId, payload: &[u8]) -> Result<bool, VaultError> {
        let name = record.to_string();
        let fresh = RecordKey::generate().map_err(Self::seal_err(record))?;
        let wrapped = wrap_key(
            &fresh,
            &self.secret.public_key(),
            &custody_context(record.as_bytes()),
        )
        .map_err(Self::seal_err(record))?;
        let created = self.keys.create(&name, &wrapped.encode()).await?;
        let key = if created {
            fresh
        } else {
            self.record_key(record)
                .await?
                .ok_or(VaultError::Missing { record: *record })?
        };
        let intact = match self.objects.get(&name).await? {
            Some(sealed) => {
                open_payload(&key, record.as_bytes(), &sealed).is_ok_and(|p| p == payload)
            }
            None => false,
        };
        if !intact {
            let sealed =
                seal_payload(&key, record.as_bytes(), payload).map_err(Self::seal_err(record))?;
            self.objects.put(&name, &sealed).await?;
        }
        Ok(created)
    }

    /// The key of `record`, if it was stored.
    pub async fn record_key(&self, record: &TxId) -> Result<Option<RecordKey>, VaultError> {
        let Some(bytes) = self.keys.get(&record.to_string()).await? else {
            return Ok(None);
        };
        let wrapped = WrappedKey::decode(&bytes).map_err(Self::seal_err(record))?;
        unwrap_key(&wrapped, &self.secret, &custody_context(record.as_bytes()))
            .map(Some)
            .map_err(Self::seal_err(record))
    }

    /// The sealed payload of `record`, as stored.
    pub async fn sealed(&self, record: &TxId) -> Result<Option<Vec<u8>>, VaultError> {
        Ok(self.objects.get(&record.to_string()).await?)
    }

    /// The object store, for operators' tools and tests that scan it.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }
}
