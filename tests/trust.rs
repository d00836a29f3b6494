//! Trust boundaries on the bus, against a real nats-server with authentication on: who may
//! connect and publish where, validators that carry on when the bus carries garbage, and
//! verdicts that only the token service's identity can sign.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use citychain_bus::access::{self, Permissions};
use citychain_bus::{
    BusConfig, BusError, ConsumerSpec, HeaderMap, StreamKind, StreamsConfig, connect,
};
use citychain_governance::{Action, FieldKind, RecordType};
use citychain_kernel::{Height, MemberId, Role, SignedEvent, SigningKey, TxBody, TxId};
use citychain_proto::citychain::licence::v1::read_state::State;
use citychain_proto::citychain::tokens::v1 as tpb;
use citychain_records::{ReadTarget, read_body};
use citychain_scenarios::dev::{citychain, citychain_fails};
use citychain_scenarios::platform::{CITIZEN, Platform, SURVEY, SURVEY_PAYLOAD, WAIT};
use citychain_scenarios::{Network, Service};
use citychain_testkit::genesis::network;
use citychain_testkit::nats::OPERATOR_USER;
use citychain_testkit::note;
use prost::Message;

/// The bank of the sample members.
const BANK: &str = "bank.city-commercial";

const SEED: u64 = 83;

/// A connection as `user` whose requests (JetStream acknowledgements among them) give up
/// after a second, so a refused publish fails quickly.
async fn connect_as(net: &Network, user: &str) -> citychain_bus::Bus {
    let config = BusConfig {
        request_timeout: Duration::from_secs(1),
        ..net.nats.user(user)
    };
    connect(&config).await.expect("a known user connects")
}

/// Publishes on `subject` as `user` and says whether JetStream stored the message.
async fn stored(net: &Network, user: &str, subject: &str) -> bool {
    let bus = connect_as(net, user).await;
    bus.publish_idempotent(
        subject,
        &format!("probe-{user}-{subject}"),
        "probe".into(),
        HeaderMap::new(),
    )
    .await
    .is_ok()
}

/// `net`'s server refuses clients without credentials, and each user publishes only where the
/// permission table lets it, and can where it does; nothing refused reaches CHAIN (which no
/// validator has written to yet).
async fn keeps_to_the_table(net: &Network) {
    let streams = net.streams.clone();
    let validator = citychain_testkit::nats::validator_user(&net.net, 0);

    // No credentials, no connection.
    let anonymous = BusConfig {
        connect_timeout: Duration::from_secs(2),
        ..BusConfig::with_url(net.nats.url())
    };
    match connect(&anonymous).await {
        Err(BusError::Unauthorized { .. }) => {}
        other => panic!("an anonymous client was not refused as unauthorized: {other:?}"),
    }

    let chain = streams.chain_subject();
    let paid = streams.event_subject("tokens", "ReadPaid").unwrap();
    let mempool = streams.mempool_subject();
    assert!(!stored(net, "tokens", &chain).await, "tokens wrote CHAIN");
    assert!(
        !stored(net, "ledger", &chain).await,
        "the ledger wrote CHAIN"
    );
    assert!(
        !stored(net, "licence", &paid).await,
        "licence forged a verdict"
    );
    assert!(
        !stored(net, "ledger", &paid).await,
        "the ledger forged a verdict"
    );
    assert!(
        !stored(net, &validator, &paid).await,
        "a validator forged a verdict"
    );
    assert!(!stored(net, "tokens", &mempool).await, "tokens submitted");

    // What each may do, it can.
    assert!(stored(net, "tokens", &paid).await);
    assert!(stored(net, "ledger", &mempool).await);
    assert!(stored(net, "licence", &mempool).await);

    // Nothing refused reached CHAIN.
    let bus = net.bus().await;
    let state = bus
        .stream_state(&streams.stream_name(StreamKind::Chain))
        .await
        .unwrap();
    assert_eq!(state.messages, 0, "CHAIN holds only what validators wrote");

    durables_stay_with_their_keeper(net).await;
}

