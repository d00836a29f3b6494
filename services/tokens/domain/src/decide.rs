//! The rules: [`decide`] turns one input into events, reading the journal and nothing else.
//!
//! - **Upload reward.** An accepted upload earns its department the record type's
//!   `upload_reward`, minted (the mint debited, the department credited), unless the
//!   department already uploaded a payload with the same hash (anything it uploads again
//!   earns nothing, whatever the type, and decides no event: the hash is already
//!   remembered), and never beyond the token policy's cap for the
//!   department in the period the upload's height falls in: an upload that would cross the
//!   cap earns what is left under it.
//! - **Read charge.** An allowed read costs the reader the price (the type's `read_price`,
//!   0 for its own records), credited to the record's owner. A read of one's own record, or
//!   at price 0, is paid with 0 and no entries. A reader whose balance is short of the price
//!   pays nothing: `ReadPaymentFailed` with the shortfall. A read is settled once: seeing its
//!   transaction again decides nothing.
//! - **Grant.** A grant governance applied mints its amount to the member, once per
//!   proposal.
//! - **Supply limit.** Balances are `i64` (as on the wire), so nothing is minted beyond
//!   [`MAX_SUPPLY`] = `i64::MAX`; such a reward or grant is recorded as not minted.
//!
//! Seeing an input a second time (a redelivered block) decides nothing, so every input
//! counts once. Arithmetic is checked throughout; a figure that cannot be computed means the
//! journal itself is inconsistent, and is reported as a [`JournalError`] rather than guessed.

use citychain_kernel::MemberId;
use thiserror::Error;

use crate::account::Account;
use crate::entry::{ChainRef, Entry, Side};
use crate::event::{EventKind, NoReward, TokenEvent};
use crate::input::Input;
use crate::journal::Journal;

/// The most tokens that can exist: `i64::MAX`, so the mint's balance (minus the supply) and
/// every member's fit the wire's `int64`.
pub const MAX_SUPPLY: u64 = i64::MAX as u64;

/// The journal is inconsistent: a figure it holds breaks an invariant the rules keep. Not a
/// user's fault; the service stops rather than derive anything from such a state.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum JournalError {
    /// A member's balance is negative.
    #[error("account {account} has a negative balance {balance}")]
    NegativeBalance {
        /// The account.
        account: String,
        /// Its balance.
        balance: i64,
    },
    /// The mint's balance is positive.
    #[error("the mint has a positive balance {balance}")]
    PositiveMint {
        /// Its balance.
        balance: i64,
    },
    /// A balance would leave the `i64` range.
    #[error("account {account}: {balance} {op} {amount} leaves the range of a balance")]
    Overflow {
        /// The account.
        account: String,
        /// Its balance.
        balance: i64,
        /// `+` or `-`.
        op: &'static str,
        /// The amount.
        amount: u64,
    },
    /// A period's reward total would overflow.
    #[error("rewards of {member} in period {period}: {total} + {amount} overflows")]
    PeriodOverflow {
        /// The department.
        member: String,
        /// The period.
        period: u64,
        /// Its total so far.
        total: u64,
        /// The reward.
        amount: u64,
    },
}

fn member_balance(journal: &Journal, member: &MemberId) -> Result<i64, JournalError> {
    let account = Account::member(member);
    let balance = journal.balance(&account);
    if balance < 0 {
        return Err(JournalError::NegativeBalance {
            account: account.text(),
            balance,
        });
    }
    Ok(balance)
}

/// `balance ± amount`, checked, as a balance.
fn moved(account: &Account, balance: i64, side: Side, amount: u64) -> Result<i64, JournalError> {
    let wide = i128::from(balance);
    let amount_wide = i128::from(amount);
    let after = match side {
        Side::Credit => wide.checked_add(amount_wide),
        Side::Debit => wide.checked_sub(amount_wide),
    };
    after
        .and_then(|a| i64::try_from(a).ok())
        .ok_or_else(|| JournalError::Overflow {
            account: account.text(),
            balance,
            op: match side {
                Side::Credit => "+",
                Side::Debit => "-",
            },
            amount,
        })
}

/// The entries minting `amount` to `member`, or `None` if the supply would pass
/// [`MAX_SUPPLY`]. `amount` is not zero.
fn mint_to(
    journal: &Journal,
    member: &MemberId,
    amount: u64,
) -> Result<Option<Vec<Entry>>, JournalError> {
    let mint = journal.balance(&Account::Mint);
    if mint > 0 {
        return Err(JournalError::PositiveMint { balance: mint });
    }
    let supply = mint.unsigned_abs();
    match supply.checked_add(amount) {
        Some(total) if total <= MAX_SUPPLY => {}
        _ => return Ok(None),
    }
    let account = Account::member(member);
    let balance = member_balance(journal, member)?;
    Ok(Some(vec![
        Entry {
            account: Account::Mint,
            side: Side::Debit,
            amount,
            balance_after: moved(&Account::Mint, mint, Side::Debit, amount)?,
        },
        Entry {
            balance_after: moved(&account, balance, Side::Credit, amount)?,
            account,
            side: Side::Credit,
            amount,
        },
    ]))
}

