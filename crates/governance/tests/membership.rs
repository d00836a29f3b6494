//! Admitting, suspending and reinstating members, changing roles, and the approval rules.

mod common;

use citychain_governance::{
    Action, ActionError, Decision, Event, Refusal, Rejection, Signer, TxOutcome,
};
use citychain_kernel::{Height, Role};
use common::*;

#[test]
fn member_added_with_three_of_four_approvals_transacts_from_the_next_height() {
    // Given a four-department network and a new hospital's keys.
    let mut net = Net::new(1);
    let keys = fresh_keys(200);
    let hospital = new_member("hospital.east", Role::Hospital, &keys);

    // When three departments propose and approve adding it in block 1,
    let outcome = net.pass("add-east", Action::AddMember(hospital));

    // then it passes in block 1 with effect height 2, and is applied at the end of block 1.
    assert!(
        outcome.txs.iter().all(TxOutcome::is_accepted),
        "{outcome:?}"
    );
    assert!(outcome.events().any(|e| matches!(e,
        Event::Passed { id, effect_height } if id == &pid("add-east") && *effect_height == Height(2))));
    assert!(
        matches!(outcome.closing.as_slice(), [Event::Applied { id, effect_height, .. }] if id == &pid("add-east") && *effect_height == Height(2))
    );

    // The new member's key was not a member's key while block 1 was checked: a transaction
    // of it inside block 1 is refused.
    let mut early = Net::new(1);
    let hospital = new_member("hospital.east", Role::Hospital, &keys);
    let mut txs = vec![
        early.propose(DEPTS[0], "add-east", Action::AddMember(hospital)),
        early.approve(DEPTS[1], "add-east"),
        early.approve(DEPTS[2], "add-east"),
    ];
    txs.push(early.tx(&keys.signing, plain_body()));
    let outcome = early.block(txs);
    assert!(
        matches!(
            &outcome.txs[3],
            TxOutcome::Refused(Refusal::NotAMember { .. })
        ),
        "{:?}",
        outcome.txs[3]
    );

    // And from block 2 on it transacts as a hospital.
    let tx = net.tx(&keys.signing, plain_body());
    let outcome = net.block(vec![tx]);
    assert_eq!(
        outcome.txs[0],
        TxOutcome::Accepted {
            signer: Signer::Member {
                id: mid("hospital.east"),
                role: Role::Hospital
            },
            events: vec![]
        }
    );
    assert_eq!(
        net.registry.key(&keys.signing.public_key()).unwrap().since,
        Height(2)
    );
}

#[test]
fn member_with_two_of_four_approvals_cannot_transact() {
    let mut net = Net::new(2);
    let keys = fresh_keys(201);
    let txs = vec![
        net.propose(
            DEPTS[0],
            "add",
            Action::AddMember(new_member("bank.west", Role::Bank, &keys)),
        ),
        net.approve(DEPTS[1], "add"),
    ];
    let outcome = net.block(txs);
    assert!(outcome.closing.is_empty());
    assert!(net.registry.proposal(&pid("add")).is_some());
    for _ in 0..3 {
        let tx = net.tx(&keys.signing, plain_body());
        let outcome = net.block(vec![tx]);
        assert!(matches!(
            outcome.txs[0],
            TxOutcome::Refused(Refusal::NotAMember { .. })
        ));
    }
    assert!(net.registry.member(&mid("bank.west")).is_none());
}

