//! The formulae API's `formula.json` (`https://formulae.brew.sh/api/formula.json`,
//! about 30 MB and 7,000 formulae), read one formula at a time: no document
//! tree is built and only the fields a mirror needs are kept, so planning a
//! mirror of every formula for six bottle tags stays within a second and a
//! few tens of MiB whatever else upstream puts in each entry.
//!
//! The fields read: `name`, `versions.stable`, `revision`,
//! `bottle.stable.rebuild`, `bottle.stable.files.<tag>.{cellar, url, sha256}`.
//! Everything upstream decides that becomes part of an object key (name,
//! version, tag) is checked before it is used, and a digest must be a
//! SHA-256: a formula that fails a check is reported, not mirrored.

use super::naming::{bottle_filename, matching_tag, pkg_version};
use serde::Deserialize;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// One bottle file of a formula, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BottleFile {
    /// `:any`, `:any_skip_relocation`, or the cellar path it was built for.
    pub cellar: String,
    /// Where upstream serves it (`https://ghcr.io/v2/homebrew/core/<image>/blobs/sha256:<hex>`).
    pub url: String,
    pub sha256: String,
}

/// What a mirror needs of one formula.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formula {
    pub name: String,
    /// `versions.stable`.
    pub version: String,
    pub revision: u32,
    /// `bottle.stable.rebuild`.
    pub rebuild: u32,
    /// `bottle.stable.files`, by tag.
    pub files: BTreeMap<String, BottleFile>,
}

impl Formula {
    pub fn pkg_version(&self) -> String {
        pkg_version(&self.version, self.revision)
    }
}

#[derive(Deserialize)]
struct RawFormula {
    name: String,
    #[serde(default)]
    versions: RawVersions,
    #[serde(default)]
    revision: u32,
    #[serde(default)]
    bottle: RawBottle,
}

#[derive(Default, Deserialize)]
struct RawVersions {
    #[serde(default)]
    stable: Option<String>,
}

#[derive(Default, Deserialize)]
struct RawBottle {
    #[serde(default)]
    stable: Option<RawBottleStable>,
}

#[derive(Deserialize)]
struct RawBottleStable {
    #[serde(default)]
    rebuild: u32,
    #[serde(default)]
    files: BTreeMap<String, BottleFile>,
}

/// Which formulae a mirror holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Names(BTreeSet<String>),
}

impl Selection {
    fn wants(&self, name: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Names(names) => names.contains(name),
        }
    }
}

/// A formula name brew accepts as a file name and a mirror can use in a key:
/// letters, digits, `@ + . _ -`, starting with a letter or digit.
pub fn check_formula_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "@+._-".contains(c))
        && !name.contains("..");
    if ok { Ok(()) } else { Err(format!("{name:?} is not a formula name (letters, digits, @ + . _ -)")) }
}

fn check_version(version: &str) -> Result<(), String> {
    let ok = !version.is_empty()
        && version.len() <= 128
        && version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version.chars().all(|c| c.is_ascii_alphanumeric() || "+._-".contains(c))
        && !version.contains("..");
    if ok { Ok(()) } else { Err(format!("version {version:?} cannot name a bottle")) }
}

/// A bottle tag: lower-case letters, digits and `_` (`arm64_sonoma`, `all`).
pub fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && tag.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok { Ok(()) } else { Err(format!("{tag:?} is not a bottle tag")) }
}

fn check_sha256(sha256: &str) -> Result<(), String> {
    if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(format!("{sha256:?} is not a lower-case hex SHA-256"))
    }
}

impl RawFormula {
    /// The formula, checked; `Ok(None)` for one without a stable bottle.
    fn check(self) -> Result<Option<Formula>, String> {
        check_formula_name(&self.name)?;
        let (Some(version), Some(bottle)) = (self.versions.stable, self.bottle.stable) else {
            return Ok(None);
        };
        check_version(&version).map_err(|e| format!("{}: {e}", self.name))?;
        for (tag, file) in &bottle.files {
            check_tag(tag).map_err(|e| format!("{}: {e}", self.name))?;
            check_sha256(&file.sha256).map_err(|e| format!("{} {tag}: {e}", self.name))?;
        }
        Ok(Some(Formula {
            name: self.name,
            version,
            revision: self.revision,
            rebuild: bottle.rebuild,
            files: bottle.files,
        }))
    }
}

