//! `Packages` index files, rendered from store entries alone.
//!
//! Rendering is by hand rather than through a deb822 library because the output
//! must be canonical (field order, sorting) and sanitised: a value from upstream
//! or config with a newline or a blank line in it must never open a new field or
//! a new stanza. Every continuation line is indented and a blank one becomes
//! ` .`, as deb822 requires. Tests parse the result back with `deb822-lossless`.

use crate::model::PackageEntry;
use crate::version::VersionKey;
use std::fmt::Write as _;

/// Fields the store owns; a control paragraph's own copies are never trusted.
const COMPUTED: &[&str] = &["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"];

/// A deb822 field name: printable US-ASCII without colon or space, not starting
/// with `#` or `-` (deb822(5)).
pub fn valid_field_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with(['#', '-']) && name.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b':')
}

/// Render `value` as the text after `Name:` — first line as is, every further
/// line indented by one space, blank lines written ` .`; carriage returns and
/// other control characters become spaces.
pub fn write_value(out: &mut String, value: &str) {
    // Most values are one clean line: written as they are, without the copy below.
    if !value.bytes().any(|b| b.is_ascii_control() || b >= 0x80) {
        let v = value.trim();
        if !v.is_empty() {
            out.push(' ');
            out.push_str(v);
        }
        return;
    }
    let clean: String = value.chars().map(|c| if c != '\n' && (c.is_control()) { ' ' } else { c }).collect();
    let mut lines = clean.split('\n');
    let first = lines.next().unwrap_or("").trim();
    if !first.is_empty() {
        out.push(' ');
        out.push_str(first);
    }
    for line in lines {
        out.push('\n');
        let body = line.trim_end();
        if body.trim().is_empty() {
            out.push_str(" .");
        } else if body.starts_with([' ', '\t']) {
            out.push_str(body);
        } else {
            out.push(' ');
            out.push_str(body);
        }
    }
}

fn push_field(out: &mut String, name: &str, value: &str) {
    if !valid_field_name(name) {
        return;
    }
    out.push_str(name);
    out.push(':');
    write_value(out, value);
    out.push('\n');
}

/// One stanza: the .deb's control fields in their order (Package first), then
/// descriptive fields from config that the .deb lacks, then the pool location and
/// digests the store computed.
pub fn render_stanza(entry: &PackageEntry) -> String {
    let mut out = String::with_capacity(512);
    render_stanza_into(&mut out, entry);
    out
}

/// [`render_stanza`], appended to `out`.
pub fn render_stanza_into(out: &mut String, entry: &PackageEntry) {
    push_field(out, "Package", &entry.package_name);
    // An entry of another format has no control paragraph: it renders from
    // the configuration's fields alone (the store never mixes formats).
    let fields: &[(String, String)] = entry.apt().map_or(&[], |m| &m.control.fields);
    let has = |name: &str| fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    for (name, value) in fields {
        let n = name.as_str();
        if n.eq_ignore_ascii_case("Package") || COMPUTED.iter().any(|c| c.eq_ignore_ascii_case(n)) {
            continue;
        }
        push_field(out, name, value);
    }
    let cfg = &entry.config;
    let depends = (!cfg.depends.is_empty()).then(|| cfg.depends.join(", "));
    for (name, value) in [
        ("Maintainer", &cfg.maintainer),
        ("Section", &cfg.section),
        ("Priority", &cfg.priority),
        ("Homepage", &cfg.homepage),
        ("Depends", &depends),
        ("Description", &cfg.description),
    ] {
        if let Some(v) = value
            && !has(name)
        {
            push_field(out, name, v);
        }
    }
    let c = &entry.checksums;
    push_field(out, "Filename", &entry.filename);
    let _ = writeln!(out, "Size: {}", c.size);
    push_field(out, "MD5sum", &c.md5);
    push_field(out, "SHA1", &c.sha1);
    push_field(out, "SHA256", &c.sha256);
}

/// Stanza text is kept in chunks of this size: one allocation per 4 MiB of
/// Packages rather than one per stanza, returned to the system whole once
/// the Packages it went into is assembled.
const CHUNK: usize = 4 << 20;

/// Where one stanza is, and what Packages is sorted by.
#[derive(Debug, Clone)]
struct Placed {
    name: Box<str>,
    version: VersionKey,
    architecture: Box<str>,
    chunk: u32,
    start: u32,
    len: u32,
}

/// The rendered stanzas of one architecture (or of `all`): an entry can be
/// dropped as soon as its stanza is here.
#[derive(Debug, Default)]
pub struct Stanzas {
    chunks: Vec<String>,
    placed: Vec<Placed>,
    scratch: String,
}

