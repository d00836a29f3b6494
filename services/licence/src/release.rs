//! The releaser: for each committed read waiting in `li/pending/`, once the token platform's
//! verdict is stored, either wraps the record key for the reader's registered X25519 key and
//! stores the grant (exactly once: the grant is written only if absent, in a serializable
//! transaction that also takes the read out of the pending set), or drops the read from the
//! set for good (refused, unpaid). It runs after every applied block and every stored payment,
//! and once a second in case a poke was missed.
//!
//! The key is wrapped outside any store transaction (the vault is on NATS); if two releasers
//! race, both wrap, one commits, and the other finds the grant and discards its own.
//!
//! Settling a traced read (its transaction's context is still remembered by the follower)
//! runs in a `licence.release` span, child of the read's `licence.apply` span.

use std::sync::Arc;
use std::time::Duration;

use citychain_follower::Shared;
use citychain_kernel::{EncryptionPublicKey, Hash32, TxId};
use citychain_licence_domain::{Payment, ReadVerdict, Release, decide_release, keys};
use citychain_proto::citychain::licence::v1 as lpb;
use citychain_seal::{reader_context, wrap_key};
use citychain_store::{Scan, Store, StoreError, Transaction};
use prost::Message;
use tokio::sync::Notify;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::vault::{Vault, VaultError};

/// Heights a paid read waits for its record's key before it is withheld for good.
const NO_PAYLOAD_GRACE: u64 = 5;

/// How often the releaser looks even without a poke.
const SWEEP: Duration = Duration::from_secs(1);

/// Why the releaser stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The store failed.
    #[error("releasing keys: store: {0}")]
    Store(#[from] StoreError),
}

/// A committed read's stored state, decoded.
pub(crate) fn read_verdict(state: &lpb::ReadState) -> ReadVerdict {
    if state.state == lpb::read_state::State::Refused as i32 {
        ReadVerdict::Refused {
            reason: state.reason.clone(),
        }
    } else {
        ReadVerdict::Allowed { price: state.price }
    }
}

/// What the store says about one read: its state, the token platform's verdict, whether its
/// key was granted.
pub(crate) struct ReadFacts {
    pub state: lpb::ReadState,
    pub payment: Option<Payment>,
    pub grant: Option<lpb::KeyGrant>,
    /// Why a paid read can never be released, when the releaser found so.
    pub withheld: Option<String>,
}

impl ReadFacts {
    /// The read's state as the API reports it, with the reason when nothing is released.
    pub fn reported(&self) -> (lpb::read_state::State, String) {
        use lpb::read_state::State;
        if let Some(reason) = &self.withheld {
            return (State::Refused, reason.clone());
        }
        match decide_release(
            &read_verdict(&self.state),
            self.payment.as_ref(),
            self.grant.is_some(),
        ) {
            Release::AlreadyReleased => (State::Released, String::new()),
            Release::Never(why) => {
                let state = if self.state.state == State::Refused as i32 {
                    State::Refused
                } else {
                    State::PaymentFailed
                };
                (state, why.to_string())
            }
            Release::Wait | Release::Release => (State::AwaitingPayment, String::new()),
        }
    }
}

/// Loads the facts of `read`; `None` if it has not committed.
pub(crate) async fn read_facts<T: Transaction>(
    txn: &mut T,
    read: &TxId,
) -> Result<Option<ReadFacts>, StoreError> {
    let Some(bytes) = txn.get(&keys::read(read)).await? else {
        return Ok(None);
    };
    let state = lpb::ReadState::decode(bytes.as_slice()).unwrap_or_default();
    let payment = txn
        .get(&keys::payment(read))
        .await?
        .and_then(|b| Payment::decode(&b));
    let grant = txn
        .get(&keys::grant(read))
        .await?
        .and_then(|b| lpb::KeyGrant::decode(b.as_slice()).ok());
    let withheld = txn
        .get(&keys::withheld(read))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    Ok(Some(ReadFacts {
        state,
        payment,
        grant,
        withheld,
    }))
}

/// Releases what can be released until `stop` resolves.
pub async fn run<S: Store>(
    store: S,
    vault: Vault,
    shared: Arc<Shared>,
    poke: Arc<Notify>,
    stop: impl Future<Output = ()>,
) -> Result<(), ReleaseError> {
    let mut applied = shared.applied.subscribe();
    tokio::pin!(stop);
    loop {
        sweep(&store, &vault, &shared).await?;
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = poke.notified() => {}
            _ = applied.changed() => {}
            () = tokio::time::sleep(SWEEP) => {}
        }
    }
}

