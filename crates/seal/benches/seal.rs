//! What sealing costs the licence service per upload and per released read: sealing and
//! opening payloads of 1 KiB, 64 KiB and 1 MiB (the upload limit), and wrapping and unwrapping
//! a record key for a reader. Run with `cargo bench -p citychain-seal`.

use std::hint::black_box;

use citychain_kernel::EncryptionSecret;
use citychain_seal::{RecordKey, open_payload, reader_context, seal_payload, unwrap_key, wrap_key};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn payloads(c: &mut Criterion) {
    let key = RecordKey::from_bytes([7; 32]);
    let record = [9u8; 32];
    let mut group = c.benchmark_group("payload");
    for size in [1 << 10, 64 << 10, 1 << 20] {
        let plaintext = vec![0x5a; size];
        let sealed = seal_payload(&key, &record, &plaintext).unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &plaintext, |b, p| {
            b.iter(|| seal_payload(&key, &record, black_box(p)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, s| {
            b.iter(|| open_payload(&key, &record, black_box(s)).unwrap())
        });
    }
    group.finish();
}

fn key_grants(c: &mut Criterion) {
    let key = RecordKey::from_bytes([7; 32]);
    let reader = EncryptionSecret::from_seed(&[3; 32]);
    let context = reader_context(&[1; 32], &[2; 32]);
    let wrapped = wrap_key(&key, &reader.public_key(), &context).unwrap();
    c.bench_function("grant/wrap", |b| {
        b.iter(|| wrap_key(&key, black_box(&reader.public_key()), &context).unwrap())
    });
    c.bench_function("grant/unwrap", |b| {
        b.iter(|| unwrap_key(black_box(&wrapped), &reader, &context).unwrap())
    });
}

criterion_group!(benches, payloads, key_grants);
criterion_main!(benches);
