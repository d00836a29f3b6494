//! Lookups against a running network's ledger, for people and scripts: `block show`,
//! `tx show` and `tx list`, `member list|show` and `record-type list`. Each prints a short
//! text for people, or with `--json` one JSON document (hashes and keys as lowercase hex).
//!
//! Transaction ids and block hashes may be shortened to a prefix of at least 8 hex digits, as
//! the demo and these commands print them: a prefix names the one committed id that starts
//! with it, and is refused, listing the matches, when it names several.
//!
//! Keys are shown with the member they belong to (or belonged to: a rotated or revoked key
//! still names its member), from the ledger's member registry; a key that is no member's is a
//! citizen's.

pub mod block;
pub mod member;
pub mod record_type;
pub mod tx;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_proto::citychain::ledger::v1::ledger_service_client::LedgerServiceClient;
use citychain_proto::citychain::ledger::v1::resolve_prefix_request::Kind;
use clap::Args;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::dev_cmd::Endpoints;

/// Where the ledger is.
#[derive(Debug, Args)]
pub struct LedgerAddr {
    /// The ledger service's gRPC address.
    #[arg(long, value_name = "URL")]
    pub ledger: Option<String>,
    /// The home folder of a `citychain dev` network: its ledger is used.
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
}

/// How to print.
#[derive(Debug, Args)]
pub struct Output {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or `text(value)` for people.
    pub fn print(&self, value: &Value, text: impl FnOnce(&Value) -> String) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            print!("{}", text(value));
        }
        Ok(())
    }
}

/// Runs one lookup on a small runtime of its own.
pub fn block_on<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

/// A connection to the ledger, with what lookups share: shortened ids and key owners.
#[derive(Debug)]
pub struct Ledger {
    client: LedgerServiceClient<Channel>,
    owners: Option<BTreeMap<Vec<u8>, String>>,
}

impl Ledger {
    /// Connects to the ledger named by `addr`.
    pub async fn connect(addr: &LedgerAddr) -> Result<Ledger> {
        let url = Endpoints::service_url(addr.ledger.as_ref(), addr.home.as_deref(), "ledger")?;
        let client = LedgerServiceClient::connect(url.clone())
            .await
            .with_context(|| format!("cannot connect to the ledger at {url}"))?
            .max_decoding_message_size(64 << 20);
        Ok(Ledger {
            client,
            owners: None,
        })
    }

    /// The generated client.
    pub fn grpc(&mut self) -> &mut LedgerServiceClient<Channel> {
        &mut self.client
    }

    /// The full id (64 lowercase hex digits) that `text` names: itself when it is a whole
    /// id, else the one committed id of `kind` it is a prefix of.
    pub async fn resolve(&mut self, kind: Kind, text: &str) -> Result<String> {
        let what = match kind {
            Kind::Block => ("block hash", "block hashes"),
            _ => ("committed transaction id", "committed transaction ids"),
        };
        if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(text.to_ascii_lowercase());
        }
        let found = self
            .client
            .resolve_prefix(pb::ResolvePrefixRequest {
                kind: kind as i32,
                prefix: text.to_owned(),
            })
            .await
            .map_err(|status| anyhow::anyhow!("{}", status.message()))?
            .into_inner();
        resolution(what, text, found.matches, found.truncated)
    }

    /// Every member's id by each key it holds or held.
    async fn owners(&mut self) -> Result<&BTreeMap<Vec<u8>, String>> {
        if self.owners.is_none() {
            let mut owners = BTreeMap::new();
            for record in self.members().await? {
                let Some(member) = &record.member else {
                    continue;
                };
                owners.insert(member.signing_key.clone(), member.id.clone());
                for retired in &record.retired_keys {
                    owners.insert(retired.key.clone(), member.id.clone());
                }
            }
            self.owners = Some(owners);
        }
        Ok(self.owners.get_or_insert_default())
    }

    /// A key as lookups show it: `{"key": hex, "member": id or null}`.
    pub async fn key(&mut self, key: &[u8]) -> Result<Value> {
        let member = self.owners().await?.get(key).cloned();
        Ok(json!({ "key": hex::encode(key), "member": member }))
    }

    /// Every member, by id.
    pub async fn members(&mut self) -> Result<Vec<pb::MemberRecord>> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .client
                .list_members(pb::ListMembersRequest {
                    page_size: 100,
                    page_token,
                })
                .await
                .map_err(|status| anyhow::anyhow!("{}", status.message()))?
                .into_inner();
            out.extend(page.members);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }
}

/// The one id the ledger's matches for `text` name, or why there is none: no match, or
/// several (listed, so the user can pick more digits).
fn resolution(
    (one, many): (&str, &str),
    text: &str,
    mut matches: Vec<String>,
    truncated: bool,
) -> Result<String> {
    match matches.len() {
        0 => bail!("no {one} starts with {text}"),
        1 if !truncated => Ok(matches.remove(0)),
        n => {
            let count = if truncated {
                format!("more than {n}")
            } else {
                n.to_string()
            };
            let more = if truncated { "\n  ..." } else { "" };
            bail!(
                "{text} is ambiguous: {count} {many} start with it; give more digits:\n  {}{more}",
                matches.join("\n  ")
            )
        }
    }
}

/// A key for text output: the member, or "citizen" and the start of the key.
pub fn key_text(key: &Value) -> String {
    let hex = key["key"].as_str().unwrap_or_default();
    match key["member"].as_str() {
        Some(member) => format!("{member} ({})", short(hex)),
        None => format!("citizen {}", short(hex)),
    }
}

/// The first 16 hex digits, as the demo prints ids.
pub fn short(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_names_one_id_or_says_why_not() {
        let one = vec!["9f2ce41a00".to_string()];
        let ids = ("id", "ids");
        assert_eq!(
            resolution(ids, "9f2ce41a", one, false).unwrap(),
            "9f2ce41a00"
        );
        let tx = ("committed transaction id", "committed transaction ids");
        let none = resolution(tx, "9f2ce41a", vec![], false);
        assert_eq!(
            none.unwrap_err().to_string(),
            "no committed transaction id starts with 9f2ce41a"
        );
        let two = vec!["9f2ce41a00".to_string(), "9f2ce41aff".to_string()];
        let blocks = ("block hash", "block hashes");
        let err = resolution(blocks, "9f2ce41a", two.clone(), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "9f2ce41a is ambiguous: 2 block hashes start with it; give more digits:\n  9f2ce41a00\n  9f2ce41aff"
        );
        let many = resolution(ids, "9f2ce41a", two, true)
            .unwrap_err()
            .to_string();
        assert!(many.contains("more than 2 ids start with it"), "{many}");
        assert!(many.ends_with("\n  ..."), "{many}");
    }
}