/// A validator's MEMPOOL consumer is its own: neither the ledger (which follows MEMPOOL) nor
/// another validator can look it up, pull from it or delete it, while each still follows
/// MEMPOOL through a consumer of its own; the validator then gets the first transaction, which
/// nobody took before it.
async fn durables_stay_with_their_keeper(net: &Network) {
    let mempool = net.streams.stream_name(StreamKind::Mempool);
    let member = net.net.genesis.validators[0].as_str();
    let durable = access::validator_durable(member);
    let keeper = connect_as(net, &access::validator_user(member)).await;
    let spec = ConsumerSpec::new(durable.clone()).max_ack_pending(1);
    let mut consumer = keeper.durable_consumer(&mempool, &spec).await.unwrap();
    let first = keeper.stream_state(&mempool).await.unwrap().first_sequence;
    assert!(first > 0, "MEMPOOL holds the probes");
    let other_validator = citychain_testkit::nats::validator_user(&net.net, 1);
    // The JetStream API answers a call it receives, even one about a consumer it lacks; a
    // call the user's permissions refuse never reaches it and gets no answer.
    let answered = |bus: &citychain_bus::Bus, call: &str, body: &'static str| {
        let subject = format!("$JS.API.CONSUMER.{call}.{mempool}.{durable}");
        let client = bus.client().clone();
        async move { client.request(subject, body.into()).await.is_ok() }
    };
    assert!(
        answered(&keeper, "INFO", "").await,
        "the keeper looks it up"
    );
    for intruder in ["ledger", other_validator.as_str()] {
        let bus = connect_as(net, intruder).await;
        assert!(
            !answered(&bus, "INFO", "").await,
            "{intruder} looked up {durable}"
        );
        assert!(
            !answered(&bus, "MSG.NEXT", r#"{"batch":1,"no_wait":true}"#).await,
            "{intruder} pulled from {durable}"
        );
        assert!(
            !answered(&bus, "DELETE", "").await,
            "{intruder} deleted {durable}"
        );
        let mut own = bus.tail(&mempool, first).await.unwrap();
        let seen = tokio::time::timeout(WAIT, own.next())
            .await
            .expect("its own consumer delivers")
            .expect("the connection is open")
            .unwrap();
        assert_eq!(seen.sequence, first, "{intruder} follows MEMPOOL");
    }
    let delivery = consumer
        .next_timeout(WAIT)
        .await
        .unwrap()
        .expect("the validator's consumer is still there");
    assert_eq!(delivery.stream_sequence, first, "nobody took it first");
    assert_eq!(delivery.delivered_count, 1, "nobody took it first");
    drop(consumer);
    keeper.delete_consumer(&mempool, &durable).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_publishes_only_on_its_own_subjects() {
    let net = Network::new(network(4, SEED)).await;
    let streams = net.streams.clone();
    keeps_to_the_table(&net).await;
    let bus = net.bus().await;

    // A service cannot change a stream's limits (only validators manage the streams).
    let tokens = connect_as(&net, "tokens").await;
    let mut shortened = streams.stream_config(StreamKind::Mempool);
    let kept = shortened.max_age;
    shortened.max_age = Duration::from_secs(1);
    assert_ne!(kept, shortened.max_age);
    assert!(
        tokens.jetstream().update_stream(&shortened).await.is_err(),
        "tokens changed MEMPOOL's limits"
    );
    let now = bus
        .jetstream()
        .get_stream(&shortened.name)
        .await
        .unwrap()
        .cached_info()
        .config
        .max_age;
    assert_eq!(now, kept, "MEMPOOL keeps its limits");
}

/// `citychain nats users` for `net`'s genesis into `dir`: the users' `authorization` block as
/// the official NATS chart renders it from the values file (`config.merge` goes into
/// nats.conf, which is JSON), and each user's seed file by user name.
fn users_made_by_the_command(
    net: &citychain_testkit::genesis::TestNetwork,
    dir: &std::path::Path,
) -> (String, BTreeMap<String, PathBuf>) {
    let genesis = net.write_to(&dir.join("genesis")).unwrap();
    let out = dir.join("nats-users");
    let args = [
        "nats",
        "users",
        "--genesis",
        genesis.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    citychain(&args);
    // Made again with --force: new keys for everyone, and a seed of a user this genesis does
    // not have (a validator set that shrank) is removed, so the Secret holds none.
    let stale = out.join("seeds").join("validator-9.nk");
    std::fs::write(&stale, "SU-stale").unwrap();
    let forced: Vec<&str> = args.iter().copied().chain(["--force"]).collect();
    let said = citychain(&forced);
    assert!(said.contains("4 validators, 3 services"), "{said}");
    assert!(!stale.exists(), "{said}");
    let values: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("nats-auth-values.yaml")).unwrap())
            .expect("the values file is YAML");
    let authorization = serde_json::to_string(&values["config"]["merge"]["authorization"]).unwrap();
    let mut seeds = BTreeMap::new();
    seeds.insert(OPERATOR_USER.to_owned(), out.join("operator.nk"));
    for (i, member) in net.genesis.validators.iter().enumerate() {
        seeds.insert(
            access::validator_user(member.as_str()),
            out.join("seeds").join(format!("validator-{i}.nk")),
        );
    }
    for service in ["ledger", "licence", "tokens"] {
        seeds.insert(
            service.to_owned(),
            out.join("seeds").join(format!("{service}.nk")),
        );
    }
    for path in seeds.values() {
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is readable by others", path.display());
    }
    // Run again, it refuses to replace the keys the servers know.
    let refused = citychain_fails(&args);
    assert!(
        refused.contains("already exists; pass --force"),
        "{refused}"
    );
    (format!("authorization: {authorization}"), seeds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_network_runs_on_the_users_nats_users_makes_each_with_only_its_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let plan = network(4, SEED + 7);
    let (authorization, seeds) = users_made_by_the_command(&plan, dir.path());
    let mut net = Network::with_nats(plan, move |builder| {
        builder.authorization(authorization, seeds)
    })
    .await;
    keeps_to_the_table(&net).await;

    // Every validator and service runs on its own user: a governance change commits through
    // the ledger, and the licence and token services follow the chain past it.
    net.start_validators().await;
    net.start(Service::Ledger, "ledger").await;
    net.start(Service::Tokens, "tokens").await;
    net.start(Service::Licence, "licence").await;
    let mut ledger = net.client().await;
    let income = Action::DeclareRecordType(
        RecordType::build(
            "tax.income",
            &net.departments()[0],
            &[("amount", FieldKind::Integer, true)],
            &[Role::Department],
            1,
            1,
        )
        .unwrap(),
    );
    let height = net.pass(&mut ledger, "declare-income", &income).await;
    let mut licence =
        citychain_client::LicenceClient::connect(&format!("http://{}", net.licence_addr))
            .await
            .unwrap();
    licence.wait_applied(height, WAIT).await.unwrap();
    for service in [Service::Tokens, Service::Licence, Service::Ledger] {
        net.wait_serving(service).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_on_chain_and_consensus_subjects_stops_no_validator() {
    let mut net = Network::new(network(4, SEED + 1)).await;
    net.start_validators().await;
    net.start(Service::Ledger, "ledger").await;
    let mut client = net.client().await;
    let dept = net.departments()[0].clone();
    let signer = net.signer(&dept, 1);
    let numbered = |n: u32| note(&format!("note {n}"));
    client.submit_and_wait(&signer, numbered(1)).await.unwrap();

    // Validator 3 is down while the garbage arrives, to catch up over it later.
    net.stop_validator(3).await;
    let chain_stream = net.streams.stream_name(StreamKind::Chain);
    let before = net
        .bus()
        .await
        .stream_state(&chain_stream)
        .await
        .unwrap()
        .last_sequence;

    // Garbage where validators listen: CHAIN (it takes the next sequence), the consensus
    // subjects, each validator's own subject and block service, and MEMPOOL.
    let operator = net.bus().await;
    let nats = operator.client();
    let prefix = net.streams.chain_subject_prefix();
    let mut subjects = vec![
        net.streams.chain_subject(),
        format!("{prefix}.consensus.all"),
        net.streams.mempool_subject(),
    ];
    for key in net.net.validator_keys() {
        let key = key.signing.public_key().to_string();
        subjects.push(format!("{prefix}.consensus.to.{key}"));
        subjects.push(net.streams.block_service_subject(&key));
    }
    for subject in &subjects {
        for garbage in [&b""[..], b"\x00", b"\xff\xfe garbage \x01", &[0x0a; 300]] {
            nats.publish(subject.clone(), garbage.to_vec().into())
                .await
                .unwrap();
        }
    }
    nats.flush().await.unwrap();

    // Commits go on past the garbage, and the ledger repairs the gap it left on CHAIN.
    for n in 2..8 {
        client.submit_and_wait(&signer, numbered(n)).await.unwrap();
    }
    let last = operator
        .stream_state(&chain_stream)
        .await
        .unwrap()
        .last_sequence;
    let mut undecodable = 0;
    for sequence in before + 1..=last {
        let message = operator.get_message(&chain_stream, sequence).await.unwrap();
        if citychain_kernel::Block::decode(&message.payload).is_err() {
            undecodable += 1;
        }
    }
    assert_eq!(undecodable, 4, "the four garbage messages sit in CHAIN");
    let tip = client.tip_height().await.unwrap();
    assert!(
        tip > before + 4,
        "the ledger applied blocks past the garbage: tip {tip}"
    );
    for i in 0..3 {
        assert!(net.validator_running(i), "validator {i} exited");
    }

    // The validator that was down catches up over the garbage, and votes again: with one
    // of the others stopped, nothing commits without it.
    net.start_validator(3).await;
    net.stop_validator(0).await;
    client.submit_and_wait(&signer, numbered(20)).await.unwrap();
    assert!(net.validator_running(3), "the restarted validator exited");
}

/// The test-only intruder: a NATS account that may publish anything on the token platform's
/// subjects of EVENTS, as a compromised service account could.
const FORGER: &str = "forger";

/// Publishes, as the forger, `ReadPaid` for `read` in every shape a forger can make (the bare
/// message; signed as `service.tokens` by a stranger's key and by `bank`'s; signed at a height
/// the chain has not reached), each under a message id the token service could use next, and
/// returns how many JetStream stored.
async fn forge_paid(
    forger: &citychain_bus::Bus,
    streams: &StreamsConfig,
    read: &TxId,
    tip: u64,
    bank: &SigningKey,
) -> usize {
    let subject = streams.event_subject("tokens", "ReadPaid").unwrap();
    let paid = |height: u64| {
        tpb::ReadPaid {
            source: Some(tpb::ChainRef {
                height,
                index: 0,
                tx_id: read.to_string(),
            }),
            read_id: read.to_string(),
            amount: 3,
            ..Default::default()
        }
        .encode_to_vec()
    };
    let identity = MemberId::new("service.tokens").unwrap();
    let stranger = SigningKey::from_seed(&[0xee; 32]);
    let mut stored = 0;
    for height in tip..tip + 6 {
        let id = format!("tokens.{height}.0.0");
        let signed = |key: &SigningKey, at: u64| {
            SignedEvent::sign(
                key,
                identity.clone(),
                Height(at),
                id.clone(),
                "ReadPaid",
                paid(height),
            )
            .encode()
        };
        let forgeries = [
            (id.clone(), paid(height)),
            (format!("{id}.stranger"), signed(&stranger, height)),
            (format!("{id}.bank"), signed(bank, height)),
            (format!("{id}.ahead"), signed(&stranger, height + 1_000_000)),
        ];
        for (msg_id, payload) in forgeries {
            if forger
                .publish_idempotent(&subject, &msg_id, payload.into(), HeaderMap::new())
                .await
                .is_ok()
            {
                stored += 1;
            }
        }
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_verdicts_before_and_after_the_real_one_release_no_key() {
    let streams = StreamsConfig::new("city-test").unwrap();
    let forger_may = Permissions {
        publish: vec![streams.service_events("tokens").unwrap()],
        subscribe: vec![format!("{}.>", access::inbox_prefix(FORGER))],
        ..Permissions::default()
    };
    let mut p = Platform::start_with(|nats| {
        nats.custom_user(FORGER, "a test's intruder on EVENTS", forger_may)
    })
    .await;
    let forger = connect_as(&p.net, FORGER).await;

    // A record type banks may read, at 3 tokens; the bank has none.
    let income = Action::DeclareRecordType(
        RecordType::build(
            "income.statement",
            "dept.tax",
            &[("monthly_income_cny", FieldKind::Integer, true)],
            &[Role::Department, Role::Bank],
            3,
            5,
        )
        .unwrap(),
    );
    let declared = p.net.pass(&mut p.ledger, "declare-income", &income).await;
    p.wait_licence_at(declared).await;
    let record = p
        .upload(
            "dept.tax",
            1,
            "income.statement",
            r#"{"monthly_income_cny":9000}"#,
        )
        .await;
    assert_eq!(p.balance(BANK).await, 0);

    // The bank's read is signed first, so its id is known; forgeries for it are on EVENTS
    // before the read is even submitted, under the ids the token service would use.
    let expiry = p.expiry().await;
    let body = read_body(&ReadTarget::Record(record), CITIZEN, "loan pre-check");
    let read = p.signer(BANK, 1).sign(body, expiry).unwrap();
    let bank_key = p.net.net.keys[BANK].signing.clone();
    let tip = p.ledger.tip_height().await.unwrap();
    let before = forge_paid(&forger, &p.net.streams, &read.id(), tip, &bank_key).await;
    assert_eq!(before, 24, "the forger may publish on EVENTS");
    let id = p.ledger.submit(&read).await.unwrap();
    p.ledger.wait(&id, WAIT).await.unwrap();
    let state = p.licence.wait_read(&id, WAIT).await.unwrap();
    assert_eq!(state.state, State::PaymentFailed as i32, "{state:?}");
    assert!(state.grant.is_none() && state.sealed_payload.is_empty());

    // More forgeries after the real verdict.
    let tip = p.ledger.tip_height().await.unwrap();
    forge_paid(&forger, &p.net.streams, &read.id(), tip, &bank_key).await;

    // A paid read after all of them: once its key is released, the licence service has
    // judged every forgery before it on EVENTS.
    p.upload("dept.surveying", 1, SURVEY, SURVEY_PAYLOAD).await;
    p.wait_balance("dept.surveying", 5).await;
    let later = p.read("dept.surveying", 2, record).await;
    let released = p.licence.wait_read(&later, WAIT).await.unwrap();
    assert_eq!(released.state, State::Released as i32, "{released:?}");

    let state = p.licence.wait_read(&id, WAIT).await.unwrap();
    assert_eq!(state.state, State::PaymentFailed as i32, "{state:?}");
    assert!(state.grant.is_none() && state.sealed_payload.is_empty());
    assert_eq!(p.balance(BANK).await, 0, "the bank stays unpaid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_the_chain_does_not_carry_are_refused_at_submission_and_by_every_validator() {
    use citychain_client::Signer;
    use citychain_proto::citychain::ledger::v1::SubmitTransactionRequest;
    use tonic::Code;

    let mut net = Network::new(network(4, SEED + 3)).await;
    net.start_validators().await;
    net.start(Service::Ledger, "ledger").await;
    let mut client = net.client().await;
    let chain_id = net.net.genesis.chain_id.clone();
    let member = net.signer(&net.departments()[0], 1);
    let outsider = Signer::new(chain_id.clone(), SigningKey::from_seed(&[0x77; 32]), 1);
    let random = |n: usize| -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    };
    let read_type = citychain_records::READ_TYPE_URL;
    let no_subjects = TxBody {
        subjects: Vec::new(),
        ..note("no subjects")
    };
    let cases: Vec<(&Signer, TxBody, Code, &str)> = vec![
        (
            &member,
            TxBody::new("citychain.bench.v1.Put", random(200)),
            Code::InvalidArgument,
            "is not one the chain carries",
        ),
        (
            &member,
            TxBody::new(read_type, random(64)).with_subjects([CITIZEN]),
            Code::InvalidArgument,
            "does not decode",
        ),
        (
            &member,
            no_subjects,
            Code::InvalidArgument,
            "must declare exactly",
        ),
        (
            &outsider,
            TxBody::new("citychain.citizen.v1.Register", random(60_000)),
            Code::InvalidArgument,
            "is not one the chain carries",
        ),
        (
            &outsider,
            note("a stranger's read"),
            Code::PermissionDenied,
            "is not a member's",
        ),
    ];

    let mut junk = Vec::new();
    for (signer, body, code, expected) in cases {
        let shown = body.type_url.clone();
        let tx = client.sign(signer, body).await.unwrap();
        let status = client
            .grpc()
            .submit_transaction(SubmitTransactionRequest {
                transaction: tx.bytes().to_vec(),
            })
            .await
            .expect_err(&shown);
        assert_eq!(status.code(), code, "{shown}: {}", status.message());
        assert!(
            status.message().contains(expected),
            "{shown}: {}",
            status.message()
        );
        assert!(status.message().len() < 600, "{shown}: a long message");
        junk.push(tx);
    }

    // The same transactions put straight on MEMPOOL, as a client with a service's NATS
    // account could: no validator takes them into a block, and commits go on around them.
    let bus = connect_as(&net, "ledger").await;
    for tx in &junk {
        bus.publish_idempotent(
            &net.streams.mempool_subject(),
            &tx.id().to_string(),
            tx.bytes().to_vec().into(),
            HeaderMap::new(),
        )
        .await
        .unwrap();
    }
    let mut committed = Vec::new();
    for n in 0..3 {
        let tx = client
            .sign(&member, note(&format!("around the junk {n}")))
            .await
            .unwrap();
        let id = client.submit(&tx).await.unwrap();
        client.wait(&id, WAIT).await.unwrap();
        committed.push(id);
    }
    let height = client.tip_height().await.unwrap();
    let chain_stream = net.streams.stream_name(StreamKind::Chain);
    let operator = net.bus().await;
    let last = operator
        .stream_state(&chain_stream)
        .await
        .unwrap()
        .last_sequence;
    let mut on_chain = Vec::new();
    for sequence in 1..=last {
        let message = operator.get_message(&chain_stream, sequence).await.unwrap();
        let block = citychain_kernel::Block::decode(&message.payload).unwrap();
        on_chain.extend(block.txs.iter().map(|t| t.id().to_string()));
    }
    assert!(height >= 3, "blocks were made: height {height}");
    for id in &committed {
        assert!(on_chain.contains(id), "{id} was not committed");
    }
    for tx in &junk {
        assert!(
            !on_chain.contains(&tx.id().to_string()),
            "{} ({}) was committed",
            tx.id(),
            tx.body().type_url
        );
    }
}
