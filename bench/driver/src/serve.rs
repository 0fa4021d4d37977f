//! A static file server on 127.0.0.1 for the ingest benchmark: GET only,
//! `Content-Length`, `Connection: close`, the body sent with `std::io::copy`
//! (sendfile on Linux), so that the server costs the client little CPU. It
//! writes its port to a file, and exits by itself after `max_secs`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

pub fn run(root: PathBuf, port_file: &Path, max_secs: u64) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let tmp = port_file.with_extension("tmp");
    std::fs::write(&tmp, format!("{port}\n"))?;
    std::fs::rename(&tmp, port_file)?;
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(max_secs));
        eprintln!("serve: {max_secs} s are up, exiting");
        std::process::exit(0);
    });
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let root = root.clone();
        std::thread::spawn(move || {
            if let Err(e) = answer(conn, &root) {
                eprintln!("serve: {e}");
            }
        });
    }
    Ok(())
}

fn answer(conn: TcpStream, root: &Path) -> anyhow::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
    }
    let mut out = conn;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let rel = target.split('?').next().unwrap_or("").trim_start_matches('/');
    let safe = !rel.is_empty() && rel.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    let file = if method == "GET" && safe { std::fs::File::open(root.join(rel)).ok() } else { None };
    // What was asked, for the benchmarks that count requests (bench/brew.sh).
    if let Some(log) = std::env::var_os("BENCH_SERVE_LOG") {
        let status = if file.is_some() { 200 } else { 404 };
        let line = format!("{method} {target} {status}\n");
        // One write per line with O_APPEND: lines of concurrent requests do not interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = f.write_all(line.as_bytes());
        }
    }
    match file {
        Some(mut f) => {
            let len = f.metadata()?.len();
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            )?;
            std::io::copy(&mut f, &mut out)?;
        }
        None => write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?,
    }
    out.flush()?;
    let _ = out.shutdown(std::net::Shutdown::Both);
    Ok(())
}
