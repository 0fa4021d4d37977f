//! Index rendering hot paths: Packages from N store entries, the sort inside
//! it, Release + signing. Synthetic entries come from bench/driver/src/synth.rs
//! (shaped like real ones: ten control fields, config fields, digests), all
//! amd64, in a scrambled order as a store scan returns them.
//!
//!     cargo bench -p pkgrelay-core --bench index

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pkgrelay_core::apt::{packages, release};
use pkgrelay_core::config::Config;
use pkgrelay_core::digest::Checksums;
use pkgrelay_core::sign::SigningKey;
use std::hint::black_box;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../../bench/driver/src/synth.rs"]
mod synth;

fn packages_render(c: &mut Criterion) {
    let mut group = c.benchmark_group("packages_render");
    for n in [2_000usize, 100_000] {
        let entries = synth::entries_of_arch(n, 100, "amd64");
        let bytes = packages::render_packages(&entries, "amd64").len();
        eprintln!("packages_render/{n}: {bytes} bytes of Packages");
        group.throughput(Throughput::Elements(n as u64));
        if n >= 100_000 {
            group.sample_size(10).measurement_time(Duration::from_secs(8));
        } else {
            group.sample_size(30).measurement_time(Duration::from_secs(4));
        }
        group.bench_with_input(BenchmarkId::new("render_packages", n), &entries, |b, e| {
            b.iter(|| black_box(packages::render_packages(e, "amd64")))
        });
        // Sorting (name, then Debian version, then architecture; versions
        // parsed once) and joining rendered stanzas, as the index builder does.
        let stanzas = || {
            let mut set = packages::Stanzas::default();
            for e in &entries {
                set.push(e);
            }
            set
        };
        let none = packages::Stanzas::default();
        group.bench_function(BenchmarkId::new("assemble_stanzas", n), |b| {
            b.iter_batched(stanzas, |own| black_box(packages::assemble(own, &none).len()), BatchSize::LargeInput)
        });
        // The stanzas alone, in input order (no sort).
        group.bench_with_input(BenchmarkId::new("render_stanzas_unsorted", n), &entries, |b, e| {
            b.iter(|| {
                let mut out = String::with_capacity(e.len() * 700);
                for entry in e {
                    out.push_str(&packages::render_stanza(entry));
                    out.push('\n');
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn release_and_sign(c: &mut Criterion) {
    let config = Config::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"))
        .expect("the repository's config/ loads");
    let repo = config.repository;
    let key = SigningKey::generate("bench <bench@example.com>").unwrap();
    // Two architectures × Packages, Packages.gz, Packages.xz, as build-index lists them.
    let files: Vec<release::IndexFile> = ["amd64", "arm64"]
        .iter()
        .flat_map(|arch| {
            ["Packages", "Packages.gz", "Packages.xz"].map(|name| release::IndexFile {
                path: format!("main/binary-{arch}/{name}"),
                checksums: Checksums::of(format!("{arch}/{name}").as_bytes()),
            })
        })
        .collect();
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let text = release::render_release(&repo, now, now + repo.validity(), &files);
    let mut group = c.benchmark_group("release");
    group.bench_function("render_release", |b| {
        b.iter(|| black_box(release::render_release(&repo, now, now + repo.validity(), &files)))
    });
    group.bench_function("detached_sign", |b| b.iter(|| black_box(key.detached_sign(text.as_bytes()).unwrap())));
    group.bench_function("clearsign", |b| b.iter(|| black_box(key.clearsign(text.as_bytes()).unwrap())));
    group.bench_function("render_and_sign_both", |b| {
        b.iter(|| {
            let text = release::render_release(&repo, now, now + repo.validity(), &files);
            black_box((key.detached_sign(text.as_bytes()).unwrap(), key.clearsign(text.as_bytes()).unwrap()))
        })
    });
    group.finish();
}

criterion_group!(benches, packages_render, release_and_sign);
criterion_main!(benches);
