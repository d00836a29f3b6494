//! Signed events: the verdicts one service publishes for another to act on (today the token
//! platform's `ReadPaid` and `ReadPaymentFailed`, on which the licence service releases record
//! keys). The bus is not trusted with them: each event carries an ed25519 signature by the
//! producing service's identity, a member of role `service` on the chain, and a consumer acts
//! only on an event whose key the registry vouches for (`citychain_governance`'s
//! `Registry::vouch_for_event`).
//!
//! The signature covers `citychain/event/v1 ‖ 0x00 ‖ the canonical encoding of
//! citychain.kernel.v1.SignedEvent with an empty signature`: producer, key, height, id, name and
//! message, so none of them can be swapped.
//!
//! The JetStream message id ([`SignedEvent::message_id`]) is the event id followed by a digest
//! of the signature. Nobody without the producer's key can compute it, so nobody can squat the
//! id of an event to come and have JetStream drop the real one as a duplicate; and ed25519
//! signatures are deterministic, so a republished event keeps its message id.

use citychain_proto::citychain::kernel::v1 as pb;
use prost::Message;
use thiserror::Error;

use crate::codec::decode_canonical;
use crate::error::{DecodeError, SignatureError};
use crate::hash::Domain;
use crate::ids::{Height, MemberId};
use crate::keys::{KeyError, PublicKey, Signature, SigningKey};

/// The longest event id, in bytes.
pub const MAX_EVENT_ID: usize = 128;
/// The longest event name, in bytes.
pub const MAX_EVENT_NAME: usize = 64;
/// The largest event message, in bytes.
pub const MAX_EVENT_MESSAGE: usize = 64 * 1024;

/// A signed event whose signature matches its signer key (whether that key may speak for the
/// producer is the registry's question).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEvent {
    /// The producing service's member id, `service.<name>`.
    pub producer: MemberId,
    /// The key that signed.
    pub signer_key: PublicKey,
    /// The producer's applied height when it signed.
    pub signed_at: Height,
    /// The event's identity, `<service>.<height>.<index>.<n>`.
    pub id: String,
    /// Its name, e.g. `ReadPaid`.
    pub name: String,
    /// The encoded event message.
    pub message: Vec<u8>,
    /// The signature over [`SignedEvent::signing_bytes`].
    pub signature: Signature,
}

/// Why bytes are not a signed event.
#[derive(Debug, Error)]
pub enum EventError {
    /// Not a canonical `SignedEvent`, or a field of the wrong size.
    #[error("not a signed event: {0}")]
    Decode(#[from] DecodeError),
    /// The signer key is not a valid ed25519 key.
    #[error("signed event: {0}")]
    Key(#[from] KeyError),
    /// A field over its limit.
    #[error("signed event: {field} is {actual} bytes, more than the limit of {limit}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        actual: usize,
        /// The limit.
        limit: usize,
    },
    /// The signature does not verify under the signer key.
    #[error("signed event {id}: {reason}")]
    BadSignature {
        /// The event's id.
        id: String,
        /// What verification said.
        reason: SignatureError,
    },
}

fn check_len(field: &'static str, actual: usize, limit: usize) -> Result<(), EventError> {
    if actual > limit {
        return Err(EventError::TooLong {
            field,
            actual,
            limit,
        });
    }
    Ok(())
}

impl SignedEvent {
    /// Signs an event as `producer` with `key` at the producer's applied height `signed_at`.
    pub fn sign(
        key: &SigningKey,
        producer: MemberId,
        signed_at: Height,
        id: impl Into<String>,
        name: impl Into<String>,
        message: Vec<u8>,
    ) -> SignedEvent {
        let mut event = SignedEvent {
            producer,
            signer_key: key.public_key(),
            signed_at,
            id: id.into(),
            name: name.into(),
            message,
            signature: Signature([0; 64]),
        };
        event.signature = key.sign(&event.signing_bytes());
        event
    }

    /// The wire form with an empty signature.
    fn unsigned(&self) -> pb::SignedEvent {
        pb::SignedEvent {
            producer: self.producer.to_string(),
            signer_key: self.signer_key.to_bytes().to_vec(),
            signed_at: self.signed_at.0,
            id: self.id.clone(),
            name: self.name.clone(),
            message: self.message.clone(),
            signature: Vec::new(),
        }
    }

