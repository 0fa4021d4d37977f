//! The Homebrew side of `bench/brew.sh`: a Homebrew upstream as static files
//! (served by `pkgrelay-bench serve`), and planning from `formula.json`
//! alone.
//!
//! The upstream is laid out the way the mirror asks for it: `api/formula.json`
//! and the API files under `api/`, and a registry under
//! `v2/homebrew/core/<image>/manifests/<ref>` (an OCI image index with the
//! annotations brew and the mirror read) and `.../blobs/sha256:<hex>`. Real
//! ghcr also wants a bearer and redirects blobs to another host; the static
//! server ignores the header and serves the blob itself, one request less per
//! bottle, which is immaterial next to a bottle of a GiB and the same for
//! every run of the weekly benchmark.

use anyhow::{Context as _, bail};
use pkgrelay_core::brew::naming;
use pkgrelay_core::digest::sha256_hex;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

/// The six platform tags of issue 13.
pub const PLATFORM_TAGS: [&str; 6] =
    ["arm64_tahoe", "arm64_sequoia", "arm64_sonoma", "sonoma", "x86_64_linux", "arm64_linux"];

/// `pkgrelay-bench brew-upstream FORMULA_JSON DIR`: the upstream of every
/// formula of `FORMULA_JSON` (e.g. the full-size one of tests/common/brew.rs,
/// whose digests are made up), each bottle file replaced by a small real one
/// (a gzip magic and its own name: the digests are real, the sizes are not)
/// and `formula.json` rewritten to name them.
///
/// With `old`, also an earlier mirror holding every one of those bottles:
/// `<old.0>/bottles/<flat name>` and its hash file `old.1` (flat name →
/// SHA-256), what `pkgrelay brew import-hash` seeds a mirror from.
pub fn upstream(formula_json: &Path, dir: &Path, old: Option<(&Path, &Path)>) -> anyhow::Result<()> {
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let text = std::fs::read(formula_json).with_context(|| formula_json.display().to_string())?;
    let mut doc: Value = serde_json::from_slice(&text)?;
    let Some(formulae) = doc.as_array_mut() else { bail!("{}: not an array", formula_json.display()) };
    let (mut bottles, mut images) = (0usize, 0usize);
    for f in formulae.iter_mut() {
        let name = f["name"].as_str().unwrap_or_default().to_owned();
        let version = f["versions"]["stable"].as_str().unwrap_or_default().to_owned();
        let revision = f["revision"].as_u64().unwrap_or(0) as u32;
        let rebuild = f["bottle"]["stable"]["rebuild"].as_u64().unwrap_or(0) as u32;
        let pkg_version = naming::pkg_version(&version, revision);
        // `get_mut`, not indexing: `v["k"]` on a missing key inserts a null.
        let files = f.get_mut("bottle").and_then(|b| b.get_mut("stable")).and_then(|s| s.get_mut("files"));
        let Some(files) = files.and_then(Value::as_object_mut) else { continue };
        let mut entries = Vec::new();
        for (tag, file) in files.iter_mut() {
            let mut bytes = vec![0x1f, 0x8b, 8, 0];
            bytes.extend_from_slice(naming::bottle_filename(&name, &pkg_version, tag, rebuild).as_bytes());
            let sha = sha256_hex(&bytes);
            let image = naming::image_name(&name);
            write(dir, &format!("v2/homebrew/core/{image}/blobs/sha256:{sha}"), &bytes)?;
            if let Some((mirror, _)) = old {
                let flat = naming::bottle_filename(&name, &pkg_version, tag, rebuild);
                write(mirror, &format!("bottles/{flat}"), &bytes)?;
                hashes.insert(flat, sha.clone());
            }
            file["sha256"] = json!(sha);
            file["url"] = json!(format!("https://ghcr.io/v2/homebrew/core/{image}/blobs/sha256:{sha}"));
            entries.push(descriptor(&naming::image_ref_name(&pkg_version, tag, rebuild), &sha, bytes.len()));
            bottles += 1;
        }
        if !entries.is_empty() {
            let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
            let reference = naming::manifest_ref(&pkg_version, rebuild);
            write(
                dir,
                &format!("v2/homebrew/core/{}/manifests/{reference}", naming::image_name(&name)),
                &serde_json::to_vec(&index)?,
            )?;
            images += 1;
        }
    }
    let formula_json = serde_json::to_vec(&doc)?;
    api_files(dir, &formula_json)?;
    if let Some((_, hash_file)) = old {
        std::fs::write(hash_file, serde_json::to_vec_pretty(&hashes)?)?;
    }
    println!(
        "formulae={} bottles={bottles} images={images} formula_json_bytes={}",
        formulae_len(&doc),
        formula_json.len()
    );
    Ok(())
}

fn formulae_len(doc: &Value) -> usize {
    doc.as_array().map_or(0, Vec::len)
}