#[test]
fn approval_rules_table() {
    let mut net = Net::new(3);
    let keys = fresh_keys(202);
    let add = Action::AddMember(new_member("insurer.x", Role::Insurer, &keys));
    let first = net.propose(DEPTS[0], "p", add.clone());
    net.block(vec![first]);

    type Check = fn(&Rejection) -> bool;
    let cases: Vec<(&str, citychain_kernel::SignedTx, Check)> = vec![
        (
            "same id again",
            net.propose(DEPTS[1], "p", add.clone()),
            |r| matches!(r, Rejection::DuplicateProposal { state, .. } if state == "pending"),
        ),
        (
            "unknown proposal",
            net.approve(DEPTS[1], "nope"),
            |r| matches!(r, Rejection::UnknownProposal { id } if id == "nope"),
        ),
        (
            "proposer approves again",
            net.approve(DEPTS[0], "p"),
            |r| matches!(r, Rejection::AlreadyApproved { member, .. } if member.as_str() == DEPTS[0]),
        ),
        (
            "a bank proposes",
            net.propose(BANK, "q", Action::SuspendMember(mid(DEPTS[3]))),
            |r| {
                matches!(
                    r,
                    Rejection::NotADepartment {
                        role: Role::Bank,
                        ..
                    }
                )
            },
        ),
        ("a bank approves", net.approve(BANK, "p"), |r| {
            matches!(r, Rejection::NotADepartment { .. })
        }),
    ];
    for (name, tx, expected) in cases {
        let outcome = net.block(vec![tx]);
        match &outcome.txs[0] {
            TxOutcome::Rejected { reason, .. } => assert!(expected(reason), "{name}: {reason}"),
            other => panic!("{name}: expected a rejection, got {other:?}"),
        }
    }

    // Approving twice within one block: the second is rejected.
    let a = net.approve(DEPTS[1], "p");
    let b = net.approve(DEPTS[1], "p");
    let outcome = net.block(vec![a, b]);
    assert!(outcome.txs[0].is_accepted());
    assert!(matches!(
        &outcome.txs[1],
        TxOutcome::Rejected {
            reason: Rejection::AlreadyApproved { .. },
            ..
        }
    ));

    // The third approval passes it; a fourth in the same block finds it decided.
    let c = net.approve(DEPTS[2], "p");
    let d = net.approve(DEPTS[3], "p");
    let outcome = net.block(vec![c, d]);
    assert!(outcome.txs[0].is_accepted());
    match &outcome.txs[1] {
        TxOutcome::Rejected {
            reason: Rejection::AlreadyDecided { state, .. },
            ..
        } => {
            assert!(state.contains("passed"), "{state}")
        }
        other => panic!("{other:?}"),
    }
    // Later approvals and reuse of the id name the decision.
    let e = net.approve(DEPTS[3], "p");
    let f = net.propose(DEPTS[3], "p", Action::SuspendMember(mid(BANK)));
    let outcome = net.block(vec![e, f]);
    let reasons: Vec<String> = outcome
        .txs
        .iter()
        .map(|t| match t {
            TxOutcome::Rejected { reason, .. } => reason.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        reasons.iter().all(|r| r.contains("applied from height")),
        "{reasons:?}"
    );
}

#[test]
fn citizens_may_not_govern() {
    let mut net = Net::new(4);
    let citizen = fresh_keys(203);
    let body = citychain_governance::propose_body(&pid("c"), &Action::SuspendMember(mid(BANK)));
    let tx = net.tx(&citizen.signing, body);
    let outcome = net.block(vec![tx]);
    match &outcome.txs[0] {
        TxOutcome::Refused(r @ Refusal::NotAMember { type_url, .. }) => {
            assert_eq!(type_url, "citychain.governance.v1.Propose");
            assert!(r.to_string().contains("not a member"), "{r}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn suspended_member_is_refused_until_reinstated() {
    let mut net = Net::new(5);
    net.pass("s", Action::SuspendMember(mid(BANK)));
    let bank = net.key(BANK);
    let tx = net.tx(&bank, plain_body());
    let outcome = net.block(vec![tx]);
    match &outcome.txs[0] {
        TxOutcome::Refused(r @ Refusal::MemberSuspended { member, .. }) => {
            assert_eq!(member.as_str(), BANK);
            assert!(r.to_string().contains("suspended"), "{r}");
        }
        other => panic!("{other:?}"),
    }
    // Suspending twice is invalid when proposed.
    let tx = net.propose(DEPTS[0], "s2", Action::SuspendMember(mid(BANK)));
    let outcome = net.block(vec![tx]);
    assert!(matches!(
        &outcome.txs[0],
        TxOutcome::Rejected {
            reason: Rejection::InvalidAction {
                source: ActionError::AlreadySuspended { .. },
                ..
            },
            ..
        }
    ));

    net.pass("r", Action::ReinstateMember(mid(BANK)));
    let tx = net.tx(&bank, plain_body());
    assert!(net.block(vec![tx]).txs[0].is_accepted());
}

#[test]
fn proposal_invalid_at_effect_time_is_recorded_as_failed() {
    // Two proposals adding the same id are both valid when proposed; the one passing second
    // fails at its effect height.
    let mut net = Net::new(6);
    let a = fresh_keys(204);
    let b = fresh_keys(205);
    let txs = vec![
        net.propose(
            DEPTS[0],
            "a",
            Action::AddMember(new_member("bank.n", Role::Bank, &a)),
        ),
        net.propose(
            DEPTS[0],
            "b",
            Action::AddMember(new_member("bank.n", Role::Bank, &b)),
        ),
        net.approve(DEPTS[1], "b"),
        net.approve(DEPTS[2], "b"),
        net.approve(DEPTS[1], "a"),
        net.approve(DEPTS[2], "a"),
    ];
    let outcome = net.block(txs);
    assert!(outcome.txs.iter().all(TxOutcome::is_accepted));
    assert_eq!(outcome.closing.len(), 2);
    assert!(
        matches!(&outcome.closing[0], Event::Applied { id, effect_height, .. } if id == &pid("b") && *effect_height == Height(2))
    );
    match &outcome.closing[1] {
        Event::Failed { id, reason, .. } => {
            assert_eq!(id, &pid("a"));
            assert_eq!(
                reason,
                &ActionError::MemberExists {
                    member: mid("bank.n")
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(net.registry.decision(&pid("a")), Some(Decision::Failed { reason, .. }) if reason.contains("already exists"))
    );
    assert_eq!(
        net.registry.member(&mid("bank.n")).unwrap().signing_key,
        Some(b.signing.public_key())
    );
}

#[test]
fn add_member_refusals() {
    let mut net = Net::new(7);
    let bank_key = net.key(BANK).public_key();
    let fresh = fresh_keys(206);
    let mut reused = new_member("bank.copy", Role::Bank, &fresh);
    reused.signing_key = bank_key;
    let cases = [
        (
            Action::AddMember(new_member(BANK, Role::Bank, &fresh)),
            "already exists",
        ),
        (
            Action::AddMember(reused),
            "was already used by member bank.city-commercial",
        ),
    ];
    for (i, (action, expected)) in cases.into_iter().enumerate() {
        let tx = net.propose(DEPTS[0], &format!("x{i}"), action);
        match &net.block(vec![tx]).txs[0] {
            TxOutcome::Rejected { reason, .. } => {
                assert!(reason.to_string().contains(expected), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn changed_role_takes_effect_at_the_next_height() {
    let mut net = Net::new(8);
    let outcome = net.pass(
        "promote",
        Action::ChangeRole {
            member: mid(BANK),
            role: Role::Department,
        },
    );
    assert!(
        outcome
            .closing
            .iter()
            .all(|e| matches!(e, Event::Applied { .. }))
    );
    assert_eq!(net.registry.active_departments(), 5);
    // Now a department, the former bank may propose.
    let tx = net.propose(
        BANK,
        "by-bank",
        Action::SuspendMember(mid("auditor.city-audit")),
    );
    assert!(net.block(vec![tx]).txs[0].is_accepted());
    // With five departments three approvals do not pass (9 < 10); the fourth does.
    let a = net.approve(DEPTS[0], "by-bank");
    let b = net.approve(DEPTS[1], "by-bank");
    let outcome = net.block(vec![a, b]);
    assert!(outcome.closing.is_empty());
    let tx = net.approve(DEPTS[2], "by-bank");
    let outcome = net.block(vec![tx]);
    assert_eq!(outcome.closing.len(), 1);
    // A validator must stay a department.
    let tx = net.propose(
        DEPTS[0],
        "demote",
        Action::ChangeRole {
            member: mid(DEPTS[3]),
            role: Role::Bank,
        },
    );
    match &net.block(vec![tx]).txs[0] {
        TxOutcome::Rejected { reason, .. } => {
            assert!(reason.to_string().contains("is a validator"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
