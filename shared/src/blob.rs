//! Object storage: where pool files, index files and private state live.
//!
//! [`ObjectStore`] is the seam between the pipeline and S3; [`DirStore`] is the
//! local implementation over a directory. Keys are `/`-separated relative paths
//! (`pool/main/k/kiro/kiro_0.7.45_amd64.deb`). Writes are atomic (temporary file
//! then rename), and [`WriteMode::WriteOnce`] keys (pool, by-hash) can be written
//! again only with identical bytes.

use async_trait::async_trait;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace whatever is there (InRelease, index.html).
    Overwrite,
    /// Content-addressed or immutable: a second write must carry the same bytes.
    WriteOnce,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{key}: already exists with different content (sha256 {existing}, refusing to overwrite with {new})")]
    Conflict { key: String, existing: String, new: String },
    #[error("{key}: not found")]
    NotFound { key: String },
    #[error("{key}: invalid object key")]
    BadKey { key: String },
    #[error("{key}: {message}")]
    Io { key: String, message: String },
}

impl BlobError {
    pub fn io(key: &str, e: impl std::fmt::Display) -> BlobError {
        BlobError::Io { key: key.to_owned(), message: e.to_string() }
    }
}

/// How clients and caches may keep an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// Never changes once written (content-addressed, write-once): a year.
    Immutable,
    /// Replaced by a later publish: a minute.
    Short,
    /// Not public (staging, generations, run files): never cached.
    Private,
}

impl Caching {
    /// The `Cache-Control` header.
    pub fn header(self) -> &'static str {
        match self {
            Caching::Immutable => "public, max-age=31536000, immutable",
            Caching::Short => "public, max-age=60",
            Caching::Private => "no-store",
        }
    }
}

/// What an object is to the clients that read it: its `Content-Type` and
/// how long it may be cached. The repository format decides it for its own
/// files ([`crate::repository::RepositoryFormat::object_meta`]); a backend
/// that sends headers (S3) only applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: &'static str,
    pub caching: Caching,
}

/// Decides the [`ObjectMeta`] of each key of a store.
pub trait ObjectLayout: Send + Sync {
    fn meta(&self, key: &str) -> ObjectMeta;
}

/// Prefixes of a bucket that are never published (also the private
/// directory's layout locally): what the steps leave for each other.
pub const PRIVATE_PREFIXES: &[&str] = &["staging/", "generations/", "runs/", "tmp/", "config/"];

/// Private objects: JSON or bytes, never cached.
pub struct PrivateLayout;

impl ObjectLayout for PrivateLayout {
    fn meta(&self, key: &str) -> ObjectMeta {
        let content_type = if key.ends_with(".json") { "application/json" } else { "application/octet-stream" };
        ObjectMeta { content_type, caching: Caching::Private }
    }
}

/// A bucket holding repositories side by side and the private prefixes
/// beside them: the private ones are [`PrivateLayout`], every other key
/// belongs to the repository whose prefix is the longest one it starts with
/// (asked with the key relative to that prefix).
pub struct BucketLayout {
    /// `(prefix, layout)`; `""` is the root.
    pub repositories: Vec<(String, std::sync::Arc<dyn ObjectLayout>)>,
}

impl BucketLayout {
    /// One repository at the root.
    pub fn single(layout: std::sync::Arc<dyn ObjectLayout>) -> BucketLayout {
        BucketLayout { repositories: vec![(String::new(), layout)] }
    }
}

impl ObjectLayout for BucketLayout {
    fn meta(&self, key: &str) -> ObjectMeta {
        if PRIVATE_PREFIXES.iter().any(|p| key.starts_with(p)) {
            return PrivateLayout.meta(key);
        }
        match self.repositories.iter().filter(|(p, _)| key.starts_with(p.as_str())).max_by_key(|(p, _)| p.len()) {
            Some((prefix, layout)) => layout.meta(&key[prefix.len()..]),
            None => PrivateLayout.meta(key),
        }
    }
}

/// A repository's view of a shared store: its keys live under `prefix`
/// (`brew/`), and it reads and writes them as if at the root.
pub struct Prefixed {
    pub inner: std::sync::Arc<dyn ObjectStore>,
    /// Ends with `/`.
    pub prefix: String,
}

