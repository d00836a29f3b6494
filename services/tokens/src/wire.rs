//! The journal's events and entries in their wire form (`citychain.tokens.v1`), and the
//! outbox envelope that keeps a published event's name beside its bytes.

use citychain_proto::citychain::tokens::v1 as pb;
use citychain_tokens_domain::{ChainRef, Entry, EventKind, Side, TokenEvent};
use prost::Message;

/// The wire form of a chain place; a grant's has an empty `tx_id`.
pub fn chain_ref(source: &ChainRef) -> pb::ChainRef {
    pb::ChainRef {
        height: source.height,
        index: source.index,
        tx_id: source.tx_id.map(|id| id.to_string()).unwrap_or_default(),
    }
}

/// The name and message bytes of a published event; `None` for the kinds the journal keeps
/// to itself.
pub fn published(event: &TokenEvent) -> Option<(&'static str, Vec<u8>)> {
    let name = event.kind.published_name()?;
    let source = Some(chain_ref(&event.source));
    let bytes = match &event.kind {
        EventKind::RewardMinted {
            record_id,
            member,
            amount,
            ..
        } => pb::RewardMinted {
            source,
            record_id: record_id.to_string(),
            member_id: member.to_string(),
            amount: *amount,
        }
        .encode_to_vec(),
        EventKind::ReadPaid {
            read_id,
            record_id,
            reader,
            owner,
            amount,
        } => pb::ReadPaid {
            source,
            read_id: read_id.to_string(),
            record_id: record_id.to_string(),
            reader: reader.to_string(),
            owner: owner.to_string(),
            amount: *amount,
        }
        .encode_to_vec(),
        EventKind::ReadPaymentFailed {
            read_id,
            record_id,
            reader,
            price,
            balance,
            shortfall,
            ..
        } => pb::ReadPaymentFailed {
            source,
            read_id: read_id.to_string(),
            record_id: record_id.to_string(),
            reader: reader.to_string(),
            price: *price,
            balance: *balance,
            shortfall: *shortfall,
        }
        .encode_to_vec(),
        EventKind::GrantIssued {
            proposal_id,
            member,
            amount,
        } => pb::GrantIssued {
            source,
            proposal_id: proposal_id.clone(),
            member_id: member.to_string(),
            amount: *amount,
        }
        .encode_to_vec(),
        EventKind::UploadUnrewarded { .. } | EventKind::GrantWithheld { .. } => return None,
    };
    Some((name, bytes))
}

/// A statement line: `entry` of `event`.
pub fn statement_entry(event: &TokenEvent, entry: &Entry) -> pb::Entry {
    let (debit, credit) = match entry.side {
        Side::Debit => (entry.amount, 0),
        Side::Credit => (0, entry.amount),
    };
    pb::Entry {
        source: Some(chain_ref(&event.source)),
        account: entry.account.text(),
        debit,
        credit,
        kind: event.kind.movement().to_string(),
        counterparty: event
            .counterparty(entry)
            .map(|a| a.text())
            .unwrap_or_default(),
        balance_after: entry.balance_after,
    }
}

/// An outbox value: the event's name (so its subject) and its message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `RewardMinted`, `ReadPaid`, ...
    pub name: String,
    /// The encoded message.
    pub payload: Vec<u8>,
}

impl Envelope {
    /// `len(name)` (one byte) ‖ name ‖ payload.
    pub fn encode(&self) -> Vec<u8> {
        let name = self.name.as_bytes();
        let mut out = Vec::with_capacity(1 + name.len() + self.payload.len());
        // Names are the four fixed event names, far below 256 bytes.
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name);
        out.extend_from_slice(&self.payload);
        out
    }

    /// Reads an outbox value; `None` if it is damaged.
    pub fn decode(bytes: &[u8]) -> Option<Envelope> {
        let (&len, rest) = bytes.split_first()?;
        let len = usize::from(len);
        if rest.len() < len {
            return None;
        }
        let name = std::str::from_utf8(&rest[..len]).ok()?.to_string();
        Some(Envelope {
            name,
            payload: rest[len..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use citychain_kernel::{Hash32, MemberId, TxId};
    use citychain_tokens_domain::Account;

    use super::*;

    #[test]
    fn envelopes_round_trip_and_damage_is_seen() {
        let envelope = Envelope {
            name: "ReadPaid".into(),
            payload: vec![1, 2, 3],
        };
        assert_eq!(Envelope::decode(&envelope.encode()), Some(envelope));
        assert_eq!(Envelope::decode(&[9, b'a']), None);
        assert_eq!(Envelope::decode(&[]), None);
    }

    #[test]
    fn a_failed_read_carries_its_shortfall_and_a_grant_no_transaction() {
        let member = |s: &str| MemberId::new(s).unwrap();
        let failed = TokenEvent {
            source: ChainRef::tx(4, 2, TxId(Hash32([7; 32]))),
            kind: EventKind::ReadPaymentFailed {
                read_id: TxId(Hash32([7; 32])),
                record_id: TxId(Hash32([1; 32])),
                reader: member("bank.a"),
                owner: member("dept.tax"),
                price: 10,
                balance: 4,
                shortfall: 6,
            },
            entries: vec![],
        };
        let (name, bytes) = published(&failed).unwrap();
        assert_eq!(name, "ReadPaymentFailed");
        let message = pb::ReadPaymentFailed::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            (message.price, message.balance, message.shortfall),
            (10, 4, 6)
        );
        assert_eq!(message.source.unwrap().tx_id, "07".repeat(32));

        let grant = TokenEvent {
            source: ChainRef::block_end(5, 3),
            kind: EventKind::GrantIssued {
                proposal_id: "p".into(),
                member: member("dept.tax"),
                amount: 9,
            },
            entries: vec![
                Entry {
                    account: Account::Mint,
                    side: Side::Debit,
                    amount: 9,
                    balance_after: -9,
                },
                Entry {
                    account: Account::member(&member("dept.tax")),
                    side: Side::Credit,
                    amount: 9,
                    balance_after: 9,
                },
            ],
        };
        let (_, bytes) = published(&grant).unwrap();
        let message = pb::GrantIssued::decode(bytes.as_slice()).unwrap();
        assert_eq!(message.source.unwrap().tx_id, "");
        let line = statement_entry(&grant, &grant.entries[1]);
        assert_eq!(
            (
                line.credit,
                line.debit,
                line.kind.as_str(),
                line.counterparty.as_str()
            ),
            (9, 0, "grant", "mint")
        );
    }
}
