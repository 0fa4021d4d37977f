//! Synthetic input shared by the driver and the criterion benches
//! (`shared/benches/*.rs` include this file with `#[path]`): store entries
//! shaped like real ones, package names and versions, small real `.deb`s.
//!
//! Everything is deterministic: the same arguments give the same bytes.

use pkgrelay_core::deb::{ControlParagraph, DebBuilder};
use pkgrelay_core::digest::Checksums;
use pkgrelay_core::apt::AptMetadata;
use pkgrelay_core::model::{ConfigFields, EntryMetadata, PackageEntry, SourceType, package_id};

/// Name of the `i`-th synthetic package (`benchpkg0000`, …): valid Debian names.
pub fn name(i: usize) -> String {
    format!("benchpkg{i:04}")
}

/// Version of the `j`-th release of a package: Debian revisions and an
/// occasional `~rc`, so that sorting needs the Debian rules (1.9-1 < 1.10-1).
pub fn version(j: usize) -> String {
    if j % 10 == 9 { format!("1.{}~rc1-1", j / 10 * 10 + 10) } else { format!("1.{j}-1") }
}

/// Architecture mix of the store-scale input: 45 % amd64, 45 % arm64, 10 % all.
pub fn arch_of(name_index: usize) -> &'static str {
    match name_index % 20 {
        0..=8 => "amd64",
        9..=17 => "arm64",
        _ => "all",
    }
}

/// A control paragraph like a real package's (the fields `dpkg-deb` packages carry).
pub fn control(name: &str, version: &str, arch: &str) -> ControlParagraph {
    let fields = [
        ("Package", name.to_owned()),
        ("Version", version.to_owned()),
        ("Architecture", arch.to_owned()),
        ("Maintainer", "Bench Maintainer <bench@example.com>".to_owned()),
        ("Installed-Size", "1234".to_owned()),
        ("Depends", "libc6 (>= 2.28), libgcc-s1 (>= 4.2)".to_owned()),
        ("Section", "devel".to_owned()),
        ("Priority", "optional".to_owned()),
        ("Homepage", format!("https://example.com/{name}")),
        (
            "Description",
            format!("{name} synthetic package\n Generated for pkgrelay's benchmarks.\n .\n Version {version}."),
        ),
    ];
    ControlParagraph { fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
}

/// A store entry as download-package would record it for that package (the
/// digests are of a stand-in byte string, the size that of a small .deb).
pub fn entry(name: &str, version: &str, arch: &str) -> PackageEntry {
    let prefix = if name.starts_with("lib") { &name[..4] } else { &name[..1] };
    let mut checksums = Checksums::of(format!("{name}_{version}_{arch}").as_bytes());
    checksums.size = 1_000 + (name.len() * 7 + version.len() * 13) as u64;
    PackageEntry {
        package_id: package_id(name, version, arch),
        package_name: name.to_owned(),
        version: version.to_owned(),
        architecture: arch.to_owned(),
        metadata: EntryMetadata::Apt(AptMetadata { control: control(name, version, arch) }),
        config: ConfigFields {
            description: Some(format!("{name}\n From its configuration.")),
            maintainer: Some("Bench Maintainer <bench@example.com>".into()),
            homepage: Some(format!("https://example.com/{name}")),
            section: Some("devel".into()),
            priority: Some("optional".into()),
            depends: vec![],
        },
        filename: format!("pool/main/{prefix}/{name}/{name}_{version}_{arch}.deb"),
        checksums,
        source_type: SourceType::StagingUpload,
        source_url: format!("staging/{name}_{version}_{arch}.deb"),
        announced_version: None,
        companions: vec![],
        pub_date: None,
        notes: None,
        processed_timestamp: "2026-01-01T00:00:00Z".into(),
    }
}

/// `n` entries over `n / per_name` names (`per_name` versions each), with
/// [`arch_of`]'s architecture mix.
pub fn entries(n: usize, per_name: usize) -> Vec<PackageEntry> {
    (0..n)
        .map(|k| {
            let (i, j) = (k / per_name, k % per_name);
            entry(&name(i), &version(j), arch_of(i))
        })
        .collect()
}

/// The same entries in the order a store fills up over time: the first
/// release of every package, then the second of each, … (what an SQLite scan
/// by rowid returns).
pub fn entries_in_release_order(n: usize, per_name: usize) -> Vec<PackageEntry> {
    let names = n.div_ceil(per_name);
    (0..per_name)
        .flat_map(|j| (0..names).map(move |i| (i, j)))
        .filter(|(i, j)| i * per_name + j < n)
        .map(|(i, j)| entry(&name(i), &version(j), arch_of(i)))
        .collect()
}

/// The same, all of one architecture, in a scrambled order (as a store scan
/// returns them: not sorted by name and version).
pub fn entries_of_arch(n: usize, per_name: usize, arch: &str) -> Vec<PackageEntry> {
    let mut out: Vec<PackageEntry> = (0..n)
        .map(|k| {
            let (i, j) = (k / per_name, k % per_name);
            entry(&name(i), &version(j), arch)
        })
        .collect();
    // A fixed permutation (multiplicative step coprime with n).
    let step = (0..).map(|s| 7919 + 2 * s).find(|s: &usize| gcd(*s, n.max(1)) == 1).unwrap();
    let mut shuffled = Vec::with_capacity(n);
    for k in 0..n {
        shuffled.push(std::mem::replace(&mut out[(k * step) % n], entry("x", "0", arch)));
    }
    shuffled
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A small but real binary package (gzip members, one file), as `dpkg-deb -Zgzip` would make it.
pub fn deb(name: &str, version: &str, arch: &str) -> Vec<u8> {
    let mut b = DebBuilder::new(control(name, version, arch));
    b.file(&format!("/usr/share/doc/{name}/VERSION"), 0o644, format!("{name} {version}\n"));
    b.build().expect("synthetic package builds")
}

/// `count` Debian versions of assorted shapes (epochs, revisions, `~`, `+`),
/// in a scrambled order, for the sorting benchmark.
pub fn versions(count: usize) -> Vec<String> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let r = next();
            let (a, b, c) = (r % 5, (r >> 8) % 40, (r >> 16) % 200);
            match (r >> 32) % 6 {
                0 => format!("{a}.{b}.{c}"),
                1 => format!("{a}.{b}.{c}-{}", (r >> 40) % 12 + 1),
                2 => format!("1:{a}.{b}~rc{}-1", (r >> 40) % 4 + 1),
                3 => format!("{a}.{b}+dfsg{}-{}ubuntu1", (r >> 40) % 3, (r >> 44) % 5),
                4 => format!("{a}.{b}.{c}~bpo12+1"),
                _ => format!("{}:{a}.{b}", (r >> 40) % 3),
            }
        })
        .collect()
}

/// The library encoders at one level, configured as `apt/compress.rs` does
/// (gzip header without name and mtime; a plain single-threaded xz stream):
/// what the shipped choice is measured against.
pub fn gzip_at(data: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::new(level));
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// See [`gzip_at`].
pub fn xz_at(data: &[u8], preset: u32) -> Vec<u8> {
    use std::io::Write;
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), preset);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}
