//! The lookup commands against `citychain dev` after a demo, each checked against what the
//! ledger itself answers over gRPC (and against the blocks it serves, walked from height 1):
//! `block show` by height and by a shortened hash, `tx show` by a shortened id (with its proof
//! checked offline), `tx list` by signer, subject and type in pages, `member list|show` and
//! `record-type list`; and the errors for prefixes that are too short, not hex, or unknown.
//! (Two ids sharing 32 bits cannot be produced here; the ambiguous case is checked on a store
//! with crafted ids in services/ledger/tests/indexes.rs and by the CLI's own unit test.)

use std::collections::BTreeMap;
use std::path::Path;

use citychain_kernel::{Block, SignedTx};
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_proto::citychain::ledger::v1::ledger_service_client::LedgerServiceClient;
use citychain_proto::citychain::licence::v1 as lpb;
use citychain_scenarios::dev::{citychain, citychain_fails, demo, start, stop};
use citychain_scenarios::platform::CITIZEN;
use prost::Message;
use serde_json::Value;
use tonic::transport::Channel;

/// Runs a lookup with `--json` against the network under `home`.
fn json(home: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--home", home.to_str().unwrap(), "--json"]);
    let said = citychain(&all);
    serde_json::from_str(&said).unwrap_or_else(|e| panic!("{all:?} printed no JSON ({e}): {said}"))
}

/// What the ledger holds, read over gRPC.
struct Truth {
    blocks: Vec<(String, Block)>,
    members: Vec<pb::MemberRecord>,
    record_types: Vec<citychain_proto::citychain::governance::v1::RecordTypeSpec>,
}

impl Truth {
    fn owner(&self, key: &[u8]) -> Option<String> {
        self.members.iter().find_map(|m| {
            let member = m.member.as_ref()?;
            (member.signing_key == key || m.retired_keys.iter().any(|r| r.key == key))
                .then(|| member.id.clone())
        })
    }

    /// Every committed transaction with its place, oldest first.
    fn transactions(&self) -> Vec<(u64, u32, SignedTx)> {
        self.blocks
            .iter()
            .flat_map(|(_, block)| {
                block
                    .txs
                    .iter()
                    .enumerate()
                    .map(|(i, tx)| (block.header.height.0, i as u32, tx.clone()))
            })
            .collect()
    }

    fn ids_where(&self, keep: impl Fn(&SignedTx) -> bool) -> Vec<String> {
        self.transactions()
            .into_iter()
            .filter(|(_, _, tx)| keep(tx))
            .map(|(_, _, tx)| tx.id().to_string())
            .collect()
    }
}

