//! Packages.gz and Packages.xz, deterministic (the same text gives the same
//! bytes, so by-hash names are stable) and chosen on measurements
//! (bench/README.md, "xz and gzip"):
//!
//! - apt fetches `Packages.xz` whenever Release lists it, so `.gz` is a
//!   fallback for old clients: gzip level 1 (≈ 440 MB/s; within a few percent
//!   of level 6 on Packages text) keeps it nearly free.
//! - xz preset 6 is what makes `.xz` worth having (about a quarter smaller
//!   than gzip on real Packages), but runs at 1–5 MB/s. It is encoded in
//!   independent blocks on several threads, with a 1 MiB dictionary (the
//!   preset's 8 MiB costs 94 MiB of encoder memory per thread and buys ~4 % on
//!   33 MB of Debian's own Packages). Block sizes depend on the text's length
//!   alone, never on the machine, so the output is the same everywhere.

use crate::config::IndexCompression;
use liblzma::stream::{Check, Filters, LzmaOptions, MtStreamBuilder};
use std::io::Write;

/// gzip level for Packages.gz (see the module docs).
pub const GZIP_LEVEL: u32 = 1;

/// xz preset for Packages.xz (see the module docs).
pub const XZ_PRESET: u32 = 6;

/// LZMA2 dictionary for Packages.xz: Packages repeats itself within a few
/// stanzas, not across megabytes.
const XZ_DICT: u32 = 1 << 20;

/// Blocks of a quarter of the text, between these bounds: 4 blocks for a
/// 1 MB Packages (two cores busy), 2 MiB blocks for large ones (memory stays
/// at ~17 MiB a thread).
const XZ_BLOCK_MIN: u64 = 256 << 10;
const XZ_BLOCK_MAX: u64 = 2 << 20;

/// Encoder threads at most.
const XZ_THREADS_MAX: u64 = 4;

pub fn encode(kind: IndexCompression, data: &[u8]) -> Vec<u8> {
    match kind {
        IndexCompression::Gz => gzip(data),
        IndexCompression::Xz => xz(data),
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    // No file name and mtime 0 in the header: the same Packages gives the same bytes.
    let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    enc.write_all(data).expect("in-memory write");
    enc.finish().expect("in-memory write")
}

fn xz_block_size(len: usize) -> u64 {
    (len as u64).div_ceil(4).clamp(XZ_BLOCK_MIN, XZ_BLOCK_MAX)
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let block = xz_block_size(data.len());
    let blocks = (data.len() as u64).div_ceil(block).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let threads = blocks.min(cores).min(XZ_THREADS_MAX) as u32;
    let mut options = LzmaOptions::new_preset(XZ_PRESET).expect("preset 6 exists");
    options.dict_size(XZ_DICT);
    let mut filters = Filters::new();
    filters.lzma2(&options);
    let stream = MtStreamBuilder::new()
        .filters(filters)
        .threads(threads)
        .block_size(block)
        .check(Check::Crc64)
        .encoder()
        .expect("liblzma accepts these options");
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::with_capacity(data.len() / 4), stream);
    enc.write_all(data).expect("in-memory write");
    enc.finish().expect("in-memory write")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 64);
        let mut i = 0u64;
        while out.len() < len {
            out.extend_from_slice(format!("Package: p{}\nVersion: 1.{}-1\n\n", i % 97, i).as_bytes());
            i += 1;
        }
        out
    }

    #[test]
    fn deterministic_and_readable_back() {
        // One block, and several (encoded on several threads where there are cores).
        for len in [25, 1_500_000] {
            let data = text(len);
            let (gz, xz_bytes) = (gzip(&data), xz(&data));
            assert_eq!(gz, gzip(&data));
            assert_eq!(xz_bytes, xz(&data));
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
            back.clear();
            liblzma::read::XzDecoder::new(&xz_bytes[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
        }
        assert_eq!(xz_block_size(1_500_000), 375_000);
        assert_eq!(xz_block_size(100), XZ_BLOCK_MIN);
        assert_eq!(xz_block_size(40 << 20), XZ_BLOCK_MAX);
    }
}
