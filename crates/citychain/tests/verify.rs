//! Offline audit: `citychain verify` accepts an untouched export and refuses any changed,
//! missing, repeated, reordered or cut block at that block's height; it refuses chains that a
//! quorum signed but that break a chain rule (an expired transaction, one twice in a block, a
//! replay, a proposer out of turn), and a copy cut short given the tip; `citychain proof verify`
//! accepts a valid transaction proof and refuses a proof of another transaction, at another
//! index, under another header, with any byte changed, or signed by a set it cannot anchor.
//!
//! Random choices are seeded; the seed is printed, and `CITYCHAIN_TEST_SEED` replays it.

mod common;

use common::{citychain, text};

#[allow(dead_code)]
#[path = "../src/verify_cmd.rs"]
mod verify_cmd;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use citychain_governance::AuditError;
use citychain_kernel::replay::ReplayRejection;
use citychain_kernel::{Block, BlockError, Height, SignedTx, TransactionProof};
use citychain_testkit::chain::{ChainBuilder, SeededRng, export_bytes, reseal};
use citychain_testkit::genesis::{TestNetwork, network};
use verify_cmd::{Summary, Tip, TipMismatch, VerifyFailure, VerifyReason, verify_export};

/// Blocks in the large export.
const LARGE: u64 = 1_200;

struct Fixture {
    network: TestNetwork,
    blocks: Vec<Block>,
    bytes: Vec<u8>,
}

fn fixture(blocks: u64, seed: u64) -> Fixture {
    let network = network(4, seed);
    let blocks = ChainBuilder::new(&network, seed).build(blocks);
    let bytes = export_bytes(&network, &blocks);
    Fixture {
        network,
        blocks,
        bytes,
    }
}

/// The 1,200-block export, built once for every test that needs it.
fn large() -> &'static Fixture {
    static LARGE_FIXTURE: OnceLock<Fixture> = OnceLock::new();
    LARGE_FIXTURE.get_or_init(|| fixture(LARGE, 21))
}

fn verify(f: &Fixture, bytes: &[u8]) -> Result<Summary, VerifyFailure> {
    verify_export(&f.network.genesis, bytes, None, |_, _| {})
}

fn test_seed() -> u64 {
    let seed = std::env::var("CITYCHAIN_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("seed {seed} (CITYCHAIN_TEST_SEED={seed} replays this run)");
    seed
}

/// Where each block record lies in an export (kind byte and length prefix included); record
/// `i` holds block `i + 1`.
fn records(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut at = 16 + 2 + 1 + usize::from(bytes[18]) + 32;
    let mut out = Vec::new();
    while bytes[at] == b'B' {
        let len = u32::from_be_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        out.push(at..at + 5 + len);
        at += 5 + len;
    }
    assert_eq!(bytes[at], b'E', "a trailer follows the records");
    out
}

/// Which height a failure at byte `position` must name: the record's block, `None` in the
/// file header, the height after the last block in the trailer.
fn expected_height(records: &[Range<usize>], position: usize) -> Option<Height> {
    if position < records.first().map_or(usize::MAX, |r| r.start) {
        return None;
    }
    match records.iter().position(|r| r.contains(&position)) {
        Some(i) => Some(Height(i as u64 + 1)),
        None => Some(Height(records.len() as u64 + 1)),
    }
}

fn flipped(bytes: &[u8], position: usize, mask: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[position] ^= mask;
    out
}

/// Checks that changing each of `positions` fails at the height [`expected_height`] names,
/// spread over the machine's cores.
fn assert_each_flip_fails(f: &Fixture, positions: &[(usize, u8)]) {
    let ranges = records(&f.bytes);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = positions.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for part in positions.chunks(chunk) {
            let ranges = &ranges;
            scope.spawn(move || {
                for &(position, mask) in part {
                    let changed = flipped(&f.bytes, position, mask);
                    match verify(f, &changed) {
                        Ok(_) => panic!("byte {position} xor {mask:#04x} was accepted"),
                        Err(failure) => assert_eq!(
                            failure.height,
                            expected_height(ranges, position),
                            "byte {position} xor {mask:#04x}: {failure}"
                        ),
                    }
                }
            });
        }
    });
}