async fn sweep<S: Store>(store: &S, vault: &Vault, shared: &Shared) -> Result<(), ReleaseError> {
    let mut txn = store.begin().await?;
    let pending = txn.scan(&Scan::prefix(keys::PENDING_PREFIX)).await?;
    drop(txn);
    for entry in pending {
        let Ok(id) = Hash32::from_slice("pending read id", &entry.0[keys::PENDING_PREFIX.len()..])
        else {
            continue;
        };
        let read = TxId(id);
        if let Err(err) = release_one(store, vault, &read, shared).await {
            // A vault failure (NATS down) leaves the read pending for the next sweep.
            tracing::warn!(read = %read, error = %err, "key release postponed");
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum OneError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("{0}")]
    Unusable(String),
    #[error("{0}")]
    NoPayload(String),
}

async fn release_one<S: Store>(
    store: &S,
    vault: &Vault,
    read: &TxId,
    shared: &Shared,
) -> Result<(), OneError> {
    let mut txn = store.begin().await?;
    let Some(facts) = read_facts(&mut txn, read).await? else {
        return Ok(());
    };
    drop(txn);
    let decision = decide_release(
        &read_verdict(&facts.state),
        facts.payment.as_ref(),
        facts.grant.is_some(),
    );
    if decision == Release::Wait {
        return Ok(());
    }
    let span = match shared.trace_of(facts.state.height, facts.state.index as usize) {
        Some(parent) => {
            let span = tracing::info_span!(
                "licence.release",
                otel.name = "licence.release",
                service = "licence",
                read.id = %read,
                record.id = %facts.state.record_id,
                reader = %facts.state.reader,
                height = facts.state.height,
            );
            let _ = span.set_parent(parent);
            span
        }
        None => tracing::Span::none(),
    };
    settle(store, vault, read, shared.applied().0, facts, decision)
        .instrument(span)
        .await
}

/// Carries out `decision` (not [`Release::Wait`]) for `read`: stores the grant or drops the
/// read from the pending set.
async fn settle<S: Store>(
    store: &S,
    vault: &Vault,
    read: &TxId,
    applied: u64,
    facts: ReadFacts,
    decision: Release,
) -> Result<(), OneError> {
    let grant = match decision {
        Release::Wait => return Ok(()),
        Release::AlreadyReleased | Release::Never(_) => None,
        Release::Release => match wrap_for_reader(vault, read, &facts.state).await {
            Ok(grant) => Some(grant),
            // A key bucket replica may lag a little: give the key some heights to appear
            // before deciding the record never had a payload.
            Err(OneError::NoPayload(_)) if applied < facts.state.height + NO_PAYLOAD_GRACE => {
                return Ok(());
            }
            Err(OneError::NoPayload(reason)) => {
                let mut txn = store.begin().await?;
                txn.put(&keys::withheld(read), reason.as_bytes())?;
                txn.delete(&keys::pending(read))?;
                txn.commit().await?;
                tracing::warn!(read = %read, %reason, "record key withheld for good");
                return Ok(());
            }
            Err(other) => return Err(other),
        },
    };
    let mut txn = store.begin().await?;
    if let Some(grant) = &grant {
        if txn.get(&keys::grant(read)).await?.is_some() {
            return Ok(());
        }
        txn.put(&keys::grant(read), &grant.encode_to_vec())?;
    }
    txn.delete(&keys::pending(read))?;
    txn.commit().await?;
    match (&grant, decision) {
        (Some(_), _) => {
            tracing::info!(read = %read, record = %facts.state.record_id, reader = %facts.state.reader, "record key released")
        }
        (None, Release::Never(why)) => {
            tracing::info!(read = %read, reason = %why, "record key withheld")
        }
        _ => {}
    }
    Ok(())
}

async fn wrap_for_reader(
    vault: &Vault,
    read: &TxId,
    state: &lpb::ReadState,
) -> Result<lpb::KeyGrant, OneError> {
    let record: TxId = state
        .record_id
        .parse()
        .map_err(|e| OneError::Unusable(format!("stored record id: {e}")))?;
    let recipient_bytes = state
        .grant
        .as_ref()
        .map(|g| g.recipient.clone())
        .unwrap_or_default();
    let recipient = EncryptionPublicKey::from_slice("reader's encryption key", &recipient_bytes)
        .map_err(|e| OneError::Unusable(e.to_string()))?;
    let key = vault.record_key(&record).await?.ok_or_else(|| {
        OneError::NoPayload(format!(
            "record {record} has no stored payload: it was uploaded without the licence service"
        ))
    })?;
    let wrapped = wrap_key(
        &key,
        &recipient,
        &reader_context(read.as_bytes(), record.as_bytes()),
    )
    .map_err(|e| OneError::Unusable(e.to_string()))?;
    Ok(lpb::KeyGrant {
        wrapped_key: wrapped.encode(),
        recipient: recipient.0.to_vec(),
    })
}
