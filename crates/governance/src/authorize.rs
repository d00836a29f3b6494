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

use citychain_kernel::{MemberId, PublicKey, Role};

use crate::error::Refusal;
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
        Ok(Signer::Member {
            id: record.member.clone(),
            role: member.role,
        })
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
