//! The registry is a function of genesis and the blocks only: same input, same state hash;
//! the encoding round-trips; random governance traffic never panics.

mod common;

use citychain_governance::{Action, Registry, StateError};
use citychain_kernel::{MemberId, Role, SignedTx};
use common::*;
use proptest::prelude::*;

/// One step of random governance traffic.
#[derive(Debug, Clone)]
enum Op {
    Propose {
        by: usize,
        id: u8,
        action: u8,
        target: usize,
    },
    Approve {
        by: usize,
        id: u8,
    },
    Plain {
        by: usize,
    },
    EndBlock,
}

const TARGETS: [&str; 7] = [
    DEPTS[0],
    DEPTS[1],
    DEPTS[2],
    DEPTS[3],
    BANK,
    "hospital.peoples-first",
    "new.member",
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..5usize, 0..6u8, 0..7u8, 0..TARGETS.len())
            .prop_map(|(by, id, action, target)| Op::Propose { by, id, action, target }),
        3 => (0..5usize, 0..6u8).prop_map(|(by, id)| Op::Approve { by, id }),
        1 => (0..5usize).prop_map(|by| Op::Plain { by }),
        2 => Just(Op::EndBlock),
    ]
}

fn signer(by: usize) -> &'static str {
    if by < 4 { DEPTS[by] } else { BANK }
}

fn action(kind: u8, target: usize, salt: u8) -> Action {
    let member = MemberId::new(TARGETS[target]).unwrap();
    let keys = fresh_keys(salt);
    match kind {
        0 => Action::AddMember(new_member(TARGETS[target], Role::Bank, &keys)),
        1 => Action::SuspendMember(member),
        2 => Action::ReinstateMember(member),
        3 => Action::ChangeRole {
            member,
            role: Role::Department,
        },
        4 => Action::RotateKey {
            member,
            signing_key: keys.signing.public_key(),
            encryption_key: None,
        },
        5 => Action::RevokeKey {
            member,
            key: fresh_keys(salt / 2).signing.public_key(),
        },
        _ => Action::SetValidators(
            TARGETS[..(target % 4) + 1]
                .iter()
                .map(|s| MemberId::new(*s).unwrap())
                .collect(),
        ),
    }
}

/// Turns ops into blocks of signed transactions (deterministic: nonces count up).
fn blocks(net: &mut Net, ops: &[Op]) -> Vec<Vec<SignedTx>> {
    let mut out = vec![Vec::new()];
    for (i, op) in ops.iter().enumerate() {
        let tx = match op {
            Op::Propose {
                by,
                id,
                action: kind,
                target,
            } => net.propose(
                signer(*by),
                &format!("p{id}"),
                action(*kind, *target, i as u8),
            ),
            Op::Approve { by, id } => net.approve(signer(*by), &format!("p{id}")),
            Op::Plain { by } => {
                let key = net.key(signer(*by));
                net.tx(&key, plain_body())
            }
            Op::EndBlock => {
                out.push(Vec::new());
                continue;
            }
        };
        if let Some(last) = out.last_mut() {
            last.push(tx);
        }
    }
    out
}

fn run(net: &Net, blocks: &[Vec<SignedTx>]) -> Registry {
    let mut registry = Registry::from_genesis(&net.net.genesis);
    for txs in blocks {
        let h = registry.next_height();
        registry.apply_block(h, txs).unwrap();
    }
    registry
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn state_hash_is_a_function_of_the_blocks(ops in prop::collection::vec(op(), 0..60)) {
        let mut net = Net::new(41);
        let blocks = blocks(&mut net, &ops);
        let a = run(&net, &blocks);
        let b = run(&net, &blocks);
        prop_assert_eq!(a.state_hash(), b.state_hash());
        prop_assert_eq!(&a, &b);

        // Stopping half way, storing and reloading, then continuing gives the same state.
        let half = blocks.len() / 2;
        let first = run(&net, &blocks[..half]);
        let mut reloaded = Registry::decode(&first.encode()).unwrap();
        prop_assert_eq!(&reloaded, &first);
        for txs in &blocks[half..] {
            let h = reloaded.next_height();
            reloaded.apply_block(h, txs).unwrap();
        }
        prop_assert_eq!(reloaded.state_hash(), a.state_hash());
        // The live validator set never drops below the designated set's quorum.
        prop_assert!(
            a.next_validator_set().len() >= citychain_governance::quorum_of(a.validators().len())
        );
    }
}

#[test]
fn same_blocks_same_hash_other_blocks_other_hash() {
    let mut net = Net::new(42);
    let keys = fresh_keys(230);
    let add = Action::AddMember(new_member("bank.d", Role::Bank, &keys));
    let txs = vec![
        net.propose(DEPTS[0], "a", add),
        net.approve(DEPTS[1], "a"),
        net.approve(DEPTS[2], "a"),
    ];
    let a = run(&net, std::slice::from_ref(&txs));
    let b = run(&net, std::slice::from_ref(&txs));
    assert_eq!(a.state_hash(), b.state_hash());
    let c = run(&net, &[txs[..2].to_vec()]);
    assert_ne!(a.state_hash(), c.state_hash());
    let empty = run(&net, &[vec![]]);
    assert_ne!(
        empty.state_hash(),
        Registry::from_genesis(&net.net.genesis).state_hash()
    );
}

#[test]
fn encoding_round_trips_and_refuses_tampering() {
    let mut net = Net::new(43);
    net.pass("s", Action::SuspendMember(mid(BANK)));
    let tx = net.propose(DEPTS[0], "pending", Action::ReinstateMember(mid(BANK)));
    net.block(vec![tx]);
    let bytes = net.registry.encode();
    let back = Registry::decode(&bytes).unwrap();
    assert_eq!(back, net.registry);
    assert_eq!(back.encode(), bytes);

    // Non-canonical bytes (an unknown field appended) are refused.
    let mut extra = bytes.clone();
    extra.extend_from_slice(&[0x78, 0x01]);
    assert!(matches!(
        Registry::decode(&extra),
        Err(StateError::Decode(_))
    ));

    // An inconsistent state (validators out of order) is refused with a reason.
    let mut state = net.registry.to_proto();
    state.validators.reverse();
    let err = Registry::from_proto(state).unwrap_err();
    assert!(err.to_string().contains("out of order"), "{err}");

    // A member whose active key is missing from the index is refused.
    let mut state = net.registry.to_proto();
    state.keys.retain(|k| k.member_id != BANK);
    assert!(Registry::from_proto(state).is_err());
}
