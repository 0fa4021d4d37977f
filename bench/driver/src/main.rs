//! `pkgrelay-bench`: the Rust half of `bench/*.sh`.
//!
//! ```text
//! pkgrelay-bench gen-debs N DIR                 N small .debs (20 names × N/20 versions), cached by the caller
//! pkgrelay-bench gen-config DIR ARCHS staging NAMES      repository.yaml + NAMES staging_upload packages
//! pkgrelay-bench gen-config DIR ARCHS external NAME URL  repository.yaml + one external_download package
//! pkgrelay-bench gen-key FILE                   an archive signing key for a pkgrelay state directory
//! pkgrelay-bench gen-big-deb BYTES FILE         a valid .deb of about BYTES (uncompressed data.tar), streamed
//! pkgrelay-bench kiro-metadata VERSION URL      Kiro-shaped metadata JSON on stdout
//! pkgrelay-bench serve ROOT PORT_FILE [SECS]    static files on 127.0.0.1 (sendfile); exits after SECS (3600)
//! pkgrelay-bench fetch URL DEST [sha256]        pkgrelay's download path alone (Fetcher::download): MB/s
//! pkgrelay-bench scale-prepare N DB             an SQLite store of N synthetic entries
//! pkgrelay-bench scale-run DB CONFIG MODE       read all + render: MODE noxz | full | read | compress
//! pkgrelay-bench publish-cost N                 object writes when 1 package is added to N
//! pkgrelay-bench compress-file FILE [MAX]       gzip levels / xz presets on a file (e.g. a real Packages)
//! pkgrelay-bench brew-upstream FORMULA_JSON DIR [OLD_MIRROR HASH_FILE]  a Homebrew upstream as static files,
//!                                               small real bottles (+ an earlier mirror of them and its hash file)
//! pkgrelay-bench brew-big-upstream BYTES DIR CACHE   the same with one bottle of BYTES
//! pkgrelay-bench brew-plan FORMULA_JSON TAG...  planning from formula.json alone: plan_s, bottles
//! pkgrelay-bench gopro-serve --media N --video-bytes B --port-file F [--secs S]
//!                                               the tests' fake GoPro API (tests/common/gopro.rs) on
//!                                               127.0.0.1 until killed: N media, the newest a video of B
//!                                               bytes; its two base URLs and login to F and stdout
//! pkgrelay-bench gopro-sha256 ID BYTES          SHA-256 of the fake's generated file ID of BYTES
//! pkgrelay-bench media-copy --config DIR --bucket B --item FILE
//!                                               download-media's copy path in-process (copy_file into
//!                                               S3Multipart, no status table): copy_s, bytes, hwm_kib
//! ```
//! `serve` appends one line per request (`METHOD TARGET STATUS`) to the file
//! `BENCH_SERVE_LOG` names, if set.
//! Measurements print `key=value` lines that the scripts parse.

mod bigdeb;
mod brew;
/// The fake GoPro API of the tests, included as it is.
#[allow(dead_code)]
#[path = "../../../tests/common/gopro.rs"]
mod fake_gopro;
mod media;
mod publish_cost;
mod scale;
mod serve;
#[allow(dead_code)]
mod synth;

use anyhow::{Context as _, bail};

use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> anyhow::Result<&str> {
        args.get(i)
            .map(String::as_str)
            .with_context(|| format!("missing argument {i}; see the usage in bench/driver/src/main.rs"))
    };
    let num = |i: usize| -> anyhow::Result<usize> {
        let s = arg(i)?;
        s.replace('_', "").parse().with_context(|| format!("{s:?} is not a number"))
    };
    match arg(0)? {
        "gen-debs" => gen_debs(num(1)?, Path::new(arg(2)?)),
        "gen-config" => match arg(3)? {
            "staging" => gen_config(Path::new(arg(1)?), arg(2)?, &staging_packages(num(4)?)),
            "external" => gen_config(
                Path::new(arg(1)?),
                arg(2)?,
                &[(arg(4)?.to_owned(), format!("type: external_download\n  metadata_url: {}", arg(5)?))],
            ),
            other => bail!("gen-config: unknown source kind {other:?}"),
        },
        "gen-key" => {
            let key = pkgrelay_core::sign::SigningKey::generate("pkgrelay bench <bench@example.com>")?;
            std::fs::write(arg(1)?, key.to_armored_secret()?)?;
            Ok(())
        }
        "gen-big-deb" => bigdeb::write(num(1)? as u64, Path::new(arg(2)?)),
        "kiro-metadata" => {
            let (version, url) = (arg(1)?, arg(2)?);
            let doc = serde_json::json!({
                "currentRelease": version,
                "releases": [{"version": version, "updateTo": {"version": version,
                    "pub_date": "2026-01-01T00:00:00Z", "notes": "bench", "url": url}}]
            });
            println!("{doc}");
            Ok(())
        }
        "serve" => serve::run(
            PathBuf::from(arg(1)?),
            Path::new(arg(2)?),
            args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3600),
        ),
        "fetch" => runtime()?.block_on(fetch(arg(1)?, Path::new(arg(2)?), args.get(3).is_some_and(|a| a == "sha256"))),
        "scale-prepare" => runtime()?.block_on(scale::prepare(num(1)?, Path::new(arg(2)?))),
        "scale-run" => runtime()?.block_on(scale::run(Path::new(arg(1)?), Path::new(arg(2)?), arg(3)?)),
        "compress-file" => {
            let mut data = std::fs::read(arg(1)?)?;
            if let Some(max) = args.get(2) {
                // Cut at a stanza boundary.
                let max: usize = max.parse()?;
                if data.len() > max {
                    let cut = data[..max].windows(2).rposition(|w| w == b"\n\n").map_or(max, |p| p + 2);
                    data.truncate(cut);
                }
            }
            scale::compress_report(&data);
            Ok(())
        }
        "publish-cost" => runtime()?.block_on(publish_cost::run(num(1)?)),
        "brew-upstream" => {
            let old = match (args.get(3), args.get(4)) {
                (Some(mirror), Some(hashes)) => Some((Path::new(mirror.as_str()), Path::new(hashes.as_str()))),
                _ => None,
            };
            brew::upstream(Path::new(arg(1)?), Path::new(arg(2)?), old)
        }
        "brew-big-upstream" => brew::big_upstream(num(1)? as u64, Path::new(arg(2)?), Path::new(arg(3)?)),
        "brew-plan" => brew::plan(Path::new(arg(1)?), &args[2..]),
        "gopro-serve" => media::serve(&args[1..]),
        "gopro-sha256" => media::sha256(arg(1)?, num(2)? as u64),
        "media-copy" => runtime()?.block_on(media::copy(&args[1..])),
        other => bail!("unknown command {other:?}; see the usage in bench/driver/src/main.rs"),
    }
}