impl Prefixed {
    fn key(&self, key: &str) -> Result<String, BlobError> {
        check_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }
}

#[async_trait]
impl ObjectStore for Prefixed {
    async fn put_bytes(&self, key: &str, data: Vec<u8>, mode: WriteMode) -> Result<(), BlobError> {
        self.inner.put_bytes(&self.key(key)?, data, mode).await
    }
    async fn put_file(&self, key: &str, path: &Path, sha256: &str, mode: WriteMode) -> Result<(), BlobError> {
        self.inner.put_file(&self.key(key)?, path, sha256, mode).await
    }
    async fn put_open_file(
        &self,
        key: &str,
        file: &std::fs::File,
        sha256: &str,
        mode: WriteMode,
    ) -> Result<(), BlobError> {
        self.inner.put_open_file(&self.key(key)?, file, sha256, mode).await
    }
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        self.inner.get_bytes(&self.key(key)?).await
    }
    async fn get_to_file(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        self.inner.get_to_file(&self.key(key)?, path).await
    }
    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.inner.local_path(&self.key(key).ok()?)
    }
    async fn copy(&self, from: &str, to: &str, mode: WriteMode) -> Result<(), BlobError> {
        self.inner.copy(&self.key(from)?, &self.key(to)?, mode).await
    }
    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        self.inner.exists(&self.key(key)?).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BlobError> {
        let listed = self.inner.list(&format!("{}{prefix}", self.prefix)).await?;
        Ok(listed
            .into_iter()
            .map(|o| ObjectInfo { key: o.key[self.prefix.len()..].to_owned(), size: o.size })
            .collect())
    }
    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.inner.delete(&self.key(key)?).await
    }
    async fn adopt(&self, from: &str, to: &str, sha256: &str, size: Option<u64>) -> Result<Adopted, BlobError> {
        self.inner.adopt(&self.key(from)?, &self.key(to)?, sha256, size).await
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// Names that a rewrite in front of the public store resolves to the object
/// holding their bytes: a Homebrew mirror's flat bottle names (brew asks for
/// `bottles/<name>-<version>.<tag>.bottle.tar.gz`, the store holds
/// `blobs/sha256/<hex>`). On AWS a CloudFront Function reads them from a
/// CloudFront key value store; `pkgrelay serve` needs none (it reads
/// `bottles_hash.json` itself), so a local context has no `EdgeNames`.
#[async_trait]
pub trait EdgeNames: Send + Sync {
    /// Make each `(key, value)` resolvable (keys are public keys, with the
    /// repository's prefix; values what the rewrite reads), all before returning.
    async fn put(&self, entries: &[(String, String)]) -> Result<(), BlobError>;
    /// Forget `keys` (retention, once no generation within the grace period
    /// names them); a key not there is no error.
    async fn delete(&self, keys: &[String]) -> Result<(), BlobError>;
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Store `data` at `key`.
    async fn put_bytes(&self, key: &str, data: Vec<u8>, mode: WriteMode) -> Result<(), BlobError>;
    /// Store the file at `path` (whose SHA256 the caller computed) at `key`. The
    /// file is consumed: it may be moved rather than copied.
    async fn put_file(&self, key: &str, path: &Path, sha256: &str, mode: WriteMode) -> Result<(), BlobError>;
    /// Store the bytes of the open `file` (whose SHA256 the caller computed)
    /// at `key`. A directory store links the file's inode itself (a staged
    /// upload, pinned by its descriptor, becomes the pool file without a
    /// copy); the default writes a temporary copy and stores it with
    /// [`ObjectStore::put_file`].
    async fn put_open_file(
        &self,
        key: &str,
        file: &std::fs::File,
        sha256: &str,
        mode: WriteMode,
    ) -> Result<(), BlobError> {
        let tmp = copy_to_temp(key, file, None)?;
        self.put_file(key, &tmp, sha256, mode).await
    }
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError>;
    /// Copy the object into a local file (streaming; objects can be gigabytes).
    async fn get_to_file(&self, key: &str, path: &Path) -> Result<(), BlobError>;
    /// The object's own file, when the store is a local directory: readers
    /// can open it in place instead of copying it first.
    fn local_path(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }
    /// Copy within the store (server-side on S3).
    async fn copy(&self, from: &str, to: &str, mode: WriteMode) -> Result<(), BlobError>;
    async fn exists(&self, key: &str) -> Result<bool, BlobError>;
    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BlobError>;
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// Give the object at `from` the write-once name `to` as well, if its
    /// bytes are what the caller expects (`sha256`, and `size` when known):
    /// the object is read through once for its checksums, and `to` is
    /// written only when they match. `from` is left as it is. What a mirror
    /// that stored its files under other names is seeded from
    /// (`pkgrelay brew import-hash`).
    ///
    /// This default copies (the object into a local file, then `put_file`);
    /// a backend that can give an object a second name without a second copy
    /// of its bytes does so instead: a hard link in a directory, a
    /// server-side copy on S3.
    async fn adopt(&self, from: &str, to: &str, sha256: &str, size: Option<u64>) -> Result<Adopted, BlobError> {
        let tmp = tempfile::NamedTempFile::new().map_err(|e| BlobError::io(from, e))?.into_temp_path();
        self.get_to_file(from, &tmp).await?;
        let checksums = crate::digest::Checksums::of_file(&tmp).map_err(|e| BlobError::io(from, e))?;
        let placed = Adopted::matches(&checksums, sha256, size);
        if placed {
            self.put_file(to, &tmp, sha256, WriteMode::WriteOnce).await?;
        }
        Ok(Adopted { checksums, placed })
    }
}

/// What [`ObjectStore::adopt`] found: the checksums of the bytes read, and
/// whether the new name now holds them (false: they were not what the
/// caller expected, and nothing was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    pub checksums: crate::digest::Checksums,
    pub placed: bool,
}

