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
//! - [`check_package`] reads the whole package once, streaming, and refuses what dpkg-deb would
//!   refuse before unpacking it: members out of order or unknown, two control members or control
//!   files, a data member that is missing or does not decode to its end. Nothing is extracted.
//! - Both hold the control archive to [`DebLimits`]: a package of a megabyte can carry a control
//!   file that unpacks to a gigabyte, and a check-sources function has 512 MB.
//! - [`DebBuilder`] writes small packages (the `kiro-repo` configuration package, test fixtures)
//!   byte-reproducibly: fixed timestamps and owners, sorted entries, gzip without name or time.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use md5::{Digest, Md5};

use crate::limits::{Limit, show_bytes};

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

/// Caps on what reading a package may unpack: a .deb of a megabyte can hold a
/// control.tar that unpacks to gigabytes, and reading it must not take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebLimits {
    /// The `control` file.
    pub control_file: Limit<u64>,
    /// The whole control.tar, unpacked.
    pub control_tar: Limit<u64>,
}

impl Default for DebLimits {
    fn default() -> DebLimits {
        crate::limits::Limits::default().deb()
    }
}

/// Memory the xz and lzma decoders may take for the data member. `xz -9`
/// needs 65 MiB; download-package has 2 GiB. A file that asks for more is
/// refused rather than allowed to take the function down.
const XZ_MEMLIMIT: u64 = 256 << 20;

/// The largest PAX extended header read into memory while walking data.tar
/// (real ones are a few hundred bytes).
const PAX_LIMIT: u64 = 1 << 20;

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
    #[error("unsupported format version \"{0}\" in debian-binary (expected \"2.x\" and a newline)")]
    UnsupportedVersion(String),
    #[error("no control.tar member ({0})")]
    NoControlTar(String),
    #[error("unsupported compression of control member {0} (expected control.tar, .tar.gz, .tar.xz or .tar.zst)")]
    UnsupportedCompression(String),
    #[error("cannot decompress or unpack {member}: {error}")]
    Decompress { member: String, error: io::Error },
    #[error("{member} has no control file")]
    NoControlFile { member: String },
    /// dpkg would unpack each, the last over the others: which one counts is
    /// not what this reader would take.
    #[error("{member} has more than one control file ({paths}); dpkg would unpack them one over another")]
    DuplicateControl { member: String, paths: String },
    #[error("{member}: its control entry {path:?} is not a regular file")]
    ControlNotAFile { member: String, path: String },
    /// A decompression cap was reached (`what`: the control file, or the whole control.tar).
    #[error("{member}: {what} unpacks to more than {} ({setting})", show_bytes(*limit))]
    TooLarge { member: String, what: String, limit: u64, setting: String },
    #[error("invalid control file in {member}: {message}")]
    BadControl { member: String, message: String },
    #[error("control paragraph lacks {}", .0.join("/"))]
    MissingFields(Vec<&'static str>),
    /// Members in an order dpkg-deb refuses.
    #[error("member order: {0}")]
    MemberOrder(String),
    #[error("no data.tar member ({0})")]
    NoDataTar(String),
    #[error(
        "unsupported compression of data member {0} (expected data.tar, .tar.gz, .tar.xz, .tar.zst, .tar.bz2 or .tar.lzma)"
    )]
    UnsupportedDataCompression(String),
    /// The data member's compressed stream is corrupt, cut short, or followed by garbage.
    #[error("{member} does not decode to its end: {error}")]
    DataCorrupt { member: String, error: io::Error },
    /// The data member decodes, but the tar archive inside is broken.
    #[error("{member}: the tar archive inside is broken: {message}")]
    DataTar { member: String, message: String },
}

/// Read the control paragraph from a .deb file at `path` without loading the whole file into
/// memory (only the members up to and including control.tar.* are read), within the default
/// [`DebLimits`].
pub fn read_control(path: &Path) -> Result<ControlParagraph, DebError> {
    read_control_with(path, &DebLimits::default())
}

/// [`read_control`] within `limits`.
pub fn read_control_with(path: &Path, limits: &DebLimits) -> Result<ControlParagraph, DebError> {
    let file = File::open(path).map_err(|error| DebError::Open { path: path.to_owned(), error })?;
    walk(BufReader::new(file), limits, false)
}

/// Read the control paragraph of a .deb from any reader; stops reading after the control member.
pub fn read_control_from<R: Read>(reader: R) -> Result<ControlParagraph, DebError> {
    walk(reader, &DebLimits::default(), false)
}

