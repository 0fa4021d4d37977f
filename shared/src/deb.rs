//! Reading and building Debian binary packages (`.deb`).
//!
//! A `.deb` is an `ar` archive whose members are, in order: `debian-binary` (the format version,
//! `"2.0\n"`), `control.tar[.gz|.xz|.zst]` (the control paragraph, maintainer scripts, md5sums) and
//! `data.tar.*` (the files to install).
//!
//! - [`read_control`] / [`read_control_from`] stream through the archive and stop after the control
//!   member, so reading a multi-gigabyte package costs only its first few kilobytes. Failures are
//!   reported as a specific [`DebError`], e.g. an HTML error page saved as `.deb` shows up as
//!   "no ar archive magic (file starts with \"<!DOCTYPE html>...\")".
//! - [`DebBuilder`] writes small packages (the `kiro-repo` configuration package, test fixtures)
//!   byte-reproducibly: fixed timestamps and owners, sorted entries, gzip without name or time.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use md5::{Digest, Md5};

/// Fields every binary package's control paragraph must have.
const REQUIRED_FIELDS: [&str; 3] = ["Package", "Version", "Architecture"];

/// Maintainer scripts [`DebBuilder::maintainer_script`] accepts.
const SCRIPT_NAMES: [&str; 4] = ["preinst", "postinst", "prerm", "postrm"];

/// The control paragraph of a binary package, fields in file order, values verbatim
/// (continuation lines kept, with their leading space, joined by "\n"; no trailing newline on a
/// value).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControlParagraph {
    pub fields: Vec<(String, String)>,
}

impl ControlParagraph {
    /// The value of field `name` (case-insensitive), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(field, _)| field.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// Replace the value of field `name` (case-insensitive), or append the field if absent.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        match self.fields.iter_mut().find(|(field, _)| field.eq_ignore_ascii_case(name)) {
            Some((_, old)) => *old = value.into(),
            None => self.fields.push((name.to_string(), value.into())),
        }
    }

    /// Parse exactly one deb822 paragraph. Blank lines around it and `#` comment lines are
    /// ignored; a second paragraph, a line without a colon, or a duplicate field is an error.
    pub fn parse(text: &str) -> anyhow::Result<ControlParagraph> {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut ended = false; // a blank line followed the fields
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if line.starts_with('#') {
                continue;
            }
            if line.trim().is_empty() {
                ended = !fields.is_empty();
                continue;
            }
            ensure!(!ended, "line {number}: a second paragraph starts here (expected exactly one)");
            if line.starts_with([' ', '\t']) {
                let Some((_, value)) = fields.last_mut() else {
                    bail!("line {number}: continuation line before the first field");
                };
                value.push('\n');
                value.push_str(line);
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                bail!("line {number}: expected \"Field: value\", found {line:?}");
            };
            ensure!(
                !name.is_empty() && !name.contains(char::is_whitespace) && !name.starts_with('-'),
                "line {number}: invalid field name {name:?}"
            );
            ensure!(
                !fields.iter().any(|(field, _)| field.eq_ignore_ascii_case(name)),
                "line {number}: duplicate field {name}"
            );
            fields.push((name.to_string(), value.trim().to_string()));
        }
        ensure!(!fields.is_empty(), "empty control paragraph");
        Ok(ControlParagraph { fields })
    }
}

/// Renders the paragraph as a control file (each field on its own line, trailing newline).
impl fmt::Display for ControlParagraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.fields {
            // A value that starts on the next line (e.g. "Conffiles:\n /etc/x") gets no space.
            let space = if value.is_empty() || value.starts_with('\n') { "" } else { " " };
            writeln!(f, "{name}:{space}{value}")?;
        }
        Ok(())
    }
}