#[test]
fn an_untouched_export_of_1200_blocks_verifies() {
    let f = large();
    let mut seen = 0u64;
    let summary = verify_export(
        &f.network.genesis,
        f.bytes.as_slice(),
        None,
        |block, summary| {
            seen += 1;
            assert_eq!(block.header.height, Height(summary.blocks));
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen, LARGE);
    assert_eq!(summary.first, Some(Height(1)));
    assert_eq!(summary.last, Some(Height(LARGE)));
    assert_eq!(summary.blocks, LARGE);
    let txs: u64 = f.blocks.iter().map(|b| b.txs.len() as u64).sum();
    assert_eq!(summary.transactions, txs);
    assert_eq!(summary.precommits, LARGE * 3);
    assert_eq!(summary.validators.len(), 4);
    assert_eq!(summary.last_hash, f.blocks[LARGE as usize - 1].hash());
}

#[test]
fn every_byte_of_sampled_records_fails_at_that_height() {
    let f = fixture(40, 5);
    let ranges = records(&f.bytes);
    let mut positions = Vec::new();
    for height in [1usize, 20, 40] {
        for position in ranges[height - 1].clone() {
            positions.push((position, 0x01));
            positions.push((position, 0xff));
        }
    }
    assert_each_flip_fails(&f, &positions);
}

#[test]
fn a_thousand_random_byte_flips_across_an_export_all_fail() {
    // A flip at height h costs a walk of h blocks; 300 blocks keep this test to seconds.
    let f = fixture(300, 22);
    let mut rng = SeededRng::new(test_seed());
    let positions: Vec<(usize, u8)> = (0..1_000)
        .map(|_| {
            let position = rng.range(0, f.bytes.len() as u64 - 1) as usize;
            let mask = rng.range(1, 255) as u8;
            (position, mask)
        })
        .collect();
    assert_each_flip_fails(&f, &positions);
}

#[test]
fn header_and_trailer_bytes_fail_too() {
    let f = fixture(5, 6);
    let ranges = records(&f.bytes);
    let header = 0..ranges[0].start;
    let trailer = ranges[ranges.len() - 1].end..f.bytes.len();
    let positions: Vec<(usize, u8)> = header.chain(trailer).map(|p| (p, 0x01)).collect();
    assert_each_flip_fails(&f, &positions);
}

/// The export with its records rearranged (`order` lists record indexes), trailer kept.
fn rearranged(f: &Fixture, order: &[usize]) -> Vec<u8> {
    let ranges = records(&f.bytes);
    let mut out = f.bytes[..ranges[0].start].to_vec();
    for &i in order {
        out.extend_from_slice(&f.bytes[ranges[i].clone()]);
    }
    out.extend_from_slice(&f.bytes[ranges[ranges.len() - 1].end..]);
    out
}

#[test]
fn deleted_duplicated_and_reordered_blocks_fail_at_their_height() {
    let f = fixture(40, 7);
    let all: Vec<usize> = (0..40).collect();
    let without = |i: usize| -> Vec<usize> { all.iter().copied().filter(|&j| j != i).collect() };
    let mut repeated = all.clone();
    repeated.insert(20, 19);
    let mut swapped = all.clone();
    swapped.swap(9, 10);
    let cases: Vec<(&str, Vec<usize>, u64)> = vec![
        ("block 1 deleted", without(0), 1),
        ("block 20 deleted", without(19), 20),
        ("block 40 deleted", without(39), 40),
        ("block 20 repeated", repeated, 21),
        ("blocks 10 and 11 swapped", swapped, 10),
        ("blocks reversed", all.iter().rev().copied().collect(), 1),
    ];
    for (what, order, height) in cases {
        let failure = verify(&f, &rearranged(&f, &order)).expect_err(what);
        assert_eq!(failure.height, Some(Height(height)), "{what}: {failure}");
    }
}

#[test]
fn a_block_from_a_fork_does_not_link_and_is_named() {
    let f = fixture(30, 8);
    let fork = ChainBuilder::new(&f.network, 9).build(30);
    let ranges = records(&f.bytes);
    let mut bytes = f.bytes[..ranges[16].start].to_vec();
    let encoded = fork[16].encode();
    bytes.push(b'B');
    bytes.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&encoded);
    bytes.extend_from_slice(&f.bytes[ranges[16].end..]);
    let failure = verify(&f, &bytes).unwrap_err();
    assert_eq!(failure.height, Some(Height(17)));
    let text = failure.to_string();
    assert!(
        text.starts_with("block 17: prev_hash") && text.contains("does not link to block 16"),
        "{text}"
    );
}

