//! Single and batch verification agree on every input, and a batch's answer for an entry does
//! not depend on the other entries.
//!
//! The cases are built from raw scalars and points, one or more for each category of the
//! ed25519 edge-case checks (novifinancial/ed25519-speccheck, ZIP-215): small-order A and R,
//! mixed-order A and R (a prime-order point plus a nonzero small-order one), unreduced S, and
//! non-canonical encodings of A and R. Each case is checked alone, as a batch of one, and in a
//! batch of 64 (the other 63 honest) at every position.

use citychain_kernel::SignatureError;
use citychain_kernel::keys::{PublicKey, Signature, SigningKey, verify_batch};
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use sha2::{Digest, Sha512};

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The field prime p = 2^255 - 19, little-endian.
const P: [u8; 32] = [
    0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
];

/// How many entries a full test batch has.
const BATCH: usize = 64;

/// What the signature rule says about a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Valid,
    Invalid,
}

/// One input: key bytes, message and signature as they would arrive.
#[derive(Debug, Clone)]
struct Case {
    what: String,
    key: [u8; 32],
    message: Vec<u8>,
    signature: [u8; 64],
    rule: Rule,
}

/// A secret scalar from a label, the same every run.
fn secret(label: &str) -> Scalar {
    let mut wide = [0u8; 64];
    let mut hasher = blake3::Hasher::new_derive_key("citychain signature_agreement test scalars");
    hasher.update(label.as_bytes());
    hasher.finalize_xof().fill(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// k = SHA-512(R || A || M) mod L, over the bytes as given.
fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let mut hash = Sha512::new();
    hash.update(r);
    hash.update(a);
    hash.update(message);
    Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
}

/// A signature made from raw values: `R` as given and `S = r + k·a mod L`.
fn sign_raw(a: Scalar, a_bytes: &[u8; 32], r: Scalar, r_bytes: &[u8; 32], msg: &[u8]) -> [u8; 64] {
    let s = r + challenge(r_bytes, a_bytes, msg) * a;
    join(r_bytes, &s.to_bytes())
}

fn join(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(r);
    signature[32..].copy_from_slice(s);
    signature
}

fn mul_base(scalar: Scalar) -> EdwardsPoint {
    EdwardsPoint::mul_base(&scalar)
}

/// The smallest n in 1, 2, 4, 8 with [n]T the identity.
fn torsion_order(point: &EdwardsPoint) -> u8 {
    [1u8, 2, 4, 8]
        .into_iter()
        .find(|&n| (Scalar::from(n) * point).is_identity())
        .expect("a torsion point has order dividing 8")
}

/// `s + times·L` as 32 little-endian bytes (it must fit).
fn add_l(s: &[u8; 32], times: u16) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u32;
    for i in 0..32 {
        let v = s[i] as u32 + L[i] as u32 * times as u32 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0, "S + {times}L fits in 256 bits");
    out
}

/// The encoding `y + p` of a canonical encoding whose y is below 19, keeping its sign bit.
fn y_plus_p(canonical: &[u8; 32]) -> [u8; 32] {
    let y = canonical[0];
    assert!(y < 19 && canonical[1..31].iter().all(|&b| b == 0) && canonical[31] & 0x7f == 0);
    let mut out = P;
    out[0] += y;
    out[31] |= canonical[31] & 0x80;
    out
}

/// The test's own evaluation of the two equations, for checking how a case was built:
/// (cofactorless `[S]B = R + [k]A`, cofactored `[8][S]B = [8]R + [8][k]A`), with S reduced
/// mod L and the points decompressed however they are encoded.
fn equations(case: &Case) -> Option<(bool, bool)> {
    let a = CompressedEdwardsY(case.key).decompress()?;
    let r_bytes: [u8; 32] = case.signature[..32].try_into().unwrap();
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let s_bytes: [u8; 32] = case.signature[32..].try_into().unwrap();
    let s = Scalar::from_bytes_mod_order(s_bytes);
    let k = challenge(&r_bytes, &case.key, &case.message);
    let residue = mul_base(s) - r - k * a;
    Some((
        residue.is_identity(),
        residue.mul_by_cofactor().is_identity(),
    ))
}

