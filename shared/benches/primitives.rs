//! Debian version sorting (10,000 versions) and one-pass MD5+SHA1+SHA256
//! over a 64 MiB buffer (`Hasher`, and `ParallelHasher` as the download path
//! uses it: MD5 on its own thread), with each digest alone for the breakdown.
//!
//!     cargo bench -p pkgrelay-core --bench primitives

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pkgrelay_core::digest::{Hasher, ParallelHasher};
use pkgrelay_core::version;
use std::hint::black_box;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../../bench/driver/src/synth.rs"]
mod synth;

fn version_sort(c: &mut Criterion) {
    let versions = synth::versions(10_000);
    let mut group = c.benchmark_group("version_sort_10000");
    group.throughput(Throughput::Elements(versions.len() as u64));
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    // What packages::sort_entries does: parse both sides at every comparison.
    group.bench_function("sort_by_compare", |b| {
        b.iter(|| {
            let mut v = versions.clone();
            v.sort_by(|a, b| version::compare(a, b));
            black_box(v)
        })
    });
    // Parse each version once, then sort the parsed keys.
    group.bench_function("sort_by_cached_key", |b| {
        b.iter(|| {
            let mut v = versions.clone();
            v.sort_by_cached_key(|s| version::parse(s).ok());
            black_box(v)
        })
    });
    group.bench_function("parse_each_once", |b| {
        b.iter(|| black_box(versions.iter().filter(|s| version::parse(s).is_ok()).count()))
    });
    group.finish();
}

fn digests(c: &mut Criterion) {
    use md5::Digest as _;
    let mut data = vec![0u8; 64 << 20];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for chunk in data.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    let mut group = c.benchmark_group("digest_64MiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(6));
    // As download-package feeds it: 256 KiB chunks through one Hasher.
    group.bench_function("hasher_md5_sha1_sha256", |b| {
        b.iter(|| {
            let mut h = Hasher::new();
            for chunk in data.chunks(256 << 10) {
                h.update(chunk);
            }
            black_box(h.finish())
        })
    });
    // As Fetcher::download feeds it: shared chunks (the HTTP body's), MD5 on a second thread.
    let chunks: Vec<bytes::Bytes> = data.chunks(256 << 10).map(bytes::Bytes::copy_from_slice).collect();
    group.bench_function("parallel_hasher_md5_sha1_sha256", |b| {
        b.iter(|| {
            let mut h = ParallelHasher::new();
            for chunk in &chunks {
                h.update(chunk);
            }
            black_box(h.finish())
        })
    });
    group.bench_function("md5", |b| b.iter(|| black_box(md5::Md5::digest(&data))));
    group.bench_function("sha1", |b| b.iter(|| black_box(sha1::Sha1::digest(&data))));
    group.bench_function("sha256", |b| b.iter(|| black_box(sha2::Sha256::digest(&data))));
    group.finish();
}

criterion_group!(benches, version_sort, digests);
criterion_main!(benches);