/// Why a file could not be read as a Debian binary package.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot open {}: {error}", path.display())]
    Open { path: PathBuf, error: io::Error },
    #[error("I/O error reading the package: {0}")]
    Io(#[from] io::Error),
    #[error("not a Debian package: the file is empty")]
    Empty,
    /// `head` is the first (up to 32) bytes of the file, printable-escaped.
    #[error("not a Debian package: no ar archive magic (file starts with \"{head}\")")]
    NoArMagic { head: String },
    #[error("not a Debian package: malformed ar archive: {0}")]
    Ar(io::Error),
    /// The file ends early; the payload says where (an ar header or a named member).
    #[error("truncated package: the file ends inside {0}")]
    Truncated(String),
    #[error("not a Debian package: missing debian-binary member ({0})")]
    MissingDebianBinary(String),
    #[error("unsupported format version \"{0}\" in debian-binary (expected \"2.x\")")]
    UnsupportedVersion(String),
    #[error("no control.tar member ({0})")]
    NoControlTar(String),
    #[error("unsupported compression of control member {0} (expected control.tar, .tar.gz, .tar.xz or .tar.zst)")]
    UnsupportedCompression(String),
    #[error("cannot decompress or unpack {member}: {error}")]
    Decompress { member: String, error: io::Error },
    #[error("{member} has no control file")]
    NoControlFile { member: String },
    #[error("invalid control file in {member}: {message}")]
    BadControl { member: String, message: String },
    #[error("control paragraph lacks {}", .0.join("/"))]
    MissingFields(Vec<&'static str>),
}

/// Read the control paragraph from a .deb file at `path` without loading the whole file into
/// memory (only the members up to and including control.tar.* are read).
pub fn read_control(path: &Path) -> Result<ControlParagraph, DebError> {
    let file = File::open(path).map_err(|error| DebError::Open { path: path.to_owned(), error })?;
    read_control_from(BufReader::new(file))
}

/// Read the control paragraph of a .deb from any reader; stops reading after the control member.
pub fn read_control_from<R: Read>(mut reader: R) -> Result<ControlParagraph, DebError> {
    // Sniff the head ourselves so a non-archive gets a telling message, then put it back in front.
    let mut head = Vec::with_capacity(32);
    (&mut reader).take(32).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(DebError::Empty);
    }
    if !head.starts_with(b"!<arch>\n") {
        return Err(DebError::NoArMagic { head: head.escape_ascii().to_string() });
    }
    let mut archive = ar::Archive::new(io::Cursor::new(head).chain(reader));

    // First member: debian-binary, "2.x\n".
    {
        let mut entry = next_member(&mut archive)?
            .ok_or_else(|| DebError::MissingDebianBinary("the archive has no members".into()))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if name != "debian-binary" {
            return Err(DebError::MissingDebianBinary(format!("the first member is \"{name}\"")));
        }
        let short = Cell::new(false);
        let mut text = Vec::new();
        exact(&mut entry, &short)
            .take(64)
            .read_to_end(&mut text)
            .map_err(|error| if short.get() { DebError::Truncated(format!("member {name}")) } else { error.into() })?;
        let text = String::from_utf8_lossy(&text);
        let version = text.lines().next().unwrap_or_default();
        let minor = version.strip_prefix("2.").unwrap_or_default();
        if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DebError::UnsupportedVersion(version.escape_default().to_string()));
        }
    }

    // Then control.tar.*; dpkg lets members named "_*" sit in between and ignores them.
    loop {
        let mut entry = next_member(&mut archive)?
            .ok_or_else(|| DebError::NoControlTar("the archive ends after debian-binary".into()))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if name.starts_with("control.tar") {
            let short = Cell::new(false);
            return read_control_member(exact(&mut entry, &short), &name, &short);
        }
        if !name.starts_with('_') {
            return Err(DebError::NoControlTar(format!("found \"{name}\" where it was expected")));
        }
    }
}

/// The next ar member, with a premature end of file reported as truncation.
fn next_member<R: Read>(archive: &mut ar::Archive<R>) -> Result<Option<ar::Entry<'_, R>>, DebError> {
    match archive.next_entry() {
        None => Ok(None),
        Some(Ok(entry)) => Ok(Some(entry)),
        Some(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
            Err(DebError::Truncated("an ar member header".into()))
        }
        Some(Err(error)) => Err(DebError::Ar(error)),
    }
}