impl Stanzas {
    /// Render `entry`'s stanza into the set; its parsed version is returned.
    pub fn push(&mut self, entry: &PackageEntry) -> &VersionKey {
        self.scratch.clear();
        render_stanza_into(&mut self.scratch, entry);
        let len = self.scratch.len();
        if self.chunks.last().is_none_or(|c| c.capacity() - c.len() < len) {
            self.chunks.push(String::with_capacity(CHUNK.max(len)));
        }
        let chunk = self.chunks.last_mut().expect("a chunk with room");
        let start = chunk.len();
        chunk.push_str(&self.scratch);
        self.placed.push(Placed {
            name: entry.package_name.as_str().into(),
            version: VersionKey::new(&entry.version),
            architecture: entry.architecture.as_str().into(),
            chunk: (self.chunks.len() - 1) as u32,
            start: start as u32,
            len: len as u32,
        });
        &self.placed.last().expect("just pushed").version
    }

    fn text(&self, p: &Placed) -> &str {
        &self.chunks[p.chunk as usize][p.start as usize..(p.start + p.len) as usize]
    }
}

/// Packages order: name, then Debian version, then architecture. `1.0` and
/// `1.00` are one Debian version, so the version's text and then the stanza
/// itself decide what is left: the output never depends on the order of the
/// store scan.
fn order(a: (&Placed, &str), b: (&Placed, &str)) -> std::cmp::Ordering {
    let ((a, a_text), (b, b_text)) = (a, b);
    a.name
        .cmp(&b.name)
        .then_with(|| a.version.cmp(&b.version))
        .then_with(|| a.architecture.cmp(&b.architecture))
        .then_with(|| a.version.as_str().cmp(b.version.as_str()))
        .then_with(|| a_text.cmp(b_text))
}

/// The `Packages` text of one architecture from its own stanzas and the
/// `Architecture: all` ones: sorted, separated by one blank line. `own` is
/// consumed, so that a large index is not held twice for longer than it takes
/// to copy it.
pub fn assemble(own: Stanzas, all: &Stanzas) -> String {
    let sets = [&own, all];
    let mut at: Vec<(u8, u32)> =
        (0..own.placed.len() as u32).map(|i| (0, i)).chain((0..all.placed.len() as u32).map(|i| (1, i))).collect();
    let get = |&(set, i): &(u8, u32)| {
        let s = sets[set as usize];
        let p = &s.placed[i as usize];
        (p, s.text(p))
    };
    at.sort_unstable_by(|a, b| order(get(a), get(b)));
    let len = own.placed.iter().chain(&all.placed).map(|p| p.len as usize + 1).sum();
    let mut out = String::with_capacity(len);
    for (k, a) in at.iter().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        out.push_str(get(a).1);
    }
    out
}