impl Adopted {
    /// `checksums` are the expected bytes.
    pub fn matches(checksums: &crate::digest::Checksums, sha256: &str, size: Option<u64>) -> bool {
        checksums.sha256.eq_ignore_ascii_case(sha256) && size.is_none_or(|s| s == checksums.size)
    }
}

/// The whole content of the open `file` (from its start) copied into a new
/// temporary file, in `dir` or the system's temporary directory.
fn copy_to_temp(key: &str, file: &std::fs::File, dir: Option<&Path>) -> Result<tempfile::TempPath, BlobError> {
    use std::io::Seek;
    let tmp = match dir {
        Some(dir) => tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir),
        None => tempfile::NamedTempFile::new(),
    }
    .map_err(|e| BlobError::io(key, e))?;
    let mut source = file;
    source.seek(std::io::SeekFrom::Start(0)).map_err(|e| BlobError::io(key, e))?;
    std::io::copy(&mut source, &mut tmp.as_file()).map_err(|e| BlobError::io(key, e))?;
    Ok(tmp.into_temp_path())
}

/// Keys must be plain relative paths: no `..`, no empty or `.` component, no
/// leading `/`, no backslash. Checked here once for every backend.
pub fn check_key(key: &str) -> Result<(), BlobError> {
    let ok = !key.is_empty() && !key.contains('\\') && key.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if ok { Ok(()) } else { Err(BlobError::BadKey { key: key.to_owned() }) }
}