/// Decompress a control.tar[.gz|.xz|.zst] member and parse its `control` file.
fn read_control_member<'a>(
    member: impl Read + 'a,
    name: &str,
    short: &Cell<bool>,
) -> Result<ControlParagraph, DebError> {
    let fail = |error: io::Error| {
        if short.get() {
            DebError::Truncated(format!("member {name}"))
        } else {
            DebError::Decompress { member: name.to_string(), error }
        }
    };
    let reader: Box<dyn Read + 'a> = match &name["control.tar".len()..] {
        "" => Box::new(member),
        ".gz" => Box::new(flate2::read::GzDecoder::new(member)),
        ".xz" => Box::new(liblzma::read::XzDecoder::new(member)),
        ".zst" => Box::new(
            ruzstd::decoding::StreamingDecoder::new(member)
                .map_err(|error| fail(io::Error::new(io::ErrorKind::InvalidData, error)))?,
        ),
        _ => return Err(DebError::UnsupportedCompression(name.to_string())),
    };
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let is_control = matches!(&*entry.path_bytes(), b"./control" | b"control");
        if !is_control || !entry.header().entry_type().is_file() {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(fail)?;
        let bad = |message: String| DebError::BadControl { member: name.to_string(), message };
        let text = String::from_utf8(bytes).map_err(|_| bad("not valid UTF-8".into()))?;
        let control = ControlParagraph::parse(&text).map_err(|error| bad(format!("{error:#}")))?;
        let missing: Vec<&'static str> =
            REQUIRED_FIELDS.into_iter().filter(|field| control.get(field).is_none_or(str::is_empty)).collect();
        if !missing.is_empty() {
            return Err(DebError::MissingFields(missing));
        }
        return Ok(control);
    }
    Err(DebError::NoControlFile { member: name.to_string() })
}

/// Wrap an ar member so that running out of file before its declared size is an error (and is
/// recorded in `short`) instead of a silent end of file.
fn exact<'e, 'a, 'c, R: Read>(
    entry: &'e mut ar::Entry<'a, R>,
    short: &'c Cell<bool>,
) -> Exact<'c, &'e mut ar::Entry<'a, R>> {
    let left = entry.header().size();
    Exact { inner: entry, left, short }
}

struct Exact<'c, E> {
    inner: E,
    left: u64,
    short: &'c Cell<bool>,
}

impl<E: Read> Read for Exact<'_, E> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.short.set(true);
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "ar member is truncated"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Builds a small .deb in memory, byte-reproducibly (see the module docs).
///
/// Paths are absolute-style ("/etc/apt/sources.list.d/kiro.list"); parent directories are added
/// automatically. Adding a file or script again under the same name replaces it. Inputs are
/// validated by [`DebBuilder::build`].
#[derive(Debug, Clone)]
pub struct DebBuilder {
    control: ControlParagraph,
    files: BTreeMap<String, (u32, Vec<u8>)>,
    conffiles: BTreeSet<String>,
    scripts: BTreeMap<String, Vec<u8>>,
    mtime: u64,
}

impl DebBuilder {
    /// Start a package; `control` must contain Package, Version and Architecture. Installed-Size
    /// is added at build time if absent.
    pub fn new(control: ControlParagraph) -> Self {
        DebBuilder { control, files: BTreeMap::new(), conffiles: BTreeSet::new(), scripts: BTreeMap::new(), mtime: 0 }
    }

    /// Timestamp for every tar entry and ar member (like SOURCE_DATE_EPOCH); default 0.
    pub fn mtime(&mut self, mtime: u64) -> &mut Self {
        self.mtime = mtime;
        self
    }

    /// Add a regular file with permission bits `mode` (e.g. 0o644).
    pub fn file(&mut self, path: &str, mode: u32, contents: impl Into<Vec<u8>>) -> &mut Self {
        self.files.insert(path.to_string(), (mode, contents.into()));
        self
    }

    /// Mark a file added with [`DebBuilder::file`] as a conffile.
    pub fn conffile(&mut self, path: &str) -> &mut Self {
        self.conffiles.insert(path.to_string());
        self
    }

    /// Add a maintainer script (preinst, postinst, prerm or postrm), installed with mode 0755.
    pub fn maintainer_script(&mut self, name: &str, script: impl Into<Vec<u8>>) -> &mut Self {
        self.scripts.insert(name.to_string(), script.into());
        self
    }

