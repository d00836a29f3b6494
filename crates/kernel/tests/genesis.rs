//! Genesis parsing: a built genesis passes, and each broken rule is refused with a message
//! naming the entry.

use citychain_kernel::genesis::{MemberPlan, Role, build_genesis, department_plans};
use citychain_kernel::{Genesis, GenesisError};

fn counter_seeds() -> impl FnMut() -> [u8; 32] {
    let mut n = 0u64;
    move || {
        n += 1;
        *blake3::hash(&n.to_le_bytes()).as_bytes()
    }
}

fn sample() -> Genesis {
    let mut plans = department_plans(5);
    plans.push(MemberPlan {
        id: "bank.city-commercial".into(),
        name: "City Commercial Bank".into(),
        role: Role::Bank,
    });
    build_genesis("city-test", 1_700_000_000_000, &plans, 4, counter_seeds())
        .unwrap()
        .0
}

#[test]
fn built_genesis_round_trips_through_json() {
    let g = sample();
    assert_eq!(g.validators.len(), 4);
    assert_eq!(g.validator_set().quorum(), 3);
    let again = Genesis::from_json(&g.to_json()).unwrap();
    assert_eq!(again, g);
    assert_eq!(again.hash(), g.hash());
}

/// Edits the sample's JSON and returns the error message.
fn refuse(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
    edit(&mut value);
    Genesis::from_json(&value.to_string())
        .expect_err("the edited genesis must be refused")
        .to_string()
}

/// An edit of the sample genesis.
type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;

#[test]
fn each_broken_rule_names_the_entry() {
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "unknown role",
            Box::new(|v| v["members"][2]["role"] = "mayor".into()),
            "members[2]",
        ),
        (
            "bad key",
            Box::new(|v| v["members"][1]["signing_key"] = "00ff".into()),
            "members[1]",
        ),
        (
            "bad id",
            Box::new(|v| v["members"][0]["id"] = "Dept Tax".into()),
            "members[0]",
        ),
        (
            "duplicate id",
            Box::new(|v| v["members"][3]["id"] = v["members"][1]["id"].clone()),
            "members[3]",
        ),
        (
            "duplicate key",
            Box::new(|v| v["members"][4]["signing_key"] = v["members"][0]["signing_key"].clone()),
            "signing_key",
        ),
        (
            "validator not a member",
            Box::new(|v| v["validators"][1] = "dept.nobody".into()),
            "validators[1]",
        ),
        (
            "bank as validator",
            Box::new(|v| v["validators"][2] = "bank.city-commercial".into()),
            "only departments validate",
        ),
        (
            "three validators",
            Box::new(|v| {
                v["validators"].as_array_mut().unwrap().pop();
            }),
            "3f + 1",
        ),
        (
            "bad chain id",
            Box::new(|v| v["chain_id"] = "City Test".into()),
            "chain_id",
        ),
        (
            "unknown field",
            Box::new(|v| v["members"][0]["colour"] = "red".into()),
            "colour",
        ),
    ];
    for (name, edit, expected) in cases {
        let message = refuse(edit);
        assert!(
            message.contains(expected),
            "{name}: {message:?} lacks {expected:?}"
        );
    }
}

#[test]
fn truncated_genesis_names_the_position() {
    let text = sample().to_json();
    for cut in [1, text.len() / 3, text.len() / 2, text.len() - 3] {
        match Genesis::from_json(&text[..cut]) {
            Err(GenesisError::Json { line, .. }) => assert!(line >= 1),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}
