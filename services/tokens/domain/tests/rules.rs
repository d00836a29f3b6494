//! Each rule of the token journal as a table: given a journal, when an input is decided,
//! then these events, entries and balances. Every case also checks that a window of the
//! journal holding only what the input needs decides the same events.

use citychain_governance::TokenPolicy;
use citychain_kernel::{Hash32, MemberId, TxId};
use citychain_tokens_domain::{
    Account, ChainRef, EventKind, Input, Journal, JournalError, MAX_SUPPLY, NoReward, Side,
    TokenEvent, decide,
};

fn id(n: u8) -> TxId {
    TxId(Hash32([n; 32]))
}

fn hash(n: u8) -> Hash32 {
    Hash32([n ^ 0xa5; 32])
}

fn member(name: &str) -> MemberId {
    MemberId::new(name).unwrap()
}

fn at(height: u64, index: u32, tx: u8) -> ChainRef {
    ChainRef::tx(height, index, id(tx))
}

fn policy(cap: Option<u64>, period: u64) -> TokenPolicy {
    TokenPolicy {
        reward_cap_per_period: cap,
        period_heights: period,
    }
}

fn upload(record: u8, who: &str, payload: u8, reward: u64, policy: TokenPolicy) -> Input {
    Input::Upload {
        record_id: id(record),
        member: member(who),
        payload_hash: hash(payload),
        reward,
        policy,
    }
}

fn read(read_id: u8, record: u8, reader: &str, owner: &str, price: u64) -> Input {
    Input::Read {
        read_id: id(read_id),
        record_id: id(record),
        reader: member(reader),
        owner: member(owner),
        price,
    }
}

fn grant(proposal: &str, who: &str, amount: u64) -> Input {
    Input::Grant {
        proposal_id: proposal.into(),
        member: member(who),
        amount,
    }
}

/// Decides against the journal and against its window, checks they agree and that the
/// events balance, applies them, and returns them.
fn step(journal: &mut Journal, input: &Input, source: &ChainRef) -> Vec<TokenEvent> {
    let window = journal.window(&input.needs(source));
    let events = decide(journal, input, source).unwrap();
    assert_eq!(decide(&window, input, source).unwrap(), events, "window");
    for event in &events {
        assert!(event.is_balanced(), "{event:?}");
        journal.evolve(event);
    }
    events
}

fn balance(journal: &Journal, who: &str) -> i64 {
    journal.balance(&Account::member(&member(who)))
}

fn kinds(events: &[TokenEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind.clone()).collect()
}

const TAX: &str = "dept.tax";
const POLICE: &str = "dept.police";
const BANK: &str = "bank.city";

#[test]
fn an_upload_mints_its_reward_to_the_department() {
    let mut journal = Journal::new();
    let events = step(
        &mut journal,
        &upload(1, TAX, 1, 10, policy(None, 100)),
        &at(5, 0, 1),
    );
    assert_eq!(
        kinds(&events),
        vec![EventKind::RewardMinted {
            record_id: id(1),
            member: member(TAX),
            payload_hash: hash(1),
            period: 0,
            amount: 10,
            period_total: 10,
        }]
    );
    let entries = &events[0].entries;
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (entries[0].account.clone(), entries[0].side),
        (Account::Mint, Side::Debit)
    );
    assert_eq!(entries[1].side, Side::Credit);
    assert_eq!(balance(&journal, TAX), 10);
    assert_eq!(journal.balance(&Account::Mint), -10);
    assert_eq!(journal.supply(), 10);
}

#[test]
fn the_same_payload_earns_once_per_department() {
    let mut journal = Journal::new();
    let p = policy(None, 100);
    step(&mut journal, &upload(1, TAX, 7, 10, p), &at(1, 0, 1));
    // The same record seen again (a redelivery) decides nothing at all.
    assert!(step(&mut journal, &upload(1, TAX, 7, 10, p), &at(1, 0, 1)).is_empty());
    // Another record with the same payload earns nothing; the hash is already remembered,
    // so there is nothing to record either.
    assert!(step(&mut journal, &upload(2, TAX, 7, 10, p), &at(2, 0, 2)).is_empty());
    // Another department uploading the same bytes earns its own reward.
    step(&mut journal, &upload(3, POLICE, 7, 10, p), &at(2, 1, 3));
    assert_eq!(
        (balance(&journal, TAX), balance(&journal, POLICE)),
        (10, 10)
    );
}

