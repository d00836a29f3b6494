//! The licence and token platforms end to end, with four real validators, the ledger, the
//! token service and the licence service against a real nats-server: a department's record is
//! read by another only after the read's receipt has committed and the token platform has paid
//! for it; refusals release nothing and say why; the object store holds only ciphertext; a
//! citizen's receipts are exactly the committed reads of their records, each with a proof that
//! verifies offline; and restarts lose nothing and release no key twice.

use std::collections::BTreeSet;
use std::time::Duration;

use citychain_client::{Signer, open_read};
use citychain_governance::Action;
use citychain_kernel::proof::TransactionProof;
use citychain_kernel::{Height, KeyPair, MemberId, TxId};
use citychain_proto::citychain::ledger::v1 as ledger_pb;
use citychain_proto::citychain::licence::v1 as lpb;
use citychain_proto::citychain::licence::v1::read_state::State;
use citychain_records::{ReadTarget, read_body, upload_body};
use citychain_scenarios::Service;
use citychain_scenarios::platform::{
    CITIZEN, FILING, FILING_PAYLOAD, Platform, SURVEY, SURVEY_PAYLOAD, WAIT,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_is_released_to_another_department_only_after_its_read_commits_and_is_paid() {
    let mut p = Platform::start().await;
    let record = p.upload("dept.housing", 1, FILING, FILING_PAYLOAD).await;
    p.wait_balance("dept.housing", 5).await;

    // A read signed but never submitted has no receipt: nothing can be obtained for it.
    let expiry = p.expiry().await;
    let unsubmitted = p
        .signer("dept.tax", 900)
        .sign(read_body(&ReadTarget::Record(record), CITIZEN, "x"), expiry)
        .unwrap();
    let status = p
        .licence
        .grpc()
        .get_read(lpb::GetReadRequest {
            read_id: unsubmitted.id().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    // The tax bureau has no tokens yet: its committed read is not paid and releases nothing.
    let unpaid = p.read("dept.tax", 1, record).await;
    let state = p.licence.wait_read(&unpaid, WAIT).await.unwrap();
    assert_eq!(state.state, State::PaymentFailed as i32, "{state:?}");
    assert!(state.reason.contains("3 short"), "{}", state.reason);
    assert!(state.grant.is_none() && state.sealed_payload.is_empty());

    // Governance grants it tokens; the next read is paid and released.
    let granted = p
        .net
        .pass(
            &mut p.ledger,
            "grant-tax",
            &Action::GrantTokens {
                member: MemberId::new("dept.tax").unwrap(),
                amount: 10,
            },
        )
        .await;
    p.wait_balance("dept.tax", 10).await;
    let paid = p.read("dept.tax", 2, record).await;
    let state = p.licence.wait_read(&paid, WAIT).await.unwrap();
    assert_eq!(state.state, State::Released as i32, "{state:?}");
    assert!(state.height > granted, "the read committed after the grant");
    let tax = &p.net.net.keys["dept.tax"];
    let expected = p.expected(&paid, record);
    let opened = open_read(&state, &tax.encryption, &expected).unwrap();
    assert_eq!(opened.payload, FILING_PAYLOAD.as_bytes());
    assert_eq!(
        opened.upload.signer(),
        &p.net.net.keys["dept.housing"].signing.public_key()
    );
    assert_eq!(
        p.ledger.confirm_upload(&opened).await.unwrap(),
        "dept.housing"
    );
    // Another member's secret opens nothing.
    let bank = &p.net.net.keys["bank.city-commercial"];
    assert!(open_read(&state, &bank.encryption, &expected).is_err());
    // An answer for another read, or about another record, is refused.
    let earlier = p.expected(&unpaid, record);
    let err = open_read(&state, &tax.encryption, &earlier).unwrap_err();
    assert!(err.to_string().contains("not "), "{err}");
    let mut other_record = expected.clone();
    other_record.record_id = Some(TxId::default());
    let err = open_read(&state, &tax.encryption, &other_record).unwrap_err();
    assert!(err.to_string().contains("was asked for"), "{err}");
    p.wait_balance("dept.tax", 7).await;
    p.wait_balance("dept.housing", 8).await;

    // The object store holds only ciphertext.
    let bus = p.net.bus().await;
    let objects = bus
        .object_store(&p.net.streams.object_bucket("licence-records").unwrap(), 1)
        .await
        .unwrap();
    let names = objects.list_names().await.unwrap();
    assert_eq!(names, vec![record.to_string()]);
    for name in names {
        let stored = objects.get(&name).await.unwrap().unwrap();
        for needle in ["HZ-2026-118734", "3200000", "contract_no"] {
            assert!(
                !stored.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "object {name} holds {needle:?} in clear"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_reads_release_nothing_and_say_why() {
    let mut p = Platform::start().await;
    let record = p.upload("dept.surveying", 1, SURVEY, SURVEY_PAYLOAD).await;

    // Only departments read survey records: a bank is refused at submission, naming the rule.
    let expiry = p.expiry().await;
    let body = read_body(&ReadTarget::Record(record), CITIZEN, "mortgage");
    let err = p
        .licence
        .submit_read(&p.signer("bank.city-commercial", 1), expiry, body)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("may be read by its owner and department") && err.contains("is a bank"),
        "{err}"
    );

    // The same read sent around the licence API (straight to the ledger) still commits as a
    // receipt, and is refused there: nothing is released.
    let tx = p
        .signer("bank.city-commercial", 2)
        .sign(
            read_body(&ReadTarget::Record(record), CITIZEN, "mortgage"),
            expiry,
        )
        .unwrap();
    let id = p.ledger.submit(&tx).await.unwrap();
    p.ledger.wait(&id, WAIT).await.unwrap();
    let state = p.licence.wait_read(&id, WAIT).await.unwrap();
    assert_eq!(state.state, State::Refused as i32, "{state:?}");
    assert!(state.reason.contains("is a bank"), "{}", state.reason);
    assert!(state.grant.is_none() && state.sealed_payload.is_empty());
    // The token platform charged nothing for it.
    assert_eq!(p.balance("bank.city-commercial").await, 0);

    // An upload sent around the licence service commits without a payload: a paid read of it
    // is withheld for good, saying why.
    let bare = p
        .signer("dept.surveying", 5)
        .sign(
            upload_body(SURVEY, CITIZEN, SURVEY_PAYLOAD.as_bytes()),
            expiry,
        )
        .unwrap();
    let bare_id = p.ledger.submit(&bare).await.unwrap();
    p.ledger.wait(&bare_id, WAIT).await.unwrap();
    let expiry = p.expiry().await;
    let body = read_body(&ReadTarget::Record(bare.id()), CITIZEN, "x");
    let err = p
        .licence
        .submit_read(&p.signer("dept.surveying", 6), expiry, body)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no stored payload"), "{err}");
    // Sent around the licence API, its owner's read (free, so paid at once) still commits.
    let read = p.read_via_ledger("dept.surveying", 7, bare.id()).await;
    let state = p.licence.wait_read(&read, WAIT).await.unwrap();
    assert_eq!(state.state, State::Refused as i32, "{state:?}");
    assert!(
        state.reason.contains("has no stored payload"),
        "{}",
        state.reason
    );
    assert!(state.grant.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_catalogue_lists_metadata_by_subject_type_owner_and_height_in_pages() {
    let mut p = Platform::start().await;
    let first = p.upload("dept.surveying", 1, SURVEY, SURVEY_PAYLOAD).await;
    let second = p.upload("dept.housing", 1, FILING, FILING_PAYLOAD).await;
    let third = p
        .upload(
            "dept.surveying",
            2,
            SURVEY,
            r#"{"floor_area_m2":60,"parcel_id":"x"}"#,
        )
        .await;
    let tip = p.ledger.tip_height().await.unwrap();
    p.wait_licence_at(tip).await;
    let search =
        |subject: &str, record_type: &str, owner: &str, from: u64, size: u32, token: String| {
            lpb::SearchRecordsRequest {
                subject: subject.into(),
                record_type: record_type.into(),
                owner: owner.into(),
                from_height: from,
                to_height: 0,
                page_size: size,
                page_token: token,
            }
        };
    let ids = |r: &lpb::SearchRecordsResponse| -> Vec<String> {
        r.records.iter().map(|r| r.record_id.clone()).collect()
    };
    let page = p
        .licence
        .grpc()
        .search_records(search(CITIZEN, "", "", 0, 2, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&page), vec![first.to_string(), second.to_string()]);
    assert!(
        page.records
            .iter()
            .all(|r| r.payload_size > 0 && !r.payload_hash.is_empty())
    );
    let rest = p
        .licence
        .grpc()
        .search_records(search(CITIZEN, "", "", 0, 2, page.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&rest), vec![third.to_string()]);
    assert!(rest.next_page_token.is_empty());

    let surveys = p
        .licence
        .grpc()
        .search_records(search("", SURVEY, "", 0, 0, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&surveys), vec![first.to_string(), third.to_string()]);
    let housing = p
        .licence
        .grpc()
        .search_records(search("", "", "dept.housing", 0, 0, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&housing), vec![second.to_string()]);
    let later = p
        .licence
        .grpc()
        .search_records(search(
            "",
            SURVEY,
            "",
            surveys.records[1].height,
            0,
            String::new(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&later), vec![third.to_string()]);
    let none = p
        .licence
        .grpc()
        .search_records(search("citizen:nobody", "", "", 0, 0, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert!(none.records.is_empty());

    let err = p
        .licence
        .grpc()
        .search_records(search(CITIZEN, "", "", 0, 101, String::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("maximum of 100"),
        "{}",
        err.message()
    );

    // Filters no record could match are refused naming their bound, without echoing a
    // long input back.
    let long = "x".repeat(1 << 20);
    for (request, field, limit) in [
        (
            search(&long, "", "", 0, 0, String::new()),
            "subject",
            "1 to 128",
        ),
        (
            search("citizen: spaced", "", "", 0, 0, String::new()),
            "subject",
            "visible ASCII",
        ),
        (
            search("", &long, "", 0, 0, String::new()),
            "record_type",
            "limit is 64",
        ),
        (
            search("", "Housing Filing", "", 0, 0, String::new()),
            "record_type",
            "",
        ),
        (search("", "", &long, 0, 0, String::new()), "owner", "128"),
        (
            search("", "", "Dept Housing", 0, 0, String::new()),
            "owner",
            "",
        ),
    ] {
        let err = p.licence.grpc().search_records(request).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(
            err.message().contains(field) && err.message().contains(limit),
            "{field}: {}",
            err.message()
        );
        assert!(err.message().len() < 600, "{field}: a long message");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_citizens_receipts_are_the_committed_reads_of_their_records_with_offline_proofs() {
    let mut p = Platform::start().await;
    let survey = p.upload("dept.surveying", 1, SURVEY, SURVEY_PAYLOAD).await;
    let filing = p.upload("dept.housing", 1, FILING, FILING_PAYLOAD).await;
    let mut reads = BTreeSet::new();
    reads.insert(p.read("dept.housing", 2, survey).await);
    reads.insert(p.read("dept.surveying", 2, filing).await);
    reads.insert(p.read("dept.surveying", 3, survey).await);

    let citizen = KeyPair::from_seeds(None, &[7; 32], &[8; 32]);
    let citizen_signer = Signer::new(
        p.net.net.genesis.chain_id.clone(),
        citizen.signing.clone(),
        1,
    );
    let expiry = p.expiry().await;
    // Before a department vouches for the citizen's key, the query is refused.
    let err = p
        .licence
        .receipts(&citizen_signer, expiry, CITIZEN, "")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not bound to subject"), "{err}");
    let bind = citychain_records::bind_subject_body(CITIZEN, &citizen.signing.public_key());
    let bound = p
        .ledger
        .submit_and_wait(&p.signer("dept.public-security", 1), bind)
        .await
        .unwrap();
    p.wait_licence_at(bound.height).await;
    let expiry = p.expiry().await;
    let mut listed = None;
    for _ in 0..100 {
        match p
            .licence
            .receipts(&citizen_signer, expiry, CITIZEN, "")
            .await
        {
            Ok(list) => {
                listed = Some(list);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let listed = listed.expect("the bound citizen gets an answer");
    let ids: BTreeSet<String> = listed.receipts.iter().map(|r| r.read_id.clone()).collect();
    assert_eq!(ids, reads);
    for receipt in &listed.receipts {
        let proof = TransactionProof::from_proto(receipt.proof.clone().unwrap()).unwrap();
        let verified = proof.verify(&p.net.net.genesis.chain_id).unwrap();
        assert!(verified.signed_by_genesis(&p.net.net.genesis));
        assert_eq!(verified.tx.id().to_string(), receipt.read_id);
        assert_eq!(verified.height.0, receipt.height);
        assert!(!receipt.reader.is_empty() && receipt.purpose == "deed tax assessment");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_licence_service_loses_no_record_and_releases_no_key_twice() {
    let mut p = Platform::start().await;
    let filing = p.upload("dept.housing", 1, FILING, FILING_PAYLOAD).await;
    let survey = p.upload("dept.surveying", 1, SURVEY, SURVEY_PAYLOAD).await;
    let first = p.read("dept.surveying", 2, filing).await;
    let before = p.licence.wait_read(&first, WAIT).await.unwrap();
    assert_eq!(before.state, State::Released as i32, "{before:?}");

    // Reads commit while the licence service is down; it catches up when it is back.
    p.net.kill(Service::Licence).await;
    let second = p.read_via_ledger("dept.housing", 2, survey).await;
    let third = p.read_via_ledger("dept.housing", 3, survey).await;
    p.net.start(Service::Licence, "licence").await;

    let after = p.licence.wait_read(&first, WAIT).await.unwrap();
    assert_eq!(
        after.grant, before.grant,
        "the first grant was not issued again"
    );
    for read in [&second, &third] {
        let state = p.licence.wait_read(read, WAIT).await.unwrap();
        assert_eq!(state.state, State::Released as i32, "{state:?}");
        let housing = &p.net.net.keys["dept.housing"];
        let expected = p.expected(read, survey);
        assert_eq!(
            open_read(&state, &housing.encryption, &expected)
                .unwrap()
                .payload,
            SURVEY_PAYLOAD.as_bytes()
        );
    }
    for record in [filing, survey] {
        p.licence
            .grpc()
            .get_record(lpb::GetRecordRequest {
                record_id: record.to_string(),
            })
            .await
            .unwrap();
    }
    // Each read was charged once: housing earned 5 + 2 (surveying read its filing) and paid
    // 2 twice for the survey.
    p.wait_balance("dept.housing", 5 + 3 - 2 - 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_uploads_and_reads_get_typed_errors_naming_the_field_or_limit() {
    let mut p = Platform::start().await;
    let expiry = p.expiry().await;
    let housing = p.signer("dept.housing", 1);
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "unknown.type",
            "dept.housing",
            FILING_PAYLOAD.into(),
            "record type unknown.type is not declared",
        ),
        (
            FILING,
            "dept.housing",
            br#"{"contract_no":"x","price_cny":"lots","signed_on":"2026-01-01"}"#.to_vec(),
            "field \"price_cny\" must be integer",
        ),
        (
            FILING,
            "dept.housing",
            vec![b' '; 1024 * 1024 + 1],
            "above the limit of 1048576 bytes",
        ),
        (
            FILING,
            "dept.tax",
            FILING_PAYLOAD.into(),
            "is owned by dept.housing; dept.tax may not upload it",
        ),
    ];
    for (record_type, member, payload, needle) in cases {
        let signer = if member == "dept.housing" {
            &housing
        } else {
            &p.signer(member, 1)
        };
        let err = p
            .licence
            .upload(signer, expiry, record_type, CITIZEN, &payload)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{record_type} by {member}: {err}");
    }
    // An expired read request.
    let record = p.upload("dept.housing", 10, FILING, FILING_PAYLOAD).await;
    let tip = p.ledger.tip_height().await.unwrap();
    let body = read_body(&ReadTarget::Record(record), CITIZEN, "x");
    let err = p
        .licence
        .submit_read(&p.signer("dept.tax", 1), Height(tip), body)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("expired at height"), "{err}");
    // A record that does not exist.
    let body = read_body(&ReadTarget::Record(TxId::default()), CITIZEN, "x");
    let err = p
        .licence
        .submit_read(&p.signer("dept.tax", 2), expiry, body)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no record"), "{err}");
    // A body of the wrong kind.
    let err = p
        .licence
        .submit_read(&housing, expiry, upload_body(FILING, CITIZEN, b"{}"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("this call takes citychain.licence.v1.Read"),
        "{err}"
    );
}

/// The first status the ledger streams for `id`, asking again while it answers NOT_FOUND (a
/// transaction admitted by another service reaches the ledger through MEMPOOL, a moment
/// later); returns the open stream too.
async fn watch(
    ledger: &mut citychain_client::LedgerClient,
    id: &str,
) -> (
    tonic::Streaming<ledger_pb::TransactionStatus>,
    ledger_pb::TransactionStatus,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let asked = ledger
            .grpc()
            .watch_transaction(ledger_pb::WatchTransactionRequest { id: id.to_owned() })
            .await;
        match asked {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                let first = stream.message().await.unwrap().expect("a first status");
                return (stream, first);
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the ledger never learnt of {id}: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("watch {id}: {status:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_follows_an_upload_admitted_by_the_licence_service_from_pending_to_committed() {
    use ledger_pb::transaction_status::State as TxState;
    let mut p = Platform::start().await;
    // With every validator stopped, the upload waits in MEMPOOL.
    for i in 0..4 {
        p.net.stop_validator(i).await;
    }
    let expiry = p.expiry().await;
    let id = p
        .licence
        .upload(
            &p.signer("dept.housing", 1),
            expiry,
            FILING,
            CITIZEN,
            FILING_PAYLOAD.as_bytes(),
        )
        .await
        .unwrap();
    // It was never submitted to the ledger, which knows it from MEMPOOL.
    let (_, first) = watch(&mut p.ledger, &id).await;
    assert_eq!(first.state, TxState::Pending as i32, "{first:?}");

    // A restarted ledger knows it again, from what MEMPOOL still holds.
    p.net.stop(Service::Ledger).await;
    p.net.start(Service::Ledger, "ledger").await;
    p.net.wait_serving(Service::Ledger).await;
    p.ledger = p.net.client().await;
    let (mut stream, again) = watch(&mut p.ledger, &id).await;
    assert_eq!(again.state, TxState::Pending as i32, "{again:?}");

    // The validators come back: the same stream ends with the commit.
    p.net.start_validators().await;
    let last = tokio::time::timeout(WAIT, async {
        loop {
            let status = stream.message().await.unwrap().expect("a status");
            if status.state != TxState::Pending as i32 {
                return status;
            }
        }
    })
    .await
    .expect("the upload commits");
    assert_eq!(last.state, TxState::Committed as i32, "{last:?}");
    let found = p
        .ledger
        .grpc()
        .get_transaction(ledger_pb::GetTransactionRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((found.height, found.index), (last.height, last.index));

    // Nothing on MEMPOOL or the chain: still NOT_FOUND, saying where it looked.
    let unknown = p
        .ledger
        .grpc()
        .watch_transaction(ledger_pb::WatchTransactionRequest {
            id: "ab".repeat(32),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert!(unknown.message().contains("MEMPOOL"), "{unknown:?}");
}
