//! What the token rules cost per transaction: deciding and applying a paid read and an upload
//! reward against a journal of 1,000 accounts, and the journal's state hash over them. Run with
//! `cargo bench -p citychain-tokens-domain`.

use std::hint::black_box;

use citychain_governance::TokenPolicy;
use citychain_kernel::{Hash32, MemberId, TxId};
use citychain_tokens_domain::{ChainRef, Input, Journal};
use criterion::{Criterion, criterion_group, criterion_main};

fn member(i: usize) -> MemberId {
    MemberId::new(format!("dept.{i}")).unwrap()
}

fn id(n: u64) -> TxId {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    TxId(Hash32(bytes))
}

fn at(n: u64) -> ChainRef {
    ChainRef {
        height: n,
        index: 0,
        tx_id: Some(id(n)),
    }
}

/// A journal where 1,000 departments each earned 1,000 tokens.
fn journal() -> Journal {
    let mut journal = Journal::new();
    for i in 0..1_000 {
        let grant = Input::Grant {
            proposal_id: format!("grant-{i}"),
            member: member(i),
            amount: 1_000,
        };
        journal.apply(&grant, &at(i as u64 + 1)).unwrap();
    }
    journal
}

fn rules(c: &mut Criterion) {
    let base = journal();
    c.bench_function("journal/read_paid", |b| {
        b.iter_batched(
            || base.clone(),
            |mut j| {
                let read = Input::Read {
                    read_id: id(1_000_001),
                    record_id: id(7),
                    reader: member(1),
                    owner: member(2),
                    price: 3,
                };
                j.apply(black_box(&read), &at(1_000_001)).unwrap()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    c.bench_function("journal/upload_reward", |b| {
        b.iter_batched(
            || base.clone(),
            |mut j| {
                let upload = Input::Upload {
                    record_id: id(1_000_002),
                    member: member(3),
                    payload_hash: Hash32([5; 32]),
                    reward: 5,
                    policy: TokenPolicy::default(),
                };
                j.apply(black_box(&upload), &at(1_000_002)).unwrap()
            },
            criterion::BatchSize::LargeInput,
        )
    });
    c.bench_function("journal/state_hash_1000_accounts", |b| {
        b.iter(|| black_box(&base).state_hash())
    });
}

criterion_group!(benches, rules);
criterion_main!(benches);
