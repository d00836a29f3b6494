//! The token service against a real nats-server, four real validators and a ledger
//! (`common::network`): uploads and reads signed by members and submitted through
//! the ledger, governance passing the record type and grants. Named by fault model: n4f0
//! (no faults) for the amounts, n4-kill for the token service killed mid-stream.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use citychain_bus::StreamKind;
use citychain_client::{LedgerClient, Signer};
use citychain_governance::{Action, ProposalId, approve_body, propose_body};
use citychain_kernel::{TxBody, TxId};
use citychain_proto::citychain::tokens::v1 as pb;
use citychain_proto::citychain::tokens::v1::token_service_client::TokenServiceClient;
use citychain_runtime::{ConfigLoader, ServiceConfig, Shutdown};
use citychain_testkit::genesis::network;
use citychain_testkit::grpc::free_addr;
use citychain_tokens::{SERVICE_NAME, TokensConfig};
use common::network::Harness as Network;
use common::{BANK, dept, filing_type, grant, read, upload};
use prost::Message;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

/// The members' signers, each numbering its own nonces.
struct Members {
    signers: BTreeMap<String, Signer>,
}

impl Members {
    fn new(net: &Network) -> Self {
        let signers = net
            .net
            .keys
            .iter()
            .map(|(id, keys)| {
                (
                    id.clone(),
                    Signer::new(net.net.genesis.chain_id.clone(), keys.signing.clone(), 1),
                )
            })
            .collect();
        Members { signers }
    }

    /// Submits `body` signed by `member` and waits for its commit; returns its id and height.
    async fn send(&self, client: &mut LedgerClient, member: &str, body: TxBody) -> (TxId, u64) {
        let tx = client.sign(&self.signers[member], body).await.unwrap();
        let id = client.submit(&tx).await.unwrap();
        let committed = client.wait(&id, Duration::from_secs(60)).await.unwrap();
        (tx.id(), committed.height)
    }

    /// Passes `action`: proposed by the first department, approved by the next two.
    async fn pass(&self, net: &Network, client: &mut LedgerClient, id: &str, action: &Action) {
        let proposal = ProposalId::new(id).unwrap();
        self.send(client, &dept(&net.net, 0), propose_body(&proposal, action))
            .await;
        self.send(client, &dept(&net.net, 1), approve_body(&proposal))
            .await;
        self.send(client, &dept(&net.net, 2), approve_body(&proposal))
            .await;
    }
}

/// A token service started with `serve` on its own data directory and port.
struct Tokens {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<()>,
}

fn config(net: &Network, data: &str, addr: SocketAddr) -> ServiceConfig<TokensConfig> {
    let text = format!(
        r#"
[service]
name = "tokens"
[grpc]
listen = "{addr}"
[metrics]
enabled = false
[chain]
genesis = "{genesis}"
[tokens]
data_dir = "{data}"
repair_timeout_ms = 500
[nats]
urls = ["{nats}"]
request_timeout = "2s"
"#,
        genesis = net.genesis_path().display(),
        data = net.dir.path().join(data).display(),
        nats = net.nats.url(),
    );
    ConfigLoader::new()
        .toml(text)
        .env(Vec::<(String, String)>::new())
        .load()
        .expect("a valid token service configuration")
}

