//! The chain export file: what the writer writes is what docs/formats.md describes byte by
//! byte and what the reader reads back; truncation, stray bytes, a wrong trailer, an
//! oversized or unknown record and out-of-order blocks are refused, naming the height.

mod common;

use citychain_kernel::block::Block;
use citychain_kernel::export::{
    ExportError, ExportReader, ExportWriter, FORMAT_VERSION, MAGIC, MAX_RECORD_BYTES,
};
use citychain_kernel::{Genesis, Height};

/// A genesis and `count` certified blocks with `h % 3` transactions each.
fn chain(salt: u64, count: u64) -> (Genesis, Vec<Block>) {
    let (genesis, keys) = common::network(salt);
    let shape = common::Shape {
        txs_modulo: 3,
        rotate_signers: false,
    };
    let blocks = common::blocks_for(&genesis, &keys, count, shape);
    (genesis, blocks)
}

fn write(genesis: &Genesis, blocks: &[Block]) -> Vec<u8> {
    let mut writer = ExportWriter::new(Vec::new(), genesis).unwrap();
    for block in blocks {
        writer.push(block).unwrap();
    }
    writer.finish().unwrap()
}

/// Reads every block; the first error if any.
fn read_all(bytes: &[u8]) -> Result<Vec<Block>, ExportError> {
    let mut reader = ExportReader::new(bytes)?;
    let blocks = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
    assert!(reader.is_complete(), "the reader stopped without a trailer");
    Ok(blocks)
}

/// The file header as docs/formats.md describes it.
fn doc_header(genesis: &Genesis) -> Vec<u8> {
    let mut out = b"citychain-export".to_vec();
    out.extend_from_slice(&[0x00, 0x01]);
    out.push(genesis.chain_id.as_str().len() as u8);
    out.extend_from_slice(genesis.chain_id.as_str().as_bytes());
    out.extend_from_slice(genesis.hash().as_bytes());
    out
}

/// One block record as docs/formats.md describes it.
fn doc_record(encoded: &[u8]) -> Vec<u8> {
    let mut out = vec![0x42];
    out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    out.extend_from_slice(encoded);
    out
}

/// The trailer as docs/formats.md describes it, over `before` (everything written so far).
fn doc_trailer(before: &[u8], count: u64) -> Vec<u8> {
    let mut hashed = before.to_vec();
    hashed.push(0x45);
    hashed.extend_from_slice(&count.to_be_bytes());
    let digest = blake3::hash(&hashed);
    let mut out = vec![0x45];
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(digest.as_bytes());
    out
}

/// A file written from the documented layout, with any records in any order.
fn doc_file(genesis: &Genesis, records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = doc_header(genesis);
    for r in records {
        out.extend_from_slice(&doc_record(r));
    }
    let trailer = doc_trailer(&out, records.len() as u64);
    out.extend_from_slice(&trailer);
    out
}

#[test]
fn what_is_written_is_read_back_and_matches_the_documented_layout() {
    let (genesis, blocks) = chain(1, 25);
    let bytes = write(&genesis, &blocks);
    let encoded: Vec<Vec<u8>> = blocks.iter().map(Block::encode).collect();
    assert_eq!(bytes, doc_file(&genesis, &encoded));
    assert_eq!(&bytes[..16], MAGIC);
    assert_eq!(FORMAT_VERSION, 1);

    let reader = ExportReader::new(bytes.as_slice()).unwrap();
    assert_eq!(reader.chain_id(), &genesis.chain_id);
    assert_eq!(reader.genesis_hash(), genesis.hash());
    reader.check_genesis(&genesis).unwrap();
    assert_eq!(read_all(&bytes).unwrap(), blocks);
}

#[test]
fn an_export_without_blocks_is_valid() {
    let (genesis, _) = chain(2, 0);
    let bytes = write(&genesis, &[]);
    assert_eq!(bytes.len(), 16 + 2 + 1 + 9 + 32 + 1 + 8 + 32);
    assert!(read_all(&bytes).unwrap().is_empty());
}