#[test]
fn every_truncation_fails() {
    let f = fixture(12, 10);
    let ranges = records(&f.bytes);
    for len in 0..f.bytes.len() {
        let failure = verify(&f, &f.bytes[..len])
            .err()
            .unwrap_or_else(|| panic!("prefix of {len} bytes was accepted"));
        let expected = if len < ranges[0].start {
            None
        } else {
            // The cut record's height, or the next one when cut between records.
            let cut = ranges.iter().position(|r| len < r.end);
            Some(Height(cut.unwrap_or(ranges.len()) as u64 + 1))
        };
        assert_eq!(failure.height, expected, "prefix of {len}: {failure}");
    }
}

#[test]
fn another_genesis_is_refused_before_any_block() {
    let f = fixture(3, 11);
    let other = network(4, 12);
    let failure = verify_export(&other.genesis, f.bytes.as_slice(), None, |_, _| {}).unwrap_err();
    assert_eq!(failure.height, None);
    assert!(failure.to_string().contains("genesis hash"), "{failure}");
}

// ----- chain rules a quorum could break -----

/// 40 blocks with one to three transactions each.
fn busy() -> Fixture {
    let network = network(4, 31);
    let blocks = ChainBuilder::new(&network, 31)
        .txs_per_block(1, 3)
        .build(40);
    let bytes = export_bytes(&network, &blocks);
    Fixture {
        network,
        blocks,
        bytes,
    }
}

/// The fixture's chain with block `height` changed by `change` and every block from there on
/// re-signed by a quorum of the test validators, as an export: only the rule the change
/// breaks can refuse it.
fn rewritten(f: &Fixture, height: u64, change: impl FnOnce(&mut Block)) -> Vec<u8> {
    let mut blocks = f.blocks.clone();
    let i = height as usize - 1;
    change(&mut blocks[i]);
    reseal(&f.network, &mut blocks, i);
    export_bytes(&f.network, &blocks)
}

/// A transaction of the network's first member with `nonce` and `expiry`.
fn member_tx(f: &Fixture, nonce: u64, expiry: u64) -> SignedTx {
    let (_, member) = f.network.transaction_signers().next().unwrap();
    SignedTx::sign(
        &f.network.genesis.chain_id,
        &member.signing,
        nonce,
        Height(expiry),
        citychain_testkit::note("rule test"),
    )
    .unwrap()
}

fn refused_at(f: &Fixture, bytes: &[u8], height: u64) -> VerifyFailure {
    let failure = verify(f, bytes).expect_err("a chain breaking a rule was accepted");
    assert_eq!(failure.height, Some(Height(height)), "{failure}");
    failure
}

