//! What checking an upload's payload against its record type costs the licence service: a
//! typical 200-byte filing, and a 1 MiB payload that is mostly an attached document (the
//! upload limit). Run with `cargo bench -p citychain-records`.

use std::hint::black_box;

use base64::Engine;
use citychain_governance::{FieldKind, RecordType};
use citychain_kernel::{Hash32, Role};
use citychain_records::{Upload, check_payload};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn upload_of(record_type: &RecordType, payload: &[u8]) -> Upload {
    Upload {
        record_type: record_type.name.clone(),
        subject: "citizen:330102-19900101-0042".into(),
        payload_hash: Hash32(*blake3::hash(payload).as_bytes()),
        payload_size: payload.len() as u64,
    }
}

fn check(c: &mut Criterion) {
    let record_type = RecordType::build(
        "housing.filing",
        "dept.housing",
        &[
            ("contract_no", FieldKind::Text, true),
            ("price_cny", FieldKind::Integer, true),
            ("seller", FieldKind::Text, true),
            ("signed_on", FieldKind::Date, true),
            ("contract", FieldKind::Document, false),
        ],
        &[Role::Department],
        3,
        5,
    )
    .unwrap();
    let filing = br#"{"contract_no":"HZ-2026-118734","price_cny":3200000,"seller":"citizen:330102-19750312-0017","signed_on":"2026-11-02"}"#.to_vec();
    let document = base64::engine::general_purpose::STANDARD.encode(vec![0x42u8; 760 * 1024]);
    let large = format!(
        r#"{{"contract_no":"HZ-1","price_cny":1,"seller":"s","signed_on":"2026-11-02","contract":"{document}"}}"#
    )
    .into_bytes();
    let mut group = c.benchmark_group("check_payload");
    for (name, payload) in [("filing", &filing), ("document_1mib", &large)] {
        let upload = upload_of(&record_type, payload);
        group.throughput(Throughput::Bytes(payload.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| check_payload(&record_type, &upload, black_box(payload)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