/// The `Packages` file for one architecture: its own packages and the
/// `Architecture: all` ones, sorted, stanzas separated by one blank line.
pub fn render_packages(entries: &[PackageEntry], architecture: &str) -> String {
    let of = |arch: &str| {
        let mut set = Stanzas::default();
        for e in entries.iter().filter(|e| e.architecture == arch) {
            set.push(e);
        }
        set
    };
    if architecture == "all" {
        return assemble(of("all"), &Stanzas::default());
    }
    assemble(of(architecture), &of("all"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::entry;
    use deb822_lossless::Deb822;
    use proptest::prelude::*;
    use std::str::FromStr;

    #[test]
    fn stanza_keeps_control_and_adds_digests() {
        let mut e = entry("kiro", "0.7.45", "amd64", b"deb");
        let control = &mut e.apt_mut().unwrap().control;
        control.fields.push(("Depends".into(), "libc6 (>= 2.28), libgtk-3-0".into()));
        control.fields.push(("Description".into(), "Kiro IDE\n An agentic IDE.\n .\n More.".into()));
        e.config.description = Some("from config".into());
        e.config.section = Some("devel".into());
        let s = render_stanza(&e);
        assert!(s.starts_with("Package: kiro\nVersion: 0.7.45\nArchitecture: amd64\n"), "{s}");
        assert!(s.contains("Depends: libc6 (>= 2.28), libgtk-3-0\n"));
        assert!(s.contains("Description: Kiro IDE\n An agentic IDE.\n .\n More.\n"));
        assert!(!s.contains("from config"));
        assert!(s.contains("Section: devel\n"));
        assert!(s.contains(&format!("SHA256: {}\n", e.checksums.sha256)));
    }

    #[test]
    fn injected_fields_and_stanzas_are_defused() {
        let mut e = entry("kiro", "1.0", "amd64", b"x");
        e.config.maintainer = Some("Evil\nPackage: evil\n\nPackage: evil2\nVersion: 9".into());
        let control = &mut e.apt_mut().unwrap().control;
        control.fields.push(("Bad Name".into(), "dropped".into()));
        control.fields.push(("Filename".into(), "pool/evil.deb".into()));
        let text = render_packages(&[e.clone()], "amd64");
        let parsed = Deb822::from_str(&text).unwrap();
        let paras: Vec<_> = parsed.paragraphs().collect();
        assert_eq!(paras.len(), 1, "{text}");
        assert_eq!(paras[0].get("Package").as_deref(), Some("kiro"));
        assert_eq!(paras[0].get("Filename").as_deref(), Some(e.filename.as_str()));
        assert!(!text.contains("Bad Name"));
    }

    #[test]
    fn sorted_by_name_then_debian_version_with_all_in_each() {
        let entries = vec![
            entry("kiro", "0.10.1", "amd64", b"a"),
            entry("kiro", "0.9.9", "amd64", b"b"),
            entry("kiro-repo", "1.0", "all", b"c"),
            entry("kiro", "1.0", "arm64", b"d"),
        ];
        let amd: Vec<_> = render_packages(&entries, "amd64")
            .lines()
            .filter_map(|l| l.strip_prefix("Version: ").map(str::to_owned))
            .collect();
        assert_eq!(amd, ["0.9.9", "0.10.1", "1.0"]);
        assert_eq!(render_packages(&entries, "arm64").matches("Package:").count(), 2);
    }

    fn arb_value() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ -~\n\r\t]{0,40}").unwrap()
    }

    proptest! {
        /// Whatever the store holds, Packages parses back to exactly its entries.
        #[test]
        fn renders_what_a_deb822_parser_reads_back(
            items in proptest::collection::vec(
                ("[a-z0-9][a-z0-9+.-]{1,8}", "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}(~[a-z]{1,3})?", arb_value(), arb_value(),
                 proptest::collection::vec(("[A-Z][A-Za-z-]{0,10}", arb_value()), 0..4)),
                0..12)
        ) {
            let mut entries = Vec::new();
            for (i, (name, ver, maint, desc, extra)) in items.into_iter().enumerate() {
                let mut e = entry(&name, &ver, "amd64", format!("{i}").as_bytes());
                e.package_id = format!("{}#{i}", e.package_id);
                e.config.maintainer = Some(maint);
                e.config.description = Some(desc);
                for (k, v) in extra {
                    let control = &mut e.apt_mut().unwrap().control;
                    if control.get(&k).is_none() { control.fields.push((k, v)); }
                }
                entries.push(e);
            }
            let text = render_packages(&entries, "amd64");
            let parsed = Deb822::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
            let paras: Vec<_> = parsed.paragraphs().collect();
            prop_assert_eq!(paras.len(), entries.len(), "{}", text);
            // Packages order, as `order` defines it.
            let mut sorted: Vec<(&PackageEntry, String)> = entries.iter().map(|e| (e, render_stanza(e))).collect();
            sorted.sort_by(|(a, a_text), (b, b_text)| {
                a.package_name.cmp(&b.package_name)
                    .then_with(|| VersionKey::new(&a.version).cmp(&VersionKey::new(&b.version)))
                    .then_with(|| a.architecture.cmp(&b.architecture))
                    .then_with(|| a.version.cmp(&b.version))
                    .then_with(|| a_text.cmp(b_text))
            });
            for (p, (e, _)) in paras.iter().zip(sorted) {
                prop_assert_eq!(p.get("Package"), Some(e.package_name.clone()));
                prop_assert_eq!(p.get("Version"), Some(e.version.clone()));
                prop_assert_eq!(p.get("Filename"), Some(e.filename.clone()));
                prop_assert_eq!(p.get("SHA256"), Some(e.checksums.sha256.clone()));
                prop_assert_eq!(p.get("Size"), Some(e.checksums.size.to_string()));
                // Every field the entry has is there, and nothing else.
                let mut names: Vec<String> = p.keys().collect();
                names.sort();
                let mut want: Vec<String> = render_stanza(e).lines()
                    .filter(|l| !l.starts_with([' ', '\t']))
                    .map(|l| l.split(':').next().unwrap().to_owned()).collect();
                want.sort();
                prop_assert_eq!(names, want);
            }
        }
    }
}