/// Check the whole package at `path` as dpkg would before unpacking it, in
/// one streaming pass and bounded memory, and return its control paragraph:
///
/// - the members: `debian-binary` (`2.x` and a newline) first, then
///   `control.tar[.gz|.xz|.zst]`, then `data.tar[.gz|.xz|.zst|.bz2|.lzma]`;
///   members named `_*` may sit between them and are skipped, members after
///   the data member are ignored (deb(5)); any other member before the data
///   member, a second control member, or a data member before the control
///   member is refused, as dpkg-deb refuses them;
/// - control.tar: exactly one `control` file, a regular file, within `limits`;
/// - the data member: decompressed to the end of its stream (the format's own
///   checksums verified, nothing after it), and the tar archive inside walked
///   header by header to its end.
pub fn check_package(path: &Path, limits: &DebLimits) -> Result<ControlParagraph, DebError> {
    let file = File::open(path).map_err(|error| DebError::Open { path: path.to_owned(), error })?;
    let capacity = buffer_for(file.metadata().map(|m| m.len()).unwrap_or(u64::MAX));
    walk(BufReader::with_capacity(capacity, file), limits, true)
}

/// A package checked whole by [`check_package_hashed`]: its control
/// paragraph, the digests of every byte of the file, and the caps it was
/// checked within. Whoever holds one may skip checking the same bytes again
/// (same SHA256, caps no larger).
#[derive(Debug, Clone)]
pub struct Checked {
    pub control: ControlParagraph,
    pub checksums: crate::digest::Checksums,
    pub limits: DebLimits,
}

impl Checked {
    /// Whether this check holds for a reader with `limits`: the same caps
    /// (the settings that named them only word an error, and there was none).
    pub fn within(&self, limits: &DebLimits) -> bool {
        self.limits.control_file.value == limits.control_file.value
            && self.limits.control_tar.value == limits.control_tar.value
    }
}

/// [`check_package`] and the file's digests (size, MD5, SHA1, SHA256) in
/// the same single read of the file: a bulk import checks thousands of
/// small staged packages, and reading each once instead of three times (to
/// hash it, to read its control paragraph, to check it) was most of its
/// time. The digests cover the whole file, members after the data member
/// included.
pub fn check_package_hashed(path: &Path, limits: &DebLimits) -> Result<Checked, DebError> {
    let file = File::open(path).map_err(|error| DebError::Open { path: path.to_owned(), error })?;
    let capacity = buffer_for(file.metadata().map(|m| m.len()).unwrap_or(u64::MAX));
    let mut hashing = HashingReader { inner: file, hasher: crate::digest::Hasher::new() };
    // Every byte goes through the hasher exactly once, in order: the buffer
    // reads from it, and what the check leaves unread is drained after it.
    let control = walk(BufReader::with_capacity(capacity, &mut hashing), limits, true)?;
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(Checked { control, checksums: hashing.hasher.finish(), limits: limits.clone() })
}

/// A reader that digests what it reads.
struct HashingReader<R> {
    inner: R,
    hasher: crate::digest::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A read buffer for `len` bytes of input: as large as the input (plus one
/// byte, to see its end) up to 256 KiB, at least 8 KiB. Why not always
/// 256 KiB: `BufReader` zeroes its buffer once before the first read from a
/// reader that cannot fill uninitialised memory (an ar member is one), and
/// for thousands of packages of a few hundred bytes each that memset was a
/// tenth of a bulk import.
fn buffer_for(len: u64) -> usize {
    usize::try_from(len.saturating_add(1)).unwrap_or(usize::MAX).clamp(8 << 10, 256 << 10)
}

/// [`check_package`] over any reader.
pub fn check_package_from<R: Read>(reader: R, limits: &DebLimits) -> Result<ControlParagraph, DebError> {
    walk(reader, limits, true)
}

/// The members in order; `whole`: on to the data member (else stop after the control member).
fn walk<R: Read>(mut reader: R, limits: &DebLimits, whole: bool) -> Result<ControlParagraph, DebError> {
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

    // First member: debian-binary, "2.x\n" (further lines are allowed).
    {
        let mut entry = next_member(&mut archive)?
            .ok_or_else(|| DebError::MissingDebianBinary("the archive has no members".into()))?;
        let name = member_name(&entry);
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
        let (version, newline) = match text.split_once('\n') {
            Some((line, _)) => (line, true),
            None => (&*text, false),
        };
        let minor = version.strip_prefix("2.").unwrap_or_default();
        if !newline || minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DebError::UnsupportedVersion(version.escape_default().to_string()));
        }
    }

