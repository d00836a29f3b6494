use citychain_governance::{Action, ProposalId, approve_body, propose_body};
use citychain_kernel::{Height, SigningKey, TxId};
use citychain_records::{
    ReadTarget, bind_subject_body, read_body, receipts_query_body, upload_body,
};
use citychain_testkit::genesis::network;

use super::*;

const CITIZEN: &str = "citizen:330102-19900101-0042";

struct Fixture {
    registry: Registry,
    member: SigningKey,
    service: SigningKey,
    chain: citychain_kernel::ChainId,
}

fn fixture() -> Fixture {
    let net = network(4, 7);
    let member = net
        .transaction_signers()
        .next()
        .map(|(_, k)| k.signing.clone())
        .unwrap();
    let service = net.keys["service.tokens"].signing.clone();
    Fixture {
        registry: Registry::from_genesis(&net.genesis),
        member,
        service,
        chain: net.genesis.chain_id.clone(),
    }
}

impl Fixture {
    fn sign(&self, key: &SigningKey, nonce: u64, body: TxBody) -> SignedTx {
        SignedTx::sign(&self.chain, key, nonce, Height(100), body).unwrap()
    }
}

fn read() -> TxBody {
    read_body(
        &ReadTarget::Record(TxId(citychain_kernel::Hash32([3; 32]))),
        CITIZEN,
        "loan review",
    )
}

fn every_chain_type() -> Vec<TxBody> {
    let id = ProposalId::new("p-1").unwrap();
    vec![
        propose_body(
            &id,
            &Action::SuspendMember(citychain_kernel::MemberId::new("bank.alpha").unwrap()),
        ),
        approve_body(&id),
        upload_body("housing.filing", CITIZEN, b"{}"),
        read(),
        bind_subject_body(CITIZEN, &SigningKey::from_seed(&[5; 32]).public_key()),
    ]
}

#[test]
fn every_chain_type_built_by_its_builder_is_admitted_from_a_member() {
    let f = fixture();
    let bodies = every_chain_type();
    let mut types: Vec<&str> = bodies.iter().map(|b| b.type_url.as_str()).collect();
    types.sort();
    let mut known = CHAIN_TYPES.to_vec();
    known.sort();
    assert_eq!(types, known, "the fixture covers every chain type");
    for (nonce, body) in bodies.into_iter().enumerate() {
        let tx = f.sign(&f.member, nonce as u64 + 1, body);
        let signer = admit(&f.registry, &tx).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(signer, Signer::Member { .. }));
    }
}

#[test]
fn unknown_types_random_bodies_and_wrong_subjects_are_refused() {
    let cases: Vec<(TxBody, &str)> = vec![
        (
            TxBody::new("citychain.citizen.v1.Anything", vec![1, 2, 3]),
            "is not one the chain carries",
        ),
        (
            TxBody::new(READ_TYPE_URL, vec![0xff; 64]).with_subjects([CITIZEN]),
            "does not decode",
        ),
        (
            TxBody::new(PROPOSE_TYPE_URL, vec![0x0a, 0x05, 1]),
            "is malformed",
        ),
        (
            TxBody {
                subjects: Vec::new(),
                ..read()
            },
            "must declare exactly",
        ),
        (
            TxBody {
                subjects: vec!["citizen:other".to_string()],
                ..upload_body("housing.filing", CITIZEN, b"{}")
            },
            "must declare exactly",
        ),
        (
            approve_body(&ProposalId::new("p-1").unwrap()).with_subjects([CITIZEN]),
            "concerns no subject",
        ),
        (receipts_query_body(CITIZEN), "never submitted"),
    ];
    let f = fixture();
    for (i, (body, expected)) in cases.into_iter().enumerate() {
        let shown = body.type_url.clone();
        let tx = f.sign(&f.member, i as u64 + 1, body);
        let err = admit(&f.registry, &tx).expect_err(&shown);
        assert!(matches!(err, Inadmissible::Body(_)), "{shown}: {err}");
        assert!(err.to_string().contains(expected), "{shown}: {err}");
    }
}

