//! The token projection over a store, without NATS: a chain carrying governance, uploads and
//! reads is applied through the follower's replayer (the same audit and checkpointed apply
//! as the running service), and the journal is checked against the rules applied by hand,
//! against a second replay, against the audit of an export of the same chain, and through
//! the API.

mod common;

use citychain_follower::Replayer;
use citychain_governance::{Action, TokenPolicy};
use citychain_kernel::{Hash32, MemberId, TxId};
use citychain_proto::citychain::tokens::v1 as pb;
use citychain_store::{EmbeddedStore, PageError, PageKey};
use citychain_testkit::chain::export_bytes;
use citychain_testkit::genesis::network;
use citychain_tokens::outbox::pending;
use citychain_tokens::{ApiError, TokensApi, TokensProjection, replay_export, summarise};
use citychain_tokens_domain::{Account, ChainRef, Input, Journal};
use common::{BANK, ChainWriter, dept, filing_type, grant, read, upload};
use prost::Message;

const SEED: u64 = 7;

async fn replay(
    net: &citychain_testkit::genesis::TestNetwork,
    blocks: &[citychain_kernel::Block],
) -> EmbeddedStore {
    let store = EmbeddedStore::in_memory().await.unwrap();
    let mut replayer = Replayer::resume(&net.genesis, store.clone(), TokensProjection)
        .await
        .unwrap();
    for block in blocks {
        replayer.apply_block(block).await.unwrap();
    }
    store
}

fn member(id: &str) -> MemberId {
    MemberId::new(id).unwrap()
}

fn hash(text: &str) -> Hash32 {
    Hash32(*blake3::hash(text.as_bytes()).as_bytes())
}

/// The scenario's chain, and the inputs its blocks must produce, in order, as the licence
/// rules decide them by hand.
fn scenario(
    net: &citychain_testkit::genesis::TestNetwork,
) -> (Vec<citychain_kernel::Block>, Vec<(Input, ChainRef)>) {
    let tax = dept(net, 1);
    let police = dept(net, 0);
    let policy = TokenPolicy {
        reward_cap_per_period: Some(25),
        period_heights: 100,
    };
    let mut chain = ChainWriter::new(net);
    let mut inputs = Vec::new();

    // 1: the filing type (price 7, reward 10) and the policy (cap 25 per 100 heights).
    let mut txs = chain.passing(
        "filing",
        &Action::DeclareRecordType(filing_type(&tax, 7, 10)),
    );
    txs.extend(chain.passing("policy", &Action::SetTokenPolicy(policy)));
    chain.block(txs);
    // 2: a grant of 10 to the bank, minted at the end of the block (3 transactions).
    chain.pass("fund-bank", &grant(BANK, 10));
    inputs.push((
        Input::Grant {
            proposal_id: "fund-bank".into(),
            member: member(BANK),
            amount: 10,
        },
        ChainRef::block_end(2, 3),
    ));
    // 3: two uploads by the owner, one by another department (refused: no record, no
    // reward), and the bank reading the first upload in the same block.
    let first = chain.tx(&tax, upload("{\"amount\":1}"));
    let second = chain.tx(&tax, upload("{\"amount\":2}"));
    let stranger = chain.tx(&police, upload("{\"amount\":3}"));
    let bank_read = chain.tx(BANK, read(first.id()));
    let (first_id, second_id, bank_read_id) = (first.id(), second.id(), bank_read.id());
    chain.block(vec![first, second, stranger, bank_read]);
    let reward = |record: TxId, payload: &str| Input::Upload {
        record_id: record,
        member: member(&tax),
        payload_hash: hash(payload),
        reward: 10,
        policy,
    };
    inputs.push((
        reward(first_id, "{\"amount\":1}"),
        ChainRef::tx(3, 0, first_id),
    ));
    inputs.push((
        reward(second_id, "{\"amount\":2}"),
        ChainRef::tx(3, 1, second_id),
    ));
    inputs.push((
        Input::Read {
            read_id: bank_read_id,
            record_id: first_id,
            reader: member(BANK),
            owner: member(&tax),
            price: 7,
        },
        ChainRef::tx(3, 3, bank_read_id),
    ));
    // 4: the same payload again (no reward), a third payload (cut to 5 by the cap), the
    // owner reading its own record (free), the bank reading again with 3 left (fails,
    // short by 4), and a read of a record that does not exist (refused: not charged).
    let again = chain.tx(&tax, upload("{\"amount\":1}"));
    let third = chain.tx(&tax, upload("{\"amount\":4}"));
    let own = chain.tx(&tax, read(second_id));
    let short = chain.tx(BANK, read(second_id));
    let nowhere = chain.tx(BANK, read(TxId(Hash32([9; 32]))));
    let ids: Vec<TxId> = [&again, &third, &own, &short]
        .iter()
        .map(|t| t.id())
        .collect();
    chain.block(vec![again, third, own, short, nowhere]);
    inputs.push((reward(ids[0], "{\"amount\":1}"), ChainRef::tx(4, 0, ids[0])));
    inputs.push((reward(ids[1], "{\"amount\":4}"), ChainRef::tx(4, 1, ids[1])));
    inputs.push((
        Input::Read {
            read_id: ids[2],
            record_id: second_id,
            reader: member(&tax),
            owner: member(&tax),
            price: 0,
        },
        ChainRef::tx(4, 2, ids[2]),
    ));
    inputs.push((
        Input::Read {
            read_id: ids[3],
            record_id: second_id,
            reader: member(BANK),
            owner: member(&tax),
            price: 7,
        },
        ChainRef::tx(4, 3, ids[3]),
    ));
    // 5: a block without token activity.
    let note = chain.tx(
        &police,
        citychain_kernel::TxBody::new("citychain.test.v1.Note", vec![1]),
    );
    chain.block(vec![note]);
    (chain.blocks, inputs)
}

