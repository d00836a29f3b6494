//! The binary as a user runs it: genesis init writes what genesis validate accepts, broken
//! files are refused with the bad entry named, keys are written privately.

mod common;

use common::{citychain, text};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

fn init(dir: &Path, extra: &[&str]) -> Output {
    let out = dir.to_str().unwrap();
    let mut args = vec!["genesis", "init", "--validators", "4", "--out", out];
    args.extend_from_slice(extra);
    citychain(&args)
}

#[test]
fn genesis_init_writes_what_validate_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), &["--sample-members", "--departments", "6"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let genesis = dir.path().join("genesis.json");
    let validate = citychain(&["genesis", "validate", genesis.to_str().unwrap()]);
    assert!(validate.status.success(), "{}", text(&validate.stderr));
    let said = text(&validate.stdout);
    assert!(said.contains("4 validators"), "{said}");
    // Six departments, seven sample members and the token service's identity.
    assert!(said.contains("14 members"), "{said}");
    let doc_text = std::fs::read_to_string(&genesis).unwrap();
    assert!(doc_text.contains(r#""id": "service.tokens""#), "{doc_text}");

    // Every member has a private key file whose public key is the one in genesis.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&genesis).unwrap()).unwrap();
    for member in doc["members"].as_array().unwrap() {
        let id = member["id"].as_str().unwrap();
        let key_path = dir.path().join("keys").join(format!("{id}.json"));
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{id}");
        let shown = citychain(&["keys", "show", key_path.to_str().unwrap()]);
        assert!(
            text(&shown.stdout).contains(member["signing_key"].as_str().unwrap()),
            "{id}"
        );
    }
}

#[test]
fn init_refuses_to_overwrite_and_a_bad_validator_count() {
    let dir = tempfile::tempdir().unwrap();
    assert!(init(dir.path(), &[]).status.success());
    let again = init(dir.path(), &[]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );

    let other = tempfile::tempdir().unwrap();
    let out = citychain(&[
        "genesis",
        "init",
        "--validators",
        "3",
        "--out",
        other.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("3f + 1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn malformed_or_truncated_genesis_is_refused_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    assert!(init(dir.path(), &["--sample-members"]).status.success());
    let good = std::fs::read_to_string(dir.path().join("genesis.json")).unwrap();
    let bad = dir.path().join("bad.json");
    let check = |content: &str, expected: &str| {
        std::fs::write(&bad, content).unwrap();
        let out = citychain(&["genesis", "validate", bad.to_str().unwrap()]);
        assert!(!out.status.success(), "accepted: {content}");
        let err = text(&out.stderr);
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    };
    check(&good[..good.len() / 2], "line");
    check(
        &good.replacen("\"bank\"", "\"banker\"", 1),
        "role \"banker\"",
    );
    let mut doc: serde_json::Value = serde_json::from_str(&good).unwrap();
    doc["validators"][0] = "bank.city-commercial".into();
    check(&doc.to_string(), "validators[0]");
    let missing = dir.path().join("nope.json");
    let out = citychain(&["genesis", "validate", missing.to_str().unwrap()]);
    assert!(text(&out.stderr).contains("nope.json"));
}

#[test]
fn keys_new_writes_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("citizen.json");
    let out = citychain(&["keys", "new", "--out", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("signing_key:"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = citychain(&["keys", "new", "--out", path.to_str().unwrap()]);
    assert!(!again.status.success());
}

#[test]
fn serve_names_what_is_not_available() {
    let out = citychain(&["serve", "coupons"]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("\"coupons\"") && said.contains("not in this build yet"),
        "{said}"
    );
    assert!(
        said.contains("consensus, ledger, licence, tokens"),
        "{said}"
    );
    let out = citychain(&["serve", "teleporter"]);
    assert!(text(&out.stderr).contains("not a citychain service"));
}
