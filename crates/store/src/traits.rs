//! The `Store` and `Transaction` traits every implementation provides, and the retry loop
//! (`Store::run`) built on them.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::time::Duration;

use crate::error::{Retryable, StoreError};
use crate::limits::Limits;
use crate::scan::Scan;

/// A key and its value, as scans return them.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A boxed, sendable future: what a [`Store::run`] closure returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many times [`Store::run`] tries a transaction before it gives up and returns the last
/// retryable error.
pub const RUN_MAX_ATTEMPTS: u32 = 100;

/// A transactional, ordered key-value store.
///
/// Keys and values are byte strings; keys sort byte-wise lexicographically. Transactions are
/// serializable: each reads from a consistent snapshot and sees its own writes, and its commit
/// fails with [`StoreError::Conflict`], writing nothing, if a transaction that committed after
/// its snapshot wrote a key it read or a key inside a range it scanned. Transactions that only
/// write ("blind writes") never conflict; of two such transactions the later commit wins.
///
/// A transaction dropped without [`Transaction::commit`] writes nothing. Every implementation
/// enforces the same [`Limits`] (FoundationDB's), checked when a write is issued.
///
/// The futures are `Send`, so a store can be used from any tokio task; the trait is meant for
/// generic code (`S: Store`), not for `dyn Store`.
pub trait Store: Send + Sync {
    /// This store's transaction.
    type Txn: Transaction;

    /// Starts a transaction.
    fn begin(&self) -> impl Future<Output = Result<Self::Txn, StoreError>> + Send;

    /// The limits this store enforces (the same in every implementation, see [`Limits`]).
    fn limits(&self) -> Limits;

    /// Runs `body` in a transaction and commits it, starting over from a new transaction when
    /// the body or the commit fails with a retryable error (a conflict, a transient outage, an
    /// unknown commit outcome), up to [`RUN_MAX_ATTEMPTS`] times with a growing pause.
    ///
    /// The body may therefore run more than once: anything it does besides reading and writing
    /// through its transaction must be harmless to repeat, and the transaction itself must be
    /// idempotent if it can meet [`StoreError::CommitUnknown`]. Any other error of the body is
    /// returned at once, with nothing written.
    ///
    /// The body gets an [`Attempt`], which dereferences to the transaction, and returns a boxed
    /// future:
    ///
    /// ```
    /// # use citychain_store::{Store, StoreError, Transaction};
    /// async fn increment<S: Store>(store: &S, key: &[u8]) -> Result<u64, StoreError> {
    ///     store
    ///         .run(|txn| {
    ///             Box::pin(async move {
    ///                 let old = match txn.get(key).await? {
    ///                     Some(bytes) => u64::from_be_bytes(bytes.try_into().unwrap()),
    ///                     None => 0,
    ///                 };
    ///                 txn.put(key, &(old + 1).to_be_bytes())?;
    ///                 Ok::<_, StoreError>(old + 1)
    ///             })
    ///         })
    ///         .await
    /// }
    /// ```
    fn run<'a, T, E, F>(&'a self, mut body: F) -> BoxFuture<'a, Result<T, E>>
    where
        T: Send + 'a,
        E: From<StoreError> + Retryable + Send + 'a,
        F: for<'t> FnMut(&'t mut Attempt<'a, Self::Txn>) -> BoxFuture<'t, Result<T, E>> + Send + 'a,
    {
        // The result is boxed rather than an `impl Future`: with an opaque type here, callers
        // that are themselves generic over `S: Store` could not prove their futures `Send`
        // (a known limit of the compiler's reasoning about higher-ranked closures).
        Box::pin(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let error = match self.begin().await {
                    Err(error) => E::from(error),
                    Ok(txn) => {
                        let mut current = Attempt {
                            txn,
                            number: attempt,
                            _scope: PhantomData,
                        };
                        match body(&mut current).await {
                            Err(error) => error,
                            Ok(value) => match current.txn.commit().await {
                                Ok(()) => return Ok(value),
                                Err(error) => E::from(error),
                            },
                        }
                    }
                };
                if !error.is_retryable() || attempt >= RUN_MAX_ATTEMPTS {
                    return Err(error);
                }
                tracing::debug!(attempt, "transaction will be retried");
                tokio::time::sleep(retry_pause(attempt)).await;
            }
        })
    }
}

/// A transaction of a [`Store`]. See [`Store`] for its guarantees.
pub trait Transaction: Send {
    /// Reads a key: this transaction's own latest write of it if any, else the snapshot's value.
    fn get(
        &mut self,
        key: &[u8],
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Writes a key. Buffered until commit; later reads in this transaction see it.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;

    /// Deletes a key (nothing happens if it does not exist). Buffered until commit.
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError>;

    /// The entries of a range, in the scan's order, with this transaction's own writes applied.
    /// An empty or inverted range gives no entries.
    fn scan(&mut self, scan: &Scan) -> impl Future<Output = Result<Vec<Entry>, StoreError>> + Send;

    /// Commits every write of the transaction atomically and durably, or none of them.
    ///
    /// If the future is dropped before it completes, the commit may or may not happen.
    fn commit(self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One attempt of a [`Store::run`] body: the transaction, which it dereferences to, and the
/// attempt's number.
///
/// The lifetime `'a` is that of the `run` call; it lets the body borrow from its surroundings.
#[derive(Debug)]
pub struct Attempt<'a, X> {
    txn: X,
    number: u32,
    _scope: PhantomData<&'a ()>,
}

impl<X> Attempt<'_, X> {
    /// The transaction, for code that wants a `&mut X` rather than a dereference.
    pub fn txn(&mut self) -> &mut X {
        &mut self.txn
    }

    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub fn number(&self) -> u32 {
        self.number
    }
}

impl<X> Deref for Attempt<'_, X> {
    type Target = X;
    fn deref(&self) -> &X {
        &self.txn
    }
}

impl<X> DerefMut for Attempt<'_, X> {
    fn deref_mut(&mut self) -> &mut X {
        &mut self.txn
    }
}

/// The pause before retry number `attempt`: doubling from 1 ms up to 64 ms, with jitter so that
/// transactions that conflicted with each other do not meet again at the same moment.
fn retry_pause(attempt: u32) -> Duration {
    let base_micros = 1_000u64 << attempt.saturating_sub(1).min(6);
    // The sub-second clock is noise enough for jitter, and keeps a random-number crate out.
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::from(elapsed.subsec_nanos()))
        .unwrap_or(0);
    let jittered = base_micros / 2 + noise % base_micros;
    Duration::from_micros(jittered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_grow_and_stay_bounded() {
        for attempt in 1..200 {
            let pause = retry_pause(attempt);
            let base = Duration::from_micros(1_000 << (attempt - 1).min(6));
            assert!(
                pause >= base / 2 && pause < base * 3 / 2,
                "attempt {attempt}: {pause:?}"
            );
        }
    }
}
