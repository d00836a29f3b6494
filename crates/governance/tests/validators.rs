//! Changing the validator set, and the quorum floor that suspensions and revocations respect.

mod common;

use citychain_governance::{Action, ActionError, Rejection, TxOutcome};
use citychain_kernel::{Height, MemberId, Role};
use common::*;

fn rejection_of(net: &mut Net, id: &str, action: Action) -> ActionError {
    let tx = net.propose(DEPTS[0], id, action);
    match net.block(vec![tx]).txs.remove(0) {
        TxOutcome::Rejected {
            reason: Rejection::InvalidAction { source, .. },
            ..
        } => source,
        other => panic!("{id}: expected an invalid action, got {other:?}"),
    }
}

#[test]
fn set_validators_refusals_table() {
    let mut net = Net::new(21);
    // The bank becomes a fifth department, then is suspended (four of five approve).
    net.pass(
        "promote",
        Action::ChangeRole {
            member: mid(BANK),
            role: Role::Department,
        },
    );
    let mut txs = vec![net.propose(DEPTS[0], "suspend-bank", Action::SuspendMember(mid(BANK)))];
    for dept in &DEPTS[1..] {
        txs.push(net.approve(dept, "suspend-bank"));
    }
    assert_eq!(net.block(txs).closing.len(), 1);
    let ids = |list: &[&str]| -> Vec<MemberId> { list.iter().map(|s| mid(s)).collect() };
    let cases: Vec<(&str, Vec<MemberId>, ActionError, &str)> = vec![
        (
            "empty",
            vec![],
            ActionError::EmptyValidatorSet,
            "must not be empty",
        ),
        (
            "too small",
            ids(&DEPTS[..2]),
            ActionError::ValidatorSetTooSmall {
                proposed: 2,
                quorum: 3,
                current: 4,
            },
            "a set of 2 validators is smaller than 3, the quorum of the current 4 validators",
        ),
        (
            "unknown",
            ids(&[DEPTS[0], DEPTS[1], "dept.nowhere"]),
            ActionError::UnknownMember {
                member: mid("dept.nowhere"),
            },
            "member dept.nowhere does not exist",
        ),
        (
            "not a department",
            ids(&[DEPTS[0], DEPTS[1], "hospital.peoples-first"]),
            ActionError::ValidatorNotDepartment {
                member: mid("hospital.peoples-first"),
                role: Role::Hospital,
            },
            "is a hospital, only departments validate",
        ),
        (
            "duplicate",
            ids(&[DEPTS[0], DEPTS[1], DEPTS[0]]),
            ActionError::DuplicateValidator {
                member: mid(DEPTS[0]),
            },
            "named more than once",
        ),
        (
            "suspended department",
            ids(&[DEPTS[0], DEPTS[1], BANK]),
            ActionError::ValidatorCannotSign {
                member: mid(BANK),
                reason: "it is suspended",
            },
            "cannot sign: it is suspended",
        ),
    ];
    for (i, (name, list, expected, text)) in cases.into_iter().enumerate() {
        let got = rejection_of(&mut net, &format!("set-{i}"), Action::SetValidators(list));
        assert_eq!(got, expected, "{name}");
        assert!(got.to_string().contains(text), "{name}: {got}");
    }
}

#[test]
fn validator_set_change_takes_effect_at_the_next_height() {
    let mut net = Net::new(22);
    let genesis_set = net.registry.next_validator_set();
    let outcome = net.pass(
        "three",
        Action::SetValidators(DEPTS[..3].iter().map(|s| mid(s)).collect()),
    );
    assert!(outcome.validators_changed);
    let new_set = net.registry.next_validator_set();
    assert_eq!(new_set.len(), 3);
    assert_eq!(new_set.quorum(), 3);
    assert_eq!(net.registry.validator_set_for(Height(1)), Some(genesis_set));
    assert_eq!(
        net.registry.validator_set_for(Height(2)),
        Some(new_set.clone())
    );
    assert_eq!(net.registry.validator_set_for(Height(0)), None);
    // A block that changes nothing keeps the set.
    assert!(!net.block(vec![]).validators_changed);
    assert_eq!(net.registry.validator_set_for(Height(3)), Some(new_set));
}

#[test]
fn suspensions_and_revocations_stop_at_the_quorum_of_the_validators() {
    let mut net = Net::new(23);
    // Four validators, quorum three: one may go.
    net.pass("s0", Action::SuspendMember(mid(DEPTS[3])));
    assert_eq!(net.registry.next_validator_set().len(), 3);
    // A second suspension would leave two live validators.
    let err = rejection_of(&mut net, "s1", Action::SuspendMember(mid(DEPTS[2])));
    assert_eq!(
        err,
        ActionError::BelowQuorum {
            what: "suspending",
            member: mid(DEPTS[2]),
            live_after: 2,
            quorum: 3,
            validators: 4
        }
    );
    assert!(
        err.to_string()
            .contains("fewer than the quorum 3 of the 4 validators"),
        "{err}"
    );
    // So would revoking a live validator's key.
    let key = net.key(DEPTS[1]).public_key();
    let err = rejection_of(
        &mut net,
        "r1",
        Action::RevokeKey {
            member: mid(DEPTS[1]),
            key,
        },
    );
    assert!(
        matches!(
            err,
            ActionError::BelowQuorum {
                what: "revoking the key of",
                ..
            }
        ),
        "{err}"
    );
    // Suspending a member that is not a validator is fine.
    net.pass("bank", Action::SuspendMember(mid(BANK)));
    // Reinstating brings the validator back into the set.
    net.pass("back", Action::ReinstateMember(mid(DEPTS[3])));
    assert_eq!(net.registry.next_validator_set().len(), 4);
}

#[test]
fn fewer_active_departments_lower_the_bar_for_pending_proposals() {
    // Two of four approve a proposal; then a department is suspended, leaving three active:
    // 2 * 3 >= 3 * 2, so the pending proposal passes at the start of the next block and takes
    // effect at the height after.
    let mut net = Net::new(24);
    let txs = vec![
        net.propose(
            DEPTS[0],
            "slow",
            Action::SuspendMember(mid("auditor.city-audit")),
        ),
        net.approve(DEPTS[1], "slow"),
    ];
    net.block(txs);
    let outcome = net.pass("s", Action::SuspendMember(mid(DEPTS[3])));
    assert_eq!(outcome.height, Height(2));
    let outcome = net.block(vec![]);
    assert_eq!(
        outcome.opening,
        vec![citychain_governance::Event::Passed {
            id: pid("slow"),
            effect_height: Height(4)
        }]
    );
    assert!(
        matches!(outcome.closing.as_slice(), [citychain_governance::Event::Applied { id, effect_height, .. }] if id == &pid("slow") && *effect_height == Height(4))
    );
}
