//! Store scale: an SQLite store of N synthetic entries; the time to read them
//! all and render the index, by phase. `bench/store-scale.sh` runs each mode
//! in its own process under `/usr/bin/time -v` for the peak RSS.
//!
//! Modes:
//! - `noxz`: what build-index renders, without Packages.xz: store.all(),
//!   Packages per architecture, Packages.gz (at the level `apt/mod.rs` ships),
//!   the digests, Release, Release.gpg and InRelease. Phases are timed apart.
//! - `full`: store.all() and the real `AptRepository::render` (xz included,
//!   index.html, keyring) — exactly what build-index calls.
//! - `compress`: gzip levels and xz presets over one architecture's Packages
//!   (size, time, MB/s), to choose the levels on measurements.
//! - `read`: what `SqliteStore::all` does, split: the SELECT into rows, then
//!   the JSON decoding, with the peak RSS after each and the entries' heap size.
//! - `read-stream`: the same rows decoded inside the row callback (no Vec of
//!   JSON rows beside the entries): the peak a streaming `all()` would have.
//! - `noxz-par`: the `noxz` work done the way bench/README.md recommends
//!   (rows decoded as they stream, one thread per architecture, gzip level
//!   `BENCH_GZIP_LEVEL`, default 6), to show what the fix is worth.
//! - `noxz-stream`: the design bench/README.md recommends for the memory
//!   target: each row decoded, rendered to its stanza at once and dropped
//!   (only name, parsed version, architecture and stanza kept), then one
//!   thread per architecture sorts, joins, compresses (gzip `BENCH_GZIP_LEVEL`,
//!   default 1) and hashes.

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
        for e in crate::synth::entries_in_release_order(n, PER_NAME) {
            store.insert(&e).await?;
        }
    }
    std::fs::rename(&tmp, db)?;
    Ok(())
}

/// The gzip level shared/src/apt/mod.rs ships (9 before 0518b5f, 6 since).
const SHIPPED_GZIP_LEVEL: u32 = 6;

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

/// Heap bytes held by an entry's strings and vectors (capacities, without
/// allocator overhead) and the number of heap blocks.
fn heap_of(e: &pkgrelay_core::model::PackageEntry) -> (usize, usize) {
    let mut bytes = 0;
    let mut blocks = 0;
    let mut s = |x: &String| {
        if x.capacity() > 0 {
            bytes += x.capacity();
            blocks += 1;
        }
    };
    for x in [
        &e.package_id,
        &e.package_name,
        &e.version,
        &e.architecture,
        &e.filename,
        &e.source_url,
        &e.processed_timestamp,
        &e.checksums.md5,
        &e.checksums.sha1,
        &e.checksums.sha256,
    ] {
        s(x);
    }
    for x in [
        &e.config.description,
        &e.config.maintainer,
        &e.config.homepage,
        &e.config.section,
        &e.config.priority,
        &e.pub_date,
        &e.notes,
    ]
    .into_iter()
    .flatten()
    {
        s(x);
    }
    for (k, v) in &e.control.fields {
        s(k);
        s(v);
    }
    for d in &e.config.depends {
        s(d);
    }
    let fields = e.control.fields.capacity() * std::mem::size_of::<(String, String)>();
    (bytes + fields, blocks + usize::from(fields > 0))
}

fn rows(db: &Path) -> anyhow::Result<rusqlite::Connection> {
    Ok(rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?)
}