#[test]
fn non_members_and_service_identities_may_not_send_chain_types() {
    let f = fixture();
    let outsider = SigningKey::from_seed(&[0x42; 32]);
    for body in every_chain_type() {
        let shown = body.type_url.clone();
        let tx = f.sign(&outsider, 1, body.clone());
        assert!(
            matches!(
                admit(&f.registry, &tx),
                Err(Inadmissible::Signer(Refusal::NotAMember { .. }))
            ),
            "{shown} from a non-member"
        );
        let tx = f.sign(&f.service, 1, body);
        assert!(
            matches!(
                admit(&f.registry, &tx),
                Err(Inadmissible::Signer(Refusal::ServiceIdentity { .. }))
            ),
            "{shown} from a service identity"
        );
    }
}

#[test]
fn a_proposed_block_is_refused_at_its_first_inadmissible_transaction() {
    let f = fixture();
    let good: Vec<SignedTx> = every_chain_type()
        .into_iter()
        .enumerate()
        .map(|(n, body)| f.sign(&f.member, n as u64 + 1, body))
        .collect();
    assert_eq!(check_block(&f.registry, &good), Ok(()));
    for position in 0..=good.len() {
        let mut txs = good.clone();
        txs.insert(
            position,
            f.sign(
                &f.member,
                99,
                TxBody::new("citychain.bench.v1.Put", vec![7; 10]),
            ),
        );
        let (index, why) = check_block(&f.registry, &txs).unwrap_err();
        assert_eq!(index, position);
        assert!(matches!(
            why,
            Inadmissible::Body(BodyRefusal::UnknownType { .. })
        ));
    }
}

#[test]
fn block_assembly_leaves_out_only_the_inadmissible() {
    let f = fixture();
    let outsider = SigningKey::from_seed(&[0x43; 32]);
    let mut txs = vec![
        f.sign(&f.member, 1, read()),
        f.sign(&outsider, 1, read()),
        f.sign(&f.member, 2, TxBody::new("junk", vec![0; 60_000])),
        f.sign(&f.member, 3, read()),
    ];
    let kept: Vec<TxId> = [&txs[0], &txs[3]].iter().map(|t| t.id()).collect();
    let mut left_out = Vec::new();
    retain_for_block(
        &f.registry,
        &mut txs,
        |t| t,
        |tx, why| left_out.push((tx.id(), why)),
    );
    assert_eq!(txs.iter().map(SignedTx::id).collect::<Vec<_>>(), kept);
    assert_eq!(left_out.len(), 2);
}

#[test]
fn a_citizen_key_and_all_citizens_have_a_quota_per_block() {
    let mut quota = BlockQuota::new();
    let member = Signer::Member {
        id: citychain_kernel::MemberId::new("bank.alpha").unwrap(),
        role: citychain_kernel::Role::Bank,
    };
    let burst = SigningKey::from_seed(&[1; 32]).public_key();
    for _ in 0..CITIZEN_TXS_PER_KEY {
        quota.count(&Signer::Citizen, &burst).unwrap();
    }
    assert!(matches!(
        quota.count(&Signer::Citizen, &burst),
        Err(Inadmissible::CitizenKeyQuota {
            limit: CITIZEN_TXS_PER_KEY,
            ..
        })
    ));
    // Members never count, and a refused transaction used nothing.
    for _ in 0..1_000 {
        quota.count(&member, &burst).unwrap();
    }
    // A burst of throwaway keys fills the block's citizen share and no more.
    let mut admitted = CITIZEN_TXS_PER_KEY;
    for seed in 2..=255u8 {
        for other in 0..2u8 {
            let mut bytes = [9u8; 32];
            bytes[0] = seed;
            bytes[1] = other;
            let key = SigningKey::from_seed(&bytes).public_key();
            if quota.count(&Signer::Citizen, &key).is_ok() {
                admitted += 1;
            }
        }
    }
    assert_eq!(admitted, MAX_CITIZEN_TXS_PER_BLOCK);
    assert!(matches!(
        quota.count(
            &Signer::Citizen,
            &SigningKey::from_seed(&[0xee; 32]).public_key()
        ),
        Err(Inadmissible::CitizenBlockQuota { .. })
    ));
}