/// The nonzero torsion points (orders 2, 4 and 8).
fn torsion() -> Vec<EdwardsPoint> {
    EIGHT_TORSION[1..].to_vec()
}

/// A message for which `accept(k)` holds, k the challenge of the R and A built from it.
fn grind(
    label: &str,
    mut build: impl FnMut(&[u8]) -> ([u8; 32], [u8; 32]),
    accept: impl Fn(Scalar) -> bool,
) -> Vec<u8> {
    (0..10_000u32)
        .map(|n| format!("{label} #{n}").into_bytes())
        .find(|m| {
            let (r, a) = build(m);
            accept(challenge(&r, &a, m))
        })
        .expect("one in eight messages fits")
}

/// Every case, each with the rule's answer and a note of what it is.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut push = |what: String, key: [u8; 32], message: Vec<u8>, signature, rule| {
        cases.push(Case {
            what,
            key,
            message,
            signature,
            rule,
        })
    };
    let honest = SigningKey::from_seed(&[42; 32]);
    let honest_key = honest.public_key().to_bytes();
    let a = secret("a");
    let a_point = mul_base(a);
    let a_bytes = a_point.compress().to_bytes();

    // Honest: a signature from SigningKey::sign.
    push(
        "honest SigningKey::sign".into(),
        honest_key,
        b"pay 10".to_vec(),
        honest.sign(b"pay 10").to_bytes(),
        Rule::Valid,
    );
    // Honest: an empty message.
    push(
        "honest, empty message".into(),
        honest_key,
        Vec::new(),
        honest.sign(b"").to_bytes(),
        Rule::Valid,
    );
    // Honest, built from raw scalars: prime-order A and R, S = r + k·a.
    let r = secret("r honest");
    let r_bytes = mul_base(r).compress().to_bytes();
    push(
        "raw prime-order A and R".into(),
        a_bytes,
        b"raw".to_vec(),
        sign_raw(a, &a_bytes, r, &r_bytes, b"raw"),
        Rule::Valid,
    );
    // A signature checked against another message.
    push(
        "honest signature, other message".into(),
        honest_key,
        b"pay 11".to_vec(),
        honest.sign(b"pay 10").to_bytes(),
        Rule::Invalid,
    );
    // A signature checked against another key.
    push(
        "honest signature, other key".into(),
        a_bytes,
        b"pay 10".to_vec(),
        honest.sign(b"pay 10").to_bytes(),
        Rule::Invalid,
    );
    // S = L - 1: reduced, but not the right value.
    let mut l_minus_1 = L;
    l_minus_1[0] -= 1;
    push(
        "S = L - 1 (canonical, wrong)".into(),
        honest_key,
        b"pay 10".to_vec(),
        join(
            &honest.sign(b"pay 10").to_bytes()[..32].try_into().unwrap(),
            &l_minus_1,
        ),
        Rule::Invalid,
    );

    // Small-order A and small-order R, S = 0 (speccheck 0): every equation holds, the key is
    // refused.
    for (i, t) in EIGHT_TORSION.iter().enumerate() {
        let bytes = t.compress().to_bytes();
        push(
            format!("small-order A = R = T{i}, S = 0"),
            bytes,
            b"small".to_vec(),
            join(&bytes, &[0; 32]),
            Rule::Invalid,
        );
    }
    // Small-order A with an honest R: S = r makes the cofactored equation hold (speccheck 1).
    let small_a = EIGHT_TORSION[3].compress().to_bytes();
    push(
        "small-order A, prime R, S = r".into(),
        small_a,
        b"small A".to_vec(),
        join(&r_bytes, &r.to_bytes()),
        Rule::Invalid,
    );
    // Mixed-order A with a small-order R (speccheck 2): the cofactored equation holds with
    // S = k·a, R is refused.
    for t in torsion() {
        let key = (a_point + EIGHT_TORSION[1]).compress().to_bytes();
        let small_r = t.compress().to_bytes();
        push(
            format!(
                "mixed-order A, small-order R of order {}",
                torsion_order(&t)
            ),
            key,
            b"small R".to_vec(),
            sign_raw(a, &key, Scalar::ZERO, &small_r, b"small R"),
            Rule::Invalid,
        );
    }

    // Mixed-order A = aB + T with a prime-order R (speccheck 5): valid under the cofactored
    // equation; the cofactorless one holds only when k·T is the identity, so one message each
    // way.
    for (i, t) in torsion().into_iter().enumerate() {
        let key = (a_point + t).compress().to_bytes();
        let order = torsion_order(&t);
        for cofactorless_too in [false, true] {
            let r = secret(&format!("r mixed A {i} {cofactorless_too}"));
            let r_bytes = mul_base(r).compress().to_bytes();
            let message = grind(
                &format!("mixed A {i}"),
                |_| (r_bytes, key),
                |k| (k * t).is_identity() == cofactorless_too,
            );
            push(
                format!(
                    "mixed-order A (T of order {order}), prime R, cofactorless {}",
                    if cofactorless_too { "holds" } else { "fails" }
                ),
                key,
                message.clone(),
                sign_raw(a, &key, r, &r_bytes, &message),
                Rule::Valid,
            );
        }
    }
    // Prime-order A with mixed-order R = rB + T, for every nonzero torsion point T (speccheck
    // 6): the residue is -T, so only the cofactored equation holds.
    for (i, t) in torsion().into_iter().enumerate() {
        let r = secret(&format!("r mixed R {i}"));
        let r_bytes = (mul_base(r) + t).compress().to_bytes();
        push(
            format!("prime A, mixed-order R (T of order {})", torsion_order(&t)),
            a_bytes,
            b"mixed R".to_vec(),
            sign_raw(a, &a_bytes, r, &r_bytes, b"mixed R"),
            Rule::Valid,
        );
    }
    // The same mixed-order R on an honest key's signature with its S kept: the residue has a
    // prime-order part too, so both equations fail.
    let honest_sig = honest.sign(b"pay 10").to_bytes();
    let honest_r = CompressedEdwardsY(honest_sig[..32].try_into().unwrap())
        .decompress()
        .unwrap();
    push(
        "honest signature with R + T8, S unchanged".into(),
        honest_key,
        b"pay 10".to_vec(),
        join(
            &(honest_r + EIGHT_TORSION[1]).compress().to_bytes(),
            &honest_sig[32..].try_into().unwrap(),
        ),
        Rule::Invalid,
    );
    // Mixed-order A and R (speccheck 3 and 4): with R's torsion -k·T_A both equations hold,
    // otherwise only the cofactored one.
    for (ta, tr) in [(1usize, 2usize), (1, 7), (3, 4), (2, 6), (4, 4), (5, 1)] {
        let key = (a_point + EIGHT_TORSION[ta]).compress().to_bytes();
        for cofactorless_too in [false, true] {
            let r = secret(&format!("r mixed A {ta} R {tr} {cofactorless_too}"));
            let r_bytes = (mul_base(r) + EIGHT_TORSION[tr]).compress().to_bytes();
            let message = grind(
                &format!("mixed A {ta} R {tr}"),
                |_| (r_bytes, key),
                |k| (k * EIGHT_TORSION[ta] + EIGHT_TORSION[tr]).is_identity() == cofactorless_too,
            );
            push(
                format!(
                    "mixed-order A (T{ta}) and R (T{tr}), cofactorless {}",
                    if cofactorless_too { "holds" } else { "fails" }
                ),
                key,
                message.clone(),
                sign_raw(a, &key, r, &r_bytes, &message),
                Rule::Valid,
            );
        }
    }

    // Unreduced S: S + L and S + 8L verify under a lax check that reduces S (speccheck 7, 8).
    for times in [1u16, 2, 8] {
        push(
            format!("S + {times}L on an honest signature"),
            honest_key,
            b"pay 10".to_vec(),
            join(
                &honest_sig[..32].try_into().unwrap(),
                &add_l(&honest_sig[32..].try_into().unwrap(), times),
            ),
            Rule::Invalid,
        );
    }
    // S + L on a mixed-order R signature, which the cofactored equation accepts reduced.
    let r = secret("r mixed R 0");
    let mixed_r = (mul_base(r) + EIGHT_TORSION[1]).compress().to_bytes();
    let mixed_sig = sign_raw(a, &a_bytes, r, &mixed_r, b"mixed R");
    push(
        "mixed-order R with S + L".into(),
        a_bytes,
        b"mixed R".to_vec(),
        join(&mixed_r, &add_l(&mixed_sig[32..].try_into().unwrap(), 1)),
        Rule::Invalid,
    );
    // S exactly L.
    push(
        "S = L".into(),
        honest_key,
        b"pay 10".to_vec(),
        join(&honest_sig[..32].try_into().unwrap(), &L),
        Rule::Invalid,
    );

    // Points with a small y have a second encoding y + p. Large-order ones among them (their
    // discrete logarithm is unknown, so no signature with them verifies; the encoding is what
    // is refused first):
    let small_y_points: Vec<[u8; 32]> = (2u8..19)
        .flat_map(|y| [0u8, 0x80].map(move |sign| (y, sign)))
        .filter_map(|(y, sign)| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            bytes[31] = sign;
            CompressedEdwardsY(bytes)
                .decompress()
                .filter(|p| !p.is_small_order())
                .map(|_| bytes)
        })
        .take(4)
        .collect();
    assert!(
        small_y_points.len() >= 2,
        "some y below 19 is a large-order point"
    );
    for canonical in &small_y_points {
        let non_canonical = y_plus_p(canonical);
        assert_eq!(
            CompressedEdwardsY(non_canonical).decompress().unwrap(),
            CompressedEdwardsY(*canonical).decompress().unwrap()
        );
        // Non-canonical A (y + p) of a large-order point.
        push(
            format!("non-canonical A {}", hex::encode(non_canonical)),
            non_canonical,
            b"pay 10".to_vec(),
            honest_sig,
            Rule::Invalid,
        );
        // Non-canonical R (y + p) of a large-order point, S = k·a.
        push(
            format!("non-canonical R {}", hex::encode(non_canonical)),
            a_bytes,
            b"nc R".to_vec(),
            sign_raw(a, &a_bytes, Scalar::ZERO, &non_canonical, b"nc R"),
            Rule::Invalid,
        );
        // The canonical encoding of the same R: the encoding passes, the equation does not.
        push(
            format!("canonical R {} of unknown log", hex::encode(canonical)),
            a_bytes,
            b"nc R".to_vec(),
            sign_raw(a, &a_bytes, Scalar::ZERO, canonical, b"nc R"),
            Rule::Invalid,
        );
    }
    // Non-canonical encodings of small-order points, as A and as R (speccheck 10, 11): the
    // identity with the sign bit (x = 0), the order-2 point with the sign bit (x = 0), the
    // identity as y = p + 1, and an order-4 point as y = p.
    let mut identity_signed = [0u8; 32];
    identity_signed[0] = 1;
    identity_signed[31] = 0x80;
    let mut minus_one_signed = P;
    minus_one_signed[0] -= 1;
    minus_one_signed[31] |= 0x80;
    let mut identity_p1 = P;
    identity_p1[0] += 1;
    let order4_p = P;
    for (name, bytes) in [
        ("identity with sign bit", identity_signed),
        ("order-2 point with sign bit", minus_one_signed),
        ("identity as y = p + 1", identity_p1),
        ("order-4 point as y = p", order4_p),
    ] {
        let point = CompressedEdwardsY(bytes).decompress().unwrap();
        assert!(point.is_small_order() && point.compress().to_bytes() != bytes);
        // A non-canonical small-order A, with R the same bytes and S = 0.
        push(
            format!("non-canonical small-order A and R ({name}), S = 0"),
            bytes,
            b"nc small".to_vec(),
            join(&bytes, &[0; 32]),
            Rule::Invalid,
        );
        // A non-canonical small-order R on an honest key, S = k·a (cofactored equation holds).
        push(
            format!("non-canonical small-order R ({name}), S = k·a"),
            a_bytes,
            b"nc small R".to_vec(),
            sign_raw(a, &a_bytes, Scalar::ZERO, &bytes, b"nc small R"),
            Rule::Invalid,
        );
    }
    // R that is not a curve point.
    let off_curve = (2u8..)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            bytes
        })
        .find(|b| CompressedEdwardsY(*b).decompress().is_none())
        .unwrap();
    push(
        "R not on the curve".into(),
        honest_key,
        b"pay 10".to_vec(),
        join(&off_curve, &honest_sig[32..].try_into().unwrap()),
        Rule::Invalid,
    );
    // A that is not a curve point.
    push(
        "A not on the curve".into(),
        off_curve,
        b"pay 10".to_vec(),
        honest_sig,
        Rule::Invalid,
    );
    cases
}