#[test]
fn resealing_alone_changes_nothing_a_verifier_refuses() {
    let f = busy();
    verify(&f, &rewritten(&f, 10, |_| {})).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_transaction_committed_after_its_expiry_height_is_refused() {
    let f = busy();
    // Expiry 19 commits at 19 at the latest; at 20 it is late by one height.
    verify(
        &f,
        &rewritten(&f, 19, |b| b.txs.push(member_tx(&f, 1 << 40, 19))),
    )
    .unwrap();
    let bytes = rewritten(&f, 20, |b| b.txs.push(member_tx(&f, 1 << 40, 19)));
    let failure = refused_at(&f, &bytes, 20);
    assert!(
        matches!(
            failure.reason,
            VerifyReason::Chain(BlockError::Expired {
                expiry: Height(19),
                ..
            })
        ),
        "{failure}"
    );
    assert!(
        failure.to_string().contains("expired at height 19"),
        "{failure}"
    );
}

#[test]
fn the_same_transaction_twice_in_one_block_is_refused() {
    let f = busy();
    let bytes = rewritten(&f, 12, |b| {
        let again = b.txs[0].clone();
        b.txs.push(again);
    });
    let failure = refused_at(&f, &bytes, 12);
    assert!(
        matches!(
            failure.reason,
            VerifyReason::Chain(BlockError::RepeatedInBlock { earlier: 0, .. })
        ),
        "{failure}"
    );
    // Another body under the same signer and nonce is the same offence.
    let bytes = rewritten(&f, 12, |b| {
        let first = &b.txs[0];
        let (_, who) = f
            .network
            .transaction_signers()
            .find(|(_, k)| k.signing.public_key() == *first.signer())
            .unwrap();
        let other = SignedTx::sign(
            &f.network.genesis.chain_id,
            &who.signing,
            first.nonce(),
            first.expiry(),
            citychain_testkit::note("another body"),
        )
        .unwrap();
        b.txs.push(other);
    });
    refused_at(&f, &bytes, 12);
}

#[test]
fn a_replay_of_an_earlier_blocks_transaction_is_refused_while_it_could_commit() {
    let f = busy();
    let earlier = f.blocks[4].txs[0].clone();
    assert!(
        earlier.expiry() >= Height(30),
        "the builder gives 100 heights"
    );
    let bytes = rewritten(&f, 30, |b| b.txs.push(earlier.clone()));
    let failure = refused_at(&f, &bytes, 30);
    assert!(
        matches!(
            &failure.reason,
            VerifyReason::Governance(e) if matches!(
                **e,
                AuditError::Replay { reason: ReplayRejection::Replayed { .. }, .. }
            )
        ),
        "{failure}"
    );
    assert!(failure.to_string().contains("a replay"), "{failure}");
}

#[test]
fn a_block_naming_a_proposer_out_of_turn_is_refused() {
    let f = busy();
    let set = f.network.genesis.validator_set();
    let h = Height(17);
    let second = set.proposer(h, 1).key;
    // Decided in round 1, round 1's proposer may have built it.
    let in_turn = rewritten(&f, 17, |b| {
        b.header.proposer = second;
        b.certificate.round = 1;
    });
    verify(&f, &in_turn).unwrap_or_else(|e| panic!("{e}"));
    // Decided in round 0, only round 0's proposer may have.
    let out_of_turn = rewritten(&f, 17, |b| {
        b.header.proposer = second;
        b.certificate.round = 0;
    });
    let failure = refused_at(&f, &out_of_turn, 17);
    assert!(
        matches!(
            failure.reason,
            VerifyReason::Chain(BlockError::ProposerTurn { round: 0, .. })
        ),
        "{failure}"
    );
}

fn tip_of(f: &Fixture, height: u64) -> Tip {
    Tip {
        height: Height(height),
        hash: f.blocks[height as usize - 1].hash(),
    }
}

#[test]
fn a_cut_export_with_a_new_trailer_passes_alone_and_is_refused_given_the_tip() {
    let f = busy();
    let cut = export_bytes(&f.network, &f.blocks[..30]);
    let alone = verify(&f, &cut).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        alone.last,
        Some(Height(30)),
        "a cut copy verifies on its own"
    );

    let check = |bytes: &[u8], tip| verify_export(&f.network.genesis, bytes, Some(tip), |_, _| {});
    let failure = check(&cut, tip_of(&f, 40)).unwrap_err();
    assert!(
        matches!(
            failure.reason,
            VerifyReason::Tip(TipMismatch::Short { last: 30, .. })
        ),
        "{failure}"
    );
    assert!(failure.to_string().contains("cut short"), "{failure}");
    // The whole chain reaches its tip; a tip inside the export must be that very block.
    check(&f.bytes, tip_of(&f, 40)).unwrap_or_else(|e| panic!("{e}"));
    check(&cut, tip_of(&f, 30)).unwrap_or_else(|e| panic!("{e}"));
    let wrong = Tip {
        height: Height(25),
        hash: f.blocks[25].hash(),
    };
    let failure = check(&f.bytes, wrong).unwrap_err();
    assert_eq!(failure.height, Some(Height(25)));
    assert!(matches!(
        failure.reason,
        VerifyReason::Tip(TipMismatch::Hash { .. })
    ));
}

// ----- the binary -----

struct OnDisk {
    _dir: tempfile::TempDir,
    genesis: PathBuf,
    export: PathBuf,
    dir: PathBuf,
}

