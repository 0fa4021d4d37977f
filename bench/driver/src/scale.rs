//! Store scale: N entries in SQLite, read and rendered the way build-index
//! does it (`SqliteStore::for_each_entry` into the APT format's index builder),
//! in-process, with the phases timed apart.
//!
//! Modes:
//! - `noxz`: the real build with `compression: [gz]` — everything build-index
//!   does except Packages.xz (the target excludes xz);
//! - `full`: the real build with the shipped `compression: [gz, xz]`;
//! - `read`: the store alone: SELECT of the rows, then JSON decoding;
//! - `compress`: one architecture's Packages through every gzip level and xz
//!   preset, and through the shipped encoders.

use anyhow::Context as _;
use pkgrelay_core::apt::{AptRepository, compress, packages};
use pkgrelay_core::config::{Config, IndexCompression};
use pkgrelay_core::repository::RepositoryFormat;
use pkgrelay_core::sign::SigningKey;
use pkgrelay_core::store::{PackageStore, SqliteStore};
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
        for e in crate::synth::entries_in_release_order(n, PER_NAME) {
            store.insert("stable", &e).await?;
        }
    }
    std::fs::rename(&tmp, db)?;
    Ok(())
}

/// Milliseconds since `t`, printed as `name=ms`.
fn lap(name: &str, t: Instant) {
    println!("{name}={:.1}", t.elapsed().as_secs_f64() * 1000.0);
}

pub async fn run(db: &Path, config_dir: &Path, mode: &str) -> anyhow::Result<()> {
    let total = Instant::now();
    match mode {
        "noxz" | "full" => {
            let mut config = Config::load(config_dir)?.repository;
            config.compression = if mode == "noxz" {
                vec![IndexCompression::Gz]
            } else {
                vec![IndexCompression::Gz, IndexCompression::Xz]
            };
            // Key generation is not part of a build (the CLI loads its key once).
            let key = Arc::new(SigningKey::generate(&config.signing.user_id)?);
            let now = time::OffsetDateTime::now_utc();
            let t = Instant::now();
            let store = SqliteStore::open(db)?;
            let format = AptRepository { config, key: Some(key), keep: Default::default() };
            let mut builder = format.index_builder(Vec::new())?;
            let mut entries = 0usize;
            store
                .for_each_entry(&mut |e| {
                    entries += 1;
                    builder.add(e)
                })
                .await?;
            println!("entries={entries}");
            lap("read_ms", t);
            println!("hwm_after_read_kib={}", crate::vm_hwm_kib());
            let t = Instant::now();
            let rendered = builder.finish(now)?;
            lap("stanzas_sort_compress_hash_sign_ms", t);
            println!("immutable_bytes={}", rendered.immutable.iter().map(|(_, b)| b.len()).sum::<usize>());
            for (key, bytes) in &rendered.immutable {
                println!("file {key} {}", bytes.len());
            }
        }
        "read" => {
            let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            let t = Instant::now();
            let rows: Vec<String> =
                conn.prepare("SELECT record FROM packages")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            lap("select_ms", t);
            println!("rows_json_bytes={}", rows.iter().map(String::len).sum::<usize>());
            let t = Instant::now();
            let entries: Vec<pkgrelay_core::model::PackageEntry> =
                rows.iter().map(|j| serde_json::from_str(j)).collect::<Result<_, _>>()?;
            lap("decode_ms", t);
            println!("entries={}", entries.len());
        }
        "compress" => {
            let config = Config::load(config_dir)?.repository;
            let arch = config.architectures.first().context("an architecture")?;
            let entries = SqliteStore::open(db)?.all().await?;
            compress_report(packages::render_packages(&entries, arch).as_bytes());
        }
        other => anyhow::bail!("unknown mode {other:?} (noxz, full, read, compress)"),
    }
    lap("total_ms", total);
    println!("hwm_kib={}", crate::vm_hwm_kib());
    Ok(())
}

/// Size, time and MB/s of one encoding of `data`.
fn report(name: &str, data: &[u8], encode: impl FnOnce(&[u8]) -> Vec<u8>) {
    let t = Instant::now();
    let out = encode(data);
    let secs = t.elapsed().as_secs_f64();
    println!("{name}: bytes={} ms={:.1} mb_per_s={:.1}", out.len(), secs * 1000.0, data.len() as f64 / secs / 1e6);
}

/// gzip levels 1/6/9, single-threaded xz presets 0/1/3/6, and the encoders
/// pkgrelay ships (`apt::compress`), over `data`.
pub fn compress_report(data: &[u8]) {
    println!("input_bytes={}", data.len());
    for level in [1, 6, 9] {
        report(&format!("gzip{level}"), data, |d| crate::synth::gzip_at(d, level));
    }
    for preset in [0, 1, 3, 6] {
        report(&format!("xz{preset}"), data, |d| crate::synth::xz_at(d, preset));
    }
    report("shipped_gzip", data, compress::gzip);
    report("shipped_xz", data, compress::xz);
}