/// Parse the key, then verify alone.
fn single(case: &Case) -> Result<(), SignatureError> {
    PublicKey::from_bytes(&case.key)?.verify(&case.message, &Signature(case.signature))
}

/// What a validator does with a list: parse every key (a key that does not parse cannot enter
/// a batch, so it fails its entry), then verify the batch.
fn batch(entries: &[&Case]) -> Result<(), SignatureError> {
    let keys = entries
        .iter()
        .enumerate()
        .map(|(index, case)| {
            PublicKey::from_bytes(&case.key).map_err(|reason| SignatureError::BatchEntry {
                index,
                reason: Box::new(reason),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let messages: Vec<&[u8]> = entries.iter().map(|c| c.message.as_slice()).collect();
    let signatures: Vec<Signature> = entries.iter().map(|c| Signature(c.signature)).collect();
    verify_batch(&messages, &signatures, &keys)
}

/// The batch answer the single answer implies for an entry at `index`.
fn in_batch(single: &Result<(), SignatureError>, index: usize) -> Result<(), SignatureError> {
    single.clone().map_err(|reason| SignatureError::BatchEntry {
        index,
        reason: Box::new(reason),
    })
}

/// 63 honest signatures by different keys on different messages.
fn fillers() -> Vec<Case> {
    (0..BATCH as u8 - 1)
        .map(|i| {
            let key = SigningKey::from_seed(&[i.wrapping_add(100); 32]);
            let message = format!("filler {i}").into_bytes();
            Case {
                what: format!("filler {i}"),
                key: key.public_key().to_bytes(),
                signature: key.sign(&message).to_bytes(),
                message,
                rule: Rule::Valid,
            }
        })
        .collect()
}

#[test]
fn cases_are_built_as_described() {
    let cases = cases();
    let mut only_cofactored = 0;
    let mut both = 0;
    for case in &cases {
        if let Some((cofactorless, cofactored)) = equations(case) {
            // A zero residue is zero after multiplying by 8: nothing is valid only cofactorless.
            assert!(!cofactorless || cofactored, "{}", case.what);
            if case.what.contains("cofactorless fails") || case.what.contains("mixed-order R (T") {
                assert!(cofactored && !cofactorless, "{}", case.what);
                only_cofactored += 1;
            }
            if case.what.contains("cofactorless holds") {
                assert!(cofactored && cofactorless, "{}", case.what);
                both += 1;
            }
            if case.what.starts_with("small-order A")
                || case.what.starts_with("mixed-order A, small-order R")
                || case.what.contains("S = k·a")
            {
                assert!(
                    cofactored,
                    "{}: refused by the rule, not the equation",
                    case.what
                );
            }
        }
    }
    assert_eq!(only_cofactored, 7 + 7 + 6, "mixed A, mixed R, both mixed");
    assert_eq!(both, 7 + 6);
}

#[test]
fn each_case_gets_the_rule_answer_alone() {
    let wrong: Vec<String> = cases()
        .iter()
        .filter_map(|case| {
            let outcome = single(case);
            (outcome.is_ok() != (case.rule == Rule::Valid))
                .then(|| format!("{}: {:?}, rule says {:?}", case.what, outcome, case.rule))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn refusals_name_the_rule_that_refused() {
    let cases = cases();
    let reason = |prefix: &str| {
        let case = cases.iter().find(|c| c.what.starts_with(prefix)).unwrap();
        single(case).unwrap_err()
    };
    assert!(matches!(
        reason("non-canonical A "),
        SignatureError::NonCanonicalKey { .. }
    ));
    assert_eq!(reason("non-canonical R "), SignatureError::NonCanonicalR);
    assert!(matches!(
        reason("canonical R "),
        SignatureError::Mismatch { .. }
    ));
    assert!(matches!(
        reason("small-order A = R = T1"),
        SignatureError::WeakKey { .. }
    ));
    assert_eq!(
        reason("mixed-order A, small-order R"),
        SignatureError::SmallOrderR
    );
    assert_eq!(reason("S + 8L"), SignatureError::NonCanonicalS);
    assert!(matches!(
        reason("A not on the curve"),
        SignatureError::InvalidKey { .. }
    ));
}

#[test]
fn single_batch_of_one_and_every_position_in_a_batch_of_64_agree() {
    let cases = cases();
    let fillers = fillers();
    let filler_refs: Vec<&Case> = fillers.iter().collect();
    batch(&filler_refs).expect("the fillers are valid");
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for case in &cases {
        let alone = single(case);
        let one = batch(&[case]);
        if one != in_batch(&alone, 0) {
            disagreements.push(format!(
                "{}: alone {alone:?}, batch of one {one:?}",
                case.what
            ));
        }
        for position in 0..BATCH {
            let mut entries = filler_refs.clone();
            entries.insert(position, case);
            let outcome = batch(&entries);
            if outcome != in_batch(&alone, position) {
                disagreements.push(format!(
                    "{} at {position}: alone {alone:?}, in the batch {outcome:?}",
                    case.what
                ));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, cases.len() * BATCH);
    assert_eq!(disagreements.len(), 0, "{disagreements:#?}");
}

#[test]
fn a_batch_with_two_bad_entries_names_the_first() {
    let cases = cases();
    let fillers = fillers();
    // Bad entries of different kinds, all with keys that parse: equation failures and
    // encoding refusals, so the first can be found by either path.
    let bad: Vec<&Case> = cases
        .iter()
        .filter(|c| c.rule == Rule::Invalid && PublicKey::from_bytes(&c.key).is_ok())
        .filter(|c| {
            [
                "other message",
                "S + 1L",
                "non-canonical R ",
                "R not on",
                "mixed-order A, small",
            ]
            .iter()
            .any(|p| c.what.contains(p))
        })
        .collect();
    assert!(bad.len() >= 5);
    let mut disagreements = Vec::new();
    for first in &bad {
        for second in &bad {
            for (i, j) in [(0, 1), (0, 63), (5, 40), (31, 32), (62, 63)] {
                let mut entries: Vec<&Case> = fillers[..BATCH - 2].iter().collect();
                entries.insert(i, first);
                entries.insert(j, second);
                let outcome = batch(&entries);
                if outcome != in_batch(&single(first), i) {
                    disagreements.push(format!(
                        "{} at {i}, {} at {j}: {outcome:?}",
                        first.what, second.what
                    ));
                }
            }
        }
    }
    assert_eq!(disagreements.len(), 0, "{disagreements:#?}");
}

#[test]
fn empty_batch_verifies() {
    verify_batch(&[], &[], &[]).unwrap();
}
