//! One-pass digests: size, MD5, SHA1 and SHA256 of a byte stream.
//!
//! APT's Packages and Release files list all three hashes; computing them in the
//! same pass that writes the bytes means a multi-gigabyte artifact is read once.

use md5::Md5;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};

/// Size and the three hashes that APT indexes carry, hex encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

/// Incremental hasher for [`Checksums`].
#[derive(Default, Clone)]
pub struct Hasher {
    size: u64,
    md5: Md5,
    sha1: Sha1,
    sha256: Sha256,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        self.md5.update(data);
        self.sha1.update(data);
        self.sha256.update(data);
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn finish(self) -> Checksums {
        Checksums {
            size: self.size,
            md5: hex::encode(self.md5.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
        }
    }
}

/// From this size on, [`Checksums::of`] runs MD5 (the slowest of the three:
/// no SHA-NI for it) on a second thread.
const PARALLEL_FROM: usize = 256 * 1024;

impl Checksums {
    pub fn of(data: &[u8]) -> Checksums {
        if data.len() < PARALLEL_FROM {
            let mut h = Hasher::new();
            h.update(data);
            return h.finish();
        }
        std::thread::scope(|scope| {
            let md5 = scope.spawn(|| hex::encode(Md5::digest(data)));
            let sha1 = hex::encode(Sha1::digest(data));
            let sha256 = hex::encode(Sha256::digest(data));
            Checksums { size: data.len() as u64, md5: md5.join().expect("MD5 does not panic"), sha1, sha256 }
        })
    }

    /// Digest everything `reader` yields, in [`READ_CHUNK`] reads.
    pub fn of_reader(reader: impl Read) -> io::Result<Checksums> {
        let mut h = Hasher::new();
        each_chunk(reader, |chunk| h.update(chunk))?;
        Ok(h.finish())
    }

    pub fn of_file(path: &std::path::Path) -> io::Result<Checksums> {
        let file = std::fs::File::open(path)?;
        let mut h = Hasher::new();
        each_chunk_of(chunk_for(&file), file, |chunk| h.update(chunk))?;
        Ok(h.finish())
    }
}

/// SHA256 alone, hex encoded (by-hash names, content comparison).
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// SHA256 alone of a file, hex encoded (content comparison of write-once objects).
pub fn sha256_file(path: &std::path::Path) -> io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    each_chunk_of(chunk_for(&file), file, |chunk| hasher.update(chunk))?;
    Ok(hex::encode(hasher.finalize()))
}

/// SHA256 alone of an open file, read from where it stands (a file just
/// opened: from its start), hex encoded.
pub fn sha256_open(file: &std::fs::File) -> io::Result<String> {
    let mut hasher = Sha256::new();
    each_chunk_of(chunk_for(file), file, |chunk| hasher.update(chunk))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Size of the reads of files that are digested or compared: files can be
/// gigabytes, and are never read whole.
pub const READ_CHUNK: usize = 256 * 1024;

/// Hand everything `reader` yields to `f`, [`READ_CHUNK`] bytes at most at a time.
fn each_chunk(reader: impl Read, f: impl FnMut(&[u8])) -> io::Result<()> {
    each_chunk_of(READ_CHUNK, reader, f)
}

/// The read size for `file`: its length (plus one read to see its end) up to
/// [`READ_CHUNK`]. A bulk import digests thousands of files of a few KiB; a
/// zeroed 256 KiB buffer for each showed up as memset in every profile of one.
fn chunk_for(file: &std::fs::File) -> usize {
    let len = file.metadata().map(|m| m.len()).unwrap_or(READ_CHUNK as u64);
    (len as usize).saturating_add(1).clamp(4096, READ_CHUNK)
}

fn each_chunk_of(chunk: usize, mut reader: impl Read, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; chunk];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(()),
            n => f(&buf[..n]),
        }
    }
}

