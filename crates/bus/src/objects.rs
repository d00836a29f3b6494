//! JetStream object store and key-value buckets: [`Bus::object_store`] gives an [`Objects`]
//! for blobs too large or too numerous for a stream message each (sealed record payloads),
//! [`Bus::kv`] a [`Kv`] for small values written once per key (wrapped record keys).
//!
//! Both get the bucket when it exists and create it otherwise, so every service replica can
//! call them at start. An existing bucket is used as it is: its replica count is not changed.
//! Name buckets per chain with [`StreamsConfig::object_bucket`] and
//! [`StreamsConfig::kv_bucket`].
//!
//! Both kinds use file storage, keep values until deleted and have no size cap.
//!
//! [`StreamsConfig::object_bucket`]: crate::StreamsConfig::object_bucket
//! [`StreamsConfig::kv_bucket`]: crate::StreamsConfig::kv_bucket

use std::fmt;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::kv::{self, CreateErrorKind};
use async_nats::jetstream::object_store::{self, GetErrorKind, InfoErrorKind, ObjectStore};
use async_nats::jetstream::stream::StorageType;
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::AsyncReadExt as _;

use crate::bus::Bus;
use crate::error::BusError;

const OBJECT_STORE: &str = "object store";
const KEY_VALUE: &str = "key-value";

/// An object store bucket: named blobs of any size, split into chunks by JetStream.
#[derive(Clone)]
pub struct Objects {
    bucket: String,
    store: ObjectStore,
}

/// A key-value bucket that keeps one value per key.
#[derive(Clone)]
pub struct Kv {
    bucket: String,
    store: kv::Store,
}

impl Bus {
    /// Gets object store `bucket`, creating it with `replicas` replicas (1 to 5) and file
    /// storage when it does not exist yet.
    pub async fn object_store(&self, bucket: &str, replicas: usize) -> Result<Objects, BusError> {
        check_replicas(OBJECT_STORE, bucket, replicas)?;
        let js = self.jetstream();
        let error = |reason: String| BusError::Bucket {
            store: OBJECT_STORE,
            bucket: bucket.to_owned(),
            reason,
        };
        // The bucket's backing stream is named `OBJ_<bucket>` by the object store protocol.
        if !stream_exists(self, &format!("OBJ_{bucket}"))
            .await
            .map_err(&error)?
        {
            let config = object_store::Config {
                bucket: bucket.to_owned(),
                description: Some(format!("citychain objects {bucket}")),
                storage: StorageType::File,
                num_replicas: replicas,
                max_bytes: -1,
                ..Default::default()
            };
            match js.create_object_store(config).await {
                Ok(store) => {
                    tracing::info!(bucket, replicas, "object store bucket created");
                    return Ok(Objects::new(bucket, store));
                }
                // Another replica may have created it since we looked: fall through to the
                // get, and report the create's reason only if the get fails as well.
                Err(create_err) => {
                    return js
                        .get_object_store(bucket)
                        .await
                        .map(|store| Objects::new(bucket, store))
                        .map_err(|_| error(format!("create failed: {create_err}")));
                }
            }
        }
        js.get_object_store(bucket)
            .await
            .map(|store| Objects::new(bucket, store))
            .map_err(|err| error(format!("open failed: {err}")))
    }

    /// Gets key-value bucket `bucket`, creating it with `replicas` replicas (1 to 5), file
    /// storage and a history of one value per key when it does not exist yet.
    pub async fn kv(&self, bucket: &str, replicas: usize) -> Result<Kv, BusError> {
        check_replicas(KEY_VALUE, bucket, replicas)?;
        let js = self.jetstream();
        let error = |reason: String| BusError::Bucket {
            store: KEY_VALUE,
            bucket: bucket.to_owned(),
            reason,
        };
        // The bucket's backing stream is named `KV_<bucket>` by the key-value protocol.
        if !stream_exists(self, &format!("KV_{bucket}"))
            .await
            .map_err(&error)?
        {
            let config = kv::Config {
                bucket: bucket.to_owned(),
                description: format!("citychain key-value {bucket}"),
                history: 1,
                storage: StorageType::File,
                num_replicas: replicas,
                max_bytes: -1,
                max_value_size: -1,
                ..Default::default()
            };
            match js.create_key_value(config).await {
                Ok(store) => {
                    tracing::info!(bucket, replicas, "key-value bucket created");
                    return Ok(Kv::new(bucket, store));
                }
                // As for object stores: another replica may have won the race.
                Err(create_err) => {
                    return js
                        .get_key_value(bucket)
                        .await
                        .map(|store| Kv::new(bucket, store))
                        .map_err(|_| error(format!("create failed: {create_err}")));
                }
            }
        }
        js.get_key_value(bucket)
            .await
            .map(|store| Kv::new(bucket, store))
            .map_err(|err| error(format!("open failed: {err}")))
    }
}