#[test]
fn a_payload_first_seen_without_reward_still_counts_as_uploaded() {
    let mut journal = Journal::new();
    step(
        &mut journal,
        &upload(1, TAX, 7, 0, policy(None, 100)),
        &at(1, 0, 1),
    );
    let later = step(
        &mut journal,
        &upload(2, TAX, 7, 10, policy(None, 100)),
        &at(2, 0, 2),
    );
    assert!(later.is_empty());
    assert_eq!(journal.first_upload(&member(TAX), &hash(7)), Some(id(1)));
    assert_eq!(balance(&journal, TAX), 0);
}

#[test]
fn rewards_stop_at_the_periods_cap_and_start_again_next_period() {
    let mut journal = Journal::new();
    let p = policy(Some(25), 10);
    let minted = |events: &[TokenEvent]| match &events[0].kind {
        EventKind::RewardMinted { amount, .. } => *amount,
        EventKind::UploadUnrewarded { reason, .. } => {
            assert_eq!(*reason, NoReward::CapReached);
            0
        }
        other => panic!("{other:?}"),
    };
    // Heights 1..=10 are period 0, 11..=20 period 1.
    let table = [
        (1, 1, 10),  // 10 of 25
        (2, 2, 10),  // 20 of 25
        (3, 10, 5),  // cut to what is left under the cap
        (4, 10, 0),  // the cap is reached
        (5, 11, 10), // a new period
    ];
    for (n, height, expected) in table {
        let events = step(&mut journal, &upload(n, TAX, n, 10, p), &at(height, 0, n));
        assert_eq!(minted(&events), expected, "upload {n} at height {height}");
    }
    assert_eq!(journal.period_rewards(&member(TAX), 0), 25);
    assert_eq!(journal.period_rewards(&member(TAX), 1), 10);
    assert_eq!(balance(&journal, TAX), 35);
    // The cap is per department.
    let other = step(&mut journal, &upload(6, POLICE, 6, 10, p), &at(10, 1, 6));
    assert_eq!(minted(&other), 10);
    // Lowered below what was earned: nothing, and no negative amount.
    let lowered = step(
        &mut journal,
        &upload(7, TAX, 7, 10, policy(Some(5), 10)),
        &at(12, 0, 7),
    );
    assert_eq!(minted(&lowered), 0);
}

#[test]
fn a_type_without_reward_mints_nothing() {
    let mut journal = Journal::new();
    let events = step(
        &mut journal,
        &upload(1, TAX, 1, 0, policy(None, 100)),
        &at(1, 0, 1),
    );
    assert!(matches!(
        kinds(&events)[..],
        [EventKind::UploadUnrewarded {
            reason: NoReward::NoRate,
            ..
        }]
    ));
    assert_eq!(journal.supply(), 0);
}

#[test]
fn a_read_moves_the_price_from_reader_to_owner_once() {
    let mut journal = Journal::new();
    step(
        &mut journal,
        &grant("g1", BANK, 50),
        &ChainRef::block_end(1, 0),
    );
    let events = step(&mut journal, &read(9, 1, BANK, TAX, 20), &at(2, 0, 9));
    assert_eq!(
        kinds(&events),
        vec![EventKind::ReadPaid {
            read_id: id(9),
            record_id: id(1),
            reader: member(BANK),
            owner: member(TAX),
            amount: 20,
        }]
    );
    assert_eq!(events[0].entries[0].balance_after, 30);
    assert_eq!(events[0].entries[1].balance_after, 20);
    // Seen again: charged at most once.
    assert!(step(&mut journal, &read(9, 1, BANK, TAX, 20), &at(2, 0, 9)).is_empty());
    assert_eq!((balance(&journal, BANK), balance(&journal, TAX)), (30, 20));
    assert!(journal.read_settled(&id(9)));
}