/// An [`ObjectStore`] over a local directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<DirStore> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(DirStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// A write-once key that exists already accepts identical content (the
    /// write is a no-op) and refuses anything else.
    fn compare_existing(key: &str, dest: &Path, sha256: &str) -> Result<(), BlobError> {
        let existing = crate::digest::sha256_file(dest).map_err(|e| BlobError::io(key, e))?;
        if existing.eq_ignore_ascii_case(sha256) {
            Ok(())
        } else {
            Err(BlobError::Conflict { key: key.to_owned(), existing, new: sha256.to_owned() })
        }
    }

    /// Move the temporary file into place. Write-once keys never replace an
    /// existing file: identical content is accepted, anything else is a
    /// conflict. `sha256` of the new content is computed only if a comparison needs it.
    fn commit(
        &self,
        key: &str,
        tmp: tempfile::TempPath,
        sha256: Option<&str>,
        mode: WriteMode,
    ) -> Result<(), BlobError> {
        let dest = self.path(key)?;
        match mode {
            WriteMode::Overwrite => tmp.persist(&dest).map_err(|e| BlobError::io(key, e.error)),
            WriteMode::WriteOnce => match tmp.persist_noclobber(&dest) {
                Ok(()) => Ok(()),
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let new = match sha256 {
                        Some(s) => s.to_owned(),
                        None => crate::digest::sha256_file(&e.path).map_err(|e| BlobError::io(key, e))?,
                    };
                    Self::compare_existing(key, &dest, &new)
                }
                Err(e) => Err(BlobError::io(key, e.error)),
            },
        }
    }

    /// A temporary file in the destination's directory, so that the final rename
    /// stays on one filesystem and is atomic.
    fn temp_for(&self, key: &str) -> Result<tempfile::NamedTempFile, BlobError> {
        let dest = self.path(key)?;
        let dir = dest.parent().expect("keys have a parent under root");
        std::fs::create_dir_all(dir).map_err(|e| BlobError::io(key, e))?;
        tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(|e| BlobError::io(key, e))
    }

    /// `dest` holds exactly `data` already.
    fn holds(dest: &Path, data: &[u8]) -> bool {
        std::fs::metadata(dest).is_ok_and(|m| m.is_file() && m.len() == data.len() as u64)
            && std::fs::read(dest).is_ok_and(|existing| existing == data)
    }

    fn put_bytes_sync(&self, key: &str, data: &[u8], mode: WriteMode) -> Result<(), BlobError> {
        use std::io::Write;
        let dest = self.path(key)?;
        // Written before (a forced rebuild): compare, without writing and syncing a copy first.
        match mode {
            WriteMode::WriteOnce if Self::holds(&dest, data) => return Ok(()),
            WriteMode::WriteOnce if dest.is_file() => {
                return Self::compare_existing(key, &dest, &crate::digest::sha256_hex(data));
            }
            WriteMode::Overwrite if Self::holds(&dest, data) => return Ok(()),
            _ => {}
        }
        let mut tmp = self.temp_for(key)?;
        tmp.write_all(data).and_then(|_| tmp.as_file().sync_all()).map_err(|e| BlobError::io(key, e))?;
        self.commit(key, tmp.into_temp_path(), Some(&crate::digest::sha256_hex(data)), mode)
    }

    fn put_file_sync(&self, key: &str, path: &Path, sha256: &str, mode: WriteMode) -> Result<(), BlobError> {
        let dest = self.path(key)?;
        if mode == WriteMode::WriteOnce {
            // The file is ours to consume: a hard link publishes it atomically,
            // and fails where the key exists, without a temporary file of its own.
            std::fs::create_dir_all(dest.parent().expect("keys have a parent under root"))
                .map_err(|e| BlobError::io(key, e))?;
            // One directory operation where the kernel offers it (Linux's
            // renameat2 with RENAME_NOREPLACE: fails where the key exists);
            // a bulk import makes thousands, and on ext4 each costs tens of µs.
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                path,
                rustix::fs::CWD,
                &dest,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::EXIST) => return Self::compare_existing(key, &dest, sha256),
                // Not supported here (another filesystem, an old kernel): a hard link.
                Err(_) => {}
            }
            match std::fs::hard_link(path, &dest) {
                Ok(()) => return std::fs::remove_file(path).map_err(|e| BlobError::io(key, e)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Self::compare_existing(key, &dest, sha256);
                }
                // Another filesystem (or no hard links): rename or copy below.
                Err(_) => {}
            }
        }
        let tmp = self.temp_for(key)?;
        let tmp_path = tmp.into_temp_path();
        // A rename when the file is on the same filesystem, a copy otherwise.
        if std::fs::rename(path, &tmp_path).is_err() {
            std::fs::copy(path, &tmp_path).map_err(|e| BlobError::io(key, e))?;
        }
        self.commit(key, tmp_path, Some(sha256), mode)
    }
}

