//! Signed transactions: sign/verify round trips, and any single flipped byte of a signed
//! transaction is refused.

use citychain_kernel::tx::{MAX_TX_BYTES, SignedTx, TxBody, TxError};
use citychain_kernel::{ChainId, Height, SigningKey};
use proptest::prelude::*;

fn chain() -> ChainId {
    ChainId::new("city-test").unwrap()
}

fn sign(seed: [u8; 32], nonce: u64, expiry: u64, type_url: &str, value: Vec<u8>) -> SignedTx {
    SignedTx::sign(
        &chain(),
        &SigningKey::from_seed(&seed),
        nonce,
        Height(expiry),
        TxBody::new(type_url, value),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_then_decode_and_verify_round_trips(
        seed in any::<[u8; 32]>(),
        nonce in any::<u64>(),
        expiry in any::<u64>(),
        value in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let tx = sign(seed, nonce, expiry, "citychain.test.v1.Put", value.clone());
        let back = SignedTx::decode_and_verify(tx.bytes(), &chain()).unwrap();
        prop_assert_eq!(back.id(), tx.id());
        prop_assert_eq!(back.nonce(), nonce);
        prop_assert_eq!(back.expiry(), Height(expiry));
        prop_assert_eq!(&back.body().value, &value);
        prop_assert_eq!(back.signer(), &SigningKey::from_seed(&seed).public_key());
    }

    #[test]
    fn any_single_flipped_byte_is_refused(
        seed in any::<[u8; 32]>(),
        nonce in any::<u64>(),
        value in proptest::collection::vec(any::<u8>(), 0..300),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let tx = sign(seed, nonce, 100, "citychain.test.v1.Put", value);
        let mut bytes = tx.bytes().to_vec();
        let i = position.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(SignedTx::decode_and_verify(&bytes, &chain()).is_err(),
            "flipping bit {} of byte {} was accepted", bit, i);
    }
}

#[test]
fn every_byte_of_one_transaction_is_covered() {
    let tx = sign([9; 32], 42, 1_000, "citychain.test.v1.Put", vec![0xab; 300]);
    for i in 0..tx.bytes().len() {
        for bit in 0..8 {
            let mut bytes = tx.bytes().to_vec();
            bytes[i] ^= 1 << bit;
            assert!(
                SignedTx::decode_and_verify(&bytes, &chain()).is_err(),
                "byte {i} bit {bit}"
            );
        }
    }
}

#[test]
fn the_id_names_the_signed_intent() {
    let a = sign([1; 32], 1, 10, "t.v1.A", vec![1]);
    let b = sign([1; 32], 2, 10, "t.v1.A", vec![1]);
    let again = sign([1; 32], 1, 10, "t.v1.A", vec![1]);
    assert_ne!(a.id(), b.id());
    assert_eq!(a.id(), again.id(), "ed25519 signing is deterministic");
}

#[test]
fn wrong_chain_and_oversize_are_refused_with_the_limit() {
    let tx = sign([2; 32], 1, 10, "t.v1.A", vec![]);
    let other = ChainId::new("another-city").unwrap();
    assert_eq!(
        SignedTx::decode_and_verify(tx.bytes(), &other).unwrap_err(),
        TxError::WrongChain {
            expected: "another-city".into(),
            found: "city-test".into()
        }
    );
    let err = SignedTx::sign(
        &chain(),
        &SigningKey::from_seed(&[2; 32]),
        1,
        Height(10),
        TxBody::new("t.v1.A", vec![0; MAX_TX_BYTES]),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            TxError::TooLarge {
                limit: MAX_TX_BYTES,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&MAX_TX_BYTES.to_string()), "{err}");
}

#[test]
fn garbage_is_refused_without_panicking() {
    for garbage in [&b""[..], b"\xff\xff\xff", b"\x0a\x05abc", &[0u8; 100]] {
        assert!(SignedTx::decode(garbage).is_err());
    }
}

#[test]
fn subjects_are_signed_and_kept_sorted() {
    let key = SigningKey::from_seed(&[7; 32]);
    let body = TxBody::new("citychain.test.v1.Put", vec![1]).with_subjects([
        "record:b",
        "citizen:a",
        "record:b",
    ]);
    let tx = SignedTx::sign(&chain(), &key, 1, Height(9), body).unwrap();

    let back = SignedTx::decode_and_verify(tx.bytes(), &chain()).unwrap();

    assert_eq!(back.body().subjects, ["citizen:a", "record:b"]);
}

#[test]
fn bad_subjects_are_refused_naming_the_rule() {
    let key = SigningKey::from_seed(&[7; 32]);
    let cases: [(Vec<String>, &str); 4] = [
        (vec![String::new()], "wrong length"),
        (vec!["x".repeat(129)], "wrong length"),
        (vec!["citizen: a".into()], "not visible ASCII"),
        ((0..17).map(|i| format!("s{i:02}")).collect(), "too many"),
    ];
    for (subjects, reason) in cases {
        let mut body = TxBody::new("citychain.test.v1.Put", vec![]);
        body.subjects = subjects.clone();
        let err = SignedTx::sign(&chain(), &key, 1, Height(9), body).unwrap_err();
        assert!(
            matches!(err, TxError::BadSubject { .. }),
            "{subjects:?}: {err}"
        );
        assert!(err.to_string().contains(reason), "{err}");
        assert!(err.to_string().contains("at most 16 subjects"), "{err}");
    }
    let mut unsorted = TxBody::new("citychain.test.v1.Put", vec![]);
    unsorted.subjects = vec!["b".into(), "a".into()];
    let err = SignedTx::sign(&chain(), &key, 1, Height(9), unsorted).unwrap_err();
    assert!(err.to_string().contains("not sorted or repeated"), "{err}");
}
