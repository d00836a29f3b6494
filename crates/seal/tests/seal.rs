//! Round trips, tampering and misuse of the public API: every altered byte, wrong record id,
//! wrong context and wrong recipient must fail, and with a typed error.

use citychain_kernel::{EncryptionPublicKey, EncryptionSecret};
use citychain_seal::{
    PAYLOAD_OVERHEAD, RecordKey, SealError, WRAPPED_KEY_LEN, WrappedKey, custody_context,
    open_payload, reader_context, seal_payload, unwrap_key, wrap_key,
};
use proptest::prelude::*;

const RECORD: [u8; 32] = [0x11; 32];
const OTHER_RECORD: [u8; 32] = [0x22; 32];

fn member(n: u8) -> EncryptionSecret {
    EncryptionSecret::from_seed(&[n; 32])
}

#[test]
fn payload_round_trips_including_empty() {
    let key = RecordKey::generate().unwrap();
    for plaintext in [&b""[..], b"x", b"a licence record", &[0u8; 70_000]] {
        let sealed = seal_payload(&key, &RECORD, plaintext).unwrap();
        assert_eq!(sealed.len(), plaintext.len() + PAYLOAD_OVERHEAD);
        assert_eq!(open_payload(&key, &RECORD, &sealed).unwrap(), plaintext);
    }
}

#[test]
fn every_flipped_byte_of_a_sealed_payload_is_refused() {
    let key = RecordKey::generate().unwrap();
    let sealed = seal_payload(&key, &RECORD, b"permit 42: granted").unwrap();
    for index in 0..sealed.len() {
        for mask in [0x01, 0x80] {
            let mut altered = sealed.clone();
            altered[index] ^= mask;
            let err = open_payload(&key, &RECORD, &altered).unwrap_err();
            let expected_kind = if index == 0 {
                matches!(err, SealError::UnknownVersion { found, .. } if found == 1 ^ mask)
            } else {
                matches!(err, SealError::Authentication { .. })
            };
            assert!(expected_kind, "byte {index} mask {mask:#x}: {err}");
        }
    }
}

#[test]
fn payload_for_another_record_or_key_is_refused() {
    let key = RecordKey::generate().unwrap();
    let sealed = seal_payload(&key, &RECORD, b"record").unwrap();
    assert!(matches!(
        open_payload(&key, &OTHER_RECORD, &sealed),
        Err(SealError::Authentication {
            bound_to: "record id",
            ..
        })
    ));
    let other_key = RecordKey::generate().unwrap();
    assert!(matches!(
        open_payload(&other_key, &RECORD, &sealed),
        Err(SealError::Authentication { .. })
    ));
}

#[test]
fn truncated_payloads_name_the_minimum() {
    let key = RecordKey::generate().unwrap();
    let sealed = seal_payload(&key, &RECORD, b"").unwrap();
    assert_eq!(sealed.len(), PAYLOAD_OVERHEAD);
    for len in 0..PAYLOAD_OVERHEAD {
        assert_eq!(
            open_payload(&key, &RECORD, &sealed[..len]).unwrap_err(),
            SealError::TooShort {
                what: "record payload",
                minimum: PAYLOAD_OVERHEAD,
                actual: len,
            }
        );
    }
}

#[test]
fn wrapped_key_round_trips_through_its_encoding() {
    let key = RecordKey::generate().unwrap();
    let reader = member(1);
    let context = reader_context(&[0x33; 32], &RECORD);
    let wrapped = wrap_key(&key, &reader.public_key(), &context).unwrap();
    let bytes = wrapped.encode();
    assert_eq!(bytes.len(), WRAPPED_KEY_LEN);
    let decoded = WrappedKey::decode(&bytes).unwrap();
    assert_eq!(decoded, wrapped);
    let unwrapped = unwrap_key(&decoded, &reader, &context).unwrap();
    assert_eq!(unwrapped.as_bytes(), key.as_bytes());

    // The unwrapped key opens what the original sealed.
    let sealed = seal_payload(&key, &RECORD, b"inspection report").unwrap();
    assert_eq!(
        open_payload(&unwrapped, &RECORD, &sealed).unwrap(),
        b"inspection report"
    );
}

#[test]
fn custody_wrap_survives_a_restart_with_the_same_secret() {
    // The service wraps for its own key, and after a restart rebuilds the secret from the
    // same seed (its key file) and unwraps.
    let key = RecordKey::generate().unwrap();
    let service_before = member(9);
    let wrapped = wrap_key(
        &key,
        &service_before.public_key(),
        &custody_context(&RECORD),
    )
    .unwrap()
    .encode();
    let service_after = member(9);
    let unwrapped = unwrap_key(
        &WrappedKey::decode(&wrapped).unwrap(),
        &service_after,
        &custody_context(&RECORD),
    )
    .unwrap();
    assert_eq!(unwrapped.as_bytes(), key.as_bytes());
}

#[test]
fn every_flipped_byte_of_a_wrapped_key_is_refused() {
    let key = RecordKey::generate().unwrap();
    let reader = member(1);
    let context = custody_context(&RECORD);
    let bytes = wrap_key(&key, &reader.public_key(), &context)
        .unwrap()
        .encode();
    for index in 0..bytes.len() {
        // 0x80 on the ephemeral key's last byte flips the bit X25519 ignores: the shared
        // secret is unchanged, and only hashing the encoded ephemeral key into the wrap key
        // makes that alteration fail.
        for mask in [0x01, 0x80] {
            let mut altered = bytes.clone();
            altered[index] ^= mask;
            let result = WrappedKey::decode(&altered)
                .and_then(|wrapped| unwrap_key(&wrapped, &reader, &context));
            assert!(result.is_err(), "byte {index} mask {mask:#x} accepted");
        }
    }
}