impl Tokens {
    /// Starts a token service on `data` and waits until it reports SERVING.
    async fn start(net: &Network, data: &str) -> Tokens {
        let addr = free_addr();
        let config = config(net, data, addr);
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            // A killed service's store may still be closing: try again until it opens.
            let mut config = Some(config);
            for _ in 0..100 {
                match citychain_tokens::serve(config.clone().unwrap(), stop.clone()).await {
                    Ok(()) => return,
                    Err(citychain_tokens::ServiceError::Store(_)) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(err) => panic!("token service failed: {err}"),
                }
            }
            config.take();
            panic!("the token store stayed locked");
        });
        let tokens = Tokens {
            addr,
            shutdown,
            task,
        };
        for _ in 0..300 {
            if citychain_testkit::grpc::health(addr, SERVICE_NAME).await
                == Some(ServingStatus::Serving as i32)
            {
                return tokens;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the token service did not become SERVING");
    }

    async fn client(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    /// Waits until the service has applied `height`.
    async fn wait_at(&self, height: u64) -> TokenServiceClient<Channel> {
        let mut client = self.client().await;
        for _ in 0..300 {
            let supply = client.get_supply(pb::GetSupplyRequest {}).await.unwrap();
            if supply.into_inner().height >= height {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the token service did not reach height {height}");
    }

    /// Kills the service where it stands (its task aborted mid-work).
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("the token service stopped cleanly");
    }
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
    for _ in 0..300 {
        let last = bus.stream_state(&stream).await.unwrap().last_sequence;
        let mut events = Vec::new();
        for seq in 1..=last {
            let Ok(message) = bus.get_message(&stream, seq).await else {
                continue;
            };
            if let Some(name) = message.subject.strip_prefix(&prefix) {
                events.push((
                    name.to_string(),
                    message.msg_id.unwrap_or_default(),
                    message.payload.to_vec(),
                ));
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
    let net = Network::start(network(4, 71)).await;
    let mut ledger = net.client().await;
    let tokens = Tokens::start(&net, "tokens").await;
    let members = Members::new(&net);
    let tax = dept(&net.net, 1);

    members
        .pass(
            &net,
            &mut ledger,
            "filing",
            &Action::DeclareRecordType(filing_type(&tax, 7, 10)),
        )
        .await;
    members
        .pass(&net, &mut ledger, "fund-bank", &grant(BANK, 10))
        .await;
    let (record, _) = members
        .send(&mut ledger, &tax, upload("{\"amount\":1}"))
        .await;
    let (paid, _) = members.send(&mut ledger, BANK, read(record)).await;
    let (failed, last) = members.send(&mut ledger, BANK, read(record)).await;

    let mut client = tokens.wait_at(last).await;
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
    let unknown = client
        .get_balance(pb::GetBalanceRequest {
            account: "member:dept.nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    let bad = client
        .get_balance(pb::GetBalanceRequest {
            account: "NOT AN ACCOUNT".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");

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

    tokens.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n4_kill_the_token_service_mid_stream_and_it_matches_a_clean_replay() {
    let net = Network::start(network(4, 72)).await;
    let mut ledger = net.client().await;
    let members = Members::new(&net);
    let tax = dept(&net.net, 1);

    members
        .pass(
            &net,
            &mut ledger,
            "filing",
            &Action::DeclareRecordType(filing_type(&tax, 3, 5)),
        )
        .await;
    members
        .pass(&net, &mut ledger, "fund-bank", &grant(BANK, 20))
        .await;
    let (record, _) = members
        .send(&mut ledger, &tax, upload("{\"amount\":1}"))
        .await;

    // Twelve reads: six are paid (20 / 3), the rest fail. The first four are submitted
    // without waiting and the service is killed while their blocks come in; four more
    // commit while it is down; it restarts on its store for the last four.
    let mut running = Some(Tokens::start(&net, "tokens").await);
    let mut reads = Vec::new();
    let mut in_flight = Vec::new();
    for _ in 0..4 {
        let tx = ledger
            .sign(&members.signers[BANK], read(record))
            .await
            .unwrap();
        in_flight.push(ledger.submit(&tx).await.unwrap());
        reads.push(tx.id());
    }
    if let Some(tokens) = running.take() {
        tokens.kill().await;
    }
    for id in &in_flight {
        ledger.wait(id, Duration::from_secs(60)).await.unwrap();
    }
    for i in 4..12 {
        if i == 8 {
            running = Some(Tokens::start(&net, "tokens").await);
        }
        reads.push(members.send(&mut ledger, BANK, read(record)).await.0);
    }
    let tokens = running.expect("restarted");
    let height = net.chain_height().await;
    let mut restarted = tokens.wait_at(height).await;

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

    // A clean replay into an empty store agrees, balance for balance and hash for hash.
    let fresh = Tokens::start(&net, "tokens-fresh").await;
    let mut clean = fresh.wait_at(height).await;
    let balances = all_balances(&mut restarted).await;
    assert_eq!(balances, all_balances(&mut clean).await);
    assert_eq!(balance(&mut restarted, BANK).await, 2);
    assert_eq!(balance(&mut restarted, &tax).await, 5 + 18);
    let hash = |h| pb::GetJournalHashRequest { height: h };
    let a = restarted
        .get_journal_hash(hash(height))
        .await
        .unwrap()
        .into_inner();
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

    fresh.stop().await;
    tokens.stop().await;
    net.stop().await;
}
