//! `citychain member list` and `citychain member show ID`: the consortium's members as the
//! chain has them now: role, status, whether each is a validator, and every signing key it
//! has held with the heights from which it signed and from which it was refused.

use anyhow::Result;
use citychain_kernel::Role;
use citychain_proto::citychain::ledger::v1 as pb;
use serde_json::{Value, json};

use super::Ledger;

/// A member record as these commands print it.
pub fn member_json(record: &pb::MemberRecord) -> Value {
    let member = record.member.clone().unwrap_or_default();
    let role = Role::ALL
        .into_iter()
        .find(|r| r.to_proto() as i32 == member.role)
        .map_or("unspecified", Role::name);
    let mut keys = Vec::new();
    if !member.signing_key.is_empty() {
        keys.push(json!({
            "key": hex::encode(&member.signing_key),
            "status": "active",
            "valid_from": record.key_since,
            "refused_from": null,
        }));
    }
    for retired in &record.retired_keys {
        keys.push(json!({
            "key": hex::encode(&retired.key),
            "status": retired.why,
            "valid_from": retired.valid_from,
            "refused_from": retired.refused_from,
        }));
    }
    json!({
        "id": member.id,
        "name": member.name,
        "role": role,
        "status": record.status,
        "validator": record.validator,
        "encryption_key": hex::encode(&member.encryption_key),
        "keys": keys,
    })
}

/// Every member.
pub async fn list(ledger: &mut Ledger) -> Result<Value> {
    let members: Vec<Value> = ledger.members().await?.iter().map(member_json).collect();
    Ok(json!({ "members": members }))
}

/// One member.
pub async fn show(ledger: &mut Ledger, id: &str) -> Result<Value> {
    let record = ledger
        .grpc()
        .get_member(pb::GetMemberRequest { id: id.to_owned() })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    Ok(member_json(&record))
}

/// `member list` for people: one line a member.
pub fn list_text(list: &Value) -> String {
    let mut out = String::new();
    for m in list["members"].as_array().cloned().unwrap_or_default() {
        out.push_str(&format!(
            "{:<28} {:<11} {:<10} {:<10} {}\n",
            m["id"].as_str().unwrap_or_default(),
            m["role"].as_str().unwrap_or_default(),
            m["status"].as_str().unwrap_or_default(),
            if m["validator"].as_bool() == Some(true) {
                "validator"
            } else {
                ""
            },
            m["name"].as_str().unwrap_or_default(),
        ));
    }
    out
}

/// `member show` for people.
pub fn show_text(m: &Value) -> String {
    let mut out = format!(
        "member {}  {}\n  role         {}\n  status       {}\n  validator    {}\n  encryption   {}\n  keys\n",
        m["id"].as_str().unwrap_or_default(),
        m["name"].as_str().unwrap_or_default(),
        m["role"].as_str().unwrap_or_default(),
        m["status"].as_str().unwrap_or_default(),
        if m["validator"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        },
        m["encryption_key"].as_str().unwrap_or_default(),
    );
    for key in m["keys"].as_array().cloned().unwrap_or_default() {
        let until = match key["refused_from"].as_u64() {
            Some(h) => format!(", refused from height {h}"),
            None => String::new(),
        };
        out.push_str(&format!(
            "    {}  {} (signs from height {}{until})\n",
            key["key"].as_str().unwrap_or_default(),
            key["status"].as_str().unwrap_or_default(),
            key["valid_from"],
        ));
    }
    out
}
