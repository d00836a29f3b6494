//! Property tests over random sequences of uploads, reads, grants, policy changes and
//! redelivered inputs. On a failure proptest prints the smallest failing sequence of
//! operations; the sequence alone replays it (the inputs are derived from it, nothing else).
//!
//! After every step: each event balances; all balances sum to zero; no member is below
//! zero and the mint is never above; each read is settled at most once; a window of the
//! journal holding only what the input needs decides the same events; rewards stay under
//! the cap in force; the supply is what was minted. At the end: replaying the same inputs
//! gives the same journal byte for byte and the same state hash, and leaving out the
//! redeliveries changes nothing.

use std::collections::BTreeMap;

use citychain_governance::TokenPolicy;
use citychain_kernel::{Hash32, MemberId, TxId};
use citychain_tokens_domain::{
    Account, ChainRef, EventKind, Input, Journal, Side, TokenEvent, decide,
};
use proptest::prelude::*;

const MEMBERS: [&str; 4] = ["dept.tax", "dept.police", "bank.city", "hospital.first"];

#[derive(Debug, Clone)]
enum Op {
    /// `member` uploads a payload numbered `payload` (few numbers, so duplicates happen).
    Upload {
        member: usize,
        payload: u8,
        reward: u64,
    },
    /// `reader` reads the `record`-th record so far (modulo), at `price`.
    Read {
        reader: usize,
        record: usize,
        price: u64,
    },
    /// Governance grants `amount` to `member`.
    Grant { member: usize, amount: u64 },
    /// The `back`-th input before this one (modulo) is delivered again.
    Redeliver { back: usize },
    /// Governance changes the token policy.
    Policy { cap: Option<u64>, period: u64 },
    /// The next block starts, `skip` heights later.
    NextBlock { skip: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..MEMBERS.len(), 0u8..6, 0u64..40)
            .prop_map(|(member, payload, reward)| Op::Upload { member, payload, reward }),
        5 => (0..MEMBERS.len(), any::<usize>(), 0u64..60)
            .prop_map(|(reader, record, price)| Op::Read { reader, record, price }),
        2 => (0..MEMBERS.len(), 0u64..80).prop_map(|(member, amount)| Op::Grant { member, amount }),
        2 => any::<usize>().prop_map(|back| Op::Redeliver { back }),
        1 => (proptest::option::of(1u64..100), 1u64..20)
            .prop_map(|(cap, period)| Op::Policy { cap, period }),
        2 => (1u64..15).prop_map(|skip| Op::NextBlock { skip }),
    ]
}

fn member(i: usize) -> MemberId {
    MemberId::new(MEMBERS[i]).unwrap()
}

fn tx_id(n: u64) -> TxId {
    TxId(Hash32(*blake3::hash(&n.to_be_bytes()).as_bytes()))
}

/// Turns operations into the (input, place) sequence a chain would produce, redeliveries
/// included, the way the service sees them.
fn deliveries(ops: &[Op]) -> Vec<(Input, ChainRef, bool)> {
    let mut out: Vec<(Input, ChainRef, bool)> = Vec::new();
    let mut policy = TokenPolicy {
        reward_cap_per_period: Some(50),
        period_heights: 5,
    };
    let mut height = 1u64;
    let mut index = 0u32;
    let mut counter = 0u64;
    let mut records: Vec<(TxId, usize)> = Vec::new();
    let mut proposal = 0u64;
    for op in ops {
        counter += 1;
        let here = ChainRef::tx(height, index, tx_id(counter));
        match op {
            Op::Upload {
                member: m,
                payload,
                reward,
            } => {
                records.push((tx_id(counter), *m));
                out.push((
                    Input::Upload {
                        record_id: tx_id(counter),
                        member: member(*m),
                        payload_hash: Hash32([*payload; 32]),
                        reward: *reward,
                        policy,
                    },
                    here,
                    false,
                ));
                index += 1;
            }
            Op::Read {
                reader,
                record,
                price,
            } => {
                if records.is_empty() {
                    continue;
                }
                let (record_id, owner) = records[record % records.len()];
                // As the licence rules price it: free for the owner.
                let price = if owner == *reader { 0 } else { *price };
                out.push((
                    Input::Read {
                        read_id: tx_id(counter),
                        record_id,
                        reader: member(*reader),
                        owner: member(owner),
                        price,
                    },
                    here,
                    false,
                ));
                index += 1;
            }
            Op::Grant { member: m, amount } => {
                proposal += 1;
                out.push((
                    Input::Grant {
                        proposal_id: format!("grant-{proposal}"),
                        member: member(*m),
                        amount: *amount,
                    },
                    ChainRef::block_end(height, index),
                    false,
                ));
            }
            Op::Redeliver { back } => {
                if out.is_empty() {
                    continue;
                }
                let (input, source, _) = out[out.len() - 1 - back % out.len()].clone();
                out.push((input, source, true));
            }
            Op::Policy { cap, period } => {
                policy = TokenPolicy {
                    reward_cap_per_period: *cap,
                    period_heights: *period,
                };
            }
            Op::NextBlock { skip } => {
                height += skip;
                index = 0;
            }
        }
    }
    out
}

