//! `citychain tx show ID|PREFIX` and `citychain tx list`: one transaction with its body decoded
//! by its type, its status and where it is (and its proof, on request); and the committed
//! transactions of a signer, a subject or a body type, a page at a time.
//!
//! Bodies are decoded from the protobuf descriptors compiled into the binary, so every body
//! type of every platform is shown field by field (as protobuf's JSON mapping with the
//! `.proto` field names); a type this binary does not know, or bytes that are not the named
//! message, are shown as hex with the reason.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use citychain_kernel::{PublicKey, SignedTx};
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_proto::citychain::ledger::v1::list_transactions_request::Filter;
use citychain_proto::citychain::ledger::v1::resolve_prefix_request::Kind;
use citychain_proto::citychain::ledger::v1::transaction_status::State;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Value, json};

use super::{Ledger, key_text, short};

/// The descriptors of every citychain package.
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(citychain_proto::FILE_DESCRIPTOR_SET)
            .expect("the proto crate's descriptor set decodes")
    })
}

/// A body's fields as JSON, or why they cannot be shown: a type this binary does not know,
/// or bytes that are not that message.
pub fn body_json(type_url: &str, value: &[u8]) -> Result<Value, String> {
    let descriptor = pool()
        .get_message_by_name(type_url)
        .ok_or_else(|| "a type this binary does not know".to_owned())?;
    let message = DynamicMessage::decode(descriptor, value)
        .map_err(|err| format!("the bytes are not a {type_url}: {err}"))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|err| err.to_string())
}