/// Call `each` with every formula of a `formula.json` array as it is read
/// (a formula without a stable bottle too: its `files` are empty). A
/// formula whose name, version, tags or digests cannot be used is handed to
/// `refused` with the reason instead. Errors: the document is not a JSON
/// array of formula objects.
pub fn for_each_formula(
    reader: impl Read,
    each: &mut dyn FnMut(Formula),
    refused: &mut dyn FnMut(String),
) -> Result<usize, serde_json::Error> {
    struct Each<'a> {
        each: &'a mut dyn FnMut(Formula),
        refused: &'a mut dyn FnMut(String),
    }
    impl<'de> Visitor<'de> for Each<'_> {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of formulae")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while let Some(raw) = seq.next_element::<RawFormula>()? {
                n += 1;
                let name = raw.name.clone();
                match raw.check() {
                    Ok(Some(formula)) => (self.each)(formula),
                    Ok(None) => (self.each)(Formula {
                        name,
                        version: String::new(),
                        revision: 0,
                        rebuild: 0,
                        files: BTreeMap::new(),
                    }),
                    Err(e) => (self.refused)(e),
                }
            }
            Ok(n)
        }
    }
    impl<'de> DeserializeSeed<'de> for Each<'_> {
        type Value = usize;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
            d.deserialize_seq(self)
        }
    }
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(256 * 1024, reader));
    let n = Each { each, refused }.deserialize(&mut de)?;
    de.end()?;
    Ok(n)
}

/// One bottle a mirror must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBottle {
    pub formula: String,
    pub pkg_version: String,
    pub rebuild: u32,
    /// The tag of the file (`all`, or an older macOS, when that is what
    /// brew on a configured tag installs).
    pub tag: String,
    /// The configured tags whose clients install this file.
    pub for_tags: Vec<String>,
    pub cellar: String,
    pub url: String,
    pub sha256: String,
}

impl PlannedBottle {
    /// `<name>-<pkg_version>.<tag>.bottle[.<rebuild>].tar.gz`.
    pub fn filename(&self) -> String {
        bottle_filename(&self.formula, &self.pkg_version, &self.tag, self.rebuild)
    }

    /// The entry metadata of this bottle, before its image-index entry is known.
    pub fn metadata(&self) -> super::BrewMetadata {
        super::BrewMetadata {
            formula: self.formula.clone(),
            pkg_version: self.pkg_version.clone(),
            tag: self.tag.clone(),
            rebuild: self.rebuild,
            cellar: self.cellar.clone(),
            sha256: self.sha256.clone(),
            descriptor: None,
        }
    }
}

/// What a mirror of `selection` × `tags` must hold, from one `formula.json`.
#[derive(Debug, Default)]
pub struct Plan {
    /// Every bottle, once per file (in `formula.json` order).
    pub bottles: Vec<PlannedBottle>,
    /// Formulae read.
    pub formulae: usize,
    /// Selected formulae (configured by name) that the API does not list.
    pub unknown: Vec<String>,
    /// Selected formula × configured tag with no bottle brew would install.
    pub without_bottle: usize,
    /// Formulae refused, with the reason.
    pub refused: Vec<String>,
}

