//! The worked example in docs/formats.md ("A transaction signed by hand"), checked byte for
//! byte: every hex value it prints is recomputed here twice, once by hand from the rules the
//! document states (protobuf field by field, the labelled signing bytes, blake3 of them,
//! ed25519 over the labelled bytes themselves) and once by the kernel, and all three agree.

use std::collections::BTreeMap;

use citychain_kernel::{ChainId, Height, SignedTx, SigningKey, TxBody};
use ed25519_dalek::{Signer as _, Verifier as _};

/// The `name  hex` lines of the example block in docs/formats.md.
fn documented() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/formats.md");
    let doc = std::fs::read_to_string(path).expect("docs/formats.md");
    let start = doc
        .find("<!-- worked-example -->")
        .expect("the worked example's marker in docs/formats.md");
    let block = &doc[start..];
    let open = block.find("```\n").expect("the example's code block") + 4;
    let close = block[open..].find("```").expect("the example block's end") + open;
    // `name  hex`, the hex running on over indented lines.
    let mut values: Vec<(String, String)> = Vec::new();
    for line in block[open..close].lines() {
        let mut parts = line.splitn(2, "  ");
        let name = parts.next().unwrap().trim().to_owned();
        let value: String = parts
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        match values.last_mut() {
            Some((_, rest)) if name.is_empty() => rest.push_str(&value),
            _ if name.is_empty() => {}
            _ => values.push((name, value)),
        }
    }
    values.into_iter().collect()
}

/// Protobuf by hand: a length-delimited field, and a varint field.
fn bytes_field(number: u8, value: &[u8], out: &mut Vec<u8>) {
    out.push(number << 3 | 2);
    varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

fn varint_field(number: u8, value: u64, out: &mut Vec<u8>) {
    out.push(number << 3);
    varint(value, out);
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[test]
fn the_worked_example_in_docs_formats_md_is_exact() {
    let doc = documented();
    let get = |name: &str| {
        doc.get(name)
            .unwrap_or_else(|| panic!("docs/formats.md's example has no `{name}` line: {doc:?}"))
            .clone()
    };
    let seed: [u8; 32] = hex::decode(get("secret seed")).unwrap().try_into().unwrap();
    let chain = "city-example";
    let (nonce, expiry) = (1u64, 120u64);

    // By hand, from the rules as docs/formats.md states them.
    let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = dalek.verifying_key().to_bytes();
    let mut approve = Vec::new();
    bytes_field(1, b"grant-tax-10", &mut approve);
    let mut body = Vec::new();
    bytes_field(1, b"citychain.governance.v1.Approve", &mut body);
    bytes_field(2, &approve, &mut body);
    let mut unsigned = Vec::new();
    bytes_field(1, chain.as_bytes(), &mut unsigned);
    bytes_field(2, &public, &mut unsigned);
    varint_field(3, nonce, &mut unsigned);
    varint_field(4, expiry, &mut unsigned);
    bytes_field(5, &body, &mut unsigned);
    let mut signing = b"citychain/tx/v1\0".to_vec();
    signing.push(chain.len() as u8);
    signing.extend_from_slice(chain.as_bytes());
    signing.extend_from_slice(&unsigned);
    let id = blake3::hash(&signing);
    // ed25519 signs the labelled bytes themselves, not their hash.
    let signature = dalek.sign(&signing).to_bytes();
    let mut transaction = Vec::new();
    bytes_field(1, &unsigned, &mut transaction);
    bytes_field(2, &signature, &mut transaction);

    let computed = [
        ("public key", hex::encode(public)),
        ("Approve", hex::encode(&approve)),
        ("TxBody", hex::encode(&body)),
        ("UnsignedTransaction", hex::encode(&unsigned)),
        ("signing bytes", hex::encode(&signing)),
        ("id", id.to_hex().to_string()),
        ("signature", hex::encode(signature)),
        ("Transaction", hex::encode(&transaction)),
    ];
    for (name, value) in &computed {
        eprintln!("{name}  {value}");
    }
    for (name, value) in &computed {
        assert_eq!(&get(name), value, "`{name}` in docs/formats.md");
    }

    // The kernel agrees with the hand computation, and accepts the bytes as a transaction.
    let key = SigningKey::from_seed(&seed);
    let approve_body = TxBody::new("citychain.governance.v1.Approve", approve.clone());
    let tx = SignedTx::sign(
        &ChainId::new(chain).unwrap(),
        &key,
        nonce,
        Height(expiry),
        approve_body,
    )
    .unwrap();
    assert_eq!(tx.bytes(), transaction.as_slice());
    assert_eq!(tx.signing_bytes(), signing.as_slice());
    assert_eq!(tx.id().to_string(), id.to_hex().to_string());
    let checked = SignedTx::decode_and_verify(&transaction, &ChainId::new(chain).unwrap()).unwrap();
    assert_eq!(checked.id(), tx.id());
    // The signature verifies over the signing bytes and not over their hash.
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    assert!(dalek.verifying_key().verify(&signing, &signature).is_ok());
    assert!(
        dalek
            .verifying_key()
            .verify(id.as_bytes(), &signature)
            .is_err()
    );
}