/// A writer that digests everything passing through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Hasher::new() }
    }
    pub fn finish(self) -> (W, Checksums) {
        (self.inner, self.hasher.finish())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// [`Hasher`] with MD5 on a thread of its own (the slowest of the three, with no
/// CPU instructions for it): chunks are shared, not copied; a bounded channel
/// keeps at most 16 chunks in flight.
pub struct ParallelHasher {
    size: u64,
    sha1: Sha1,
    sha256: Sha256,
    tx: Option<std::sync::mpsc::SyncSender<bytes::Bytes>>,
    md5: Option<std::thread::JoinHandle<Md5>>,
}

impl Default for ParallelHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl ParallelHasher {
    pub fn new() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
        let md5 = std::thread::spawn(move || {
            let mut h = Md5::new();
            for chunk in rx {
                h.update(&chunk);
            }
            h
        });
        ParallelHasher { size: 0, sha1: Sha1::new(), sha256: Sha256::new(), tx: Some(tx), md5: Some(md5) }
    }

    pub fn update(&mut self, data: &bytes::Bytes) {
        self.size += data.len() as u64;
        let _ = self.tx.as_ref().expect("not finished").send(data.clone());
        self.sha1.update(data);
        self.sha256.update(data);
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn finish(mut self) -> Checksums {
        drop(self.tx.take());
        let md5 = self.md5.take().expect("not finished").join().expect("md5 thread");
        Checksums {
            size: self.size,
            md5: hex::encode(md5.finalize()),
            sha1: hex::encode(self.sha1.clone().finalize()),
            sha256: hex::encode(self.sha256.clone().finalize()),
        }
    }
}

/// The digests of a download, chosen by what its index needs: all of
/// [`Checksums`] (APT lists size, MD5, SHA1 and SHA256), or size and SHA-256
/// alone (a Homebrew bottle: brew and the mirror's index know nothing else),
/// which leaves MD5 and SHA1 empty and spares the two slowest passes: on a
/// bottle of a GiB, MD5's thread caps the whole stream at MD5's speed.
pub enum StreamHasher {
    All(ParallelHasher),
    Sha256 { size: u64, sha256: Sha256 },
}

impl StreamHasher {
    pub fn new(sha256_only: bool) -> StreamHasher {
        if sha256_only {
            StreamHasher::Sha256 { size: 0, sha256: Sha256::new() }
        } else {
            StreamHasher::All(ParallelHasher::new())
        }
    }

    pub fn update(&mut self, data: &bytes::Bytes) {
        match self {
            StreamHasher::All(h) => h.update(data),
            StreamHasher::Sha256 { size, sha256 } => {
                *size += data.len() as u64;
                sha256.update(data);
            }
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            StreamHasher::All(h) => h.size(),
            StreamHasher::Sha256 { size, .. } => *size,
        }
    }

    pub fn finish(self) -> Checksums {
        match self {
            StreamHasher::All(h) => h.finish(),
            StreamHasher::Sha256 { size, sha256 } => {
                Checksums { size, md5: String::new(), sha1: String::new(), sha256: hex::encode(sha256.finalize()) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_only_leaves_md5_and_sha1_empty() {
        let data = bytes::Bytes::from_static(b"abc");
        let (mut all, mut one) = (StreamHasher::new(false), StreamHasher::new(true));
        all.update(&data);
        one.update(&data);
        let (all, one) = (all.finish(), one.finish());
        assert_eq!(all, Checksums::of(b"abc"));
        assert_eq!(
            (one.size, one.sha256.as_str(), one.md5.as_str(), one.sha1.as_str()),
            (3, all.sha256.as_str(), "", "")
        );
    }

    #[test]
    fn known_digests_of_abc() {
        let c = Checksums::of(b"abc");
        assert_eq!(c.size, 3);
        assert_eq!(c.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(c.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(c.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn parallel_equals_sequential() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 + 7) as u8).collect();
        let mut p = ParallelHasher::new();
        for chunk in data.chunks(65_537) {
            p.update(&bytes::Bytes::copy_from_slice(chunk));
        }
        assert_eq!(p.size(), data.len() as u64);
        assert_eq!(p.finish(), Checksums::of(&data));
    }

    #[test]
    fn chunked_equals_whole() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7) as u8).collect();
        let mut h = Hasher::new();
        for chunk in data.chunks(4093) {
            h.update(chunk);
        }
        assert_eq!(h.finish(), Checksums::of(&data));
    }
}