fn replay(deliveries: &[(Input, ChainRef, bool)], with_redeliveries: bool) -> Journal {
    let mut journal = Journal::new();
    for (input, source, redelivered) in deliveries {
        if *redelivered && !with_redeliveries {
            continue;
        }
        journal.apply(input, source).unwrap();
    }
    journal
}

fn check_event(before: &Journal, event: &TokenEvent) -> Result<(), TestCaseError> {
    prop_assert!(event.is_balanced(), "unbalanced {event:?}");
    prop_assert!(event.entries.is_empty() || event.entries.len() == 2);
    for entry in &event.entries {
        prop_assert!(entry.amount > 0, "an empty entry {entry:?}");
        let old = i128::from(before.balance(&entry.account));
        let expected = match entry.side {
            Side::Credit => old + i128::from(entry.amount),
            Side::Debit => old - i128::from(entry.amount),
        };
        prop_assert_eq!(i128::from(entry.balance_after), expected);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_journal_keeps_its_invariants(ops in prop::collection::vec(op(), 1..120)) {
        let deliveries = deliveries(&ops);
        let mut journal = Journal::new();
        let mut settlements: BTreeMap<TxId, usize> = BTreeMap::new();
        let mut minted: u128 = 0;
        for (input, source, _) in &deliveries {
            let window = journal.window(&input.needs(source));
            let events = decide(&journal, input, source).unwrap();
            prop_assert_eq!(&decide(&window, input, source).unwrap(), &events);
            prop_assert!(events.len() <= 1);
            for event in &events {
                check_event(&journal, event)?;
                match &event.kind {
                    EventKind::ReadPaid { read_id, .. }
                    | EventKind::ReadPaymentFailed { read_id, .. } => {
                        *settlements.entry(*read_id).or_default() += 1;
                    }
                    EventKind::RewardMinted { amount, period_total, .. } => {
                        minted += u128::from(*amount);
                        if let Input::Upload { policy, reward, .. } = input {
                            prop_assert!(amount <= reward);
                            if let Some(cap) = policy.reward_cap_per_period {
                                prop_assert!(*period_total <= cap, "{period_total} over cap {cap}");
                            }
                        }
                    }
                    EventKind::GrantIssued { amount, .. } => minted += u128::from(*amount),
                    EventKind::UploadUnrewarded { .. } | EventKind::GrantWithheld { .. } => {}
                }
                journal.evolve(event);
            }
            let mut sum: i128 = 0;
            for (account, balance) in journal.balances() {
                sum += i128::from(balance);
                if account.is_mint() {
                    prop_assert!(balance <= 0, "mint {balance}");
                } else {
                    prop_assert!(balance >= 0, "{account} is at {balance}");
                }
            }
            prop_assert_eq!(sum, 0);
            prop_assert_eq!(u128::from(journal.supply()), minted);
        }
        prop_assert!(settlements.values().all(|n| *n == 1), "{settlements:?}");

        let again = replay(&deliveries, true);
        prop_assert_eq!(again.encode(), journal.encode());
        prop_assert_eq!(again.state_hash(), journal.state_hash());
        let once = replay(&deliveries, false);
        prop_assert_eq!(once.encode(), journal.encode());
        prop_assert_eq!(once.state_hash(), journal.state_hash());
    }

    #[test]
    fn different_histories_hash_differently(ops in prop::collection::vec(op(), 1..60)) {
        let deliveries = deliveries(&ops);
        let full = replay(&deliveries, true);
        let originals: Vec<_> = deliveries.iter().filter(|d| !d.2).cloned().collect();
        if let Some((last, rest)) = originals.split_last() {
            let mut shorter = Journal::new();
            let mut changed = false;
            for (input, source, _) in rest {
                shorter.apply(input, source).unwrap();
            }
            let before = shorter.state_hash();
            changed |= !shorter.apply(&last.0, &last.1).unwrap().is_empty();
            prop_assert_eq!(shorter.state_hash(), full.state_hash());
            prop_assert_eq!(before != full.state_hash(), changed);
        }
        prop_assert_eq!(full.balance(&Account::Mint), -i64::try_from(full.supply()).unwrap());
    }
}