    /// The .deb bytes.
    pub fn build(&self) -> anyhow::Result<Vec<u8>> {
        // data.tar: keyed by path components so that parents sort before their children.
        let mut data: BTreeMap<Vec<&str>, Option<(u32, &[u8])>> = BTreeMap::new();
        data.insert(Vec::new(), None); // "./"
        for (path, (mode, contents)) in &self.files {
            ensure!(*mode <= 0o7777, "file {path}: mode {mode:o} has bits beyond 07777");
            let parts = split_path(path)?;
            for depth in 1..parts.len() {
                let parent = data.entry(parts[..depth].to_vec()).or_insert(None);
                ensure!(parent.is_none(), "file {path} would be inside /{}, which is a file", parts[..depth].join("/"));
            }
            // Sorted order visits "/a" before "/a/b", so a file is never overwritten by a parent.
            data.insert(parts, Some((*mode, contents.as_slice())));
        }

        // control.tar: control, conffiles, md5sums and scripts, sorted by name.
        let mut control = self.control.clone();
        let total: usize = self.files.values().map(|(_, contents)| contents.len()).sum();
        if control.get("Installed-Size").is_none() {
            control.set("Installed-Size", total.div_ceil(1024).to_string());
        }
        for field in REQUIRED_FIELDS {
            ensure!(control.get(field).is_some_and(|v| !v.is_empty()), "control paragraph lacks {field}");
        }
        let text = control.to_string();
        // Catches values with blank lines, bad field names and the like.
        ensure!(
            ControlParagraph::parse(&text).ok().as_ref() == Some(&control),
            "control paragraph does not survive rendering:\n{text}"
        );
        let mut members: BTreeMap<&str, (u32, Vec<u8>)> = BTreeMap::new();
        members.insert("control", (0o644, text.into_bytes()));
        if !self.conffiles.is_empty() {
            let mut list = String::new();
            for path in &self.conffiles {
                ensure!(self.files.contains_key(path), "conffile {path} is not a file of the package");
                list += &format!("{path}\n");
            }
            members.insert("conffiles", (0o644, list.into_bytes()));
        }
        if !self.files.is_empty() {
            let mut sums = String::new();
            for (parts, entry) in &data {
                if let Some((_, contents)) = entry {
                    sums += &format!("{}  {}\n", hex::encode(Md5::digest(contents)), parts.join("/"));
                }
            }
            members.insert("md5sums", (0o644, sums.into_bytes()));
        }
        for (name, script) in &self.scripts {
            ensure!(
                SCRIPT_NAMES.contains(&name.as_str()),
                "unknown maintainer script {name:?} (expected one of {SCRIPT_NAMES:?})"
            );
            ensure!(script.starts_with(b"#!"), "maintainer script {name} does not start with \"#!\"");
            members.insert(name, (0o755, script.clone()));
        }

        let control_tar = tar_gz(
            std::iter::once(("./".to_string(), 0o755, None)).chain(
                members.iter().map(|(name, (mode, bytes))| (format!("./{name}"), *mode, Some(bytes.as_slice()))),
            ),
            self.mtime,
        )?;
        let data_tar = tar_gz(
            data.iter().map(|(parts, entry)| match entry {
                None if parts.is_empty() => ("./".to_string(), 0o755, None),
                None => (format!("./{}/", parts.join("/")), 0o755, None),
                Some((mode, contents)) => (format!("./{}", parts.join("/")), *mode, Some(*contents)),
            }),
            self.mtime,
        )?;

        let mut deb = ar::Builder::new(Vec::new());
        for (name, bytes) in
            [("debian-binary", &b"2.0\n"[..]), ("control.tar.gz", &control_tar), ("data.tar.gz", &data_tar)]
        {
            let mut header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            header.set_mode(0o100644);
            header.set_mtime(self.mtime);
            deb.append(&header, bytes)?;
        }
        Ok(deb.into_inner()?)
    }