#[test]
fn wrong_context_or_recipient_is_refused() {
    let key = RecordKey::generate().unwrap();
    let reader = member(1);
    let context = reader_context(&[0x33; 32], &RECORD);
    let wrapped = wrap_key(&key, &reader.public_key(), &context).unwrap();

    for wrong in [
        reader_context(&[0x34; 32], &RECORD),
        reader_context(&[0x33; 32], &OTHER_RECORD),
        custody_context(&RECORD),
        Vec::new(),
    ] {
        assert!(matches!(
            unwrap_key(&wrapped, &reader, &wrong),
            Err(SealError::Authentication {
                bound_to: "wrap context",
                ..
            })
        ));
    }
    assert!(matches!(
        unwrap_key(&wrapped, &member(2), &context),
        Err(SealError::Authentication { .. })
    ));
}

#[test]
fn low_order_points_are_refused_both_ways() {
    let key = RecordKey::generate().unwrap();
    // u = 0 and u = 1 are points of order 4 and 1; the last is a point of order 8.
    let order_eight: [u8; 32] =
        hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
            .unwrap()
            .try_into()
            .unwrap();
    let mut one = [0u8; 32];
    one[0] = 1;
    for point in [[0u8; 32], one, order_eight] {
        let err = wrap_key(&key, &EncryptionPublicKey(point), b"ctx").unwrap_err();
        assert!(
            matches!(
                err,
                SealError::LowOrderPoint {
                    role: "recipient",
                    ..
                }
            ),
            "{err}"
        );

        let mut wrapped = wrap_key(&key, &member(1).public_key(), b"ctx").unwrap();
        wrapped.ephemeral = point;
        let err = unwrap_key(&wrapped, &member(1), b"ctx").unwrap_err();
        assert!(
            matches!(
                err,
                SealError::LowOrderPoint {
                    role: "ephemeral",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn a_recipient_key_in_non_canonical_form_is_refused() {
    // Same point as the member's key, but with the top bit set: X25519 would compute the
    // same shared secret, yet the member could never unwrap.
    let key = RecordKey::generate().unwrap();
    let mut bytes = member(1).public_key().0;
    bytes[31] |= 0x80;
    let err = wrap_key(&key, &EncryptionPublicKey(bytes), b"ctx").unwrap_err();
    assert_eq!(
        err,
        SealError::NonCanonicalKey {
            public: hex::encode(bytes)
        }
    );
}

#[test]
fn malformed_wrapped_keys_get_typed_errors() {
    let key = RecordKey::generate().unwrap();
    let bytes = wrap_key(&key, &member(1).public_key(), b"ctx")
        .unwrap()
        .encode();
    assert!(matches!(
        WrappedKey::decode(&[]),
        Err(SealError::TooShort { actual: 0, .. })
    ));
    assert!(matches!(
        WrappedKey::decode(&bytes[..WRAPPED_KEY_LEN - 1]),
        Err(SealError::Length {
            expected: WRAPPED_KEY_LEN,
            ..
        })
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        WrappedKey::decode(&longer),
        Err(SealError::Length { actual, .. }) if actual == WRAPPED_KEY_LEN + 1
    ));
    let mut v2 = bytes;
    v2[0] = 2;
    assert!(matches!(
        WrappedKey::decode(&v2),
        Err(SealError::UnknownVersion {
            found: 2,
            supported: 1,
            ..
        })
    ));

    let mut short_ciphertext = wrap_key(&key, &member(1).public_key(), b"ctx").unwrap();
    short_ciphertext.ciphertext.pop();
    assert!(matches!(
        unwrap_key(&short_ciphertext, &member(1), b"ctx"),
        Err(SealError::Length {
            expected: 48,
            actual: 47,
            ..
        })
    ));
}

#[test]
fn errors_name_what_failed_without_key_material() {
    let key = RecordKey::from_bytes([0x5a; 32]);
    let sealed = seal_payload(&key, &RECORD, b"x").unwrap();
    let message = open_payload(&key, &OTHER_RECORD, &sealed)
        .unwrap_err()
        .to_string();
    assert!(message.contains("record payload"), "{message}");
    assert!(message.contains("record id"), "{message}");
    assert!(!message.contains("5a5a"), "{message}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_payload_round_trips_and_any_flip_is_caught(
        plaintext in proptest::collection::vec(any::<u8>(), 0..4096),
        key_bytes in any::<[u8; 32]>(),
        record_id in any::<[u8; 32]>(),
        flip_at in any::<proptest::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let key = RecordKey::from_bytes(key_bytes);
        let sealed = seal_payload(&key, &record_id, &plaintext).unwrap();
        prop_assert_eq!(open_payload(&key, &record_id, &sealed).unwrap(), plaintext);

        let mut altered = sealed;
        let at = flip_at.index(altered.len());
        altered[at] ^= mask;
        prop_assert!(open_payload(&key, &record_id, &altered).is_err());
    }

    #[test]
    fn any_key_wraps_and_unwraps_for_any_member(
        key_bytes in any::<[u8; 32]>(),
        seed in any::<[u8; 32]>(),
        context in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let key = RecordKey::from_bytes(key_bytes);
        let member = EncryptionSecret::from_seed(&seed);
        let wrapped = wrap_key(&key, &member.public_key(), &context).unwrap();
        let back = unwrap_key(&WrappedKey::decode(&wrapped.encode()).unwrap(), &member, &context)
            .unwrap();
        prop_assert_eq!(back.as_bytes(), key.as_bytes());
    }
}
