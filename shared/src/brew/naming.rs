//! How brew names a bottle, its image and its manifest (Homebrew/brew 6.0.x).
//!
//! - With a custom `HOMEBREW_BOTTLE_DOMAIN`, a bottle is
//!   `DOMAIN/` + url-encode(`<name>-<pkg_version>.<tag>.bottle[.<rebuild>].tar.gz`)
//!   (`Bottle::Filename#url_encode`), built from the formula and never from
//!   the API's `url`. `pkg_version` is the version, plus `_<revision>` when
//!   the revision is above zero; `.<rebuild>` appears only when the rebuild
//!   is above zero. The encoding is Ruby's `ERB::Util.url_encode`: anything
//!   but `[A-Za-z0-9_.~-]` becomes `%XX`, so `@` travels as `%40` and a
//!   mirror must store the key with a literal `@`.
//! - The image of a formula in a registry is its name with `@` → `/` and
//!   `+` → `x` (`GitHubPackages.image_formula_name`).
//! - The manifest (an OCI image index) is at `<root>/<image>/manifests/<ref>`
//!   with `ref` = `<pkg_version>[-<rebuild>]`; brew picks the entry whose
//!   `sh.brew.bottle.digest` is the bottle's SHA-256 and whose
//!   `org.opencontainers.image.ref.name` is `<pkg_version>.<tag>[.<rebuild>]`.
//! - A blob is `<root>/<image>/blobs/sha256:<hex>`; with
//!   `HOMEBREW_ARTIFACT_DOMAIN=D`, brew rewrites `https://ghcr.io/` to `D/`.

/// `version`, plus `_<revision>` when the formula's revision is above zero
/// (`PkgVersion#to_s`).
pub fn pkg_version(version: &str, revision: u32) -> String {
    if revision > 0 { format!("{version}_{revision}") } else { version.to_owned() }
}

/// `<name>-<pkg_version>.<tag>.bottle[.<rebuild>].tar.gz`, unencoded: the
/// object key of a flat mirror (with a literal `@`).
pub fn bottle_filename(name: &str, pkg_version: &str, tag: &str, rebuild: u32) -> String {
    let rebuild = if rebuild > 0 { format!(".{rebuild}") } else { String::new() };
    format!("{name}-{pkg_version}.{tag}.bottle{rebuild}.tar.gz")
}

/// Ruby's `ERB::Util.url_encode`: every byte outside `[A-Za-z0-9_.~-]` as
/// `%XX` (upper-case hex).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'~' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode `%XX` escapes (what a server does to a request path before
/// looking the key up). `None` for a malformed escape or bytes that are not
/// UTF-8.
pub fn url_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The registry image of a formula: `@` → `/`, `+` → `x`.
pub fn image_name(formula: &str) -> String {
    formula.replace('@', "/").replace('+', "x")
}

/// The manifest's tag in the registry: `<pkg_version>[-<rebuild>]`.
pub fn manifest_ref(pkg_version: &str, rebuild: u32) -> String {
    if rebuild > 0 { format!("{pkg_version}-{rebuild}") } else { pkg_version.to_owned() }
}

/// The `org.opencontainers.image.ref.name` of one bottle in the image index:
/// `<pkg_version>.<tag>[.<rebuild>]`.
pub fn image_ref_name(pkg_version: &str, tag: &str, rebuild: u32) -> String {
    let rebuild = if rebuild > 0 { format!(".{rebuild}") } else { String::new() };
    format!("{pkg_version}.{tag}{rebuild}")
}

/// macOS releases by bottle-tag name, as brew orders them (`MacOSVersion::SYMBOLS`
/// and the older ones a formula may still carry).
const MACOS: &[(&str, (u32, u32))] = &[
    ("golden_gate", (27, 0)),
    ("tahoe", (26, 0)),
    ("sequoia", (15, 0)),
    ("sonoma", (14, 0)),
    ("ventura", (13, 0)),
    ("monterey", (12, 0)),
    ("big_sur", (11, 0)),
    ("catalina", (10, 15)),
    ("mojave", (10, 14)),
    ("high_sierra", (10, 13)),
    ("sierra", (10, 12)),
    ("el_capitan", (10, 11)),
];

/// A bottle tag split into architecture and system: `arm64_sonoma` →
/// (`arm64`, `sonoma`), `sonoma` → (`x86_64`, `sonoma`), `x86_64_linux` →
/// (`x86_64`, `linux`), `all` → (`all`, `all`).
pub fn split_tag(tag: &str) -> (&str, &str) {
    if tag == "all" {
        return ("all", "all");
    }
    for arch in ["arm64", "x86_64"] {
        if let Some(system) = tag.strip_prefix(arch).and_then(|s| s.strip_prefix('_')) {
            return (arch, system);
        }
    }
    ("x86_64", tag)
}

