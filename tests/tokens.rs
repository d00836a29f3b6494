//! The token service end to end, with four real validators, the ledger and the token service
//! against a real nats-server: uploads and reads signed by members and submitted through the
//! ledger, governance passing the record type and grants. Named by fault model: n4f0 (no
//! faults) for the amounts, n4-kill for the token service killed mid-stream.

use std::collections::BTreeMap;
use std::time::Duration;

use citychain_bus::StreamKind;
use citychain_client::{LedgerClient, Signer};
use citychain_governance::{Action, FieldKind, RecordType};
use citychain_kernel::{MemberId, Role, SignedEvent, TxBody, TxId};
use citychain_proto::citychain::tokens::v1 as pb;
use citychain_proto::citychain::tokens::v1::token_service_client::TokenServiceClient;
use citychain_records::{ReadTarget, read_body, upload_body};
use citychain_scenarios::{Network, Service};
use citychain_testkit::genesis::network;
use prost::Message;
use tonic::transport::Channel;

/// The record type of the scenarios.
const FILING: &str = "tax.filing";

/// A citizen the records are about.
const CITIZEN: &str = "citizen:330102-19900101-0042";

/// The bank of the sample members.
const BANK: &str = "bank.city-commercial";

/// Declares `tax.filing`, owned by `owner`, read by departments and banks, at `price`,
/// earning `reward` per upload.
fn declare_filing(owner: &str, price: u64, reward: u64) -> Action {
    let readers = [Role::Department, Role::Bank];
    let fields = [("amount", FieldKind::Integer, true)];
    Action::DeclareRecordType(
        RecordType::build(FILING, owner, &fields, &readers, price, reward).unwrap(),
    )
}

/// `GrantTokens` to `member`.
fn grant(member: &str, amount: u64) -> Action {
    Action::GrantTokens {
        member: MemberId::new(member).unwrap(),
        amount,
    }
}

/// An upload of a filing with payload `payload`.
fn upload(payload: &str) -> TxBody {
    upload_body(FILING, CITIZEN, payload.as_bytes())
}

/// A read of record `record`.
fn read(record: TxId) -> TxBody {
    read_body(&ReadTarget::Record(record), CITIZEN, "tax assessment")
}

/// Validators and the ledger of network `seed`, running.
async fn start(seed: u64) -> Network {
    let mut net = Network::new(network(4, seed)).await;
    net.start_validators().await;
    net.start(Service::Ledger, "ledger").await;
    net
}

/// Stops the token service, the ledger and the validators cleanly.
async fn stop(mut net: Network) {
    net.stop(Service::Tokens).await;
    net.stop(Service::Ledger).await;
    for i in 0..net.net.genesis.validators.len() {
        net.stop_validator(i).await;
    }
}

/// Submits `body` signed by `signer` and waits for its commit; returns its id and height.
async fn send(ledger: &mut LedgerClient, signer: &Signer, body: TxBody) -> (TxId, u64) {
    let tx = ledger.sign(signer, body).await.unwrap();
    let id = ledger.submit(&tx).await.unwrap();
    let committed = ledger.wait(&id, Duration::from_secs(60)).await.unwrap();
    (tx.id(), committed.height)
}

/// Passes `tax.filing` (owned by a department, at `price`, earning `reward`) and a grant of
/// `granted` to the bank, then uploads one filing; returns its owner and the record.
async fn file(
    net: &Network,
    ledger: &mut LedgerClient,
    price: u64,
    reward: u64,
    granted: u64,
) -> (String, TxId) {
    let tax = net.departments()[1].clone();
    net.pass(ledger, "filing", &declare_filing(&tax, price, reward))
        .await;
    net.pass(ledger, "fund-bank", &grant(BANK, granted)).await;
    let (record, _) = send(ledger, &net.signer(&tax, 1), upload("{\"amount\":1}")).await;
    (tax, record)
}

