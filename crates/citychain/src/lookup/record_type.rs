//! `citychain record-type list`: the licence platform's record types as governance declared
//! them: owner, read price, upload reward, the roles that may read, and every field.

use anyhow::Result;
use citychain_governance::params::RecordType;
use citychain_proto::citychain::ledger::v1 as pb;
use serde_json::{Value, json};

use super::Ledger;

/// Every record type, by name.
pub async fn list(ledger: &mut Ledger) -> Result<Value> {
    let mut types = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = ledger
            .grpc()
            .list_record_types(pb::ListRecordTypesRequest {
                page_size: 100,
                page_token,
            })
            .await
            .map_err(|status| anyhow::anyhow!("{}", status.message()))?
            .into_inner();
        for spec in page.record_types {
            let name = spec.name.clone();
            let t = RecordType::from_proto(spec).map_err(|err| {
                anyhow::anyhow!("the ledger sent record type {name:?}, which is invalid: {err}")
            })?;
            types.push(json!({
                "name": t.name.as_str(),
                "owner": t.owner.as_str(),
                "read_price": t.read_price,
                "upload_reward": t.upload_reward,
                "readers": t.readers.iter().map(|r| r.name()).collect::<Vec<_>>(),
                "fields": t.fields.iter().map(|f| json!({
                    "name": f.name,
                    "kind": f.kind.name(),
                    "required": f.required,
                })).collect::<Vec<_>>(),
            }));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok(json!({ "record_types": types }))
}

/// `record-type list` for people.
pub fn list_text(list: &Value) -> String {
    let types = list["record_types"].as_array().cloned().unwrap_or_default();
    if types.is_empty() {
        return "no record type is declared yet\n".into();
    }
    let mut out = String::new();
    for t in types {
        let readers: Vec<&str> = t["readers"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "{}  owner {}, read price {}, upload reward {}, readers: {}\n",
            t["name"].as_str().unwrap_or_default(),
            t["owner"].as_str().unwrap_or_default(),
            t["read_price"],
            t["upload_reward"],
            if readers.is_empty() {
                "the owner only".to_string()
            } else {
                readers.join(", ")
            },
        ));
        for f in t["fields"].as_array().cloned().unwrap_or_default() {
            out.push_str(&format!(
                "    {:<24} {:<9} {}\n",
                f["name"].as_str().unwrap_or_default(),
                f["kind"].as_str().unwrap_or_default(),
                if f["required"].as_bool() == Some(true) {
                    "required"
                } else {
                    "optional"
                },
            ));
        }
    }
    out
}