/// `Fetcher::download` alone — streaming, the three digests (SHA-256 alone
/// with `sha256_only`, as for a Homebrew bottle), the file write — as
/// download-package calls it, with the pipeline's retry policy.
async fn fetch(url: &str, dest: &Path, sha256_only: bool) -> anyhow::Result<()> {
    use pkgrelay_core::fetch::{Expected, FetchRules, Fetcher, RetryPolicy};
    let fetcher = Fetcher::new(RetryPolicy::default())?;
    // The URL's own host, and the limits of an artifact.
    let rules = FetchRules { sha256_only, ..FetchRules::only(url)? };
    let t = std::time::Instant::now();
    let sums = fetcher.download(url, dest, &Expected::default(), &rules, &mut ()).await?;
    let secs = t.elapsed().as_secs_f64();
    println!("bytes={}", sums.size);
    println!("sha256={}", sums.sha256);
    println!("fetch_s={secs:.3}");
    println!("mb_per_s={:.1}", sums.size as f64 / secs / 1e6);
    println!("hwm_kib={}", vm_hwm_kib());
    Ok(())
}

/// The runtime `#[tokio::main]` gives the CLI (multi-threaded, one worker per core).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// The package names of the compare input: 20 names (fewer for tiny N).
pub const NAMES: usize = 20;

/// `n` debs: `NAMES` names × `n / NAMES` versions, amd64, `DIR/<name>_<version>_amd64.deb`.
fn gen_debs(n: usize, dir: &Path) -> anyhow::Result<()> {
    if !n.is_multiple_of(NAMES) {
        bail!("N must be a multiple of {NAMES}");
    }
    std::fs::create_dir_all(dir)?;
    let per_name = n / NAMES;
    for i in 0..NAMES {
        for j in 0..per_name {
            let (name, version) = (synth::name(i), synth::version(j));
            let bytes = synth::deb(&name, &version, "amd64");
            std::fs::write(dir.join(format!("{name}_{version}_amd64.deb")), bytes)?;
        }
    }
    Ok(())
}

fn staging_packages(count: usize) -> Vec<(String, String)> {
    (0..count).map(|i| (synth::name(i), "type: staging_upload".to_owned())).collect()
}

/// `repository.yaml` (architectures `archs`, no convenience copy) and one
/// `packages/<name>.yaml` per `(name, source block)`.
fn gen_config(dir: &Path, archs: &str, packages: &[(String, String)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("packages"))?;
    let archs: Vec<&str> = archs.split([',', ' ']).filter(|a| !a.is_empty()).collect();
    std::fs::write(
        dir.join("repository.yaml"),
        format!(
            "origin: Bench\nlabel: Bench\nsuite: stable\ncodename: stable\n\
description: pkgrelay benchmark repository\ncomponents: [main]\narchitectures: [{}]\n\
base_url: http://127.0.0.1:8080/\nvalid_for: 7d\nkeyring_name: bench-archive-keyring.gpg\n\
source_list_name: bench.list\nsigning:\n  user_id: pkgrelay bench <bench@example.com>\n",
            archs.join(", ")
        ),
    )?;
    for (name, source) in packages {
        let arch = if archs.len() == 1 { archs[0] } else { "amd64" };
        std::fs::write(
            dir.join(format!("packages/{name}.yaml")),
            format!(
                "name: {name}\ndescription: |-\n  {name}\n  A benchmark package.\nmaintainer: Bench <bench@example.com>\n\
homepage: https://example.com/{name}\nsection: devel\npriority: optional\narchitecture: {arch}\nsource:\n  {source}\n"
            ),
        )?;
    }
    Ok(())
}

/// Peak resident set size of this process so far (VmHWM), KiB.
pub fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