/// Plan a mirror of `selection` for `tags` from the `formula.json` in `reader`.
pub fn plan(reader: impl Read, selection: &Selection, tags: &[String]) -> Result<Plan, serde_json::Error> {
    let mut plan = Plan::default();
    let mut seen = BTreeSet::new();
    let mut refused = Vec::new();
    plan.formulae = for_each_formula(
        reader,
        &mut |f: Formula| {
            if !selection.wants(&f.name) {
                return;
            }
            if matches!(selection, Selection::Names(_)) {
                seen.insert(f.name.clone());
            }
            let pkg_version = f.pkg_version();
            // Each file once, with every configured tag it serves.
            let mut by_file: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for tag in tags {
                match matching_tag(tag, f.files.keys().map(String::as_str)) {
                    Some(file_tag) => by_file.entry(file_tag).or_default().push(tag.clone()),
                    None => plan.without_bottle += 1,
                }
            }
            for (file_tag, for_tags) in by_file {
                let file = &f.files[file_tag];
                plan.bottles.push(PlannedBottle {
                    formula: f.name.clone(),
                    pkg_version: pkg_version.clone(),
                    rebuild: f.rebuild,
                    tag: file_tag.to_owned(),
                    for_tags,
                    cellar: file.cellar.clone(),
                    url: file.url.clone(),
                    sha256: file.sha256.clone(),
                });
            }
        },
        &mut |e| refused.push(e),
    )?;
    plan.refused = refused;
    if let Selection::Names(names) = selection {
        plan.unknown = names.iter().filter(|n| !seen.contains(*n)).cloned().collect();
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn formula(name: &str, version: &str, revision: u32, rebuild: u32, files: &[(&str, &str)]) -> serde_json::Value {
        let files: serde_json::Map<String, serde_json::Value> = files
            .iter()
            .map(|(tag, sha)| {
                (
                    tag.to_string(),
                    serde_json::json!({"cellar": ":any", "url": format!("https://ghcr.io/v2/homebrew/core/{name}/blobs/sha256:{sha}"), "sha256": sha}),
                )
            })
            .collect();
        serde_json::json!({
            "name": name, "full_name": name, "tap": "homebrew/core", "desc": "d", "license": "MIT",
            "versions": {"stable": version, "head": null, "bottle": true},
            "revision": revision, "dependencies": ["a", "b"], "caveats": null,
            "bottle": {"stable": {"rebuild": rebuild, "root_url": "https://ghcr.io/v2/homebrew/core", "files": files}}
        })
    }

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plans_each_file_once_with_the_tags_it_serves() {
        let doc = serde_json::json!([
            formula("wget", "1.25.0", 0, 0, &[("arm64_sonoma", SHA_A), ("x86_64_linux", SHA_B)]),
            formula("ca-certificates", "2025-01-01", 1, 2, &[("all", SHA_A)]),
            {"name": "no-bottle", "versions": {"stable": "1.0"}, "revision": 0, "bottle": {}},
            formula("other", "2.0", 0, 0, &[("arm64_sonoma", SHA_B)]),
        ])
        .to_string();
        let selection = Selection::Names(["wget", "ca-certificates", "no-bottle", "gone"].map(String::from).into());
        let p = plan(doc.as_bytes(), &selection, &tags(&["arm64_sonoma", "x86_64_linux", "arm64_linux"])).unwrap();
        assert_eq!(p.formulae, 4);
        assert_eq!(p.unknown, ["gone"]);
        let names: Vec<String> = p.bottles.iter().map(PlannedBottle::filename).collect();
        assert_eq!(
            names,
            [
                "wget-1.25.0.arm64_sonoma.bottle.tar.gz",
                "wget-1.25.0.x86_64_linux.bottle.tar.gz",
                "ca-certificates-2025-01-01_1.all.bottle.2.tar.gz",
            ]
        );
        assert_eq!(p.bottles[2].for_tags, tags(&["arm64_sonoma", "x86_64_linux", "arm64_linux"]));
        // wget has no arm64_linux bottle; no-bottle has none at all.
        assert_eq!(p.without_bottle, 1 + 3);
        let all = plan(doc.as_bytes(), &Selection::All, &tags(&["arm64_sonoma"])).unwrap();
        assert_eq!(all.bottles.len(), 3);
    }

    #[test]
    fn what_cannot_name_a_key_is_refused_by_name() {
        let mut bad_sha = formula("evil", "1.0", 0, 0, &[("all", SHA_A)]);
        bad_sha["bottle"]["stable"]["files"]["all"]["sha256"] = "ABC".into();
        let doc = serde_json::json!([
            formula("../etc", "1.0", 0, 0, &[("all", SHA_A)]),
            formula("ok", "1.0/../..", 0, 0, &[("all", SHA_A)]),
            formula("tag", "1.0", 0, 0, &[("Arm64/x", SHA_A)]),
            bad_sha,
            formula("fine", "1.0", 0, 0, &[("all", SHA_A)]),
        ])
        .to_string();
        let p = plan(doc.as_bytes(), &Selection::All, &tags(&["arm64_sonoma"])).unwrap();
        assert_eq!(p.bottles.len(), 1);
        assert_eq!(p.refused.len(), 4, "{:?}", p.refused);
        assert!(p.refused[0].contains("\"../etc\""), "{}", p.refused[0]);
        assert!(p.refused[3].contains("evil all") && p.refused[3].contains("SHA-256"), "{}", p.refused[3]);
        let e = plan(&b"{\"not\": \"an array\"}"[..], &Selection::All, &[]).unwrap_err();
        assert!(e.to_string().contains("array of formulae"), "{e}");
    }
}
