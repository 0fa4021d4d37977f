//! Large, valid .deb files without compressing them: `debian-binary`, the
//! `control.tar.gz` of a small package built by `DebBuilder`, and an
//! uncompressed `data.tar` (written here, ustar) whose one file is
//! pseudo-random bytes that no layer can compress. For the tests that stream
//! hundreds of MiB or GiB through the functions, or need a multipart upload.

use pkgrelay_core::deb::{ControlParagraph, DebBuilder};

/// The members of an ar archive (common format, as `DebBuilder` writes it).
pub fn ar_members(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert!(archive.starts_with(b"!<arch>\n"), "not an ar archive");
    let mut members = Vec::new();
    let mut at = 8;
    while at < archive.len() {
        let header = &archive[at..at + 60];
        assert_eq!(&header[58..60], b"`\n", "ar header terminator at offset {at}");
        let name = String::from_utf8_lossy(&header[0..16]).trim_end().trim_end_matches('/').to_owned();
        let size: usize = std::str::from_utf8(&header[48..58]).unwrap().trim().parse().unwrap();
        let data = archive[at + 60..at + 60 + size].to_vec();
        members.push((name, data));
        at += 60 + size + size % 2;
    }
    members
}

/// One ar member header: name 16, mtime 12, uid 6, gid 6, mode 8 (octal), size 10, "`\n".
pub fn ar_header(name: &str, size: u64) -> Vec<u8> {
    assert!(name.len() <= 16);
    let header = format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n", 0, 0, 0, 100644);
    assert_eq!(header.len(), 60);
    header.into_bytes()
}

/// One ustar header block (`typeflag` b'0' file, b'5' directory), owned by root, mtime 0.
pub fn tar_header(path: &str, mode: u32, size: u64, typeflag: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    assert!(path.len() < 100, "{path}: too long for a plain ustar name");
    let field = |h: &mut [u8; 512], at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    field(&mut h, 0, path.as_bytes());
    field(&mut h, 100, format!("{mode:07o}\0").as_bytes());
    field(&mut h, 108, b"0000000\0");
    field(&mut h, 116, b"0000000\0");
    field(&mut h, 124, format!("{size:011o}\0").as_bytes());
    field(&mut h, 136, format!("{:011o}\0", 0).as_bytes());
    h[156] = typeflag;
    field(&mut h, 257, b"ustar\0");
    field(&mut h, 263, b"00");
    field(&mut h, 265, b"root");
    field(&mut h, 297, b"root");
    field(&mut h, 329, b"0000000\0");
    field(&mut h, 337, b"0000000\0");
    // The checksum is computed with its own field as eight spaces.
    field(&mut h, 148, b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    field(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Fill `buf` with xorshift64* output: incompressible, reproducible, no rand crate.
pub fn fill_pseudo_random(buf: &mut [u8], mut state: u64) {
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        chunk.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    for b in chunks.into_remainder() {
        *b = 0xa5;
    }
}

pub const BIG_FILE: &str = "./opt/kiro/payload.bin";

/// A valid binary package `name_version_arch` whose data.tar (uncompressed)
/// holds `BIG_FILE` of `payload` bytes: what comes before those bytes and
/// what comes after them (padding, the two zero blocks).
pub fn big_deb_frame(name: &str, version: &str, arch: &str, payload: u64) -> (Vec<u8>, Vec<u8>) {
    // control.tar.gz from a small package with the same control paragraph.
    let control = ControlParagraph {
        fields: vec![
            ("Package".into(), name.into()),
            ("Version".into(), version.into()),
            ("Architecture".into(), arch.into()),
            ("Maintainer".into(), "Fixture <fixture@example.com>".into()),
            ("Installed-Size".into(), payload.div_ceil(1024).to_string()),
            ("Depends".into(), "libc6 (>= 2.28)".into()),
            ("Description".into(), format!("{name} fixture, {payload} bytes\n Built by tests/aws_streaming.rs.")),
        ],
    };
    let small = DebBuilder::new(control).build().unwrap();
    let members = ar_members(&small);
    assert_eq!(members[0], ("debian-binary".to_owned(), b"2.0\n".to_vec()));
    let (control_name, control_tar) =
        members.iter().find(|(n, _)| n.starts_with("control.tar")).expect("DebBuilder writes a control member").clone();

    // data.tar: ./, ./opt/, ./opt/kiro/, the big file, two zero blocks.
    let padded = payload.div_ceil(512) * 512;
    let data_len = 4 * 512 + padded + 2 * 512;
    let control_len = control_tar.len();
    let mut head = Vec::new();
    head.extend_from_slice(b"!<arch>\n");
    head.extend_from_slice(&ar_header("debian-binary", 4));
    head.extend_from_slice(b"2.0\n");
    head.extend_from_slice(&ar_header(&control_name, control_len as u64));
    head.extend_from_slice(&control_tar);
    if control_len % 2 == 1 {
        head.push(b'\n');
    }
    head.extend_from_slice(&ar_header("data.tar", data_len));
    for dir in ["./", "./opt/", "./opt/kiro/"] {
        head.extend_from_slice(&tar_header(dir, 0o755, 0, b'5'));
    }
    head.extend_from_slice(&tar_header(BIG_FILE, 0o644, payload, b'0'));
    let tail = vec![0u8; (padded - payload + 2 * 512) as usize];
    (head, tail)
}

/// The same package in memory, its big file xorshift output.
pub fn big_deb(name: &str, version: &str, arch: &str, payload: usize) -> Vec<u8> {
    let (head, tail) = big_deb_frame(name, version, arch, payload as u64);
    let mut deb = Vec::with_capacity(head.len() + payload + tail.len());
    deb.extend_from_slice(&head);
    let start = deb.len();
    deb.resize(start + payload, 0);
    fill_pseudo_random(&mut deb[start..], 0x9E37_79B9_7F4A_7C15);
    deb.extend_from_slice(&tail);
    deb
}