async fn read_truth(url: String) -> Truth {
    let mut ledger: LedgerServiceClient<Channel> = LedgerServiceClient::connect(url)
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20);
    let tip = ledger
        .list_blocks(pb::ListBlocksRequest {
            from_height: 1,
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .tip_height;
    let mut blocks = Vec::new();
    for height in 1..=tip {
        let found = ledger
            .get_block(pb::GetBlockRequest {
                at: Some(pb::get_block_request::At::Height(height)),
            })
            .await
            .unwrap()
            .into_inner();
        let block = Block::decode(&found.block.unwrap().encode_to_vec()).unwrap();
        blocks.push((found.hash, block));
    }
    let members = ledger
        .list_members(pb::ListMembersRequest {
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    let record_types = ledger
        .list_record_types(pb::ListRecordTypesRequest {
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .record_types;
    Truth {
        blocks,
        members,
        record_types,
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn lookups_print_what_the_ledger_holds_and_refuse_bad_prefixes_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("net");
    let dev = start(&home, &[]);
    demo(&home);
    let endpoints: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("endpoints.json")).unwrap())
            .unwrap();
    let url = endpoints["services"]["ledger"]["grpc"]
        .as_str()
        .unwrap()
        .to_owned();
    let truth = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(read_truth(url));
    let h = home.to_str().unwrap();

    // record-type list: the declared types, as governance has them.
    let listed = json(&home, &["record-type", "list"]);
    let types = listed["record_types"].as_array().unwrap();
    assert_eq!(types.len(), truth.record_types.len());
    assert!(types.len() >= 4, "{listed}");
    for (shown, spec) in types.iter().zip(&truth.record_types) {
        assert_eq!(shown["name"], spec.name.as_str());
        assert_eq!(shown["owner"], spec.owner.as_str());
        assert_eq!(shown["read_price"], spec.read_price);
        assert_eq!(shown["upload_reward"], spec.upload_reward);
        let fields: Vec<&str> = shown["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = spec.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(fields, expected, "{}", spec.name);
    }
    let text = citychain(&["record-type", "list", "--home", h]);
    assert!(
        text.contains("housing.filing  owner dept.housing"),
        "{text}"
    );

    // member list and show: ids, roles, validators and keys as the registry has them.
    let listed = json(&home, &["member", "list"]);
    let members = listed["members"].as_array().unwrap();
    assert_eq!(members.len(), truth.members.len());
    for (shown, record) in members.iter().zip(&truth.members) {
        let member = record.member.as_ref().unwrap();
        assert_eq!(shown["id"], member.id.as_str());
        assert_eq!(shown["status"], record.status.as_str());
        assert_eq!(shown["validator"], record.validator);
        assert_eq!(shown["keys"][0]["key"], hex::encode(&member.signing_key));
    }
    let bank = members
        .iter()
        .find(|m| m["id"] == "bank.city-commercial")
        .unwrap();
    assert_eq!(bank["role"], "bank");
    let tax = json(&home, &["member", "show", "dept.tax"]);
    assert_eq!(tax["role"], "department");
    assert_eq!(tax["keys"][0]["status"], "active");
    assert_eq!(tax["keys"][0]["valid_from"], 1);
    let text = citychain(&["member", "show", "dept.tax", "--home", h]);
    assert!(text.contains("signs from height 1"), "{text}");
    let unknown = citychain_fails(&["member", "show", "dept.nowhere", "--home", h]);
    assert!(unknown.contains("no member \"dept.nowhere\""), "{unknown}");

    // block show, by height and by a shortened hash.
    let (hash, block) = truth
        .blocks
        .iter()
        .find(|(_, b)| b.txs.len() >= 2)
        .expect("a block with transactions");
    let height = block.header.height.0.to_string();
    let shown = json(&home, &["block", "show", &height]);
    assert_eq!(shown["hash"], hash.as_str());
    assert_eq!(shown["prev_hash"], block.header.prev_hash.to_string());
    let tx_ids: Vec<String> = block.txs.iter().map(|t| t.id().to_string()).collect();
    let shown_ids: Vec<&str> = shown["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(shown_ids, tx_ids);
    let signers = shown["certificate"]["signers"].as_array().unwrap();
    assert_eq!(signers.len(), block.certificate.signatures.len());
    assert!(signers.len() >= 3, "{shown}");
    for signer in signers {
        let key = hex::decode(signer["key"].as_str().unwrap()).unwrap();
        assert_eq!(signer["member"].as_str(), truth.owner(&key).as_deref());
    }
    assert_eq!(
        shown["proposer"]["member"].as_str(),
        truth.owner(block.header.proposer.as_bytes()).as_deref()
    );
    let by_hash = json(&home, &["block", "show", &hash[..10], "--hash"]);
    assert_eq!(by_hash["height"], block.header.height.0);
    let text = citychain(&["block", "show", &height, "--home", h]);
    assert!(
        text.starts_with(&format!("block {height}  {hash}")),
        "{text}"
    );

    // tx list by type, subject and signer: exactly the committed transactions, in order.
    let reads = truth.ids_where(|tx| tx.body().type_url == "citychain.licence.v1.Read");
    assert!(reads.len() >= 7, "{reads:?}");
    let listed = json(
        &home,
        &["tx", "list", "--type", "citychain.licence.v1.Read", "--all"],
    );
    assert_eq!(ids(&listed), reads);
    let about = truth.ids_where(|tx| tx.body().subjects.iter().any(|s| s == CITIZEN));
    let listed = json(&home, &["tx", "list", "--subject", CITIZEN, "--all"]);
    assert_eq!(ids(&listed), about);
    let tax_key = truth
        .members
        .iter()
        .find(|m| m.member.as_ref().unwrap().id == "dept.tax")
        .unwrap()
        .member
        .as_ref()
        .unwrap()
        .signing_key
        .clone();
    let by_tax = truth.ids_where(|tx| tx.signer().as_bytes().as_slice() == tax_key);
    let listed = json(&home, &["tx", "list", "--signer", "dept.tax", "--all"]);
    assert_eq!(ids(&listed), by_tax);
    assert!(
        listed["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["signer"]["member"] == "dept.tax")
    );
    // Pages of two follow on from each other.
    let first = json(
        &home,
        &["tx", "list", "--subject", CITIZEN, "--page-size", "2"],
    );
    assert_eq!(ids(&first), about[..2]);
    let token = first["next_page_token"].as_str().unwrap().to_owned();
    let second = json(
        &home,
        &[
            "tx",
            "list",
            "--subject",
            CITIZEN,
            "--page-size",
            "2",
            "--page-token",
            &token,
        ],
    );
    assert_eq!(ids(&second), about[2..4]);

    // tx show by a shortened id: where it is, who signed it, its body decoded; its proof
    // verifies offline.
    let (at, index, upload) = truth
        .transactions()
        .into_iter()
        .find(|(_, _, tx)| tx.body().type_url == "citychain.licence.v1.Upload")
        .unwrap();
    let id = upload.id().to_string();
    let proof = dir.path().join("upload.proof");
    let shown = json(
        &home,
        &["tx", "show", &id[..12], "--proof", proof.to_str().unwrap()],
    );
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["status"], "committed");
    assert_eq!(
        (shown["height"].as_u64(), shown["index"].as_u64()),
        (Some(at), Some(u64::from(index)))
    );
    assert_eq!(
        shown["signer"]["member"].as_str(),
        truth.owner(upload.signer().as_bytes()).as_deref()
    );
    assert_eq!(shown["nonce"], upload.nonce());
    assert_eq!(shown["expiry_height"], upload.expiry().0);
    assert_eq!(shown["subjects"][0], CITIZEN);
    let body = lpb::Upload::decode(upload.body().value.as_slice()).unwrap();
    assert_eq!(shown["body"]["record_type"], body.record_type.as_str());
    assert_eq!(shown["body"]["subject"], body.subject.as_str());
    let genesis = home.join("genesis.json");
    let verified = citychain(&[
        "proof",
        "verify",
        "--genesis",
        genesis.to_str().unwrap(),
        proof.to_str().unwrap(),
    ]);
    assert!(verified.contains("verified"), "{verified}");
    assert!(verified.contains(&id), "{verified}");
    let text = citychain(&["tx", "show", &id[..8], "--home", h]);
    assert!(
        text.contains(&format!("committed at height {at}, index {index}")),
        "{text}"
    );
    let trace = citychain(&["tx", "trace", &id[..12], "--home", h]);
    assert_eq!(trace.trim().len(), 32, "{trace}");

    // Bad prefixes say what is wrong.
    let short = citychain_fails(&["tx", "show", &id[..7], "--home", h]);
    assert!(
        short.contains("prefix has 7 hex digits; give 8 to 64"),
        "{short}"
    );
    let not_hex = citychain_fails(&["block", "show", "9f2cz41a", "--home", h]);
    assert!(not_hex.contains("'z' at position 4"), "{not_hex}");
    let all_ids: Vec<String> = truth.ids_where(|_| true);
    let unused = (0u32..)
        .map(|n| format!("{n:08x}"))
        .find(|p| !all_ids.iter().any(|id| id.starts_with(p.as_str())))
        .unwrap();
    let unknown = citychain_fails(&["tx", "show", &unused, "--home", h]);
    assert!(
        unknown.contains(&format!("no committed transaction id starts with {unused}")),
        "{unknown}"
    );
    let wrong = citychain_fails(&["tx", "list", "--home", h]);
    assert!(wrong.contains("--signer"), "{wrong}");

    // The bodies of the first 40 transactions (governance, uploads, reads) decode by type.
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, tx) in truth.transactions().iter().take(40) {
        let shown = json(&home, &["tx", "show", &tx.id().to_string()]);
        assert!(shown["body"].is_object(), "{shown}");
        *by_type.entry(tx.body().type_url.clone()).or_default() += 1;
    }
    assert!(
        by_type.contains_key("citychain.governance.v1.Propose"),
        "{by_type:?}"
    );
    stop(dev);
}