#[tokio::test]
async fn the_journal_in_the_store_is_the_rules_applied_to_the_chain() {
    let net = network(4, SEED);
    let (blocks, inputs) = scenario(&net);
    let store = replay(&net, &blocks).await;
    let summary = summarise(&store).await.unwrap();

    let mut expected = Journal::new();
    for (input, source) in &inputs {
        expected.apply(input, source).unwrap();
    }
    let tax = Account::member(&member(&dept(&net, 1)));
    let bank = Account::member(&member(BANK));
    // Rewards 10 + 10 + 5 (the cap), a grant of 10; the bank paid 7 once.
    assert_eq!(expected.balance(&tax), 32);
    assert_eq!(expected.balance(&bank), 3);
    assert_eq!(expected.supply(), 35);
    assert_eq!(summary.height, 5);
    assert_eq!(summary.supply, 35);
    assert_eq!(
        summary.balances,
        expected
            .balances()
            .map(|(a, b)| (a.clone(), b))
            .collect::<Vec<_>>()
    );
    assert_eq!(summary.events, expected.history().events);
    assert_eq!(summary.journal_hash, expected.state_hash());

    // The outbox holds the published events in chain order, under their ids.
    let events = pending(&store, 100).await.unwrap();
    let ids: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.id.as_str(), e.envelope.name.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("tokens.2.3.0", "GrantIssued"),
            ("tokens.3.0.0", "RewardMinted"),
            ("tokens.3.1.0", "RewardMinted"),
            ("tokens.3.3.0", "ReadPaid"),
            ("tokens.4.1.0", "RewardMinted"),
            ("tokens.4.2.0", "ReadPaid"),
            ("tokens.4.3.0", "ReadPaymentFailed"),
        ]
    );
    let failed = pb::ReadPaymentFailed::decode(events[6].envelope.payload.as_slice()).unwrap();
    assert_eq!((failed.price, failed.balance, failed.shortfall), (7, 3, 4));
    let own = pb::ReadPaid::decode(events[5].envelope.payload.as_slice()).unwrap();
    assert_eq!(own.amount, 0);
}

#[tokio::test]
async fn replaying_the_same_chain_or_auditing_its_export_gives_the_same_journal() {
    let net = network(4, SEED + 1);
    let (blocks, _) = scenario(&net);
    let a = summarise(&replay(&net, &blocks).await).await.unwrap();
    let b = summarise(&replay(&net, &blocks).await).await.unwrap();
    assert_eq!(a, b);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.export");
    std::fs::write(&path, export_bytes(&net, &blocks)).unwrap();
    let audited = replay_export(&net.genesis, &path).await.unwrap();
    assert_eq!(audited, a);

    // Half the chain audits to the journal of half the chain.
    let half = summarise(&replay(&net, &blocks[..3]).await).await.unwrap();
    std::fs::write(&path, export_bytes(&net, &blocks[..3])).unwrap();
    assert_eq!(replay_export(&net.genesis, &path).await.unwrap(), half);
    assert_ne!(half.journal_hash, a.journal_hash);

    // An export of another chain, or a damaged one, is refused by name.
    let other = network(4, SEED + 2);
    let err = replay_export(&other.genesis, &path).await.unwrap_err();
    assert!(err.to_string().contains("not a valid export"), "{err}");
    let mut bytes = export_bytes(&net, &blocks);
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&path, bytes).unwrap();
    assert!(replay_export(&net.genesis, &path).await.is_err());
}

#[tokio::test]
async fn resuming_half_way_gives_the_journal_of_one_pass() {
    let net = network(4, SEED + 3);
    let (blocks, _) = scenario(&net);
    let store = EmbeddedStore::in_memory().await.unwrap();
    let mut first = Replayer::resume(&net.genesis, store.clone(), TokensProjection)
        .await
        .unwrap();
    for block in &blocks[..3] {
        first.apply_block(block).await.unwrap();
    }
    drop(first);
    let mut second = Replayer::resume(&net.genesis, store.clone(), TokensProjection)
        .await
        .unwrap();
    for block in &blocks[3..] {
        second.apply_block(block).await.unwrap();
    }
    let whole = summarise(&replay(&net, &blocks).await).await.unwrap();
    assert_eq!(summarise(&store).await.unwrap(), whole);
}