/// The transaction as `tx show` prints it; with `proof`, its proof file is written there.
pub async fn show(ledger: &mut Ledger, text: &str, proof: Option<&Path>) -> Result<Value> {
    let id = ledger.resolve(Kind::Transaction, text).await?;
    let status = first_status(ledger, &id).await?;
    if status.state != State::Committed as i32 {
        if proof.is_some() {
            bail!("transaction {id} has not committed, so it has no proof yet");
        }
        let state = if status.state == State::Rejected as i32 {
            "rejected"
        } else {
            "pending"
        };
        return Ok(json!({
            "id": id,
            "status": state,
            "reason": (!status.reason.is_empty()).then_some(status.reason),
            "observed_height": status.observed_height,
        }));
    }
    let found = ledger
        .grpc()
        .get_transaction(pb::GetTransactionRequest { id: id.clone() })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    let tx_proof = found
        .proof
        .context("the ledger answered without the proof")?;
    let tx = SignedTx::decode(&tx_proof.transaction)
        .context("the ledger's copy of the transaction does not decode")?;
    if tx.id().to_string() != id {
        bail!("the ledger answered with transaction {} for {id}", tx.id());
    }
    if let Some(path) = proof {
        std::fs::write(path, tx_proof.encode_to_vec())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let body = tx.body();
    let (decoded, undecoded) = match body_json(&body.type_url, &body.value) {
        Ok(json) => (Some(json), None),
        Err(why) => (None, Some(why)),
    };
    Ok(json!({
        "id": id,
        "status": "committed",
        "height": found.height,
        "index": found.index,
        "signer": ledger.key(tx.signer().as_bytes()).await?,
        "nonce": tx.nonce(),
        "expiry_height": tx.expiry().0,
        "type_url": body.type_url,
        "subjects": body.subjects,
        "body": decoded,
        "body_undecoded": undecoded,
        "body_hex": hex::encode(&body.value),
        "trace_id": (!found.trace_id.is_empty()).then_some(found.trace_id),
        "proof": proof.map(|p| p.display().to_string()),
    }))
}

/// The ledger's first status message for `id`: where it committed, or why it cannot, or that
/// it waits.
async fn first_status(ledger: &mut Ledger, id: &str) -> Result<pb::TransactionStatus> {
    let mut stream = ledger
        .grpc()
        .watch_transaction(pb::WatchTransactionRequest { id: id.to_owned() })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    stream
        .message()
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .with_context(|| format!("the ledger sent no status for {id}"))
}

/// `tx show` for people.
pub fn show_text(tx: &Value) -> String {
    let id = tx["id"].as_str().unwrap_or_default();
    let status = tx["status"].as_str().unwrap_or_default();
    if status != "committed" {
        let mut out = format!(
            "transaction {id}\n  status       {status} (chain at height {})\n",
            tx["observed_height"]
        );
        if let Some(reason) = tx["reason"].as_str() {
            out.push_str(&format!("  reason       {reason}\n"));
        }
        return out;
    }
    let mut out = format!(
        "transaction {id}\n  status       committed at height {}, index {}\n  signer       {}\n  nonce        {}\n  expiry       height {}\n  type         {}\n",
        tx["height"],
        tx["index"],
        key_text(&tx["signer"]),
        tx["nonce"],
        tx["expiry_height"],
        tx["type_url"].as_str().unwrap_or_default(),
    );
    let subjects: Vec<&str> = tx["subjects"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !subjects.is_empty() {
        out.push_str(&format!("  subjects     {}\n", subjects.join(", ")));
    }
    match &tx["body"] {
        Value::Null => out.push_str(&format!(
            "  body         ({}) {}\n",
            tx["body_undecoded"].as_str().unwrap_or_default(),
            tx["body_hex"].as_str().unwrap_or_default()
        )),
        body => out.push_str(&format!("  body         {body}\n")),
    }
    if let Some(trace) = tx["trace_id"].as_str() {
        out.push_str(&format!("  trace        {trace}\n"));
    }
    if let Some(proof) = tx["proof"].as_str() {
        out.push_str(&format!(
            "  proof        written to {proof} (check it: citychain proof verify --genesis FILE {proof})\n"
        ));
    }
    out
}

/// What `tx list` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListBy {
    /// A member id or a key (64 hex digits).
    Signer(String),
    /// A declared subject.
    Subject(String),
    /// A body type.
    Type(String),
}

/// One page of `tx list`, or every page with `all`.
pub async fn list(
    ledger: &mut Ledger,
    by: &ListBy,
    page_size: u32,
    page_token: &str,
    all: bool,
) -> Result<Value> {
    let filter = match by {
        ListBy::Signer(signer) => Filter::Signer(signer_key(ledger, signer).await?),
        ListBy::Subject(subject) => Filter::Subject(subject.clone()),
        ListBy::Type(type_url) => Filter::TypeUrl(type_url.clone()),
    };
    let mut transactions = Vec::new();
    let mut token = page_token.to_owned();
    loop {
        let page = ledger
            .grpc()
            .list_transactions(pb::ListTransactionsRequest {
                filter: Some(filter.clone()),
                page_size,
                page_token: token,
            })
            .await
            .map_err(|status| anyhow::anyhow!("{}", status.message()))?
            .into_inner();
        for tx in page.transactions {
            let signer = hex::decode(&tx.signer).unwrap_or_default();
            transactions.push(json!({
                "id": tx.id,
                "height": tx.height,
                "index": tx.index,
                "type_url": tx.type_url,
                "signer": ledger.key(&signer).await?,
            }));
        }
        token = page.next_page_token;
        if !all || token.is_empty() {
            break;
        }
    }
    Ok(json!({
        "transactions": transactions,
        "next_page_token": (!token.is_empty()).then_some(token),
    }))
}

/// The key `signer` names: a key given as 64 hex digits, or a member's active key.
async fn signer_key(ledger: &mut Ledger, signer: &str) -> Result<String> {
    if signer.len() == 64 && signer.parse::<PublicKey>().is_ok() {
        return Ok(signer.to_ascii_lowercase());
    }
    let member = ledger
        .grpc()
        .get_member(pb::GetMemberRequest {
            id: signer.to_owned(),
        })
        .await
        .map_err(|status| {
            anyhow::anyhow!(
                "{signer} is neither a key (64 hex digits) nor a member: {}",
                status.message()
            )
        })?
        .into_inner();
    let key = member.member.map(|m| m.signing_key).unwrap_or_default();
    if key.is_empty() {
        bail!(
            "member {signer} has no active key (its key was revoked); list a key it used with \
             --signer KEY (citychain member show {signer} lists them)"
        );
    }
    if !member.retired_keys.is_empty() {
        eprintln!(
            "note: member {signer} also signed with {} earlier key(s); this lists its active key \
             only (citychain member show {signer} lists the others for --signer KEY)",
            member.retired_keys.len()
        );
    }
    Ok(hex::encode(key))
}

/// `tx list` for people.
pub fn list_text(page: &Value) -> String {
    let txs = page["transactions"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    if txs.is_empty() {
        out.push_str("no committed transaction matches\n");
    }
    for tx in &txs {
        out.push_str(&format!(
            "{:>8}/{:<4} {}  {}  {}\n",
            tx["height"],
            tx["index"],
            short(tx["id"].as_str().unwrap_or_default()),
            tx["type_url"].as_str().unwrap_or_default(),
            key_text(&tx["signer"]),
        ));
    }
    if let Some(token) = page["next_page_token"].as_str() {
        out.push_str(&format!(
            "more: add --page-token {token} (or --all for every page)\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use citychain_proto::citychain::governance::v1 as gpb;

    use super::*;

    #[test]
    fn bodies_decode_by_type_name_and_say_why_when_they_cannot() {
        let approve = gpb::Approve {
            proposal_id: "grant-1".into(),
        };
        let json = body_json("citychain.governance.v1.Approve", &approve.encode_to_vec());
        assert_eq!(json, Ok(json!({ "proposal_id": "grant-1" })));
        let unknown = body_json("citychain.nowhere.v1.Thing", b"").unwrap_err();
        assert!(unknown.contains("does not know"), "{unknown}");
        let garbage = body_json("citychain.governance.v1.Approve", &[0xff, 0xff]).unwrap_err();
        assert!(
            garbage.contains("not a citychain.governance.v1.Approve"),
            "{garbage}"
        );
    }
}