    /// What the signature covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Domain::Event.prefix();
        self.unsigned()
            .encode(&mut out)
            .expect("a Vec grows as needed");
        out
    }

    /// The canonical encoding, as published.
    pub fn encode(&self) -> Vec<u8> {
        let mut message = self.unsigned();
        message.signature = self.signature.to_bytes().to_vec();
        message.encode_to_vec()
    }

    /// Reads a published event: canonical encoding, fields within their limits, and a
    /// signature that verifies under the signer key it names.
    pub fn decode(bytes: &[u8]) -> Result<SignedEvent, EventError> {
        let raw: pb::SignedEvent = decode_canonical("SignedEvent", bytes)?;
        check_len("id", raw.id.len(), MAX_EVENT_ID)?;
        check_len("name", raw.name.len(), MAX_EVENT_NAME)?;
        check_len("message", raw.message.len(), MAX_EVENT_MESSAGE)?;
        let event = SignedEvent {
            producer: MemberId::new(raw.producer)?,
            signer_key: PublicKey::from_slice("SignedEvent.signer_key", &raw.signer_key)?,
            signed_at: Height(raw.signed_at),
            id: raw.id,
            name: raw.name,
            message: raw.message,
            signature: Signature::from_slice("SignedEvent.signature", &raw.signature)?,
        };
        event
            .signer_key
            .verify(&event.signing_bytes(), &event.signature)
            .map_err(|reason| EventError::BadSignature {
                id: event.id.clone(),
                reason,
            })?;
        Ok(event)
    }

    /// The `Nats-Msg-Id` to publish it under: `<id>.<16 hex digits of blake3(signature)>`.
    pub fn message_id(&self) -> String {
        let digest = blake3::hash(&self.signature.to_bytes());
        format!("{}.{}", self.id, &digest.to_hex()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed(&[n; 32])
    }

    fn event() -> SignedEvent {
        SignedEvent::sign(
            &key(1),
            MemberId::new("service.tokens").unwrap(),
            Height(7),
            "tokens.7.0.0",
            "ReadPaid",
            vec![1, 2, 3],
        )
    }

    #[test]
    fn an_event_round_trips_and_keeps_its_message_id() {
        let signed = event();
        let back = SignedEvent::decode(&signed.encode()).unwrap();
        assert_eq!(back, signed);
        assert_eq!(back.message_id(), signed.message_id());
        assert!(signed.message_id().starts_with("tokens.7.0.0."));
        // Deterministic: signing again gives the same id.
        assert_eq!(event().message_id(), signed.message_id());
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let signed = event();
        let changes: [fn(&mut SignedEvent); 5] = [
            |e| e.producer = MemberId::new("service.other").unwrap(),
            |e| e.signed_at = Height(8),
            |e| e.id = "tokens.7.0.1".into(),
            |e| e.name = "ReadPaymentFailed".into(),
            |e| e.message = vec![1, 2, 4],
        ];
        for change in changes {
            let mut forged = signed.clone();
            change(&mut forged);
            let err = SignedEvent::decode(&forged.encode()).unwrap_err();
            assert!(matches!(err, EventError::BadSignature { .. }), "{err}");
        }
        // Another key signing the same content gives another message id.
        let mut other = signed.clone();
        other.signer_key = key(2).public_key();
        other.signature = key(2).sign(&other.signing_bytes());
        assert!(SignedEvent::decode(&other.encode()).is_ok());
        assert_ne!(other.message_id(), signed.message_id());
    }

    #[test]
    fn garbage_and_oversized_fields_are_refused_by_name() {
        assert!(matches!(
            SignedEvent::decode(b"\xff\xff garbage"),
            Err(EventError::Decode(_))
        ));
        let mut long = event();
        long.id = "x".repeat(MAX_EVENT_ID + 1);
        let err = SignedEvent::decode(&long.encode()).unwrap_err().to_string();
        assert!(err.contains("id") && err.contains("128"), "{err}");
    }
}