/// A client of the running token service, once it has applied `height`.
async fn tokens_at(net: &Network, height: u64) -> TokenServiceClient<Channel> {
    let mut client = TokenServiceClient::connect(format!("http://{}", net.addr(Service::Tokens)))
        .await
        .unwrap();
    for _ in 0..300 {
        let supply = client.get_supply(pb::GetSupplyRequest {}).await.unwrap();
        if supply.into_inner().height >= height {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the token service did not reach height {height}");
}

async fn balance(client: &mut TokenServiceClient<Channel>, account: &str) -> i64 {
    client
        .get_balance(pb::GetBalanceRequest {
            account: account.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .balance
}

async fn all_balances(client: &mut TokenServiceClient<Channel>) -> Vec<(String, i64)> {
    let mut token = String::new();
    let mut all = Vec::new();
    loop {
        let page = client
            .list_balances(pb::ListBalancesRequest {
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.balances.into_iter().map(|b| (b.account, b.balance)));
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

/// Every token event on EVENTS, as (subject's event name, Nats-Msg-Id, payload), once at
/// least `at_least` are there.
async fn token_events(net: &Network, at_least: usize) -> Vec<(String, String, Vec<u8>)> {
    let bus = net.bus().await;
    let stream = net.streams.stream_name(StreamKind::Events);
    let prefix = net.streams.event_subject("tokens", "X").unwrap();
    let prefix = prefix.trim_end_matches('X').to_string();
    let identity = net
        .net
        .genesis
        .members
        .iter()
        .find(|m| m.id.as_str() == "service.tokens")
        .expect("genesis names the token service's identity")
        .signing_key;
    for _ in 0..300 {
        let last = bus.stream_state(&stream).await.unwrap().last_sequence;
        let mut events = Vec::new();
        for seq in 1..=last {
            let Ok(message) = bus.get_message(&stream, seq).await else {
                continue;
            };
            if let Some(name) = message.subject.strip_prefix(&prefix) {
                // Every event is signed by the service's identity, named inside the signed
                // bytes, and published under the id only that signature gives.
                let event = SignedEvent::decode(&message.payload).unwrap();
                assert_eq!(event.signer_key, identity, "{}", event.id);
                assert_eq!(event.name, name);
                assert_eq!(message.msg_id.as_deref(), Some(event.message_id().as_str()));
                events.push((name.to_string(), event.id, event.message));
            }
        }
        if events.len() >= at_least {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {at_least} token events reached EVENTS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n4f0_rewards_and_charges_carry_the_right_amounts_and_a_short_read_fails() {
    let mut net = start(71).await;
    let mut ledger = net.client().await;
    net.start(Service::Tokens, "tokens").await;
    let (tax, record) = file(&net, &mut ledger, 7, 10, 10).await;
    let bank = net.signer(BANK, 1);
    let (paid, _) = send(&mut ledger, &bank, read(record)).await;
    let (failed, last) = send(&mut ledger, &bank, read(record)).await;

    let mut client = tokens_at(&net, last).await;
    assert_eq!(
        balance(&mut client, &tax).await,
        17,
        "a reward of 10 and a read of 7"
    );
    assert_eq!(
        balance(&mut client, BANK).await,
        3,
        "10 granted, 7 paid once"
    );
    assert_eq!(balance(&mut client, "mint").await, -20);
    let supply = client
        .get_supply(pb::GetSupplyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((supply.minted, supply.circulating), (20, 20));
    for (account, code) in [
        ("member:dept.nobody", tonic::Code::NotFound),
        ("NOT AN ACCOUNT", tonic::Code::InvalidArgument),
    ] {
        let err = client
            .get_balance(pb::GetBalanceRequest {
                account: account.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{account}: {err:?}");
    }

    let events = token_events(&net, 4).await;
    let names: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "GrantIssued",
            "RewardMinted",
            "ReadPaid",
            "ReadPaymentFailed"
        ]
    );
    for (_, id, _) in &events {
        let parts: Vec<&str> = id.split('.').collect();
        assert!(parts.len() == 4 && parts[0] == "tokens", "{id}");
    }
    let grant = pb::GrantIssued::decode(events[0].2.as_slice()).unwrap();
    assert_eq!(
        (
            grant.member_id.as_str(),
            grant.amount,
            grant.proposal_id.as_str()
        ),
        (BANK, 10, "fund-bank")
    );
    assert_eq!(
        grant.source.unwrap().tx_id,
        "",
        "a grant happens at the end of its block"
    );
    let reward = pb::RewardMinted::decode(events[1].2.as_slice()).unwrap();
    assert_eq!(
        (reward.member_id.as_str(), reward.amount),
        (tax.as_str(), 10)
    );
    assert_eq!(reward.record_id, record.to_string());
    let read_paid = pb::ReadPaid::decode(events[2].2.as_slice()).unwrap();
    assert_eq!(
        (
            read_paid.read_id.clone(),
            read_paid.amount,
            read_paid.owner.as_str()
        ),
        (paid.to_string(), 7, tax.as_str())
    );
    let source = read_paid.source.unwrap();
    assert_eq!(
        events[2].1,
        format!("tokens.{}.{}.0", source.height, source.index)
    );
    let short = pb::ReadPaymentFailed::decode(events[3].2.as_slice()).unwrap();
    assert_eq!(short.read_id, failed.to_string());
    assert_eq!((short.price, short.balance, short.shortfall), (7, 3, 4));

    stop(net).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n4_kill_the_token_service_mid_stream_and_it_matches_a_clean_replay() {
    let mut net = start(72).await;
    let mut ledger = net.client().await;
    let (tax, record) = file(&net, &mut ledger, 3, 5, 20).await;

    // Twelve reads: six are paid (20 / 3), the rest fail. The first four are submitted
    // without waiting and the service is killed while their blocks come in; four more
    // commit while it is down; it restarts on its store for the last four.
    let bank = net.signer(BANK, 1);
    net.start(Service::Tokens, "tokens").await;
    let mut reads = Vec::new();
    let mut in_flight = Vec::new();
    for _ in 0..4 {
        let tx = ledger.sign(&bank, read(record)).await.unwrap();
        in_flight.push(ledger.submit(&tx).await.unwrap());
        reads.push(tx.id());
    }
    net.kill(Service::Tokens).await;
    for id in &in_flight {
        ledger.wait(id, Duration::from_secs(60)).await.unwrap();
    }
    for i in 4..12 {
        if i == 8 {
            net.start(Service::Tokens, "tokens").await;
        }
        reads.push(send(&mut ledger, &bank, read(record)).await.0);
    }
    let height = net.chain_height().await;
    let mut restarted = tokens_at(&net, height).await;

    // Each read was charged (or refused) once on EVENTS: nothing the killed service decided
    // was lost from its outbox, and nothing was stored twice.
    let once_each = |events: &[(String, String, Vec<u8>)]| {
        let mut settled: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, _, payload) in events {
            let read_id = match name.as_str() {
                "ReadPaid" => pb::ReadPaid::decode(payload.as_slice()).unwrap().read_id,
                "ReadPaymentFailed" => {
                    pb::ReadPaymentFailed::decode(payload.as_slice())
                        .unwrap()
                        .read_id
                }
                _ => continue,
            };
            settled.entry(read_id).or_default().push(name.clone());
        }
        assert_eq!(settled.len(), reads.len(), "{settled:?}");
        for id in &reads {
            assert_eq!(settled[&id.to_string()].len(), 1, "read {id}: {settled:?}");
        }
        settled.values().filter(|v| v[0] == "ReadPaid").count()
    };
    // The grant, the reward and the twelve reads.
    let events = token_events(&net, 2 + reads.len()).await;
    assert_eq!(once_each(&events), 6);

    // A clean replay into an empty store agrees, balance for balance and hash for hash. The
    // restarted service is read first and stopped: one token service runs at a time.
    let balances = all_balances(&mut restarted).await;
    assert_eq!(balance(&mut restarted, BANK).await, 2);
    assert_eq!(balance(&mut restarted, &tax).await, 5 + 18);
    let hash = |h| pb::GetJournalHashRequest { height: h };
    let a = restarted
        .get_journal_hash(hash(height))
        .await
        .unwrap()
        .into_inner();
    net.stop(Service::Tokens).await;
    net.start(Service::Tokens, "tokens-fresh").await;
    let mut clean = tokens_at(&net, height).await;
    assert_eq!(balances, all_balances(&mut clean).await);
    let b = clean
        .get_journal_hash(hash(height))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);

    // The fresh service republished the same events under the same ids: still one each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = token_events(&net, 2 + reads.len()).await;
    assert_eq!(events.len(), 2 + reads.len());
    assert_eq!(once_each(&events), 6);

    stop(net).await;
}