#[test]
fn a_read_of_ones_own_record_or_a_free_type_is_paid_with_nothing() {
    let mut journal = Journal::new();
    for (n, input) in [
        (1, read(1, 1, TAX, TAX, 0)),
        // Whatever the price says, the owner reading its own record pays nothing.
        (2, read(2, 1, TAX, TAX, 30)),
        (3, read(3, 1, BANK, TAX, 0)),
    ] {
        let events = step(&mut journal, &input, &at(1, n, n as u8));
        assert!(
            matches!(kinds(&events)[..], [EventKind::ReadPaid { amount: 0, .. }]),
            "{events:?}"
        );
        assert!(events[0].entries.is_empty());
    }
    assert_eq!(journal.supply(), 0);
}

#[test]
fn a_reader_short_of_the_price_pays_nothing_and_learns_the_shortfall() {
    let mut journal = Journal::new();
    step(
        &mut journal,
        &grant("g1", BANK, 3),
        &ChainRef::block_end(1, 0),
    );
    let events = step(&mut journal, &read(9, 1, BANK, TAX, 10), &at(2, 0, 9));
    assert_eq!(
        kinds(&events),
        vec![EventKind::ReadPaymentFailed {
            read_id: id(9),
            record_id: id(1),
            reader: member(BANK),
            owner: member(TAX),
            price: 10,
            balance: 3,
            shortfall: 7,
        }]
    );
    assert!(events[0].entries.is_empty());
    assert_eq!((balance(&journal, BANK), balance(&journal, TAX)), (3, 0));
    // The read is settled: more tokens later do not make the same read charge.
    step(
        &mut journal,
        &grant("g2", BANK, 100),
        &ChainRef::block_end(3, 0),
    );
    assert!(step(&mut journal, &read(9, 1, BANK, TAX, 10), &at(2, 0, 9)).is_empty());
    assert_eq!(balance(&journal, BANK), 103);
    // A reader with exactly the price pays it.
    let mut exact = Journal::new();
    step(
        &mut exact,
        &grant("g", BANK, 10),
        &ChainRef::block_end(1, 0),
    );
    let paid = step(&mut exact, &read(1, 1, BANK, TAX, 10), &at(2, 0, 1));
    assert!(matches!(
        kinds(&paid)[..],
        [EventKind::ReadPaid { amount: 10, .. }]
    ));
    assert_eq!(balance(&exact, BANK), 0);
}

#[test]
fn a_grant_mints_once_per_proposal() {
    let mut journal = Journal::new();
    let end = ChainRef::block_end(4, 3);
    let events = step(&mut journal, &grant("fund-police", POLICE, 500), &end);
    assert_eq!(events[0].source, end);
    assert_eq!(events[0].source.tx_id, None);
    assert!(matches!(
        kinds(&events)[..],
        [EventKind::GrantIssued { amount: 500, .. }]
    ));
    assert!(step(&mut journal, &grant("fund-police", POLICE, 500), &end).is_empty());
    assert_eq!(balance(&journal, POLICE), 500);
    let zero = step(&mut journal, &grant("nothing", POLICE, 0), &end);
    assert!(matches!(
        kinds(&zero)[..],
        [EventKind::GrantIssued { amount: 0, .. }]
    ));
    assert!(zero[0].entries.is_empty());
}