/// The macOS version of a tag's system, if it is macOS.
pub fn macos_version(tag: &str) -> Option<(u32, u32)> {
    let (_, system) = split_tag(tag);
    MACOS.iter().find(|(name, _)| *name == system).map(|(_, v)| *v)
}

/// Which of a formula's bottle tags brew on a machine of `wanted` installs
/// (`Utils::Bottles::Collector#find_matching_tag`): the tag itself, else
/// `all`, else, on macOS, a bottle built for an older macOS on the same
/// architecture (the newest such).
pub fn matching_tag<'a>(wanted: &str, available: impl IntoIterator<Item = &'a str> + Clone) -> Option<&'a str> {
    if let Some(t) = available.clone().into_iter().find(|t| *t == wanted) {
        return Some(t);
    }
    if let Some(t) = available.clone().into_iter().find(|t| *t == "all") {
        return Some(t);
    }
    let version = macos_version(wanted)?;
    let (arch, _) = split_tag(wanted);
    available
        .into_iter()
        .filter(|t| split_tag(t).0 == arch)
        .filter_map(|t| macos_version(t).filter(|v| *v <= version).map(|v| (v, t)))
        .max()
        .map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_as_brew_builds_them() {
        assert_eq!(bottle_filename("wget", "1.25.0", "arm64_sonoma", 0), "wget-1.25.0.arm64_sonoma.bottle.tar.gz");
        assert_eq!(bottle_filename("wget", "1.25.0", "arm64_sonoma", 2), "wget-1.25.0.arm64_sonoma.bottle.2.tar.gz");
        assert_eq!(pkg_version("1.25.0", 0), "1.25.0");
        assert_eq!(pkg_version("1.25.0", 3), "1.25.0_3");
        let f = bottle_filename("python@3.13", &pkg_version("3.13.1", 1), "x86_64_linux", 1);
        assert_eq!(f, "python@3.13-3.13.1_1.x86_64_linux.bottle.1.tar.gz");
        assert_eq!(url_encode(&f), "python%403.13-3.13.1_1.x86_64_linux.bottle.1.tar.gz");
        assert_eq!(url_encode("libxml++-5.0.tar.gz"), "libxml%2B%2B-5.0.tar.gz");
        assert_eq!(url_encode("a b/é~_"), "a%20b%2F%C3%A9~_");
        assert_eq!(url_decode("python%403.13-x%2B%2B").as_deref(), Some("python@3.13-x++"));
        assert_eq!(url_decode("%4"), None);
        assert_eq!(url_decode("%zz"), None);
    }

    #[test]
    fn images_and_refs() {
        assert_eq!(image_name("python@3.13"), "python/3.13");
        assert_eq!(image_name("libxml++"), "libxmlxx");
        assert_eq!(image_name("openssl@3"), "openssl/3");
        assert_eq!(manifest_ref("1.25.0", 0), "1.25.0");
        assert_eq!(manifest_ref("1.25.0_1", 2), "1.25.0_1-2");
        assert_eq!(image_ref_name("1.25.0_1", "arm64_sonoma", 0), "1.25.0_1.arm64_sonoma");
        assert_eq!(image_ref_name("1.25.0_1", "arm64_sonoma", 2), "1.25.0_1.arm64_sonoma.2");
    }

    #[test]
    fn tags_resolve_as_brew_resolves_them() {
        let tags = ["arm64_sequoia", "arm64_sonoma", "sonoma", "x86_64_linux"];
        assert_eq!(matching_tag("arm64_sonoma", tags), Some("arm64_sonoma"));
        // No tahoe bottle: the newest older macOS bottle of the same architecture.
        assert_eq!(matching_tag("arm64_tahoe", tags), Some("arm64_sequoia"));
        assert_eq!(matching_tag("sequoia", tags), Some("sonoma"));
        assert_eq!(matching_tag("arm64_linux", tags), None);
        assert_eq!(matching_tag("arm64_ventura", tags), None, "never a newer macOS");
        assert_eq!(matching_tag("arm64_linux", ["all", "arm64_sonoma"]), Some("all"));
        assert_eq!(matching_tag("arm64_sonoma", ["all", "arm64_sonoma"]), Some("arm64_sonoma"));
        assert_eq!(split_tag("sonoma"), ("x86_64", "sonoma"));
        assert_eq!(split_tag("arm64_linux"), ("arm64", "linux"));
        assert_eq!(macos_version("x86_64_linux"), None);
    }
}