#[tokio::test]
async fn the_api_answers_from_the_journal_and_refuses_bad_input_by_type() {
    let net = network(4, SEED + 4);
    let (blocks, _) = scenario(&net);
    let store = replay(&net, &blocks).await;
    let shared = citychain_follower::Shared::new(&net.genesis);
    let secret = b"the secret every replica of this token service shares";
    let api = TokensApi::new(store.clone(), shared.clone(), PageKey::derive(secret));
    // A replica configured with the same secret continues another's pages; one with its own
    // secret refuses them.
    let replica = TokensApi::new(store.clone(), shared.clone(), PageKey::derive(secret));
    let stranger = TokensApi::new(store.clone(), shared, PageKey::derive(b"its own secret"));
    let tax = dept(&net, 1);

    let balance = api.balance(&tax).await.unwrap();
    assert_eq!(
        (balance.account.as_str(), balance.balance, balance.height),
        (format!("member:{tax}").as_str(), 32, 5)
    );
    assert_eq!(api.balance("mint").await.unwrap().balance, -35);
    // A member without entries has a zero balance; nobody else has an account.
    let quiet = dept(&net, 3);
    assert_eq!(
        api.balance(&format!("member:{quiet}"))
            .await
            .unwrap()
            .balance,
        0
    );
    assert!(matches!(
        api.balance("member:dept.nobody").await,
        Err(ApiError::UnknownAccount { .. })
    ));
    assert!(matches!(
        api.balance("Not Valid").await,
        Err(ApiError::Account(_))
    ));
    assert!(matches!(api.balance("").await, Err(ApiError::Account(_))));

    let supply = api.supply().await.unwrap();
    assert_eq!(
        (supply.minted, supply.circulating, supply.height),
        (35, 35, 5)
    );

    // The owner's statement, a line at a time: three rewards and one read.
    let mut token = String::new();
    let mut lines = Vec::new();
    loop {
        let page = api
            .statement(&pb::GetStatementRequest {
                account: tax.clone(),
                page_size: 1,
                page_token: token.clone(),
            })
            .await
            .unwrap();
        lines.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let summary: Vec<(&str, u64, i64, &str)> = lines
        .iter()
        .map(|l| {
            (
                l.kind.as_str(),
                l.credit,
                l.balance_after,
                l.counterparty.as_str(),
            )
        })
        .collect();
    let bank = format!("member:{BANK}");
    assert_eq!(
        summary,
        vec![
            ("reward", 10, 10, "mint"),
            ("reward", 10, 20, "mint"),
            ("read", 7, 27, bank.as_str()),
            ("reward", 5, 32, "mint"),
        ]
    );
    assert_eq!(lines[2].source.as_ref().unwrap().height, 3);
    assert!(matches!(
        api.statement(&pb::GetStatementRequest {
            account: tax.clone(),
            page_size: 1_000,
            page_token: String::new(),
        })
        .await,
        Err(ApiError::Page(_))
    ));
    assert!(matches!(
        api.statement(&pb::GetStatementRequest {
            account: "mint".into(),
            page_size: 0,
            page_token: hex::encode(b"tk/s/member:x\x00"),
        })
        .await,
        Err(ApiError::Page(_))
    ));

    // Hashes by height: the empty journal's before the first event, each block's after.
    let empty = Journal::new().state_hash().to_hex();
    assert_eq!(api.journal_hash(1).await.unwrap().hash, empty);
    let at4 = api.journal_hash(4).await.unwrap();
    assert_ne!(at4.hash, empty);
    assert_eq!(
        api.journal_hash(5).await.unwrap().hash,
        at4.hash,
        "block 5 moved nothing"
    );
    assert_eq!(
        api.journal_hash(0).await.unwrap(),
        pb::JournalHash {
            height: 5,
            hash: at4.hash.clone()
        }
    );
    assert_eq!(
        at4.hash,
        summarise(&store).await.unwrap().journal_hash.to_hex()
    );
    assert!(matches!(
        api.journal_hash(6).await,
        Err(ApiError::NotApplied {
            asked: 6,
            applied: 5
        })
    ));

    let all = api
        .list_balances(&pb::ListBalancesRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(all.balances.len(), 2);
    let rest = replica
        .list_balances(&pb::ListBalancesRequest {
            page_size: 2,
            page_token: all.next_page_token.clone(),
        })
        .await
        .unwrap();
    assert!(matches!(
        stranger
            .list_balances(&pb::ListBalancesRequest {
                page_size: 2,
                page_token: all.next_page_token.clone(),
            })
            .await,
        Err(ApiError::Page(PageError::BadToken { .. }))
    ));
    let accounts: Vec<String> = all
        .balances
        .iter()
        .chain(&rest.balances)
        .map(|b| b.account.clone())
        .collect();
    assert_eq!(
        accounts,
        vec![bank.clone(), format!("member:{tax}"), "mint".to_string()]
    );
}
