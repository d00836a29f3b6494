//! `citychain block show HEIGHT|HASH`: one block's header, its transactions and the
//! validators whose signatures certify it.

use anyhow::{Context, Result};
use citychain_kernel::Block;
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_proto::citychain::ledger::v1::resolve_prefix_request::Kind;
use prost::Message;
use serde_json::{Value, json};

use super::{Ledger, key_text, short};

/// Which block: a height, or a hash (or a prefix of one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockRef {
    /// By height.
    Height(u64),
    /// By hash, whole or shortened.
    Hash(String),
}

impl BlockRef {
    /// Reads what a person typed: decimal digits are a height unless `as_hash`; anything
    /// else is a hash or a prefix of one.
    pub fn parse(text: &str, as_hash: bool) -> BlockRef {
        match text.parse::<u64>() {
            Ok(height) if !as_hash => BlockRef::Height(height),
            _ => BlockRef::Hash(text.to_owned()),
        }
    }
}

/// The block as `block show` prints it.
pub async fn show(ledger: &mut Ledger, at: &BlockRef) -> Result<Value> {
    let at = match at {
        BlockRef::Height(height) => pb::get_block_request::At::Height(*height),
        BlockRef::Hash(text) => {
            pb::get_block_request::At::Hash(ledger.resolve(Kind::Block, text).await?)
        }
    };
    let found = ledger
        .grpc()
        .get_block(pb::GetBlockRequest { at: Some(at) })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    let block = found
        .block
        .context("the ledger answered without the block")?
        .encode_to_vec();
    let block = Block::decode(&block).context("the ledger's block does not decode")?;
    let header = &block.header;
    let mut transactions = Vec::with_capacity(block.txs.len());
    for (index, tx) in block.txs.iter().enumerate() {
        transactions.push(json!({
            "index": index,
            "id": tx.id().to_string(),
            "type_url": tx.body().type_url,
            "signer": ledger.key(tx.signer().as_bytes()).await?,
            "nonce": tx.nonce(),
            "expiry_height": tx.expiry().0,
            "subjects": tx.body().subjects,
        }));
    }
    let mut signers = Vec::with_capacity(block.certificate.signatures.len());
    for (key, _) in &block.certificate.signatures {
        signers.push(ledger.key(key.as_bytes()).await?);
    }
    Ok(json!({
        "height": header.height.0,
        "hash": found.hash,
        "time_unix_ms": header.time_unix_ms,
        "prev_hash": header.prev_hash.to_string(),
        "tx_root": header.tx_root.to_string(),
        "validators_hash": header.validators_hash.to_string(),
        "proposer": ledger.key(header.proposer.as_bytes()).await?,
        "tx_count": header.tx_count,
        "transactions": transactions,
        "certificate": {
            "round": block.certificate.round,
            "signers": signers,
        },
    }))
}

/// `block show` for people.
pub fn text(block: &Value) -> String {
    let mut out = format!(
        "block {}  {}\n  time         {} ms since the epoch\n  previous     {}\n  tx root      {}\n  validators   {}\n  proposer     {}\n",
        block["height"],
        block["hash"].as_str().unwrap_or_default(),
        block["time_unix_ms"],
        block["prev_hash"].as_str().unwrap_or_default(),
        block["tx_root"].as_str().unwrap_or_default(),
        block["validators_hash"].as_str().unwrap_or_default(),
        key_text(&block["proposer"]),
    );
    let signers = block["certificate"]["signers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out.push_str(&format!(
        "  certified    round {} by {} validators: {}\n",
        block["certificate"]["round"],
        signers.len(),
        signers.iter().map(key_text).collect::<Vec<_>>().join(", ")
    ));
    let txs = block["transactions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out.push_str(&format!("  transactions {}\n", txs.len()));
    for tx in &txs {
        out.push_str(&format!(
            "    {:>3}  {}  {}  {}\n",
            tx["index"],
            short(tx["id"].as_str().unwrap_or_default()),
            tx["type_url"].as_str().unwrap_or_default(),
            key_text(&tx["signer"]),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_a_height_unless_asked_for_a_hash() {
        assert_eq!(BlockRef::parse("12", false), BlockRef::Height(12));
        assert_eq!(
            BlockRef::parse("12345678", true),
            BlockRef::Hash("12345678".into())
        );
        assert_eq!(
            BlockRef::parse("9f2ce41a", false),
            BlockRef::Hash("9f2ce41a".into())
        );
    }
}
