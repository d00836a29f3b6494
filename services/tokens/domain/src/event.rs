//! What the rules decide: [`TokenEvent`], a [`ChainRef`], an [`EventKind`] and the event's
//! balanced entries.
//!
//! Four kinds are published on EVENTS (see [`EventKind::published_name`]): `RewardMinted`,
//! `ReadPaid`, `ReadPaymentFailed` and `GrantIssued`. Two stay inside the journal:
//! `UploadUnrewarded` (a first upload of a payload that earned nothing: its hash must still
//! be remembered, so that uploading it again earns nothing either) and `GrantWithheld` (a grant that would push the supply past
//! [`crate::MAX_SUPPLY`]); nobody acts on them, but they are part of the journal's history
//! and of its hash.

use citychain_kernel::{Hash32, MemberId, TxId};

use crate::canon::Canon;
use crate::entry::{ChainRef, Entry, Side};

/// Why an accepted upload earned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoReward {
    /// The record type's `upload_reward` is 0.
    NoRate,
    /// The department reached the reward cap of the period.
    CapReached,
    /// Minting would push the supply past [`crate::MAX_SUPPLY`].
    SupplyLimit,
}

impl NoReward {
    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            NoReward::NoRate => "no_reward_rate",
            NoReward::CapReached => "cap_reached",
            NoReward::SupplyLimit => "supply_limit",
        }
    }

    fn tag(self) -> u8 {
        match self {
            NoReward::NoRate => 1,
            NoReward::CapReached => 2,
            NoReward::SupplyLimit => 3,
        }
    }
}

/// What happened, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An upload earned its department `amount` (at most the type's reward, less if the
    /// period's cap cut it).
    RewardMinted {
        /// The record (the upload transaction's id).
        record_id: TxId,
        /// The department credited.
        member: MemberId,
        /// The payload's hash, remembered so the same payload earns once.
        payload_hash: Hash32,
        /// The reward period the upload falls in.
        period: u64,
        /// Tokens minted.
        amount: u64,
        /// The department's rewards in the period, this one included.
        period_total: u64,
    },
    /// The first upload of a payload by its department, which earned nothing (not
    /// published). Uploads of a payload the department already uploaded decide no event.
    UploadUnrewarded {
        /// The record.
        record_id: TxId,
        /// The department.
        member: MemberId,
        /// The payload's hash.
        payload_hash: Hash32,
        /// The reward period.
        period: u64,
        /// Why nothing was minted.
        reason: NoReward,
    },
    /// A read was paid: `amount` moved from the reader to the record's owner (0, with no
    /// entries, for a read of one's own record or of a free type).
    ReadPaid {
        /// The read transaction's id.
        read_id: TxId,
        /// The record read.
        record_id: TxId,
        /// Who read.
        reader: MemberId,
        /// Who owns the record.
        owner: MemberId,
        /// What was paid.
        amount: u64,
    },
    /// The reader's balance was short of the price; nothing moved.
    ReadPaymentFailed {
        /// The read transaction's id.
        read_id: TxId,
        /// The record.
        record_id: TxId,
        /// Who read.
        reader: MemberId,
        /// Who owns the record.
        owner: MemberId,
        /// The price.
        price: u64,
        /// The reader's balance.
        balance: u64,
        /// `price - balance`.
        shortfall: u64,
    },
    /// Governance granted `amount` to `member`.
    GrantIssued {
        /// The proposal that granted it.
        proposal_id: String,
        /// The member credited.
        member: MemberId,
        /// Tokens minted.
        amount: u64,
    },
    /// A passed grant that could not be minted (not published).
    GrantWithheld {
        /// The proposal.
        proposal_id: String,
        /// The member it named.
        member: MemberId,
        /// The amount it named.
        amount: u64,
        /// Why it was not minted.
        reason: NoReward,
    },
}