#[test]
fn every_truncation_is_refused() {
    let (genesis, blocks) = chain(3, 4);
    let bytes = write(&genesis, &blocks);
    for len in 0..bytes.len() {
        let err = read_all(&bytes[..len]).expect_err(&format!("prefix of {len} accepted"));
        let text = err.to_string();
        assert!(
            text.contains("truncated") || text.contains("trailer"),
            "prefix {len}: {text}"
        );
    }
    // Cut at the end of block 2's record: the error names height 3.
    let header = doc_header(&genesis).len();
    let two: usize = blocks[..2].iter().map(|b| 5 + b.encode().len()).sum();
    let err = read_all(&bytes[..header + two]).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::MissingTrailer {
                height: Height(3),
                blocks: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_repeated_and_reordered_blocks_are_refused_at_their_height() {
    let (genesis, blocks) = chain(4, 6);
    let enc: Vec<Vec<u8>> = blocks.iter().map(Block::encode).collect();
    let cases: [(&str, Vec<Vec<u8>>, u64, u64); 4] = [
        (
            "block 3 deleted",
            vec![enc[0].clone(), enc[1].clone(), enc[3].clone()],
            3,
            4,
        ),
        (
            "block 2 repeated",
            vec![enc[0].clone(), enc[1].clone(), enc[1].clone()],
            3,
            2,
        ),
        (
            "blocks 4 and 5 swapped",
            vec![
                enc[0].clone(),
                enc[1].clone(),
                enc[2].clone(),
                enc[4].clone(),
                enc[3].clone(),
            ],
            4,
            5,
        ),
        ("starts at block 2", vec![enc[1].clone()], 1, 2),
    ];
    for (what, records, expected, found) in cases {
        let err = read_all(&doc_file(&genesis, &records)).unwrap_err();
        assert!(
            matches!(err, ExportError::WrongHeight { expected: e, found: f } if e.0 == expected && f.0 == found),
            "{what}: {err}"
        );
        assert_eq!(err.height(), Some(Height(expected)), "{what}");
    }
    // The last block's record cut out, the trailer kept: the trailer no longer matches.
    let full = write(&genesis, &blocks);
    let trailer = 1 + 8 + 32;
    let cut = full.len() - trailer - 5 - enc[5].len();
    let mut bytes = full[..cut].to_vec();
    bytes.extend_from_slice(&full[full.len() - trailer..]);
    let err = read_all(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::TrailerCount {
                height: Height(6),
                trailer: 6,
                read: 5
            }
        ),
        "{err}"
    );
}

#[test]
fn a_wrong_trailer_or_bytes_after_it_are_refused() {
    let (genesis, blocks) = chain(5, 3);
    let bytes = write(&genesis, &blocks);
    let mut hash = bytes.clone();
    let last = hash.len() - 1;
    hash[last] ^= 1;
    assert!(matches!(
        read_all(&hash),
        Err(ExportError::TrailerHash {
            height: Height(4),
            ..
        })
    ));
    let mut count = bytes.clone();
    count[bytes.len() - 33] ^= 1;
    assert!(matches!(
        read_all(&count),
        Err(ExportError::TrailerCount {
            trailer: 2,
            read: 3,
            ..
        })
    ));
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(matches!(
        read_all(&extra),
        Err(ExportError::TrailingData { .. })
    ));
    // The hash covers the header too: records and trailer moved under another chain's header
    // are refused.
    let (other, _) = chain(6, 0);
    let mut moved = doc_header(&other);
    moved.extend_from_slice(&bytes[doc_header(&genesis).len()..]);
    assert!(matches!(
        read_all(&moved),
        Err(ExportError::TrailerHash { .. })
    ));
}

#[test]
fn oversized_empty_and_unknown_records_are_refused_naming_the_limit() {
    let (genesis, blocks) = chain(7, 2);
    let mut bytes = doc_header(&genesis);
    bytes.extend_from_slice(&doc_record(&blocks[0].encode()));
    let at_two = bytes.len();
    bytes.push(0x42);
    bytes.extend_from_slice(&(MAX_RECORD_BYTES + 1).to_be_bytes());
    let err = read_all(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::RecordLength {
                height: Height(2),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("67108864"), "{err}");

    // Exactly at the limit is allowed by the format; here the file simply ends.
    bytes.truncate(at_two);
    bytes.push(0x42);
    bytes.extend_from_slice(&MAX_RECORD_BYTES.to_be_bytes());
    let err = read_all(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::Truncated {
                height: Height(2),
                ..
            }
        ),
        "{err}"
    );

    bytes.truncate(at_two);
    bytes.push(0x42);
    bytes.extend_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        read_all(&bytes),
        Err(ExportError::RecordLength { length: 0, .. })
    ));

    bytes.truncate(at_two);
    bytes.push(0x43);
    let err = read_all(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::UnknownKind {
                height: Height(2),
                kind: 0x43
            }
        ),
        "{err}"
    );

    // A record that is not a block names its height.
    let mut garbage = doc_header(&genesis);
    garbage.extend_from_slice(&doc_record(&[0xff, 0xff, 0xff]));
    let err = read_all(&garbage).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::Block {
                height: Height(1),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_bad_header_is_refused_and_names_no_height() {
    let (genesis, blocks) = chain(8, 1);
    let bytes = write(&genesis, &blocks);
    let mut magic = bytes.clone();
    magic[0] = b'C';
    assert!(matches!(
        ExportReader::new(magic.as_slice()),
        Err(ExportError::BadMagic { .. })
    ));
    let mut version = bytes.clone();
    version[17] = 2;
    let err = ExportReader::new(version.as_slice()).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    assert_eq!(err.height(), None);
    let mut chain_id = bytes.clone();
    chain_id[19] = b'C';
    assert!(matches!(
        ExportReader::new(chain_id.as_slice()),
        Err(ExportError::ChainId(_))
    ));
    let mut length = bytes.clone();
    length[18] = 0;
    assert!(matches!(
        ExportReader::new(length.as_slice()),
        Err(ExportError::ChainId(_))
    ));

    // A header for another genesis reads, but check_genesis refuses it.
    let (other, _) = chain(9, 0);
    let reader = ExportReader::new(bytes.as_slice()).unwrap();
    let err = reader.check_genesis(&other).unwrap_err();
    assert!(err.to_string().contains("genesis hash"), "{err}");
}

#[test]
fn the_writer_refuses_blocks_out_of_order() {
    let (genesis, blocks) = chain(10, 3);
    let mut writer = ExportWriter::new(Vec::new(), &genesis).unwrap();
    writer.push(&blocks[0]).unwrap();
    let err = writer.push(&blocks[2]).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::WrongHeight {
                expected: Height(2),
                found: Height(3)
            }
        ),
        "{err}"
    );
    let err = writer.push(&blocks[0]).unwrap_err();
    assert!(matches!(err, ExportError::WrongHeight { .. }), "{err}");
    writer.push(&blocks[1]).unwrap();
    assert_eq!(writer.blocks(), 2);
    let bytes = writer.finish().unwrap();
    assert_eq!(read_all(&bytes).unwrap(), blocks[..2]);
}