#[test]
fn nothing_is_minted_past_the_largest_supply() {
    let mut journal = Journal::new();
    step(
        &mut journal,
        &grant("all", TAX, MAX_SUPPLY),
        &ChainRef::block_end(1, 0),
    );
    assert_eq!(journal.balance(&Account::Mint), -i64::MAX);
    let more = step(
        &mut journal,
        &grant("more", TAX, 1),
        &ChainRef::block_end(2, 0),
    );
    assert!(matches!(
        kinds(&more)[..],
        [EventKind::GrantWithheld {
            reason: NoReward::SupplyLimit,
            ..
        }]
    ));
    let reward = step(
        &mut journal,
        &upload(1, POLICE, 1, 1, policy(None, 10)),
        &at(3, 0, 1),
    );
    assert!(matches!(
        kinds(&reward)[..],
        [EventKind::UploadUnrewarded {
            reason: NoReward::SupplyLimit,
            ..
        }]
    ));
    // The largest amount a u64 holds is withheld on an empty journal too, never wrapped.
    let mut empty = Journal::new();
    let huge = step(
        &mut empty,
        &grant("huge", TAX, u64::MAX),
        &ChainRef::block_end(1, 0),
    );
    assert!(matches!(
        kinds(&huge)[..],
        [EventKind::GrantWithheld {
            amount: u64::MAX,
            ..
        }]
    ));
    assert_eq!(empty.supply(), 0);
    let reward = step(
        &mut empty,
        &upload(9, TAX, 9, u64::MAX, policy(None, 10)),
        &at(2, 0, 9),
    );
    assert!(matches!(
        kinds(&reward)[..],
        [EventKind::UploadUnrewarded {
            reason: NoReward::SupplyLimit,
            ..
        }]
    ));
    // Moving the whole supply between members still works, exactly.
    let all = step(
        &mut journal,
        &read(2, 1, TAX, POLICE, MAX_SUPPLY),
        &at(3, 1, 2),
    );
    assert!(matches!(kinds(&all)[..], [EventKind::ReadPaid { .. }]));
    assert_eq!(balance(&journal, POLICE), i64::MAX);
    assert_eq!(balance(&journal, TAX), 0);
}

#[test]
fn an_inconsistent_journal_is_reported_not_guessed() {
    let mut journal = Journal::new();
    journal.set_balance(Account::member(&member(BANK)), -5);
    assert!(matches!(
        decide(&journal, &read(1, 1, BANK, TAX, 10), &at(1, 0, 1)),
        Err(JournalError::NegativeBalance { balance: -5, .. })
    ));
    let mut journal = Journal::new();
    journal.set_balance(Account::Mint, 5);
    assert!(matches!(
        decide(&journal, &grant("g", TAX, 1), &ChainRef::block_end(1, 0)),
        Err(JournalError::PositiveMint { balance: 5 })
    ));
    let mut journal = Journal::new();
    journal.set_balance(Account::member(&member(TAX)), i64::MAX);
    assert!(decide(&journal, &read(1, 1, BANK, TAX, 0), &at(1, 0, 1)).is_ok());
    journal.set_balance(Account::member(&member(BANK)), 1);
    assert!(matches!(
        decide(&journal, &read(2, 1, BANK, TAX, 1), &at(1, 0, 2)),
        Err(JournalError::Overflow { .. })
    ));
}

#[test]
fn the_state_hash_follows_the_history_and_the_balances() {
    let mut a = Journal::new();
    let mut b = Journal::new();
    assert_eq!(a.state_hash(), b.state_hash());
    let inputs = [
        (grant("g", BANK, 40), ChainRef::block_end(1, 0)),
        (upload(1, TAX, 1, 10, policy(None, 10)), at(2, 0, 1)),
        (read(2, 1, BANK, TAX, 15), at(3, 0, 2)),
    ];
    let mut seen = vec![a.state_hash()];
    for (input, source) in &inputs {
        step(&mut a, input, source);
        step(&mut b, input, source);
        assert_eq!(a.state_hash(), b.state_hash());
        assert_eq!(a.encode(), b.encode());
        assert!(
            !seen.contains(&a.state_hash()),
            "each event changes the hash"
        );
        seen.push(a.state_hash());
    }
    // The same balances with another history hash differently.
    let mut other = Journal::new();
    step(
        &mut other,
        &grant("g", BANK, 25),
        &ChainRef::block_end(1, 0),
    );
    step(&mut other, &grant("h", TAX, 25), &ChainRef::block_end(1, 0));
    step(&mut other, &read(3, 1, BANK, TAX, 0), &at(2, 0, 3));
    assert_eq!(
        other.balances().collect::<Vec<_>>(),
        a.balances().collect::<Vec<_>>()
    );
    assert_ne!(other.state_hash(), a.state_hash());
}