/// Decides `input`, which happened at `source`, against `journal` (the whole journal or a
/// [`Journal::window`] of what the input [`Needs`](crate::Needs)).
pub fn decide(
    journal: &Journal,
    input: &Input,
    source: &ChainRef,
) -> Result<Vec<TokenEvent>, JournalError> {
    let event = |kind, entries| TokenEvent {
        source: source.clone(),
        kind,
        entries,
    };
    match input {
        Input::Upload {
            record_id,
            member,
            payload_hash,
            reward,
            policy,
        } => {
            let period = policy.period_of(source.height);
            let unrewarded = |reason| {
                event(
                    EventKind::UploadUnrewarded {
                        record_id: *record_id,
                        member: member.clone(),
                        payload_hash: *payload_hash,
                        period,
                        reason,
                    },
                    Vec::new(),
                )
            };
            if journal.first_upload(member, payload_hash).is_some() {
                // Nothing to remember that is not remembered already: no event. This is also
                // what makes a redelivered upload (of any outcome) decide nothing.
                return Ok(Vec::new());
            }
            if *reward == 0 {
                return Ok(vec![unrewarded(NoReward::NoRate)]);
            }
            let earned = journal.period_rewards(member, period);
            let amount = match policy.reward_cap_per_period {
                // A cap lowered below what was already earned leaves nothing, not a negative.
                Some(cap) => (*reward).min(cap.saturating_sub(earned)),
                None => *reward,
            };
            if amount == 0 {
                return Ok(vec![unrewarded(NoReward::CapReached)]);
            }
            let period_total =
                earned
                    .checked_add(amount)
                    .ok_or_else(|| JournalError::PeriodOverflow {
                        member: member.to_string(),
                        period,
                        total: earned,
                        amount,
                    })?;
            let Some(entries) = mint_to(journal, member, amount)? else {
                return Ok(vec![unrewarded(NoReward::SupplyLimit)]);
            };
            Ok(vec![event(
                EventKind::RewardMinted {
                    record_id: *record_id,
                    member: member.clone(),
                    payload_hash: *payload_hash,
                    period,
                    amount,
                    period_total,
                },
                entries,
            )])
        }
        Input::Read {
            read_id,
            record_id,
            reader,
            owner,
            price,
        } => {
            if journal.read_settled(read_id) {
                return Ok(Vec::new());
            }
            let paid = |amount, entries| {
                event(
                    EventKind::ReadPaid {
                        read_id: *read_id,
                        record_id: *record_id,
                        reader: reader.clone(),
                        owner: owner.clone(),
                        amount,
                    },
                    entries,
                )
            };
            if reader == owner || *price == 0 {
                return Ok(vec![paid(0, Vec::new())]);
            }
            let balance = member_balance(journal, reader)?.unsigned_abs();
            if balance < *price {
                return Ok(vec![event(
                    EventKind::ReadPaymentFailed {
                        read_id: *read_id,
                        record_id: *record_id,
                        reader: reader.clone(),
                        owner: owner.clone(),
                        price: *price,
                        balance,
                        shortfall: price - balance,
                    },
                    Vec::new(),
                )]);
            }
            let from = Account::member(reader);
            let to = Account::member(owner);
            let entries = vec![
                Entry {
                    balance_after: moved(&from, journal.balance(&from), Side::Debit, *price)?,
                    account: from,
                    side: Side::Debit,
                    amount: *price,
                },
                Entry {
                    balance_after: moved(
                        &to,
                        member_balance(journal, owner)?,
                        Side::Credit,
                        *price,
                    )?,
                    account: to,
                    side: Side::Credit,
                    amount: *price,
                },
            ];
            Ok(vec![paid(*price, entries)])
        }
        Input::Grant {
            proposal_id,
            member,
            amount,
        } => {
            if journal.grant_handled(proposal_id) {
                return Ok(Vec::new());
            }
            let issued = |entries| {
                event(
                    EventKind::GrantIssued {
                        proposal_id: proposal_id.clone(),
                        member: member.clone(),
                        amount: *amount,
                    },
                    entries,
                )
            };
            if *amount == 0 {
                return Ok(vec![issued(Vec::new())]);
            }
            match mint_to(journal, member, *amount)? {
                Some(entries) => Ok(vec![issued(entries)]),
                None => Ok(vec![event(
                    EventKind::GrantWithheld {
                        proposal_id: proposal_id.clone(),
                        member: member.clone(),
                        amount: *amount,
                        reason: NoReward::SupplyLimit,
                    },
                    Vec::new(),
                )]),
            }
        }
    }
}
