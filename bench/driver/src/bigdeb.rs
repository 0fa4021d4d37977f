//! A large valid `.deb` written as a stream (never held in memory): the
//! `control.tar.gz` of a small package built by `DebBuilder`, then an
//! uncompressed `data.tar` whose one file is pseudo-random (incompressible,
//! reproducible) bytes. Same construction as tests/aws_streaming.rs, sized by
//! the caller.

use anyhow::Context as _;
use std::io::{Read, Write};
use std::path::Path;

const BIG_FILE: &str = "./opt/bigpkg/payload.bin";

fn ar_header(name: &str, size: u64) -> Vec<u8> {
    let h = format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n", 0, 0, 0, 100644);
    assert_eq!(h.len(), 60);
    h.into_bytes()
}

fn tar_header(path: &str, mode: u32, size: u64, kind: tar::EntryType) -> anyhow::Result<[u8; 512]> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_mode(mode);
    h.set_size(size);
    h.set_entry_type(kind);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root")?;
    h.set_groupname("root")?;
    h.set_cksum();
    Ok(*h.as_bytes())
}

/// Write a package `bigpkg 1.0 amd64` of about `bytes` bytes to `path`
/// (through a temporary file, renamed when complete).
pub fn write(bytes: u64, path: &Path) -> anyhow::Result<()> {
    let payload = bytes.saturating_sub(16 * 1024).max(1024);
    let mut control = crate::synth::control("bigpkg", "1.0", "amd64");
    control.set("Installed-Size", payload.div_ceil(1024).to_string());
    let small = pkgrelay_core::deb::DebBuilder::new(control).build()?;
    let mut archive = ar::Archive::new(&small[..]);
    let mut control_tar = None;
    while let Some(member) = archive.next_entry() {
        let mut member = member?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        if name.starts_with("control.tar") {
            let mut data = Vec::new();
            member.read_to_end(&mut data)?;
            control_tar = Some((name, data));
        }
    }
    let (control_name, control_tar) = control_tar.context("DebBuilder writes a control member")?;

    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    out.write_all(b"!<arch>\n")?;
    out.write_all(&ar_header("debian-binary", 4))?;
    out.write_all(b"2.0\n")?;
    out.write_all(&ar_header(&control_name, control_tar.len() as u64))?;
    out.write_all(&control_tar)?;
    if control_tar.len() % 2 == 1 {
        out.write_all(b"\n")?;
    }
    let padded = payload.div_ceil(512) * 512;
    let data_len = 4 * 512 + padded + 2 * 512;
    out.write_all(&ar_header("data.tar", data_len))?;
    for dir in ["./", "./opt/", "./opt/bigpkg/"] {
        out.write_all(&tar_header(dir, 0o755, 0, tar::EntryType::Directory)?)?;
    }
    out.write_all(&tar_header(BIG_FILE, 0o644, payload, tar::EntryType::Regular)?)?;
    // xorshift64* output, 1 MiB at a time.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = payload;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.write_all(&vec![0u8; (padded - payload) as usize + 2 * 512])?;
    out.flush()?;
    drop(out);
    tmp.persist(path)?;
    Ok(())
}