impl DirStore {
    fn adopt_sync(&self, from: &str, to: &str, sha256: &str, size: Option<u64>) -> Result<Adopted, BlobError> {
        let (src, dest) = (self.path(from)?, self.path(to)?);
        let stat = |p: &Path, key: &str| {
            let m = std::fs::metadata(p).map_err(|e| not_found_or_io(key, e))?;
            if !m.is_file() {
                return Err(BlobError::NotFound { key: key.to_owned() });
            }
            Ok((m.len(), m.modified().ok()))
        };
        let before = stat(&src, from)?;
        let checksums = crate::digest::Checksums::of_file(&src).map_err(|e| not_found_or_io(from, e))?;
        if !Adopted::matches(&checksums, sha256, size) || src == dest {
            let placed = src == dest && Adopted::matches(&checksums, sha256, size);
            return Ok(Adopted { checksums, placed });
        }
        std::fs::create_dir_all(dest.parent().expect("keys have a parent under root"))
            .map_err(|e| BlobError::io(to, e))?;
        match std::fs::hard_link(&src, &dest) {
            Ok(()) => {
                // The file checked is the file linked: a writer that replaced
                // or rewrote it meanwhile shows in its size or time.
                if stat(&dest, to)? != before {
                    let _ = std::fs::remove_file(&dest);
                    return Err(BlobError::io(from, "the file changed while it was being checked; nothing was linked"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::compare_existing(to, &dest, sha256)?,
            // Another filesystem, or one without hard links: a copy.
            Err(_) => {
                let tmp = self.temp_for(to)?.into_temp_path();
                std::fs::copy(&src, &tmp).map_err(|e| not_found_or_io(from, e))?;
                self.commit(to, tmp, Some(sha256), WriteMode::WriteOnce)?;
            }
        }
        Ok(Adopted { checksums, placed: true })
    }

    /// [`ObjectStore::put_open_file`]: a write-once key gets the open file's
    /// own inode by one `linkat` of its descriptor (through
    /// `/proc/self/fd/N`, which Linux lets any process link with
    /// `AT_SYMLINK_FOLLOW`; `AT_EMPTY_PATH` would need a capability), which
    /// fails where the key exists, as write-once wants. The inode is the one
    /// the caller opened and read, whatever happened to its name since. Where
    /// that is not possible (another filesystem, no /proc, an overwrite, or
    /// an inode whose last name is gone: Linux links no such inode), a copy
    /// of the open file is written and committed as any other file.
    fn put_open_file_sync(
        &self,
        key: &str,
        file: &std::fs::File,
        sha256: &str,
        mode: WriteMode,
    ) -> Result<(), BlobError> {
        use std::os::fd::AsRawFd;
        let dest = self.path(key)?;
        let dir = dest.parent().expect("keys have a parent under root");
        if mode == WriteMode::WriteOnce {
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            let link = || {
                rustix::fs::linkat(
                    rustix::fs::CWD,
                    proc_path.as_str(),
                    rustix::fs::CWD,
                    &dest,
                    rustix::fs::AtFlags::SYMLINK_FOLLOW,
                )
            };
            // The directory is made only when the link says it is missing:
            // in a bulk import it nearly always exists, and a mkdir per
            // package is one more path walk for nothing.
            let mut linked = link();
            if linked == Err(rustix::io::Errno::NOENT) && !dir.is_dir() {
                std::fs::create_dir_all(dir).map_err(|e| BlobError::io(key, e))?;
                linked = link();
            }
            match linked {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::EXIST) => return Self::compare_existing(key, &dest, sha256),
                Err(_) => {}
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| BlobError::io(key, e))?;
        let tmp = copy_to_temp(key, file, Some(dir))?;
        self.commit(key, tmp, Some(sha256), mode)
    }
}

/// Two files with the same bytes (compared in [`READ_CHUNK`](crate::digest::READ_CHUNK)
/// pieces). Any error reads as "not the same".
fn same_content(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else { return false };
    match (fa.metadata(), fb.metadata()) {
        (Ok(ma), Ok(mb)) if ma.is_file() && mb.is_file() && ma.len() == mb.len() => {}
        _ => return false,
    }
    let chunk = crate::digest::READ_CHUNK;
    let (mut ba, mut bb) = (vec![0u8; chunk], vec![0u8; chunk]);
    loop {
        let Ok(n) = fa.read(&mut ba) else { return false };
        if n == 0 {
            return true;
        }
        if fb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

fn not_found_or_io(key: &str, e: std::io::Error) -> BlobError {
    if e.kind() == std::io::ErrorKind::NotFound {
        BlobError::NotFound { key: key.to_owned() }
    } else {
        BlobError::io(key, e)
    }
}

#[async_trait]
impl ObjectStore for DirStore {
    async fn put_bytes(&self, key: &str, data: Vec<u8>, mode: WriteMode) -> Result<(), BlobError> {
        self.put_bytes_sync(key, &data, mode)
    }

    async fn put_file(&self, key: &str, path: &Path, sha256: &str, mode: WriteMode) -> Result<(), BlobError> {
        self.put_file_sync(key, path, sha256, mode)
    }

    async fn put_open_file(
        &self,
        key: &str,
        file: &std::fs::File,
        sha256: &str,
        mode: WriteMode,
    ) -> Result<(), BlobError> {
        self.put_open_file_sync(key, file, sha256, mode)
    }

    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        std::fs::read(self.path(key)?).map_err(|e| not_found_or_io(key, e))
    }

    fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        self.path(key).ok()
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        std::fs::copy(self.path(key)?, path).map(drop).map_err(|e| not_found_or_io(key, e))
    }

    async fn copy(&self, from: &str, to: &str, mode: WriteMode) -> Result<(), BlobError> {
        let src = self.path(from)?;
        // The same bytes there already (a forced publish of an unchanged index): nothing to write.
        if mode == WriteMode::Overwrite && same_content(&src, &self.path(to)?) {
            return Ok(());
        }
        let tmp = self.temp_for(to)?.into_temp_path();
        std::fs::copy(&src, &tmp).map_err(|e| not_found_or_io(from, e))?;
        self.commit(to, tmp, None, mode)
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        Ok(self.path(key)?.is_file())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BlobError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BlobError::io(prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| BlobError::io(prefix, e))?;
                let path = entry.path();
                let rel = path.strip_prefix(&self.root).expect("under root").to_string_lossy().replace('\\', "/");
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    continue;
                }
                let meta = entry.metadata().map_err(|e| BlobError::io(&rel, e))?;
                if meta.is_dir() {
                    // Descend only where the prefix can still match.
                    if rel.starts_with(prefix) || prefix.starts_with(&format!("{rel}/")) {
                        stack.push(path);
                    }
                } else if rel.starts_with(prefix) {
                    out.push(ObjectInfo { key: rel, size: meta.len() });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// A hard link: the one file gets a second name, no byte is copied (a
    /// copy only where links cannot be made: another filesystem).
    async fn adopt(&self, from: &str, to: &str, sha256: &str, size: Option<u64>) -> Result<Adopted, BlobError> {
        let (store, from, to, sha256) = (self.clone(), from.to_owned(), to.to_owned(), sha256.to_owned());
        // Reading a bottle of a gigabyte takes seconds: off the async workers.
        tokio::task::spawn_blocking(move || store.adopt_sync(&from, &to, &sha256, size))
            .await
            .map_err(|e| BlobError::io("adopt", e))?
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match std::fs::remove_file(self.path(key)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlobError::io(key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_once_accepts_same_bytes_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::new(dir.path()).unwrap();
        s.put_bytes("pool/a/x.deb", b"one".to_vec(), WriteMode::WriteOnce).await.unwrap();
        s.put_bytes("pool/a/x.deb", b"one".to_vec(), WriteMode::WriteOnce).await.unwrap();
        let e = s.put_bytes("pool/a/x.deb", b"two".to_vec(), WriteMode::WriteOnce).await.unwrap_err();
        assert!(matches!(e, BlobError::Conflict { .. }), "{e}");
        assert_eq!(s.get_bytes("pool/a/x.deb").await.unwrap(), b"one");
        s.put_bytes("index.html", b"a".to_vec(), WriteMode::Overwrite).await.unwrap();
        s.put_bytes("index.html", b"b".to_vec(), WriteMode::Overwrite).await.unwrap();
        assert_eq!(s.get_bytes("index.html").await.unwrap(), b"b");
    }

    #[tokio::test]
    async fn put_file_consumes_the_file_and_keeps_write_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::new(dir.path().join("root")).unwrap();
        let file = |name: &str, data: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        let sha = |d: &[u8]| crate::digest::sha256_hex(d);
        let a = file("a", b"one");
        s.put_file("pool/x.deb", &a, &sha(b"one"), WriteMode::WriteOnce).await.unwrap();
        assert!(!a.exists(), "consumed");
        s.put_file("pool/x.deb", &file("b", b"one"), &sha(b"one"), WriteMode::WriteOnce).await.unwrap();
        let e = s.put_file("pool/x.deb", &file("c", b"two"), &sha(b"two"), WriteMode::WriteOnce).await.unwrap_err();
        assert!(matches!(e, BlobError::Conflict { .. }), "{e}");
        assert_eq!(s.get_bytes("pool/x.deb").await.unwrap(), b"one");
        // Bytes over an existing write-once key: compared, never replaced.
        let e = s.put_bytes("pool/x.deb", b"three".to_vec(), WriteMode::WriteOnce).await.unwrap_err();
        assert!(matches!(e, BlobError::Conflict { .. }), "{e}");
        s.put_file("index.html", &file("d", b"page"), &sha(b"page"), WriteMode::Overwrite).await.unwrap();
        assert_eq!(s.get_bytes("index.html").await.unwrap(), b"page");
    }

    /// An open file becomes a write-once key as its own inode, never
    /// replaces other bytes, and an overwrite is a copy. Replaced under its
    /// name after it was opened (its inode has no name left, and Linux links
    /// no such inode), it is still its own bytes that are stored.
    #[tokio::test]
    async fn put_open_file_links_the_open_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::new(dir.path().join("root")).unwrap();
        let sha = |d: &[u8]| crate::digest::sha256_hex(d);
        let staged = dir.path().join("staged.deb");
        std::fs::write(&staged, b"one").unwrap();
        let open = std::fs::File::open(&staged).unwrap();
        s.put_open_file("pool/x.deb", &open, &sha(b"one"), WriteMode::WriteOnce).await.unwrap();
        assert_eq!(s.get_bytes("pool/x.deb").await.unwrap(), b"one");
        let pool = std::fs::metadata(s.root().join("pool/x.deb")).unwrap();
        assert_eq!(pool.ino(), open.metadata().unwrap().ino(), "the same inode, no copy");
        s.put_open_file("pool/x.deb", &open, &sha(b"one"), WriteMode::WriteOnce).await.unwrap();
        // A new upload under the same name after the open.
        std::fs::write(dir.path().join("new"), b"two").unwrap();
        std::fs::rename(dir.path().join("new"), &staged).unwrap();
        s.put_open_file("pool/y.deb", &open, &sha(b"one"), WriteMode::WriteOnce).await.unwrap();
        assert_eq!(s.get_bytes("pool/y.deb").await.unwrap(), b"one", "the bytes opened, not the new upload");
        let other = std::fs::File::open(&staged).unwrap();
        let e = s.put_open_file("pool/x.deb", &other, &sha(b"two"), WriteMode::WriteOnce).await.unwrap_err();
        assert!(matches!(e, BlobError::Conflict { .. }), "{e}");
        assert_eq!(s.get_bytes("pool/x.deb").await.unwrap(), b"one");
        s.put_open_file("index.html", &other, &sha(b"two"), WriteMode::Overwrite).await.unwrap();
        assert_eq!(s.get_bytes("index.html").await.unwrap(), b"two");
        assert_ne!(std::fs::metadata(s.root().join("index.html")).unwrap().ino(), other.metadata().unwrap().ino());
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::new(dir.path()).unwrap();
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a\\b"] {
            assert!(
                matches!(s.put_bytes(bad, vec![], WriteMode::Overwrite).await, Err(BlobError::BadKey { .. })),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn adopt_links_checked_bytes_and_leaves_anything_else_alone() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path()).unwrap();
        store.put_bytes("bottles/a.tar.gz", b"bottle".to_vec(), WriteMode::Overwrite).await.unwrap();
        let sha = crate::digest::sha256_hex(b"bottle");
        let blob = format!("blobs/sha256/{sha}");

        // Other bytes than expected (digest or size): nothing is written.
        let wrong = store.adopt("bottles/a.tar.gz", &blob, &"0".repeat(64), None).await.unwrap();
        assert!(!wrong.placed && wrong.checksums.sha256 == sha);
        let short = store.adopt("bottles/a.tar.gz", &blob, &sha, Some(5)).await.unwrap();
        assert!(!short.placed);
        assert!(!store.exists(&blob).await.unwrap());

        // The expected bytes: the same file under a second name, no copy.
        let ok = store.adopt("bottles/a.tar.gz", &blob, &sha, Some(6)).await.unwrap();
        assert!(ok.placed && ok.checksums.size == 6);
        let (a, b) = (dir.path().join("bottles/a.tar.gz"), dir.path().join(&blob));
        assert_eq!(std::fs::metadata(&a).unwrap().ino(), std::fs::metadata(&b).unwrap().ino());
        // Again, or from another name of the same bytes: accepted as it is.
        store.put_bytes("bottles/b.tar.gz", b"bottle".to_vec(), WriteMode::Overwrite).await.unwrap();
        assert!(store.adopt("bottles/b.tar.gz", &blob, &sha, None).await.unwrap().placed);
        // A key holding other bytes is never replaced.
        store.put_bytes("bottles/c.tar.gz", b"other".to_vec(), WriteMode::Overwrite).await.unwrap();
        let other = crate::digest::sha256_hex(b"other");
        store.put_bytes(&format!("blobs/sha256/{other}"), b"taken".to_vec(), WriteMode::Overwrite).await.unwrap();
        let e = store.adopt("bottles/c.tar.gz", &format!("blobs/sha256/{other}"), &other, None).await.unwrap_err();
        assert!(matches!(e, BlobError::Conflict { .. }), "{e}");
        assert!(matches!(
            store.adopt("bottles/missing.tar.gz", &blob, &sha, None).await.unwrap_err(),
            BlobError::NotFound { .. }
        ));
    }

    #[tokio::test]
    async fn list_copy_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::new(dir.path()).unwrap();
        s.put_bytes("staging/b.deb", b"b".to_vec(), WriteMode::Overwrite).await.unwrap();
        s.put_bytes("staging/a.deb", b"a".to_vec(), WriteMode::Overwrite).await.unwrap();
        s.put_bytes("stagingx/c", b"c".to_vec(), WriteMode::Overwrite).await.unwrap();
        let keys: Vec<_> = s.list("staging/").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["staging/a.deb", "staging/b.deb"]);
        s.copy("staging/a.deb", "copy.deb", WriteMode::Overwrite).await.unwrap();
        assert_eq!(s.get_bytes("copy.deb").await.unwrap(), b"a");
        // Identical bytes are left in place; other bytes of the same length replaced.
        s.copy("staging/a.deb", "copy.deb", WriteMode::Overwrite).await.unwrap();
        s.copy("staging/b.deb", "copy.deb", WriteMode::Overwrite).await.unwrap();
        assert_eq!(s.get_bytes("copy.deb").await.unwrap(), b"b");
        s.put_bytes("copy.deb", b"b".to_vec(), WriteMode::Overwrite).await.unwrap();
        s.put_bytes("copy.deb", b"c".to_vec(), WriteMode::Overwrite).await.unwrap();
        assert_eq!(s.get_bytes("copy.deb").await.unwrap(), b"c");
        assert!(matches!(s.get_bytes("nope").await, Err(BlobError::NotFound { .. })));
        assert!(matches!(s.copy("nope", "x", WriteMode::Overwrite).await, Err(BlobError::NotFound { .. })));
    }
}