    let mut last = "debian-binary".to_owned();
    let mut control: Option<ControlParagraph> = None;
    loop {
        let Some(mut entry) = next_member(&mut archive)? else {
            return Err(match control {
                None => DebError::NoControlTar(format!("the archive ends after {last}")),
                Some(_) => DebError::NoDataTar(format!("the archive ends after {last}")),
            });
        };
        let name = member_name(&entry);
        let short = Cell::new(false);
        let truncated = || DebError::Truncated(format!("member {name}"));
        if name.starts_with('_') {
            // dpkg skips these; reading them through says where a cut file ends.
            if whole {
                io::copy(&mut exact(&mut entry, &short), &mut io::sink())
                    .map_err(|e| if short.get() { truncated() } else { e.into() })?;
            }
        } else if name.starts_with("control.tar") {
            if control.is_some() {
                return Err(DebError::MemberOrder(format!(
                    "a second control member \"{name}\" after {last}; dpkg-deb refuses a package with two"
                )));
            }
            let paragraph = read_control_member(exact(&mut entry, &short), &name, &short, limits, whole)?;
            if !whole {
                return Ok(paragraph);
            }
            control = Some(paragraph);
        } else if let (true, Some(paragraph)) = (name.starts_with("data.tar"), &control) {
            check_data_member(exact(&mut entry, &short), &name, &short)?;
            // Members after the data member are ignored, as deb(5) says they must be.
            return Ok(paragraph.clone());
        } else if control.is_none() {
            return Err(DebError::NoControlTar(format!("found \"{name}\" where it was expected")));
        } else {
            return Err(DebError::MemberOrder(format!(
                "unknown member \"{name}\" after {last}, before the data member; dpkg-deb refuses it (only \
                 members named _* may be added there)"
            )));
        }
        last = name;
    }
}

/// An ar member's name as dpkg reads it: trailing spaces and `/` dropped.
fn member_name<R: Read>(entry: &ar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(entry.header().identifier()).trim_end_matches([' ', '/']).to_owned()
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

/// `./control`, `control`, `././control`: the control file, wherever tar puts it.
fn is_control_path(path: &[u8]) -> bool {
    let mut rest = path;
    while let Some(after) = rest.strip_prefix(b"./") {
        rest = after;
    }
    rest == b"control"
}

/// Decompress a control.tar[.gz|.xz|.zst] member (at most `limits.control_tar`
/// bytes of it), find its one `control` file and parse it. `whole`: also
/// decode the member to its end.
fn read_control_member<'a, E: Read + 'a>(
    member: Exact<'a, E>,
    name: &str,
    short: &Cell<bool>,
    limits: &DebLimits,
    whole: bool,
) -> Result<ControlParagraph, DebError> {
    let over = Cell::new(false);
    let cap = &limits.control_tar;
    let fail = |error: io::Error| {
        if over.get() {
            DebError::TooLarge {
                member: name.to_string(),
                what: "the control archive".into(),
                limit: cap.value,
                setting: cap.setting.clone(),
            }
        } else if short.get() {
            DebError::Truncated(format!("member {name}"))
        } else {
            DebError::Decompress { member: name.to_string(), error }
        }
    };
    let buffered = BufReader::with_capacity(buffer_for(member.left).min(64 << 10), member);
    let reader: Box<dyn Read + 'a> = match &name["control.tar".len()..] {
        "" => Box::new(buffered),
        ".gz" => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        ".xz" => Box::new(liblzma::bufread::XzDecoder::new_stream(buffered, xz_stream(false).map_err(fail)?)),
        ".zst" => Box::new(ZstdFrames::new(buffered)),
        _ => return Err(DebError::UnsupportedCompression(name.to_string())),
    };
    // Why a cap on everything unpacked, not only on the control file: the tar
    // reader holds long names and PAX headers in memory, and a control.tar of
    // a few kilobytes can unpack to gigabytes.
    let mut tar = tar::Archive::new(Capped { inner: reader, left: cap.value, over: &over });
    let mut found: Vec<String> = Vec::new();
    let mut paragraph = None;
    for entry in tar.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let path = entry.path_bytes().into_owned();
        if !is_control_path(&path) {
            continue;
        }
        found.push(String::from_utf8_lossy(&path).into_owned());
        if found.len() > 1 {
            return Err(DebError::DuplicateControl { member: name.to_string(), paths: found.join(", ") });
        }
        if !entry.header().entry_type().is_file() {
            return Err(DebError::ControlNotAFile { member: name.to_string(), path: found[0].clone() });
        }
        let file_cap = &limits.control_file;
        let too_large = || DebError::TooLarge {
            member: name.to_string(),
            what: format!("its control file {:?}", found[0]),
            limit: file_cap.value,
            setting: file_cap.setting.clone(),
        };
        if entry.header().size().map_err(fail)? > file_cap.value {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        (&mut entry).take(file_cap.value + 1).read_to_end(&mut bytes).map_err(fail)?;
        if bytes.len() as u64 > file_cap.value {
            return Err(too_large());
        }
        let bad = |message: String| DebError::BadControl { member: name.to_string(), message };
        let text = String::from_utf8(bytes).map_err(|_| bad("not valid UTF-8".into()))?;
        let control = ControlParagraph::parse(&text).map_err(|error| bad(format!("{error:#}")))?;
        let missing: Vec<&'static str> =
            REQUIRED_FIELDS.into_iter().filter(|field| control.get(field).is_none_or(str::is_empty)).collect();
        if !missing.is_empty() {
            return Err(DebError::MissingFields(missing));
        }
        paragraph = Some(control);
    }
    let paragraph = paragraph.ok_or_else(|| DebError::NoControlFile { member: name.to_string() })?;
    if whole {
        // The rest of the stream (end-of-archive blocks, the compressor's
        // trailer and checksum), still within the cap.
        io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(fail)?;
    }
    Ok(paragraph)
}

