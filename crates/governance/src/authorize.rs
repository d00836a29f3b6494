//! Who signed a transaction: a member acting with its active key, a citizen sending one of the
//! few bodies citizens may send, or nobody allowed to send it.
//!
//! # Citizen allow-list
//!
//! A key the registry has never seen is a citizen's. Citizens may send only:
//! - any body whose type starts with one of [`CITIZEN_TYPE_PREFIXES`]
//!   (`citychain.citizen.`), and
//! - any body whose type ends with one of [`CITIZEN_TYPE_SUFFIXES`] (`.Consent`,
//!   `.RevokeConsent`, `.ReceiptsQuery`), whatever its package: consent to and withdrawal of
//!   consent from a department's use of their data, and queries for their own receipts.
//!
//! A key that ever belonged to a member is never treated as a citizen's, so a rotated or
//! revoked key cannot come back as an anonymous one.

use citychain_kernel::{Height, MemberId, PublicKey, Role, SignedEvent};

use crate::error::{EventRefusal, Refusal};
use crate::state::{KeyStatus, MemberStatus, Registry};

/// Type prefixes a citizen may send.
pub const CITIZEN_TYPE_PREFIXES: &[&str] = &["citychain.citizen."];

/// Type suffixes a citizen may send, in any package.
pub const CITIZEN_TYPE_SUFFIXES: &[&str] = &[".Consent", ".RevokeConsent", ".ReceiptsQuery"];

/// Whether a citizen (a key that is no member's) may send a body of this type.
pub fn citizen_may_send(type_url: &str) -> bool {
    CITIZEN_TYPE_PREFIXES
        .iter()
        .any(|p| type_url.starts_with(p))
        || CITIZEN_TYPE_SUFFIXES.iter().any(|s| type_url.ends_with(s))
}

/// Who a transaction's signer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// An active member signing with its active key.
    Member {
        /// The member.
        id: MemberId,
        /// Its role.
        role: Role,
    },
    /// A key that is no member's, sending a body citizens may send.
    Citizen,
}

impl Registry {
    /// Decides whether `signer` may send a body of `type_url` at the next height: an active key
    /// of an active member is that member; a rotated or revoked key, or a suspended member's
    /// key, is refused; an unknown key is a citizen for the bodies of the citizen allow-list
    /// and refused otherwise. Governance bodies additionally need the department role, which
    /// is checked when they are decided.
    pub fn authorize(&self, signer: &PublicKey, type_url: &str) -> Result<Signer, Refusal> {
        let Some(record) = self.keys.get(signer) else {
            return if citizen_may_send(type_url) {
                Ok(Signer::Citizen)
            } else {
                Err(Refusal::NotAMember {
                    key: signer.to_string(),
                    type_url: type_url.to_string(),
                })
            };
        };
        if record.status != KeyStatus::Active {
            return Err(Refusal::KeyRetired {
                key: signer.to_string(),
                member: record.member.clone(),
                status: record.status,
            });
        }
        // The key index and the members always agree; a missing member would be a broken
        // state, refused like any key that cannot act.
        let Some(member) = self.members.get(&record.member) else {
            return Err(Refusal::NotAMember {
                key: signer.to_string(),
                type_url: type_url.to_string(),
            });
        };
        if member.status == MemberStatus::Suspended {
            return Err(Refusal::MemberSuspended {
                key: signer.to_string(),
                member: record.member.clone(),
            });
        }
        if member.role == Role::Service {
            return Err(Refusal::ServiceIdentity {
                key: signer.to_string(),
                member: record.member.clone(),
            });
        }
        Ok(Signer::Member {
            id: record.member.clone(),
            role: member.role,
        })
    }
}

impl Registry {
    /// Whether this registry vouches for `event` as `producer`'s: the producer is a member of
    /// role `service` and the signer key was its key at the height the event was signed at
    /// (the event's own signature was checked when it was decoded). An event signed at a
    /// later height than this registry's is [`EventRefusal::Ahead`]: not refused, but not yet
    /// judged. Suspension does not silence a service's past verdicts, as the registry keeps no
    /// history of it.
    pub fn vouch_for_event(
        &self,
        producer: &MemberId,
        event: &SignedEvent,
    ) -> Result<(), EventRefusal> {
        if event.signed_at > self.height {
            return Err(EventRefusal::Ahead {
                id: event.id.clone(),
                signed_at: event.signed_at,
                height: self.height,
            });
        }
        if &event.producer != producer {
            return Err(EventRefusal::WrongProducer {
                id: event.id.clone(),
                expected: producer.clone(),
                found: event.producer.clone(),
            });
        }
        if self.members.get(producer).map(|m| m.role) != Some(Role::Service) {
            return Err(EventRefusal::NotAService {
                id: event.id.clone(),
                producer: producer.clone(),
            });
        }
        // The registry after block h checks block h + 1: that is the height a key signing
        // after applying h must be valid at.
        let at = Height(event.signed_at.0.saturating_add(1));
        match self.keys.get(&event.signer_key) {
            Some(record) if &record.member == producer && record.valid_at(at) => Ok(()),
            _ => Err(EventRefusal::NotProducersKey {
                id: event.id.clone(),
                key: event.signer_key.to_string(),
                producer: producer.clone(),
                signed_at: event.signed_at,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citizen_allow_list() {
        for (type_url, allowed) in [
            ("citychain.citizen.v1.Register", true),
            ("citychain.medical.v1.Consent", true),
            ("citychain.medical.v1.RevokeConsent", true),
            ("citychain.token.v1.ReceiptsQuery", true),
            ("citychain.medical.v1.ConsentX", false),
            ("citychain.governance.v1.Propose", false),
            ("citychain.token.v1.Transfer", false),
        ] {
            assert_eq!(citizen_may_send(type_url), allowed, "{type_url}");
        }
    }
}