    /// Build and write the .deb to `path`.
    pub fn write_to(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.build()?).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// "/a/b" -> ["a", "b"], rejecting relative paths and empty, "." or ".." components.
fn split_path(path: &str) -> anyhow::Result<Vec<&str>> {
    let rest = path.strip_prefix('/').with_context(|| format!("path {path:?} must start with \"/\""))?;
    let parts: Vec<&str> = rest.split('/').collect();
    ensure!(
        parts.iter().all(|part| !part.is_empty() && *part != "." && *part != ".." && !part.contains('\0')),
        "invalid path {path:?}: empty, \".\" or \"..\" component"
    );
    Ok(parts)
}

/// A gzip-compressed tar of `(name, mode, contents)` entries (`None` contents: a directory),
/// written in the given order, owned by root:root, with a fixed mtime and a gzip header without
/// timestamp or file name.
fn tar_gz<'a>(
    entries: impl IntoIterator<Item = (String, u32, Option<&'a [u8]>)>,
    mtime: u64,
) -> anyhow::Result<Vec<u8>> {
    let gzip = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gzip);
    for (name, mode, contents) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(if contents.is_some() { tar::EntryType::Regular } else { tar::EntryType::Directory });
        header.set_mode(mode);
        header.set_size(contents.map_or(0, |c| c.len() as u64));
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("root")?;
        header.set_groupname("root")?;
        // Written by hand: tar::Header::set_path would drop the "./" prefix dpkg uses.
        let bytes = name.as_bytes();
        let slot = &mut header.as_old_mut().name;
        if bytes.len() > slot.len() {
            // GNU convention for long names: a preceding "././@LongLink" entry holds the full name.
            let mut long = tar::Header::new_gnu();
            long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            long.set_entry_type(tar::EntryType::GNULongName);
            long.set_mode(0o644);
            long.set_size(bytes.len() as u64 + 1);
            long.set_mtime(0);
            long.set_uid(0);
            long.set_gid(0);
            long.set_cksum();
            tar.append(&long, bytes.chain(&[0u8][..]))?;
        }
        let len = bytes.len().min(slot.len());
        slot[..len].copy_from_slice(&bytes[..len]);
        header.set_cksum();
        tar.append(&header, contents.unwrap_or_default())?;
    }
    Ok(tar.into_inner()?.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const DPKG_DEB: &str = "/usr/bin/dpkg-deb";
    const DESCRIPTION: &str =
        "APT source for Kiro\n This package configures the Kiro repository.\n .\n   Indented, verbatim line.";

    fn control() -> ControlParagraph {
        ControlParagraph {
            fields: [
                ("Package", "kiro-repo"),
                ("Version", "1.2-1"),
                ("Architecture", "all"),
                ("Maintainer", "pkgrelay <pkgrelay@example.com>"),
                ("Description", DESCRIPTION),
            ]
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .into(),
        }
    }

    /// (path, mode, contents) of the fixture package's files.
    fn files() -> Vec<(String, u32, Vec<u8>)> {
        let sources = "deb [signed-by=/usr/share/keyrings/kiro.gpg] https://example.com/apt stable main\n";
        vec![
            ("/etc/apt/sources.list.d/kiro.list".into(), 0o644, sources.into()),
            ("/usr/share/keyrings/kiro.gpg".into(), 0o644, (0..=255u8).cycle().take(3000).collect()),
            ("/usr/bin/kiro-hello".into(), 0o755, "#!/bin/sh\necho hello\n".into()),
            // Longer than the 100 bytes of a tar header's name field.
            (format!("/usr/share/doc/kiro-repo/{}", "long-name-".repeat(12)), 0o644, "long\n".into()),
        ]
    }

    fn fixture() -> DebBuilder {
        let mut builder = DebBuilder::new(control());
        for (path, mode, contents) in files() {
            builder.file(&path, mode, contents);
        }
        builder
            .conffile("/etc/apt/sources.list.d/kiro.list")
            .maintainer_script("postinst", "#!/bin/sh\nset -e\nexit 0\n");
        builder
    }

    /// dpkg-deb is the independent judge of what we build: its absence is a
    /// broken test environment (`.ci/run` installs it), not a reason to pass.
    fn require_dpkg_deb() {
        assert!(Path::new(DPKG_DEB).exists(), "{DPKG_DEB} is required (Debian package dpkg)");
    }

    fn run(command: &mut Command) -> String {
        let output = command.output().expect("run dpkg-deb");
        assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    fn ar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = ar::Builder::new(Vec::new());
        for (name, bytes) in members {
            builder.append(&ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64), *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// A package with debian-binary "2.0" and then the one given member.
    fn deb_with(member: &str, bytes: &[u8]) -> Vec<u8> {
        ar_of(&[("debian-binary", b"2.0\n"), (member, bytes)])
    }

    fn error_of(bytes: &[u8]) -> String {
        read_control_from(bytes).unwrap_err().to_string()
    }

    #[test]
    fn build_then_read_control() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kiro-repo.deb");
        fixture().write_to(&path).unwrap();
        let read = read_control(&path).unwrap();
        let mut expected = control();
        // 81 + 3000 + 21 + 5 bytes -> 4 KiB, rounded up.
        expected.fields.push(("Installed-Size".into(), "4".into()));
        assert_eq!(read, expected);
        assert_eq!(read.get("description"), Some(DESCRIPTION));
        assert_eq!(read_control_from(&std::fs::read(&path).unwrap()[..]).unwrap(), expected);

        // An explicit Installed-Size is kept.
        let mut with_size = control();
        with_size.set("Installed-Size", "99");
        let bytes = DebBuilder::new(with_size.clone()).build().unwrap();
        assert_eq!(read_control_from(&bytes[..]).unwrap(), with_size);
    }

    #[test]
    fn builds_are_reproducible() {
        let first = fixture().build().unwrap();
        assert_eq!(first, fixture().build().unwrap());
        // Insertion order does not matter.
        let mut reordered = DebBuilder::new(control());
        reordered
            .maintainer_script("postinst", "#!/bin/sh\nset -e\nexit 0\n")
            .conffile("/etc/apt/sources.list.d/kiro.list");
        for (path, mode, contents) in files().into_iter().rev() {
            reordered.file(&path, mode, contents);
        }
        assert_eq!(first, reordered.build().unwrap());
        // mtime() shows up in the ar headers (and, octal, in the tar headers).
        let later = fixture().mtime(1_700_000_000).build().unwrap();
        assert_ne!(first, later);
        assert!(later.windows(10).any(|w| w == b"1700000000"));
    }

    #[test]
    fn stops_reading_after_the_control_member() {
        /// Counts the bytes handed out.
        struct Counting<'a>(&'a [u8], &'a Cell<usize>);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1.set(self.1.get() + n);
                Ok(n)
            }
        }
        let package = fixture().build().unwrap();
        let mut archive = ar::Archive::new(&package[..]);
        archive.next_entry().unwrap().unwrap(); // debian-binary
        let mut control_tar = Vec::new();
        archive.next_entry().unwrap().unwrap().read_to_end(&mut control_tar).unwrap();
        let big = vec![0u8; 20 << 20]; // a 20 MiB "data.tar.xz" that is never looked at
        let deb = ar_of(&[("debian-binary", b"2.0\n"), ("control.tar.gz", &control_tar), ("data.tar.xz", &big)]);
        let read = Cell::new(0);
        let control = read_control_from(BufReader::new(Counting(&deb, &read))).unwrap();
        assert_eq!(control.get("Package"), Some("kiro-repo"));
        assert!(read.get() < 64 * 1024, "read {} bytes", read.get());
    }

    #[test]
    fn dpkg_deb_accepts_built_package() {
        require_dpkg_deb();
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("kiro-repo.deb");
        fixture().mtime(1_600_000_000).write_to(&deb).unwrap();

        let info = run(Command::new(DPKG_DEB).arg("--info").arg(&deb));
        for needle in [" Package: kiro-repo", " Installed-Size: 4", " .\n", "conffiles", "md5sums", "postinst"] {
            assert!(info.contains(needle), "{needle:?} not in:\n{info}");
        }
        let description = run(Command::new(DPKG_DEB).arg("--field").arg(&deb).arg("Description"));
        assert_eq!(description, format!("{DESCRIPTION}\n"));
        let conffiles = run(Command::new(DPKG_DEB).arg("--info").arg(&deb).arg("conffiles"));
        assert_eq!(conffiles, "/etc/apt/sources.list.d/kiro.list\n");
        let md5sums = run(Command::new(DPKG_DEB).arg("--info").arg(&deb).arg("md5sums"));
        assert!(md5sums.contains("  usr/bin/kiro-hello\n"), "{md5sums}");
        assert_eq!(md5sums.lines().count(), 4);

        let contents = run(Command::new(DPKG_DEB).arg("--contents").arg(&deb));
        for needle in [
            "root/root",
            " ./\n",
            " ./etc/\n",
            " ./etc/apt/sources.list.d/\n",
            " ./etc/apt/sources.list.d/kiro.list\n",
            "-rwxr-xr-x",
        ] {
            assert!(contents.contains(needle), "{needle:?} not in:\n{contents}");
        }

        let root = dir.path().join("root");
        run(Command::new(DPKG_DEB).arg("-x").arg(&deb).arg(&root));
        for (path, mode, contents) in files() {
            let extracted = root.join(path.trim_start_matches('/'));
            assert_eq!(std::fs::read(&extracted).unwrap(), contents, "{path}");
            use std::os::unix::fs::PermissionsExt;
            let metadata = std::fs::metadata(&extracted).unwrap();
            assert_eq!(metadata.permissions().mode() & 0o7777, mode, "{path}");
        }
    }

    #[test]
    fn reads_packages_built_by_dpkg_deb() {
        require_dpkg_deb();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pkg");
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(root.join("usr/share/hello")).unwrap();
        std::fs::write(root.join("usr/share/hello/greeting"), "hello\n").unwrap();
        let text = format!(
            "Package: hello-fixture\nVersion: 2:1.0~rc1-3\nArchitecture: amd64\nMaintainer: Test <t@example.com>\nDescription: {DESCRIPTION}\n"
        );
        std::fs::write(root.join("DEBIAN/control"), &text).unwrap();
        let expected = ControlParagraph::parse(&text).unwrap();
        assert_eq!(expected.get("Description"), Some(DESCRIPTION));

        for (compression, member) in [
            ("gzip", "control.tar.gz"),
            ("xz", "control.tar.xz"),
            ("zstd", "control.tar.zst"),
            ("none", "control.tar "),
        ] {
            let deb = dir.path().join(format!("hello-{compression}.deb"));
            run(Command::new(DPKG_DEB)
                .arg("--root-owner-group")
                .arg(format!("-Z{compression}"))
                .arg("--build")
                .arg(&root)
                .arg(&deb));
            let bytes = std::fs::read(&deb).unwrap();
            assert!(bytes.windows(member.len()).any(|w| w == member.as_bytes()), "{compression}: no {member:?} member");
            assert_eq!(read_control(&deb).unwrap(), expected, "-Z{compression}");
        }
    }

    #[test]
    fn specific_errors() {
        let html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n";
        assert_eq!(
            error_of(html),
            "not a Debian package: no ar archive magic (file starts with \"<!DOCTYPE html>\\n<html><head><tit\")"
        );
        assert!(matches!(read_control_from(&b""[..]), Err(DebError::Empty)));
        assert!(error_of(b"").contains("empty"));
        let missing = read_control(Path::new("/nonexistent/x.deb")).unwrap_err();
        assert!(matches!(missing, DebError::Open { .. }), "{missing}");

        // Truncated inside control.tar.gz, and inside the first member header.
        let deb = fixture().build().unwrap();
        let err = read_control_from(&deb[..200]).unwrap_err();
        assert!(matches!(err, DebError::Truncated(_)), "{err}");
        assert_eq!(err.to_string(), "truncated package: the file ends inside member control.tar.gz");
        assert_eq!(error_of(&deb[..40]), "truncated package: the file ends inside an ar member header");
        assert!(error_of(b"!<arch>\n").contains("missing debian-binary member"));

        // ar archives that are not (complete) packages.
        assert_eq!(
            error_of(&deb_with("data.tar.gz", b"data")),
            "no control.tar member (found \"data.tar.gz\" where it was expected)"
        );
        let err = error_of(&ar_of(&[("debian-binary", b"2.0\n")]));
        assert_eq!(err, "no control.tar member (the archive ends after debian-binary)");
        assert_eq!(
            error_of(&ar_of(&[("libfoo.o", b"\x7fELF")])),
            "not a Debian package: missing debian-binary member (the first member is \"libfoo.o\")"
        );
        let err = error_of(&ar_of(&[("debian-binary", b"3.0\n")]));
        assert!(err.starts_with("unsupported format version \"3.0\""), "{err}");
        let err = read_control_from(&deb_with("control.tar.bz2", b"BZh")[..]).unwrap_err();
        assert!(matches!(err, DebError::UnsupportedCompression(_)), "{err}");

        // Corrupt compressed data names the member.
        for member in ["control.tar.gz", "control.tar.xz", "control.tar.zst"] {
            let err = error_of(&deb_with(member, b"not compressed at all"));
            let prefix = format!("cannot decompress or unpack {member}: ");
            assert!(err.starts_with(&prefix), "{err}");
        }

        // control.tar without a control file, and control files that are invalid.
        let control_tar = |name: &str, contents: &'static [u8]| {
            let tar = tar_gz([(name.to_string(), 0o644, Some(contents))], 0).unwrap();
            deb_with("control.tar.gz", &tar)
        };
        let err = error_of(&control_tar("./md5sums", b""));
        assert_eq!(err, "control.tar.gz has no control file");
        let err = error_of(&control_tar("control", b"Package: x\nVersion: 1\n"));
        assert_eq!(err, "control paragraph lacks Architecture");
        let err = error_of(&control_tar("./control", b"Package: x\nno colon\n"));
        assert!(err.starts_with("invalid control file in control.tar.gz: line 2"), "{err}");
    }

    #[test]
    fn parse_paragraphs() {
        let text = "# comment\n\nPackage: a\nDescription: short\n long\n .\n# inside\n  more\nversion:  1.0  \n\n\n";
        let paragraph = ControlParagraph::parse(text).unwrap();
        assert_eq!(paragraph.get("DESCRIPTION"), Some("short\n long\n .\n  more"));
        assert_eq!(paragraph.get("Version"), Some("1.0"));
        assert_eq!(paragraph.fields[2].0, "version");
        assert_eq!(ControlParagraph::parse(&paragraph.to_string()).unwrap(), paragraph);

        let multiline = ControlParagraph::parse("Conffiles:\n /etc/a 123\n /etc/b 456\n").unwrap();
        assert_eq!(multiline.get("conffiles"), Some("\n /etc/a 123\n /etc/b 456"));
        assert_eq!(multiline.to_string(), "Conffiles:\n /etc/a 123\n /etc/b 456\n");

        for (bad, message) in [
            ("Package: a\n\nPackage: b\n", "second paragraph"),
            ("Package: a\nno colon here\n", "expected \"Field: value\""),
            ("Package: a\npackage: b\n", "duplicate field package"),
            (" continued\n", "continuation line before the first field"),
            ("\n# only a comment\n", "empty control paragraph"),
        ] {
            let err = format!("{:#}", ControlParagraph::parse(bad).unwrap_err());
            assert!(err.contains(message), "{bad:?}: {err}");
        }
    }

    /// The error `build` reports after `setup` on a builder for `control()`.
    fn build_error(setup: impl FnOnce(&mut DebBuilder)) -> String {
        let mut builder = DebBuilder::new(control());
        setup(&mut builder);
        format!("{:#}", builder.build().unwrap_err())
    }

    #[test]
    fn builder_rejects_bad_input() {
        for path in ["/etc/../passwd", "/etc//x", "/etc/x/", "/./etc", "/"] {
            let err = build_error(|b| _ = b.file(path, 0o644, ""));
            assert!(err.contains("\"..\" component"), "{path}: {err}");
        }
        let err = build_error(|b| _ = b.file("etc/x", 0o644, ""));
        assert!(err.contains("must start with \"/\""), "{err}");
        let err = build_error(|b| _ = b.file("/etc", 0o644, "").file("/etc/x", 0o644, ""));
        assert!(err.contains("inside /etc, which is a file"), "{err}");
        let err = build_error(|b| _ = b.conffile("/etc/none"));
        assert!(err.contains("not a file of the package"), "{err}");
        let err = build_error(|b| _ = b.maintainer_script("config", "#!/bin/sh\n"));
        assert!(err.contains("unknown maintainer script"), "{err}");
        let err = build_error(|b| _ = b.maintainer_script("postinst", "echo hi\n"));
        assert!(err.contains("does not start with \"#!\""), "{err}");
        let err = build_error(|b| b.control.fields.retain(|(name, _)| name != "Architecture"));
        assert!(err.contains("lacks Architecture"), "{err}");
        let err = build_error(|b| b.control.set("Description", "short\n\n second paragraph"));
        assert!(err.contains("does not survive rendering"), "{err}");
    }
}