/// An xz (or, `lzma`, legacy .lzma) decoder within [`XZ_MEMLIMIT`]; xz
/// streams may be concatenated, as `xz -d` accepts them.
fn xz_stream(lzma: bool) -> io::Result<liblzma::stream::Stream> {
    let stream = if lzma {
        liblzma::stream::Stream::new_lzma_decoder(XZ_MEMLIMIT)
    } else {
        liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, liblzma::stream::CONCATENATED)
    };
    stream.map_err(io::Error::other)
}

/// Decode a data.tar[.gz|.xz|.zst|.bz2|.lzma] member to its end and walk the
/// tar archive inside, keeping nothing.
fn check_data_member<E: Read>(mut member: Exact<'_, E>, name: &str, short: &Cell<bool>) -> Result<(), DebError> {
    let corrupt = |error: io::Error| {
        if short.get() {
            DebError::Truncated(format!("member {name}"))
        } else {
            DebError::DataCorrupt { member: name.to_string(), error }
        }
    };
    {
        let buffered = BufReader::with_capacity(buffer_for(member.left), &mut member);
        let mut decoded: Box<dyn Read + '_> = match &name["data.tar".len()..] {
            "" => Box::new(buffered),
            ".gz" => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            ".xz" => Box::new(liblzma::bufread::XzDecoder::new_stream(buffered, xz_stream(false).map_err(corrupt)?)),
            ".lzma" => Box::new(liblzma::bufread::XzDecoder::new_stream(buffered, xz_stream(true).map_err(corrupt)?)),
            ".zst" => Box::new(ZstdFrames::new(buffered)),
            ".bz2" => Box::new(bzip2::bufread::MultiBzDecoder::new(buffered)),
            _ => return Err(DebError::UnsupportedDataCompression(name.to_string())),
        };
        match walk_tar(&mut decoded) {
            Ok(()) => {}
            Err(TarProblem::Io(error)) => return Err(corrupt(error)),
            Err(TarProblem::Broken(message)) => return Err(DebError::DataTar { member: name.to_string(), message }),
        }
        // Past the tar's end: the rest of the stream must decode too.
        io::copy(&mut decoded, &mut io::sink()).map_err(corrupt)?;
    }
    // Whatever the decoder did not need (a .lzma stream has no multi-stream
    // form): read to the member's end, so that a cut file is still noticed.
    io::copy(&mut member, &mut io::sink()).map_err(corrupt)?;
    Ok(())
}

/// What walking a tar stream ran into.
enum TarProblem {
    /// Reading (decompressing) failed.
    Io(io::Error),
    /// The bytes decode, but are not a complete tar archive.
    Broken(String),
}

impl From<io::Error> for TarProblem {
    fn from(e: io::Error) -> Self {
        TarProblem::Io(e)
    }
}