fn on_disk(f: &Fixture) -> OnDisk {
    let dir = tempfile::tempdir().unwrap();
    let genesis = f.network.write_to(dir.path()).unwrap();
    let export = dir.path().join("chain.export");
    std::fs::write(&export, &f.bytes).unwrap();
    OnDisk {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        genesis,
        export,
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_binary_verifies_a_small_export_and_names_the_first_bad_height() {
    let f = fixture(60, 13);
    let d = on_disk(&f);
    let out = citychain(&[
        "verify",
        path(&d.genesis),
        path(&d.export),
        "--progress-every",
        "25",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let txs: u64 = f.blocks.iter().map(|b| b.txs.len() as u64).sum();
    for expected in [
        "heights:      1..60".to_string(),
        "blocks:       60".to_string(),
        format!("transactions: {txs}"),
        "validators:   4 distinct, 180 precommit signatures verified".to_string(),
    ] {
        assert!(said.contains(&expected), "{said:?} lacks {expected:?}");
    }
    let progress = text(&out.stderr);
    assert_eq!(progress.lines().count(), 2, "{progress}");
    assert!(progress.contains("checked 50 blocks"), "{progress}");

    // One flipped byte inside block 33's transactions or certificate.
    let ranges = records(&f.bytes);
    let bad = d.dir.join("bad.export");
    std::fs::write(&bad, flipped(&f.bytes, ranges[32].end - 10, 0x01)).unwrap();
    let out = citychain(&["verify", path(&d.genesis), path(&bad)]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("block 33:"), "{err}");

    let missing = citychain(&["verify", path(&d.genesis), path(&d.dir.join("nope.export"))]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("nope.export"));
}

#[test]
fn the_binary_refuses_a_cut_export_given_the_tip_and_names_a_malformed_tip() {
    let f = fixture(20, 17);
    let d = on_disk(&f);
    let cut = d.dir.join("cut.export");
    std::fs::write(&cut, export_bytes(&f.network, &f.blocks[..15])).unwrap();
    let tip = tip_of(&f, 20).to_string();

    let out = citychain(&["verify", path(&d.genesis), path(&d.export), "--tip", &tip]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("tip:          block {tip} is in the export")));

    let out = citychain(&["verify", path(&d.genesis), path(&cut)]);
    assert!(out.status.success(), "without a tip the cut copy passes");
    assert!(text(&out.stdout).contains("tip:          not checked"));

    let out = citychain(&["verify", path(&d.genesis), path(&cut), "--tip", &tip]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("ends at height 15") && err.contains("cut short"),
        "{err}"
    );

    for (bad, says) in [
        ("20", "HEIGHT:HASH"),
        ("x:00", "not a block height"),
        ("0:00", "height 0 is genesis"),
        ("20:abc", "not a block hash"),
    ] {
        let out = citychain(&["verify", path(&d.genesis), path(&d.export), "--tip", bad]);
        assert!(!out.status.success(), "--tip {bad} was accepted");
        assert!(
            text(&out.stderr).contains(says),
            "--tip {bad}: {}",
            text(&out.stderr)
        );
    }
}

/// A proof of transaction `index` of block `height`, built in the library.
fn proof_of(f: &Fixture, height: u64, index: u64) -> TransactionProof {
    TransactionProof::build(
        &f.blocks[height as usize - 1],
        index,
        &f.network.genesis.validator_set(),
    )
    .unwrap()
}

/// A block at or after `from` with at least `txs` transactions.
fn height_with(f: &Fixture, from: u64, txs: usize) -> u64 {
    f.blocks
        .iter()
        .skip(from as usize - 1)
        .find(|b| b.txs.len() >= txs)
        .map(|b| b.header.height.0)
        .expect("the chain has a block with enough transactions")
}

#[test]
fn a_valid_proof_verifies_through_the_cli() {
    let f = fixture(40, 14);
    let d = on_disk(&f);
    let height = height_with(&f, 10, 3);
    let proof = proof_of(&f, height, 2);
    let tx = &f.blocks[height as usize - 1].txs[2];
    let file = d.dir.join("tx.proof");
    std::fs::write(&file, proof.encode()).unwrap();

    for extra in [vec![], vec!["--chain", path(&d.export)]] {
        let mut args = vec![
            "proof",
            "verify",
            "--genesis",
            path(&d.genesis),
            path(&file),
        ];
        args.extend(extra);
        let out = citychain(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let said = text(&out.stdout);
        for expected in [
            format!("transaction: {}", tx.id()),
            format!("height:      {height}"),
            "index:       2".to_string(),
            format!("signer:      {}", tx.signer()),
            "verified".to_string(),
        ] {
            assert!(said.contains(&expected), "{said:?} lacks {expected:?}");
        }
    }

    // `proof build` writes the same proof from the export.
    let built = d.dir.join("built.proof");
    let out = citychain(&[
        "proof",
        "build",
        "--genesis",
        path(&d.genesis),
        "--chain",
        path(&d.export),
        "--height",
        &height.to_string(),
        "--index",
        "2",
        "--out",
        path(&built),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&built).unwrap(), proof.encode());
}

#[test]
fn altered_proofs_are_refused_through_the_cli() {
    let f = fixture(40, 15);
    let d = on_disk(&f);
    let height = height_with(&f, 10, 3);
    let good = proof_of(&f, height, 1);
    let file = d.dir.join("bad.proof");
    let refused = |bytes: Vec<u8>, what: &str, needle: &str| {
        std::fs::write(&file, bytes).unwrap();
        let out = citychain(&[
            "proof",
            "verify",
            "--genesis",
            path(&d.genesis),
            path(&file),
        ]);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{what} was accepted");
        assert!(!text(&out.stdout).contains("verified"), "{what}");
        assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
    };

    let mut other_tx = good.clone();
    other_tx.transaction = f.blocks[height as usize - 1].txs[2].bytes().to_vec();
    refused(
        other_tx.encode(),
        "another transaction",
        "is not at index 1",
    );

    let mut wrong_index = good.clone();
    wrong_index.index = 2;
    refused(wrong_index.encode(), "a wrong index", "is not at index 2");

    let other_height = height_with(&f, height + 1, 1);
    let mut other_header = good.clone();
    other_header.header = f.blocks[other_height as usize - 1].header.clone();
    other_header.certificate = f.blocks[other_height as usize - 1].certificate.clone();
    other_header.height = Height(other_height);
    other_header.tree_size = f.blocks[other_height as usize - 1].header.tx_count;
    refused(
        other_header.encode(),
        "another block's header",
        "is not at index 1",
    );

    let mut only_header = good.clone();
    only_header.header = f.blocks[other_height as usize - 1].header.clone();
    refused(
        only_header.encode(),
        "another block's header alone",
        "refused",
    );

    let bytes = good.encode();
    refused(
        flipped(&bytes, bytes.len() / 2, 0x01),
        "a flipped byte",
        "bad.proof",
    );
    refused(
        bytes[..bytes.len() - 1].to_vec(),
        "a cut proof",
        "bad.proof",
    );

    // Every byte of the encoding, through the same library calls the command makes.
    let chain = &f.network.genesis.chain_id;
    for position in 0..bytes.len() {
        for mask in [0x01u8, 0xff] {
            let outcome = TransactionProof::decode(&flipped(&bytes, position, mask))
                .and_then(|p| p.verify(chain));
            assert!(
                outcome.is_err(),
                "byte {position} xor {mask:#04x} was accepted"
            );
        }
    }
}

#[test]
fn a_proof_from_another_validator_set_needs_a_chain_and_fails_against_it() {
    let f = fixture(20, 16);
    let d = on_disk(&f);
    // The same chain id with other validators: the proof is consistent in itself.
    let other = fixture(20, 17);
    let height = height_with(&other, 5, 1);
    let proof = TransactionProof::build(
        &other.blocks[height as usize - 1],
        0,
        &other.network.genesis.validator_set(),
    )
    .unwrap();
    let file = d.dir.join("other.proof");
    std::fs::write(&file, proof.encode()).unwrap();

    let out = citychain(&[
        "proof",
        "verify",
        "--genesis",
        path(&d.genesis),
        path(&file),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("not the genesis set") && err.contains("--chain"),
        "{err}"
    );

    let out = citychain(&[
        "proof",
        "verify",
        "--genesis",
        path(&d.genesis),
        path(&file),
        "--chain",
        path(&d.export),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("block {height} has hash")), "{err}");
}