fn read_streaming(db: &Path) -> anyhow::Result<Vec<pkgrelay_core::model::PackageEntry>> {
    let conn = rows(db)?;
    let mut stmt = conn.prepare("SELECT package_id, record FROM packages")?;
    let entries = stmt
        .query_map([], |r| {
            let json = r.get_ref(1)?.as_str()?;
            serde_json::from_str(json).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(entries)
}

fn render_arch(entries: &[pkgrelay_core::model::PackageEntry], arch: &str, level: u32) -> Vec<release::IndexFile> {
    let text = packages::render_packages(entries, arch);
    let gz = gzip(text.as_bytes(), level);
    [("Packages", text.as_bytes()), ("Packages.gz", &gz[..])]
        .into_iter()
        .map(|(name, data)| release::IndexFile {
            path: format!("main/binary-{arch}/{name}"),
            checksums: Checksums::of(data),
        })
        .collect()
}

pub async fn run(db: &Path, config_dir: &Path, mode: &str) -> anyhow::Result<()> {
    match mode {
        "read" => {
            let total = Instant::now();
            let conn = rows(db)?;
            let t = Instant::now();
            let rows: Vec<(String, String)> = conn
                .prepare("SELECT package_id, record FROM packages")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            println!("select_ms={}", ms(t));
            println!("rows_json_bytes={}", rows.iter().map(|(a, b)| a.len() + b.len()).sum::<usize>());
            println!("hwm_after_select_kib={}", crate::vm_hwm_kib());
            let t = Instant::now();
            let entries: Vec<pkgrelay_core::model::PackageEntry> =
                rows.iter().map(|(_, j)| serde_json::from_str(j)).collect::<Result<_, _>>()?;
            println!("decode_ms={}", ms(t));
            println!("hwm_after_decode_kib={}", crate::vm_hwm_kib());
            let (bytes, blocks) = entries.iter().map(heap_of).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            println!(
                "entries_heap_bytes={} entries_heap_blocks={} entries_vec_bytes={}",
                bytes,
                blocks,
                entries.capacity() * std::mem::size_of::<pkgrelay_core::model::PackageEntry>()
            );
            let t = Instant::now();
            drop(rows);
            println!("drop_rows_ms={}", ms(t));
            println!("total_ms={}", ms(total));
            println!("hwm_kib={}", crate::vm_hwm_kib());
            return Ok(());
        }
        "read-stream" => {
            let t = Instant::now();
            let entries = read_streaming(db)?;
            println!("entries={}", entries.len());
            println!("total_ms={}", ms(t));
            println!("hwm_kib={}", crate::vm_hwm_kib());
            return Ok(());
        }
        _ => {}
    }

    let config = Config::load(config_dir)?;
    let cfg = config.repository.clone();
    // Key generation is not part of a build (the key is loaded once per process).
    let key = Arc::new(SigningKey::generate(&cfg.signing.user_id)?);
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0)?;
    println!("hwm_before_kib={}", crate::vm_hwm_kib());

    if mode == "noxz-stream" {
        let level: u32 = std::env::var("BENCH_GZIP_LEVEL").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
        println!("gzip_level={level}");
        struct Item {
            name: String,
            version: Option<pkgrelay_core::version::Version>,
            version_text: String,
            arch: String,
            stanza: Box<str>,
        }
        let total = Instant::now();
        let t = Instant::now();
        let conn = rows(db)?;
        let mut stmt = conn.prepare("SELECT record FROM packages")?;
        let mut rows = stmt.query([])?;
        let mut items = Vec::new();
        while let Some(r) = rows.next()? {
            let e: pkgrelay_core::model::PackageEntry = serde_json::from_str(r.get_ref(0)?.as_str()?)?;
            let stanza = packages::render_stanza(&e).into_boxed_str();
            items.push(Item {
                version: pkgrelay_core::version::parse(&e.version).ok(),
                name: e.package_name,
                version_text: e.version,
                arch: e.architecture,
                stanza,
            });
        }
        drop(rows);
        drop(stmt);
        println!("entries={}", items.len());
        println!("read_render_stanzas_ms={}", ms(t));
        println!("hwm_after_read_kib={}", crate::vm_hwm_kib());
        let t = Instant::now();
        let listed: Vec<release::IndexFile> = std::thread::scope(|scope| {
            let handles: Vec<_> = cfg
                .architectures
                .iter()
                .map(|arch| {
                    let items = &items;
                    scope.spawn(move || {
                        let mut mine: Vec<&Item> =
                            items.iter().filter(|i| i.arch == *arch || i.arch == "all").collect();
                        mine.sort_by(|a, b| {
                            a.name
                                .cmp(&b.name)
                                .then_with(|| match (&a.version, &b.version) {
                                    (Some(x), Some(y)) => x.cmp(y),
                                    (None, Some(_)) => std::cmp::Ordering::Less,
                                    (Some(_), None) => std::cmp::Ordering::Greater,
                                    (None, None) => a.version_text.cmp(&b.version_text),
                                })
                                .then_with(|| a.arch.cmp(&b.arch))
                        });
                        let mut text = String::with_capacity(mine.iter().map(|i| i.stanza.len() + 1).sum());
                        for (k, i) in mine.iter().enumerate() {
                            if k > 0 {
                                text.push('\n');
                            }
                            text.push_str(&i.stanza);
                        }
                        let gz = gzip(text.as_bytes(), level);
                        [("Packages", text.as_bytes()), ("Packages.gz", &gz[..])]
                            .into_iter()
                            .map(|(name, data)| release::IndexFile {
                                path: format!("main/binary-{arch}/{name}"),
                                checksums: Checksums::of(data),
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("render thread")).collect()
        });
        println!("sort_join_gzip_hash_ms={}", ms(t));
        let t = Instant::now();
        let text = release::render_release(&cfg, now, now + cfg.validity(), &listed);
        std::hint::black_box((key.detached_sign(text.as_bytes())?, key.clearsign(text.as_bytes())?));
        println!("release_sign_ms={}", ms(t));
        println!("total_ms={}", ms(total));
        println!("hwm_kib={}", crate::vm_hwm_kib());
        return Ok(());
    }
    if mode == "noxz-par" {
        let level: u32 = std::env::var("BENCH_GZIP_LEVEL").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
        println!("gzip_level={level}");
        let total = Instant::now();
        let t = Instant::now();
        let entries = read_streaming(db)?;
        println!("entries={}", entries.len());
        println!("read_ms={}", ms(t));
        let t = Instant::now();
        let listed: Vec<release::IndexFile> = std::thread::scope(|scope| {
            let handles: Vec<_> = cfg
                .architectures
                .iter()
                .map(|arch| {
                    let entries = &entries;
                    scope.spawn(move || render_arch(entries, arch, level))
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("render thread")).collect()
        });
        println!("render_gzip_hash_ms={}", ms(t));
        let t = Instant::now();
        let text = release::render_release(&cfg, now, now + cfg.validity(), &listed);
        std::hint::black_box((key.detached_sign(text.as_bytes())?, key.clearsign(text.as_bytes())?));
        println!("release_sign_ms={}", ms(t));
        println!("total_ms={}", ms(total));
        println!("hwm_kib={}", crate::vm_hwm_kib());
        return Ok(());
    }
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
                let gz = gzip(text.as_bytes(), SHIPPED_GZIP_LEVEL);
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
            compress_report(text.as_bytes());
        }
        other => {
            anyhow::bail!("unknown mode {other:?} (noxz, full, compress, read, read-stream, noxz-par, noxz-stream)")
        }
    }
    println!("total_ms={}", ms(total));
    println!("hwm_kib={}", crate::vm_hwm_kib());
    Ok(())
}

/// gzip levels 1/6/9 and xz presets 0/1/3/6 over `data`: size, time, MB/s.
pub fn compress_report(data: &[u8]) {
    println!("input_bytes={}", data.len());
    for level in [1, 6, 9] {
        let t = Instant::now();
        let out = gzip(data, level);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "gzip{level}: bytes={} ms={:.1} mb_per_s={:.1}",
            out.len(),
            secs * 1000.0,
            data.len() as f64 / secs / 1e6
        );
    }
    for preset in [0, 1, 3, 6] {
        let t = Instant::now();
        let out = xz(data, preset);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "xz{preset}: bytes={} ms={:.1} mb_per_s={:.1}",
            out.len(),
            secs * 1000.0,
            data.len() as f64 / secs / 1e6
        );
    }
}