/// Walk a tar stream's headers to its end, skipping every entry's data, in
/// bounded memory (long names are skipped, not read; a PAX header is read
/// only for a `size` that overrides its entry's). A header's checksum must
/// match, an entry's data must be all there; the archive ends at a zero
/// block, or at the end of the stream between entries (as dpkg's reader
/// allows). Written here rather than with the `tar` crate, which holds long
/// names and PAX headers of any size in memory.
fn walk_tar(r: &mut dyn Read) -> Result<(), TarProblem> {
    let mut block = [0u8; 512];
    let mut pax_size: Option<u64> = None;
    let mut entries = 0u64;
    loop {
        let got = read_full(r, &mut block)?;
        if got == 0 {
            return Ok(());
        }
        if got < block.len() {
            return Err(TarProblem::Broken(format!(
                "it ends inside a header ({got} of 512 bytes, after {entries} entries)"
            )));
        }
        if block.iter().all(|b| *b == 0) {
            return Ok(());
        }
        entries += 1;
        let name = tar_entry_name(&block);
        let number = entries;
        let broken = |what: String| TarProblem::Broken(format!("entry {number} ({name:?}): {what}"));
        let recorded =
            parse_tar_number(&block[148..156]).ok_or_else(|| broken("its checksum field is not a number".into()))?;
        let unsigned: u64 =
            block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u64::from(*b) }).sum();
        let signed: i64 =
            block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { i64::from(*b as i8) }).sum();
        if recorded != unsigned && recorded as i64 != signed {
            return Err(broken(format!("header checksum {recorded} does not match its bytes ({unsigned})")));
        }
        let mut size =
            parse_tar_number(&block[124..136]).ok_or_else(|| broken("its size field is not a number".into()))?;
        let typeflag = block[156];
        match typeflag {
            // Hard and symbolic links, devices, directories, FIFOs: no data.
            b'1'..=b'6' => {
                pax_size = None;
                continue;
            }
            b'x' => {
                if size > PAX_LIMIT {
                    return Err(broken(format!("a PAX header of {size} bytes (at most {PAX_LIMIT} are read)")));
                }
                let mut records = vec![0u8; size as usize];
                if read_full(r, &mut records)? < records.len() {
                    return Err(broken("the archive ends inside its PAX header".into()));
                }
                skip(r, size.next_multiple_of(512) - size)
                    .map_err(|_| broken("the archive ends inside its PAX header".into()))?;
                pax_size = pax_record(&records, "size")
                    .map(|v| v.parse().map_err(|_| broken(format!("PAX size {v:?}"))))
                    .transpose()?;
                continue;
            }
            // GNU long names, PAX global headers: data skipped like any other.
            b'L' | b'K' | b'g' => {}
            _ => {
                if let Some(n) = pax_size.take() {
                    size = n;
                }
            }
        }
        let want = size.next_multiple_of(512);
        let skipped = skip(r, want)?;
        if skipped < want {
            return Err(broken(format!("the archive ends inside its data ({skipped} of {want} bytes)")));
        }
    }
}

/// Fill `buf` as far as the stream goes; the number of bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Read and drop `n` bytes; how many there were.
fn skip(r: &mut dyn Read, n: u64) -> io::Result<u64> {
    io::copy(&mut r.take(n), &mut io::sink())
}

/// A tar header's name (ustar prefix included), for messages.
fn tar_entry_name(block: &[u8; 512]) -> String {
    let field = |bytes: &[u8]| {
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    };
    let name = field(&block[..100]);
    let prefix = if &block[257..262] == b"ustar" { field(&block[345..500]) } else { String::new() };
    if prefix.is_empty() { name } else { format!("{prefix}/{name}") }
}

