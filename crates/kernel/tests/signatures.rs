//! Strict ed25519: the public Wycheproof vectors, small-order keys and R values, non-canonical
//! S, and batch verification that names the bad entry.

use citychain_kernel::SignatureError;
use citychain_kernel::keys::{PublicKey, Signature, SigningKey, verify_batch};
use curve25519_dalek::constants::EIGHT_TORSION;
use serde_json::Value;

/// The Wycheproof vectors live in the workspace's `shared/vectors` folder beside the project,
/// or where `CITYCHAIN_VECTORS_DIR` points.
fn wycheproof() -> Value {
    let dir = std::env::var("CITYCHAIN_VECTORS_DIR")
        .unwrap_or_else(|_| format!("{}/../../../shared/vectors", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/wycheproof-ed25519_test.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read the Wycheproof vectors at {path} ({e}); set CITYCHAIN_VECTORS_DIR")
    });
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn verify_hex(key: &str, msg: &str, sig: &str) -> Result<(), String> {
    let key_bytes: [u8; 32] = hex::decode(key)
        .unwrap()
        .try_into()
        .map_err(|_| "key length".to_string())?;
    let key = PublicKey::from_bytes(&key_bytes).map_err(|e| e.to_string())?;
    let sig =
        Signature::from_slice("sig", &hex::decode(sig).unwrap()).map_err(|e| e.to_string())?;
    key.verify(&hex::decode(msg).unwrap(), &sig)
        .map_err(|e| e.to_string())
}

#[test]
fn wycheproof_vectors_agree() {
    let vectors = wycheproof();
    let mut checked = 0;
    for group in vectors["testGroups"].as_array().unwrap() {
        let key = group["publicKey"]["pk"].as_str().unwrap();
        for test in group["tests"].as_array().unwrap() {
            let expected_valid = test["result"] == "valid";
            let outcome = verify_hex(
                key,
                test["msg"].as_str().unwrap(),
                test["sig"].as_str().unwrap(),
            );
            assert_eq!(
                outcome.is_ok(),
                expected_valid,
                "tcId {} ({}): {:?}",
                test["tcId"],
                test["comment"],
                outcome
            );
            checked += 1;
        }
    }
    assert_eq!(checked, vectors["numberOfTests"].as_u64().unwrap());
}

#[test]
fn every_small_order_public_key_is_refused() {
    for point in EIGHT_TORSION {
        let bytes = point.compress().to_bytes();
        let err = PublicKey::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(err, SignatureError::WeakKey { .. }),
            "{}: {err}",
            hex::encode(bytes)
        );
    }
}

#[test]
fn small_order_r_is_refused() {
    let key = SigningKey::from_seed(&[3; 32]);
    let mut sig = key.sign(b"m").to_bytes();
    for point in EIGHT_TORSION {
        sig[..32].copy_from_slice(&point.compress().to_bytes());
        let err = key.public_key().verify(b"m", &Signature(sig)).unwrap_err();
        assert_eq!(err, SignatureError::SmallOrderR);
    }
}

#[test]
fn non_canonical_s_is_refused_even_when_it_would_verify_mod_l() {
    // S + L verifies under a lax check (it reduces to S); strict verification refuses it.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let key = SigningKey::from_seed(&[5; 32]);
    let good = key.sign(b"payload").to_bytes();
    let mut s_plus_l = good;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = good[32 + i] as u16 + L[i] as u16 + carry;
        s_plus_l[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits");
    let err = key
        .public_key()
        .verify(b"payload", &Signature(s_plus_l))
        .unwrap_err();
    assert_eq!(err, SignatureError::NonCanonicalS);
    key.public_key()
        .verify(b"payload", &Signature(good))
        .unwrap();
}

#[test]
fn batch_names_the_bad_signature() {
    let keys: Vec<SigningKey> = (1..=20u8)
        .map(|i| SigningKey::from_seed(&[i; 32]))
        .collect();
    let messages: Vec<Vec<u8>> = (0..20)
        .map(|i| format!("message {i}").into_bytes())
        .collect();
    let mut sigs: Vec<Signature> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let pubs: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
    let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
    verify_batch(&refs, &sigs, &pubs).unwrap();
    sigs[13] = keys[13].sign(b"something else");
    match verify_batch(&refs, &sigs, &pubs).unwrap_err() {
        SignatureError::BatchEntry { index, .. } => assert_eq!(index, 13),
        other => panic!("unexpected {other}"),
    }
    assert!(matches!(
        verify_batch(&refs[..3], &sigs, &pubs),
        Err(SignatureError::BatchShape { .. })
    ));
}