impl EventKind {
    /// The event's name on EVENTS (`citychain.<chain>.events.tokens.<name>`), or `None` for
    /// the kinds kept inside the journal.
    pub fn published_name(&self) -> Option<&'static str> {
        match self {
            EventKind::RewardMinted { .. } => Some("RewardMinted"),
            EventKind::ReadPaid { .. } => Some("ReadPaid"),
            EventKind::ReadPaymentFailed { .. } => Some("ReadPaymentFailed"),
            EventKind::GrantIssued { .. } => Some("GrantIssued"),
            EventKind::UploadUnrewarded { .. } | EventKind::GrantWithheld { .. } => None,
        }
    }

    /// What a statement calls the movement: `reward`, `read` or `grant`.
    pub fn movement(&self) -> &'static str {
        match self {
            EventKind::RewardMinted { .. } | EventKind::UploadUnrewarded { .. } => "reward",
            EventKind::ReadPaid { .. } | EventKind::ReadPaymentFailed { .. } => "read",
            EventKind::GrantIssued { .. } | EventKind::GrantWithheld { .. } => "grant",
        }
    }
}

/// One decided event: its place in the chain, what happened, and its entries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenEvent {
    /// The transaction (or block end) that caused it.
    pub source: ChainRef,
    /// What happened.
    pub kind: EventKind,
    /// Its journal entries: empty, or one debit and one credit of the same amount.
    pub entries: Vec<Entry>,
}

impl TokenEvent {
    /// Whether the entries balance: debits sum to credits (checked, in `u128`).
    pub fn is_balanced(&self) -> bool {
        let sum = |side| -> u128 {
            self.entries
                .iter()
                .filter(|e| e.side == side)
                .map(|e| u128::from(e.amount))
                .sum()
        };
        sum(Side::Debit) == sum(Side::Credit)
    }

    /// The other account of a two-sided movement, from `entry`'s point of view.
    pub fn counterparty(&self, entry: &Entry) -> Option<&crate::Account> {
        self.entries
            .iter()
            .find(|e| e.side != entry.side)
            .map(|e| &e.account)
    }

    /// The canonical encoding, which the journal's history digest hashes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Canon::new();
        self.source.encode(&mut out);
        match &self.kind {
            EventKind::RewardMinted {
                record_id,
                member,
                payload_hash,
                period,
                amount,
                period_total,
            } => {
                out.u8(1)
                    .bytes32(record_id.as_bytes())
                    .str(member.as_str())
                    .bytes32(payload_hash.as_bytes())
                    .u64(*period)
                    .u64(*amount)
                    .u64(*period_total);
            }
            EventKind::UploadUnrewarded {
                record_id,
                member,
                payload_hash,
                period,
                reason,
            } => {
                out.u8(2)
                    .bytes32(record_id.as_bytes())
                    .str(member.as_str())
                    .bytes32(payload_hash.as_bytes())
                    .u64(*period)
                    .u8(reason.tag());
            }
            EventKind::ReadPaid {
                read_id,
                record_id,
                reader,
                owner,
                amount,
            } => {
                out.u8(3)
                    .bytes32(read_id.as_bytes())
                    .bytes32(record_id.as_bytes())
                    .str(reader.as_str())
                    .str(owner.as_str())
                    .u64(*amount);
            }
            EventKind::ReadPaymentFailed {
                read_id,
                record_id,
                reader,
                owner,
                price,
                balance,
                shortfall,
            } => {
                out.u8(4)
                    .bytes32(read_id.as_bytes())
                    .bytes32(record_id.as_bytes())
                    .str(reader.as_str())
                    .str(owner.as_str())
                    .u64(*price)
                    .u64(*balance)
                    .u64(*shortfall);
            }
            EventKind::GrantIssued {
                proposal_id,
                member,
                amount,
            } => {
                out.u8(5).str(proposal_id).str(member.as_str()).u64(*amount);
            }
            EventKind::GrantWithheld {
                proposal_id,
                member,
                amount,
                reason,
            } => {
                out.u8(6)
                    .str(proposal_id)
                    .str(member.as_str())
                    .u64(*amount)
                    .u8(reason.tag());
            }
        }
        out.len(self.entries.len());
        for entry in &self.entries {
            entry.encode(&mut out);
        }
        out.into_bytes()
    }
}