/// A tar number field: octal digits (space or NUL padded), or GNU's
/// base-256 form (high bit of the first byte set).
fn parse_tar_number(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?.trim_matches(|c: char| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The value of `key` in PAX extended header records (`<len> <key>=<value>\n`).
fn pax_record<'r>(records: &'r [u8], key: &str) -> Option<&'r str> {
    let text = std::str::from_utf8(records).ok()?;
    text.lines().filter_map(|line| line.split_once(' ')?.1.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// A reader that fails once more than `left` bytes would come out of it, and
/// says so in `over`.
struct Capped<'c, R> {
    inner: R,
    left: u64,
    over: &'c Cell<bool>,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // At the cap: fine if the stream ends here, over it otherwise.
            let mut one = [0u8; 1];
            if self.inner.read(&mut one)? == 0 {
                return Ok(0);
            }
            self.over.set(true);
            return Err(io::Error::other("over the unpacked-size cap"));
        }
        let max = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Every zstd frame of a stream, decoded in turn (`zstd -d` accepts several;
/// skippable frames are skipped), each frame's checksum verified when it
/// carries one. ruzstd's own streaming reader decodes a single frame.
struct ZstdFrames<R> {
    source: R,
    decoder: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        ZstdFrames { source, decoder: ruzstd::decoding::FrameDecoder::new(), in_frame: false }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        let invalid = |e: FrameDecoderError| io::Error::new(io::ErrorKind::InvalidData, e);
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                let n = self.decoder.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if !self.decoder.is_finished() {
                    self.decoder
                        .decode_blocks(&mut self.source, ruzstd::decoding::BlockDecodingStrategy::UptoBlocks(1))
                        .map_err(invalid)?;
                    continue;
                }
                if let (Some(sent), Some(computed)) =
                    (self.decoder.get_checksum_from_data(), self.decoder.get_calculated_checksum())
                    && sent != computed
                {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "zstd frame checksum mismatch"));
                }
                self.in_frame = false;
            }
            if self.source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame { length, .. })) => {
                    let want = u64::from(length);
                    if io::copy(&mut (&mut self.source).take(want), &mut io::sink())? < want {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "zstd skippable frame cut short"));
                    }
                }
                Err(e) => return Err(invalid(e)),
            }
        }
    }
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

    // ---- check_package: the whole package, as dpkg would check it ----

    /// The members of an ar archive, in order.
    fn members(deb: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = ar::Archive::new(deb);
        let mut out = Vec::new();
        while let Some(entry) = archive.next_entry() {
            let mut entry = entry.unwrap();
            let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            out.push((name, bytes));
        }
        out
    }

    /// The fixture's control.tar.gz and its data.tar, uncompressed.
    fn fixture_parts() -> (Vec<u8>, Vec<u8>) {
        let parts = members(&fixture().build().unwrap());
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&parts[2].1[..]).read_to_end(&mut tar).unwrap();
        (parts[1].1.clone(), tar)
    }

    /// `data` compressed as a member named `data.tar<suffix>` wants.
    fn compress(data: &[u8], suffix: &str) -> Vec<u8> {
        use std::io::Write;
        match suffix {
            "" => data.to_vec(),
            ".gz" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            ".xz" => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            ".lzma" => {
                let options = liblzma::stream::LzmaOptions::new_preset(1).unwrap();
                let stream = liblzma::stream::Stream::new_lzma_encoder(&options).unwrap();
                let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            ".zst" => ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest),
            ".bz2" => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            other => panic!("no compressor for {other}"),
        }
    }

    /// The fixture's control member and the given members after it.
    fn package(after_control: &[(&str, &[u8])]) -> Vec<u8> {
        let (control_tar, _) = fixture_parts();
        let mut all: Vec<(&str, &[u8])> = vec![("debian-binary", b"2.0\n"), ("control.tar.gz", &control_tar)];
        all.extend_from_slice(after_control);
        ar_of(&all)
    }

    fn check(deb: &[u8]) -> Result<ControlParagraph, DebError> {
        check_package_from(deb, &DebLimits::default())
    }

    /// dpkg-deb's own verdict on the data member: `--fsys-tarfile` decodes it
    /// to its end through tar.
    fn dpkg_accepts(deb: &[u8]) -> bool {
        require_dpkg_deb();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.deb");
        std::fs::write(&path, deb).unwrap();
        let out = Command::new(DPKG_DEB).arg("--fsys-tarfile").arg(&path).output().unwrap();
        if !out.status.success() {
            return false;
        }
        // dpkg-deb pipes the tar out; tar is the one that reads it through.
        let mut tar = Command::new("tar")
            .arg("-tf")
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        let _ = tar.stdin.take().unwrap().write_all(&out.stdout);
        tar.wait().unwrap().success()
    }

    #[test]
    fn every_data_compression_dpkg_reads_is_read_to_its_end() {
        let (_, tar) = fixture_parts();
        for suffix in ["", ".gz", ".xz", ".zst", ".bz2", ".lzma"] {
            let member = format!("data.tar{suffix}");
            let deb = package(&[(&member, &compress(&tar, suffix))]);
            assert!(dpkg_accepts(&deb), "dpkg-deb refuses {member}");
            let control = check(&deb).unwrap_or_else(|e| panic!("{member}: {e}"));
            assert_eq!(control.get("Package"), Some("kiro-repo"));
        }
        // The package DebBuilder writes, and several zstd frames in a row.
        assert!(check(&fixture().build().unwrap()).is_ok());
        let (first, second) = tar.split_at(1024);
        let frames = [compress(first, ".zst"), compress(second, ".zst")].concat();
        let deb = package(&[("data.tar.zst", &frames)]);
        assert!(dpkg_accepts(&deb));
        assert!(check(&deb).is_ok());
    }

    /// A data member cut short (its compressed stream, or the tar inside) is
    /// refused, as dpkg refuses it; so is one followed by garbage.
    #[test]
    fn a_data_member_that_does_not_decode_to_its_end_is_refused() {
        let (_, tar) = fixture_parts();
        for suffix in [".gz", ".xz", ".zst", ".bz2", ".lzma"] {
            let member = format!("data.tar{suffix}");
            let whole = compress(&tar, suffix);
            let cut = &whole[..whole.len() - 20];
            let deb = package(&[(&member, cut)]);
            assert!(!dpkg_accepts(&deb), "dpkg-deb takes a cut {member}");
            let err = check(&deb).unwrap_err();
            assert!(matches!(err, DebError::DataCorrupt { .. } | DebError::DataTar { .. }), "{member}: {err}");
            assert!(err.to_string().starts_with(&member), "{err}");
        }
        // The stream is whole, the tar inside is not.
        let cut_tar = &tar[..tar.len() - 3 * 512];
        let deb = package(&[("data.tar.xz", &compress(cut_tar, ".xz"))]);
        assert!(!dpkg_accepts(&deb));
        let err = check(&deb).unwrap_err().to_string();
        assert!(err.starts_with("data.tar.xz: the tar archive inside is broken: entry"), "{err}");
        assert!(err.contains("the archive ends inside its data"), "{err}");
        // A header whose checksum does not match.
        let mut bad = tar.clone();
        bad[0] ^= 1;
        let err = check(&package(&[("data.tar", &bad)])).unwrap_err().to_string();
        assert!(err.contains("header checksum"), "{err}");
        // Garbage after the stream.
        let garbage = [compress(&tar, ".xz"), b"garbage!".to_vec()].concat();
        let err = check(&package(&[("data.tar.xz", &garbage)])).unwrap_err();
        assert!(matches!(err, DebError::DataCorrupt { .. }), "{err}");
        // The file itself cut inside the data member.
        let deb = fixture().build().unwrap();
        let err = check(&deb[..deb.len() - 10]).unwrap_err().to_string();
        assert_eq!(err, "truncated package: the file ends inside member data.tar.gz");
        // read_control stops before the data member, and does not notice.
        assert!(read_control_from(&deb[..deb.len() - 10]).is_ok());
    }

    /// Member names and order as dpkg-deb requires them.
    #[test]
    fn members_in_the_order_dpkg_deb_requires() {
        let (control_tar, tar) = fixture_parts();
        let data = compress(&tar, ".gz");
        let err = check(&package(&[])).unwrap_err().to_string();
        assert_eq!(err, "no data.tar member (the archive ends after control.tar.gz)");
        let err =
            check(&ar_of(&[("debian-binary", b"2.0\n"), ("data.tar.gz", &data), ("control.tar.gz", &control_tar)]))
                .unwrap_err()
                .to_string();
        assert_eq!(err, "no control.tar member (found \"data.tar.gz\" where it was expected)");
        let err = check(&package(&[("control.tar.gz", &control_tar), ("data.tar.gz", &data)])).unwrap_err().to_string();
        assert!(err.starts_with("member order: a second control member \"control.tar.gz\""), "{err}");
        let err = check(&package(&[("extra.bin", b"x"), ("data.tar.gz", &data)])).unwrap_err().to_string();
        assert!(err.starts_with("member order: unknown member \"extra.bin\" after control.tar.gz"), "{err}");
        let err = check(&package(&[("data.tar.lz4", b"x")])).unwrap_err();
        assert!(matches!(err, DebError::UnsupportedDataCompression(_)), "{err}");
        let err = check(&ar_of(&[("debian-binary", b"2.0"), ("control.tar.gz", &control_tar)])).unwrap_err();
        assert!(matches!(err, DebError::UnsupportedVersion(_)), "no newline: {err}");

        // Members named _* are skipped where they may be; anything after the
        // data member is ignored (deb(5)). dpkg-deb agrees.
        let tolerated = package(&[("_gpgorigin", b"sig"), ("data.tar.gz", &data), ("extra.bin", b"x")]);
        assert!(dpkg_accepts(&tolerated));
        assert!(check(&tolerated).is_ok());
        for refused in [package(&[]), package(&[("extra.bin", b"x"), ("data.tar.gz", &data)])] {
            assert!(!dpkg_accepts(&refused));
        }
    }

    /// A control.tar of the given entries, gzipped.
    fn control_tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        tar_gz(entries.iter().map(|(name, bytes)| (name.to_string(), 0o644, Some(*bytes))), 0).unwrap()
    }

    const CONTROL: &[u8] = b"Package: x\nVersion: 1\nArchitecture: all\n";

    /// Exactly one control file, a regular one: dpkg would unpack a second
    /// over the first, and this reader would have taken the first.
    #[test]
    fn exactly_one_control_file() {
        let (_, tar) = fixture_parts();
        let data = compress(&tar, ".gz");
        let two =
            control_tar_of(&[("./control", CONTROL), ("./control", b"Package: y\nVersion: 2\nArchitecture: all\n")]);
        for deb in [
            deb_with("control.tar.gz", &two),
            ar_of(&[("debian-binary", b"2.0\n"), ("control.tar.gz", &two), ("data.tar.gz", &data)]),
        ] {
            let err = read_control_from(&deb[..]).unwrap_err();
            assert_eq!(
                err.to_string(),
                "control.tar.gz has more than one control file (./control, ./control); dpkg would unpack them one over another"
            );
            assert!(check(&deb).is_err());
        }
        let also = control_tar_of(&[("./control", CONTROL), ("control", CONTROL)]);
        let err = read_control_from(&deb_with("control.tar.gz", &also)[..]).unwrap_err();
        assert!(matches!(err, DebError::DuplicateControl { .. }), "{err}");

        // A symbolic link named control.
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        let mut builder = tar::Builder::new(Vec::new());
        builder.append_link(&mut header, "./control", "/etc/passwd").unwrap();
        let link = compress(&builder.into_inner().unwrap(), ".gz");
        let err = read_control_from(&deb_with("control.tar.gz", &link)[..]).unwrap_err();
        assert!(matches!(err, DebError::ControlNotAFile { .. }), "{err}");
    }

    /// A small package whose control archive unpacks to far more than the
    /// caps is refused once the cap is reached, not read into memory.
    #[test]
    fn the_control_archive_is_unpacked_within_its_caps() {
        // 64 MiB of control file, compressed to about 64 KiB.
        let mut big = CONTROL.to_vec();
        big.resize(64 << 20, b'\n');
        let bomb = control_tar_of(&[("./control", &big)]);
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        let err = read_control_from(&deb_with("control.tar.gz", &bomb)[..]).unwrap_err().to_string();
        assert_eq!(
            err,
            "control.tar.gz: its control file \"./control\" unpacks to more than 1048576 bytes (1 MiB) \
             (limits.max_control_file_bytes, by default; set it in repository.yaml)"
        );
        // The whole archive: a large md5sums beside a small control.
        let sums = vec![b'0'; 20 << 20];
        let wide = control_tar_of(&[("./control", CONTROL), ("./md5sums", &sums)]);
        let err = read_control_from(&deb_with("control.tar.gz", &wide)[..]).unwrap_err().to_string();
        assert!(
            err.starts_with("control.tar.gz: the control archive unpacks to more than 16777216 bytes (16 MiB)"),
            "{err}"
        );
        // Raised caps let both through, and name their setting when reached.
        let limits = DebLimits {
            control_file: Limit::new(128 << 20, "limits.max_control_file_bytes in repository.yaml"),
            control_tar: Limit::new(21 << 20, "limits.max_control_tar_bytes in repository.yaml"),
        };
        let read = |deb: &[u8], limits: &DebLimits| walk(deb, limits, false);
        assert!(read(&deb_with("control.tar.gz", &wide), &limits).is_ok());
        let err = read(&deb_with("control.tar.gz", &bomb), &limits).unwrap_err().to_string();
        assert!(err.ends_with("(limits.max_control_tar_bytes in repository.yaml)"), "{err}");
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

    /// The one-pass check gives what the separate readers give: the same
    /// control paragraph as `check_package` and the digests of every byte,
    /// members after the data member included; and refuses what it refuses.
    #[test]
    fn hashed_check_covers_the_whole_file() {
        let (_, data_tar) = fixture_parts();
        let data = compress(&data_tar, ".gz");
        let dir = tempfile::tempdir().unwrap();
        let limits = DebLimits::default();
        let trailing = vec![7u8; 300_000];
        for (name, deb) in [
            ("plain", fixture().build().unwrap()),
            ("trailing", package(&[("data.tar.gz", &data), ("_extra", &trailing)])),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, &deb).unwrap();
            let checked = check_package_hashed(&path, &limits).unwrap();
            assert_eq!(checked.checksums, crate::digest::Checksums::of(&deb), "{name}");
            assert_eq!(checked.control, check_package(&path, &limits).unwrap(), "{name}");
            assert!(checked.within(&limits));
        }
        let cut = package(&[("data.tar.gz", &data[..data.len() / 2])]);
        let path = dir.path().join("cut");
        std::fs::write(&path, &cut).unwrap();
        assert!(check_package_hashed(&path, &limits).is_err(), "a cut data member is refused");
        let smaller = DebLimits { control_file: Limit { value: 10, ..limits.control_file.clone() }, ..limits.clone() };
        let checked = check_package_hashed(&dir.path().join("plain"), &limits).unwrap();
        assert!(!checked.within(&smaller), "a check within other caps is not taken");
    }
}