/// `pkgrelay-bench brew-big-upstream BYTES DIR CACHE`: one formula,
/// `bigbottle` 1.0, with one `x86_64_linux` bottle of BYTES (a gzip magic,
/// then pseudo-random bytes; made once into CACHE and linked).
pub fn big_upstream(bytes: u64, dir: &Path, cache: &Path) -> anyhow::Result<()> {
    if std::fs::metadata(cache).map(|m| m.len()).ok() != Some(bytes) {
        let tmp = cache.with_extension("tmp");
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        out.write_all(&[0x1f, 0x8b, 8, 0])?;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut block = vec![0u8; 1 << 20];
        let mut left = bytes - 4;
        while left > 0 {
            for chunk in block.chunks_exact_mut(8) {
                // xorshift64*: incompressible, cheap, deterministic.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                chunk.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
            }
            let n = left.min(block.len() as u64) as usize;
            out.write_all(&block[..n])?;
            left -= n as u64;
        }
        out.into_inner()?.sync_all()?;
        std::fs::rename(&tmp, cache)?;
    }
    let sha = pkgrelay_core::digest::sha256_file(cache)?;
    let blob = dir.join(format!("v2/homebrew/core/bigbottle/blobs/sha256:{sha}"));
    std::fs::create_dir_all(blob.parent().unwrap())?;
    let _ = std::fs::remove_file(&blob);
    std::os::unix::fs::symlink(std::fs::canonicalize(cache)?, &blob)?;
    let tag = "x86_64_linux";
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [descriptor(&naming::image_ref_name("1.0", tag, 0), &sha, bytes as usize)]});
    write(dir, "v2/homebrew/core/bigbottle/manifests/1.0", &serde_json::to_vec(&index)?)?;
    let formula = json!([{
        "name": "bigbottle", "full_name": "bigbottle", "versions": {"stable": "1.0", "bottle": true}, "revision": 0,
        "bottle": {"stable": {"rebuild": 0, "root_url": "https://ghcr.io/v2/homebrew/core", "files": {
            tag: {"cellar": ":any", "url": format!("https://ghcr.io/v2/homebrew/core/bigbottle/blobs/sha256:{sha}"), "sha256": sha}
        }}}
    }]);
    api_files(dir, &serde_json::to_vec(&formula)?)?;
    println!("sha256={sha}\nbytes={bytes}\nblob_path=v2/homebrew/core/bigbottle/blobs/sha256:{sha}");
    Ok(())
}

/// An image-index entry as ghcr's carry it, with what the mirror reads.
fn descriptor(ref_name: &str, sha: &str, size: usize) -> Value {
    let tab = json!({"homebrew_version": "6.0.18", "built_as_bottle": true, "poured_from_bottle": false}).to_string();
    json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", sha256_hex(format!("{ref_name} {sha}").as_bytes())),
        "size": 1500,
        "annotations": {
            "org.opencontainers.image.ref.name": ref_name,
            "sh.brew.bottle.digest": sha,
            "sh.brew.bottle.size": size.to_string(),
            "sh.brew.tab": tab,
        }
    })
}

/// `api/formula.json` and the API files the mirror fetches (their content
/// is opaque to it: stand-ins derived from formula.json).
fn api_files(dir: &Path, formula_json: &[u8]) -> anyhow::Result<()> {
    write(dir, "api/formula.json", formula_json)?;
    let stamp = sha256_hex(formula_json);
    let mut names: Vec<String> = pkgrelay_core::brew::config::DEFAULT_API_FILES.iter().map(|s| s.to_string()).collect();
    names.extend(PLATFORM_TAGS.iter().map(|t| format!("internal/packages.{t}.jws.json")));
    for name in names {
        write(dir, &format!("api/{name}"), format!("{{\"payload\": \"{name} {stamp}\"}}").as_bytes())?;
    }
    Ok(())
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("relative paths have a parent"))?;
    std::fs::write(&path, bytes).with_context(|| path.display().to_string())
}

/// `pkgrelay-bench brew-plan FORMULA_JSON TAG...`: what `pkgrelay sync`'s
/// check-sources does with the downloaded file — the plan of every formula
/// for the tags (`pkgrelay_core::brew::api::plan`, streaming) — timed alone,
/// in a fresh process (peak RSS by /usr/bin/time). Prints `plan_s=`,
/// `bottles=`, and a digest of the selected (file name, sha256) list for
/// comparing with another tool's selection.
pub fn plan(formula_json: &Path, tags: &[String]) -> anyhow::Result<()> {
    let t = std::time::Instant::now();
    let file = std::fs::File::open(formula_json)?;
    let plan = pkgrelay_core::brew::api::plan(file, &pkgrelay_core::brew::api::Selection::All, tags)?;
    let secs = t.elapsed().as_secs_f64();
    let mut selected: BTreeMap<String, String> = BTreeMap::new();
    for b in &plan.bottles {
        selected.insert(b.filename(), b.sha256.clone());
    }
    let listing: String = selected.iter().map(|(f, s)| format!("{f} {s}\n")).collect();
    println!("plan_s={secs:.4}");
    println!("formulae={}", plan.formulae);
    println!("bottles={}", plan.bottles.len());
    println!("refused={}", plan.refused.len());
    println!("selection_sha256={}", sha256_hex(listing.as_bytes()));
    Ok(())
}
