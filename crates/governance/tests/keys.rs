//! Key rotation and revocation: when an old key stops and a new one starts.

mod common;

use citychain_governance::{Action, ActionError, KeyStatus, Refusal, Rejection, Signer, TxOutcome};
use citychain_kernel::{Height, Role};
use common::*;

#[test]
fn rotated_key_is_refused_from_the_effect_height_and_accepted_before() {
    let mut net = Net::new(11);
    let old = net.key(BANK);
    let new = fresh_keys(210);
    let rotate = Action::RotateKey {
        member: mid(BANK),
        signing_key: new.signing.public_key(),
        encryption_key: Some(new.encryption.public_key()),
    };
    // Block 1 carries the rotation and a transaction signed with the old key: still accepted.
    let mut txs = vec![
        net.propose(DEPTS[0], "rot", rotate.clone()),
        net.approve(DEPTS[1], "rot"),
        net.approve(DEPTS[2], "rot"),
    ];
    txs.push(net.tx(&old, plain_body()));
    txs.push(net.tx(&new.signing, plain_body()));
    let outcome = net.block(txs);
    assert!(outcome.txs[3].is_accepted(), "{:?}", outcome.txs[3]);
    assert!(matches!(
        outcome.txs[4],
        TxOutcome::Refused(Refusal::NotAMember { .. })
    ));

    // From block 2 the old key is refused, naming its status, and the new one signs.
    let a = net.tx(&old, plain_body());
    let b = net.tx(&new.signing, plain_body());
    let outcome = net.block(vec![a, b]);
    match &outcome.txs[0] {
        TxOutcome::Refused(r @ Refusal::KeyRetired { status, .. }) => {
            assert_eq!(*status, KeyStatus::Rotated { from: Height(2) });
            assert!(r.to_string().contains("rotated from height 2"), "{r}");
            assert!(r.to_string().contains(&old.public_key().to_string()), "{r}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &outcome.txs[1],
        TxOutcome::Accepted {
            signer: Signer::Member {
                role: Role::Bank,
                ..
            },
            ..
        }
    ));

    // The history answers for any height.
    let r = &net.registry;
    assert!(r.key_valid_at(&old.public_key(), Height(1)));
    assert!(!r.key_valid_at(&old.public_key(), Height(2)));
    assert!(!r.key_valid_at(&new.signing.public_key(), Height(1)));
    assert!(r.key_valid_at(&new.signing.public_key(), Height(2)));
    assert_eq!(
        r.member(&mid(BANK)).unwrap().encryption_key,
        new.encryption.public_key()
    );

    // A rotated key can never be reused, by anyone.
    let mut copy = new_member("bank.copy", Role::Bank, &fresh_keys(211));
    copy.signing_key = old.public_key();
    let tx = net.propose(DEPTS[0], "reuse", Action::AddMember(copy));
    match &net.block(vec![tx]).txs[0] {
        TxOutcome::Rejected {
            reason:
                Rejection::InvalidAction {
                    source: ActionError::KeyUsed { status, .. },
                    ..
                },
            ..
        } => {
            assert_eq!(*status, KeyStatus::Rotated { from: Height(2) })
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn revoked_key_leaves_the_member_without_a_key_until_rotated() {
    let mut net = Net::new(12);
    let old = net.key(BANK);
    net.pass(
        "rev",
        Action::RevokeKey {
            member: mid(BANK),
            key: old.public_key(),
        },
    );
    let tx = net.tx(&old, plain_body());
    match &net.block(vec![tx]).txs[0] {
        TxOutcome::Refused(r) => assert!(r.to_string().contains("revoked from height 2"), "{r}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(net.registry.member(&mid(BANK)).unwrap().signing_key, None);

    // Revoking again is invalid.
    let tx = net.propose(
        DEPTS[0],
        "rev-again",
        Action::RevokeKey {
            member: mid(BANK),
            key: old.public_key(),
        },
    );
    match &net.block(vec![tx]).txs[0] {
        TxOutcome::Rejected { reason, .. } => {
            assert!(reason.to_string().contains("already revoked"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    // A rotation gives it a key again; the revoked key stays revoked.
    let new = fresh_keys(212);
    net.pass(
        "rot",
        Action::RotateKey {
            member: mid(BANK),
            signing_key: new.signing.public_key(),
            encryption_key: None,
        },
    );
    let a = net.tx(&new.signing, plain_body());
    let b = net.tx(&old, plain_body());
    let outcome = net.block(vec![a, b]);
    assert!(outcome.txs[0].is_accepted());
    assert!(matches!(
        &outcome.txs[1],
        TxOutcome::Refused(Refusal::KeyRetired {
            status: KeyStatus::Revoked { .. },
            ..
        })
    ));
}

#[test]
fn revoking_someone_elses_key_is_refused() {
    let mut net = Net::new(13);
    let tx = net.propose(
        DEPTS[0],
        "rev",
        Action::RevokeKey {
            member: mid(BANK),
            key: net.key(DEPTS[1]).public_key(),
        },
    );
    match &net.block(vec![tx]).txs[0] {
        TxOutcome::Rejected { reason, .. } => {
            assert!(
                reason
                    .to_string()
                    .contains("is not a key of member bank.city-commercial"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rotating_a_validator_changes_its_key_in_the_set_from_the_effect_height() {
    let mut net = Net::new(14);
    let dept = DEPTS[3];
    let old = net.key(dept).public_key();
    let new = fresh_keys(213);
    let before = net.registry.next_validator_set();
    net.pass(
        "rot-validator",
        Action::RotateKey {
            member: mid(dept),
            signing_key: new.signing.public_key(),
            encryption_key: None,
        },
    );
    let after = net.registry.next_validator_set();
    assert!(before.get(&old).is_some());
    assert!(after.get(&old).is_none());
    assert_eq!(
        after
            .get(&new.signing.public_key())
            .map(|v| v.member_id.as_str()),
        Some(dept)
    );
    assert_eq!(net.registry.validator_set_for(Height(1)), Some(before));
    assert_eq!(net.registry.validator_set_for(Height(2)), Some(after));
    assert_eq!(net.registry.validator_set_for(Height(3)), None);
}

#[test]
fn a_service_identity_vouches_for_its_events_only_with_the_key_in_force() {
    use citychain_governance::EventRefusal;
    use citychain_kernel::SignedEvent;

    let mut net = Net::new(12);
    let service = mid("service.tokens");
    let old = net.key("service.tokens");
    let event = |key: &citychain_kernel::SigningKey, producer: &str, at: u64| {
        SignedEvent::sign(
            key,
            mid(producer),
            Height(at),
            format!("tokens.{at}.0.0"),
            "ReadPaid",
            vec![7],
        )
    };
    let bank = net.key(BANK);
    let tx = net.tx(&bank, plain_body());
    net.block(vec![tx]);
    assert_eq!(
        net.registry
            .vouch_for_event(&service, &event(&old, "service.tokens", 1)),
        Ok(())
    );
    // A bank's key, a stranger's key, another producer, a later height.
    assert!(matches!(
        net.registry
            .vouch_for_event(&service, &event(&bank, "service.tokens", 1)),
        Err(EventRefusal::NotProducersKey { .. })
    ));
    assert!(matches!(
        net.registry.vouch_for_event(
            &service,
            &event(&fresh_keys(90).signing, "service.tokens", 1)
        ),
        Err(EventRefusal::NotProducersKey { .. })
    ));
    assert!(matches!(
        net.registry
            .vouch_for_event(&mid(BANK), &event(&bank, BANK, 1)),
        Err(EventRefusal::NotAService { .. })
    ));
    assert!(matches!(
        net.registry
            .vouch_for_event(&service, &event(&old, BANK, 1)),
        Err(EventRefusal::WrongProducer { .. })
    ));
    assert!(matches!(
        net.registry
            .vouch_for_event(&service, &event(&old, "service.tokens", 9)),
        Err(EventRefusal::Ahead { .. })
    ));
    // The service's key signs no transaction.
    let tx = net.tx(&old, plain_body());
    let outcome = net.block(vec![tx]);
    assert!(
        matches!(
            outcome.txs[0],
            TxOutcome::Refused(Refusal::ServiceIdentity { .. })
        ),
        "{:?}",
        outcome.txs[0]
    );

    // Governance rotates the key (effect at height 4): the old key vouches for events signed
    // before, the new one for events signed after.
    let new = fresh_keys(91);
    let rotate = Action::RotateKey {
        member: service.clone(),
        signing_key: new.signing.public_key(),
        encryption_key: None,
    };
    let txs = vec![
        net.propose(DEPTS[0], "rot-svc", rotate),
        net.approve(DEPTS[1], "rot-svc"),
        net.approve(DEPTS[2], "rot-svc"),
    ];
    net.block(txs);
    net.block(vec![]);
    let r = &net.registry;
    assert_eq!(r.height(), Height(4));
    assert_eq!(
        r.vouch_for_event(&service, &event(&old, "service.tokens", 2)),
        Ok(())
    );
    assert!(
        r.vouch_for_event(&service, &event(&old, "service.tokens", 3))
            .is_err()
    );
    assert!(
        r.vouch_for_event(&service, &event(&new.signing, "service.tokens", 2))
            .is_err()
    );
    assert_eq!(
        r.vouch_for_event(&service, &event(&new.signing, "service.tokens", 3)),
        Ok(())
    );
}
