//! gzip and xz levels over a Packages text, behind the choice in
//! shared/src/apt/compress.rs. The text is the Packages of 2,000 synthetic
//! entries (bench/driver/src/synth.rs), about 1.2 MB; the compressed sizes are
//! printed before the timings. Library encoders at each level
//! (`synth::gzip_at`, `synth::xz_at`).
//!
//!     cargo bench -p pkgrelay-core --bench compress

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pkgrelay_core::apt::packages;
use std::hint::black_box;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../../bench/driver/src/synth.rs"]
mod synth;

fn compress(c: &mut Criterion) {
    let entries = synth::entries_of_arch(2_000, 100, "amd64");
    let text = packages::render_packages(&entries, "amd64");
    eprintln!("Packages of 2,000 entries: {} bytes", text.len());
    for level in [1, 6, 9] {
        let n = synth::gzip_at(text.as_bytes(), level).len();
        eprintln!("  gzip -{level}: {n} bytes ({:.1} %)", n as f64 * 100.0 / text.len() as f64);
    }
    for preset in [0, 1, 3, 6] {
        let n = synth::xz_at(text.as_bytes(), preset).len();
        eprintln!("  xz -{preset}: {n} bytes ({:.1} %)", n as f64 * 100.0 / text.len() as f64);
    }
    let mut group = c.benchmark_group("compress_packages_2000");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(4));
    for level in [1, 6, 9] {
        group.bench_with_input(BenchmarkId::new("gzip", level), &level, |b, &l| {
            b.iter(|| black_box(synth::gzip_at(text.as_bytes(), l)))
        });
    }
    for preset in [0, 1, 3, 6] {
        group.bench_with_input(BenchmarkId::new("xz", preset), &preset, |b, &p| {
            b.iter(|| black_box(synth::xz_at(text.as_bytes(), p)))
        });
    }
    group.finish();
}

criterion_group!(benches, compress);
criterion_main!(benches);