impl Objects {
    fn new(bucket: &str, store: ObjectStore) -> Self {
        Self {
            bucket: bucket.to_owned(),
            store,
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Stores `bytes` under `name` (any non-empty string), replacing what was there.
    ///
    /// Idempotent: when `name` already holds exactly `bytes`, nothing is written. That keeps
    /// retries cheap and, more to the point, keeps readers safe: a rewrite purges the old
    /// chunks after publishing the new ones, and a reader that had looked up the old version
    /// could fail mid-read.
    pub async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BusError> {
        match self.store.info(name).await {
            Ok(info) if !info.deleted && info.size == bytes.len() => {
                if self.get(name).await?.as_deref() == Some(bytes) {
                    return Ok(());
                }
            }
            Ok(_) => {}
            Err(err) if err.kind() == InfoErrorKind::NotFound => {}
            Err(err) => return Err(self.error("look-up", name, err)),
        }
        let mut reader = bytes;
        self.store
            .put(name, &mut reader)
            .await
            .map_err(|err| self.error("put", name, err))?;
        Ok(())
    }

    /// The bytes stored under `name`, or `None` when there are none (never stored, or
    /// deleted). JetStream checks the object's SHA-256 digest while reading.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BusError> {
        let mut object = match self.store.get(name).await {
            Ok(object) => object,
            Err(err) if err.kind() == GetErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(self.error("get", name, err)),
        };
        let mut bytes = Vec::with_capacity(object.info().size);
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|err| self.error("get", name, err))?;
        Ok(Some(bytes))
    }

    /// Whether `name` holds an object (a deleted one does not count).
    pub async fn exists(&self, name: &str) -> Result<bool, BusError> {
        match self.store.info(name).await {
            Ok(info) => Ok(!info.deleted),
            Err(err) if err.kind() == InfoErrorKind::NotFound => Ok(false),
            Err(err) => Err(self.error("look-up", name, err)),
        }
    }

    /// The names of every object in the bucket, sorted. Reads the metadata of every object,
    /// so it is for audits and tests rather than request paths.
    pub async fn list_names(&self) -> Result<Vec<String>, BusError> {
        let mut list = self
            .store
            .list()
            .await
            .map_err(|err| self.error("list", "", err))?;
        let mut names = Vec::new();
        while let Some(info) = list.next().await {
            names.push(info.map_err(|err| self.error("list", "", err))?.name);
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn error(&self, action: &'static str, name: &str, err: impl fmt::Display) -> BusError {
        BusError::Object {
            action,
            bucket: self.bucket.clone(),
            name: name.to_owned(),
            reason: err.to_string(),
        }
    }
}

impl fmt::Debug for Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Objects")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl Kv {
    fn new(bucket: &str, store: kv::Store) -> Self {
        Self {
            bucket: bucket.to_owned(),
            store,
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Stores `bytes` under `key` only if the key holds no value: returns `true` when this
    /// call stored it, `false` when a value was already there (which is left untouched).
    ///
    /// The server decides, by requiring the key's last revision to be 0, so of two replicas
    /// creating the same key at once exactly one gets `true`; the other should [`Kv::get`]
    /// and use the stored value. A retry after a lost acknowledgement can also see `false`
    /// for its own earlier write; reading the value back tells the two cases apart.
    ///
    /// Keys use `A-Z a-z 0-9 - _ = / .` and neither start nor end with `.`.
    pub async fn create(&self, key: &str, bytes: &[u8]) -> Result<bool, BusError> {
        match self.store.create(key, Bytes::copy_from_slice(bytes)).await {
            Ok(_revision) => Ok(true),
            Err(err) if err.kind() == CreateErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(self.error("create", key, err)),
        }
    }

    /// The value under `key`, or `None` when it has none (never created, or deleted).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BusError> {
        self.store
            .get(key)
            .await
            .map(|value| value.map(|bytes| bytes.to_vec()))
            .map_err(|err| self.error("get", key, err))
    }

    fn error(&self, action: &'static str, key: &str, err: impl fmt::Display) -> BusError {
        BusError::KeyValue {
            action,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            reason: err.to_string(),
        }
    }
}

impl fmt::Debug for Kv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kv")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

fn check_replicas(store: &'static str, bucket: &str, replicas: usize) -> Result<(), BusError> {
    if (1..=5).contains(&replicas) {
        Ok(())
    } else {
        Err(BusError::Config(format!(
            "{store} bucket {bucket}: replicas must be 1 to 5, not {replicas}"
        )))
    }
}

/// Whether a stream exists; `Err` carries the reason the look-up itself failed.
async fn stream_exists(bus: &Bus, stream: &str) -> Result<bool, String> {
    match bus.jetstream().get_stream(stream).await {
        Ok(_) => Ok(true),
        Err(err) => match err.kind() {
            GetStreamErrorKind::JetStream(js_err)
                if js_err.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(false)
            }
            _ => Err(format!("look-up of stream {stream} failed: {err}")),
        },
    }
}
