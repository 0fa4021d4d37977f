//! Store scale: an SQLite store of N synthetic entries; the time to read them
//! all and render the index, by phase. `bench/store-scale.sh` runs each mode
//! in its own process under `/usr/bin/time -v` for the peak RSS.
//!
//! Modes:
//! - `noxz`: what build-index renders, without Packages.xz: store.all(),
//!   Packages per architecture, Packages.gz (gzip -9 as `apt/mod.rs` does),
//!   the digests, Release, Release.gpg and InRelease. Phases are timed apart.
//! - `full`: store.all() and the real `AptRepository::render` (xz included,
//!   index.html, keyring) — exactly what build-index calls.
//! - `compress`: gzip levels and xz presets over one architecture's Packages
//!   (size, time, MB/s), to choose the levels on measurements.

use anyhow::Context as _;
use pkgrelay_core::apt::{AptRepository, packages, release};
use pkgrelay_core::config::Config;
use pkgrelay_core::digest::Checksums;
use pkgrelay_core::repository::RepositoryFormat;
use pkgrelay_core::sign::SigningKey;
use pkgrelay_core::store::{PackageStore, SqliteStore};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Versions per name in the store-scale input (N / 100 names).
pub const PER_NAME: usize = 100;

pub async fn prepare(n: usize, db: &Path) -> anyhow::Result<()> {
    let tmp = db.with_extension("partial");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    {
        let store = SqliteStore::open(&tmp)?;
        for e in crate::synth::entries(n, PER_NAME) {
            store.insert(&e).await?;
        }
    }
    std::fs::rename(&tmp, db)?;
    Ok(())
}

fn gzip9(data: &[u8]) -> Vec<u8> {
    gzip(data, 9)
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::new(level));
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn xz(data: &[u8], preset: u32) -> Vec<u8> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), preset);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn ms(t: Instant) -> String {
    format!("{:.1}", t.elapsed().as_secs_f64() * 1000.0)
}

pub async fn run(db: &Path, config_dir: &Path, mode: &str) -> anyhow::Result<()> {
    let config = Config::load(config_dir)?;
    let cfg = config.repository.clone();
    // Key generation is not part of a build (the key is loaded once per process).
    let key = Arc::new(SigningKey::generate(&cfg.signing.user_id)?);
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0)?;
    println!("hwm_before_kib={}", crate::vm_hwm_kib());

    let total = Instant::now();
    let t = Instant::now();
    let store = SqliteStore::open(db)?;
    let entries = store.all().await?;
    println!("entries={}", entries.len());
    println!("read_ms={}", ms(t));
    println!("hwm_after_read_kib={}", crate::vm_hwm_kib());

    match mode {
        "noxz" => {
            let (mut render_ms, mut gzip_ms, mut hash_ms) = (0.0, 0.0, 0.0);
            let mut listed = Vec::new();
            let mut bytes = 0usize;
            for arch in &cfg.architectures {
                let t = Instant::now();
                let text = packages::render_packages(&entries, arch);
                render_ms += t.elapsed().as_secs_f64() * 1000.0;
                bytes += text.len();
                let t = Instant::now();
                let gz = gzip9(text.as_bytes());
                gzip_ms += t.elapsed().as_secs_f64() * 1000.0;
                let t = Instant::now();
                for (name, data) in [("Packages", text.as_bytes()), ("Packages.gz", &gz[..])] {
                    listed.push(release::IndexFile {
                        path: format!("main/binary-{arch}/{name}"),
                        checksums: Checksums::of(data),
                    });
                }
                hash_ms += t.elapsed().as_secs_f64() * 1000.0;
            }
            println!("packages_bytes={bytes}");
            println!("render_ms={render_ms:.1}");
            println!("gzip_ms={gzip_ms:.1}");
            println!("hash_ms={hash_ms:.1}");
            let t = Instant::now();
            let text = release::render_release(&cfg, now, now + cfg.validity(), &listed);
            let gpg = key.detached_sign(text.as_bytes())?;
            let inrelease = key.clearsign(text.as_bytes())?;
            std::hint::black_box((gpg, inrelease));
            println!("release_sign_ms={}", ms(t));
        }
        "full" => {
            let format = AptRepository { config: cfg.clone(), key: Some(key.clone()) };
            let t = Instant::now();
            let rendered = format.render(&entries, now)?;
            println!("render_all_ms={}", ms(t));
            let bytes: usize = rendered.immutable.iter().map(|(_, b)| b.len()).sum();
            println!("immutable_bytes={bytes}");
        }
        "compress" => {
            let arch = cfg.architectures.first().context("an architecture")?;
            let text = packages::render_packages(&entries, arch);
            println!("text_bytes={}", text.len());
            for level in [1, 6, 9] {
                let t = Instant::now();
                let out = gzip(text.as_bytes(), level);
                let secs = t.elapsed().as_secs_f64();
                println!(
                    "gzip{level}: bytes={} ms={:.1} mb_per_s={:.1}",
                    out.len(),
                    secs * 1000.0,
                    text.len() as f64 / secs / 1e6
                );
            }
            for preset in [0, 1, 3, 6] {
                let t = Instant::now();
                let out = xz(text.as_bytes(), preset);
                let secs = t.elapsed().as_secs_f64();
                println!(
                    "xz{preset}: bytes={} ms={:.1} mb_per_s={:.1}",
                    out.len(),
                    secs * 1000.0,
                    text.len() as f64 / secs / 1e6
                );
            }
        }
        other => anyhow::bail!("unknown mode {other:?} (noxz, full, compress)"),
    }
    println!("total_ms={}", ms(total));
    println!("hwm_kib={}", crate::vm_hwm_kib());
    Ok(())
}
