//! Test fixtures shared by the end-to-end tests: an upstream HTTP server on
//! 127.0.0.1 that can misbehave on purpose, `.deb` files built for the test,
//! a private configuration directory, the `pkgrelay` binary, and a real apt
//! client with its own configuration and state (never the host's).

#![allow(dead_code)]

pub mod aws;
pub mod bigdeb;
pub mod brew;
pub mod gopro;

use pkgrelay_core::deb::{ControlParagraph, DebBuilder};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

/// How the fixture answers one path.
#[derive(Clone)]
pub enum Reply {
    Body(Vec<u8>),
    Status(u16),
    /// Announce the whole length, send only the first half, close.
    CutShort(Vec<u8>),
    /// A file streamed from disk (artifacts of gigabytes).
    File(PathBuf),
    /// A file served as static file servers and CDNs serve one: `ETag` and
    /// `Last-Modified` when given, and `304 Not Modified` to a conditional
    /// request naming its current state (`If-None-Match` first;
    /// `If-Modified-Since` only without it, as RFC 9110 §13.2.2 orders them).
    Validated {
        body: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// A chunked body without end: chunks for as long as the client reads.
    Endless,
    /// `body`, its whole length announced, sent one byte every `every`.
    Trickle {
        body: Vec<u8>,
        every: std::time::Duration,
    },
    /// `302 Found` to `location`.
    Redirect(String),
}

/// One request the fixture answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case, values as sent.
    pub headers: Vec<(String, String)>,
    pub status: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An HTTP date (`Sat, 01 Nov 2025 12:00:00 GMT`) `days` days after 2025-11-01.
pub fn http_date(days: i64) -> String {
    let t = time::macros::datetime!(2025-11-01 12:00 UTC) + time::Duration::days(days);
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap()
}

/// A tiny HTTP/1.1 server on 127.0.0.1 (one connection at a time per thread,
/// `Connection: close`), with replies the test changes at will.
pub struct Upstream {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    addr: std::net::SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, h, s, l) = (routes.clone(), hits.clone(), stop.clone(), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (r, h, l) = (r.clone(), h.clone(), l.clone());
                std::thread::spawn(move || serve_one(conn, &r, &h, &l));
            }
        });
        Upstream { base: format!("http://{addr}"), routes, hits, stop, addr, log }
    }

    /// Every request for `path` so far, in order.
    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.log.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_owned(), reply);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stop answering: later connections are refused.
    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The request line and headers of one HTTP/1.1 request (header names in
/// lower case); `None` when the client sent nothing. The body, if any, is
/// left unread: the fixtures answer GET and HEAD.
pub fn read_request(conn: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("GET").to_owned();
    let path = words.next().unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((name, value)) = h.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    Some(Request { method, path, headers, status: 0 })
}

fn serve_one(
    conn: TcpStream,
    routes: &Mutex<HashMap<String, Reply>>,
    hits: &Mutex<HashMap<String, usize>>,
    log: &Mutex<Vec<Request>>,
) {
    let Some(mut request) = read_request(&conn) else { return };
    let path = request.path.clone();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let reply = routes.lock().unwrap().get(&path).cloned().unwrap_or(Reply::Status(404));
    request.status = match &reply {
        Reply::Status(code) => *code,
        Reply::Redirect(_) => 302,
        Reply::Validated { etag, last_modified, .. }
            if not_modified(&request, etag.as_deref(), last_modified.as_deref()) =>
        {
            304
        }
        _ => 200,
    };
    // Logged before the client can read its answer: a test that looks at
    // the log once the client is done must find the request there.
    log.lock().unwrap().push(request.clone());
    // A HEAD gets the headers a GET would get, and no body.
    let head = request.method == "HEAD";
    let mut out = conn;
    let _ = match reply {
        Reply::Body(b) => {
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len());
            if head { Ok(()) } else { out.write_all(&b) }
        }
        Reply::Status(code) => {
            let _ =
                write!(out, "HTTP/1.1 {code} Oops\r\nContent-Length: 5\r\nRetry-After: 0\r\nConnection: close\r\n\r\n");
            if head { Ok(()) } else { out.write_all(b"oops!") }
        }
        Reply::CutShort(b) => {
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len());
            if head { Ok(()) } else { out.write_all(&b[..b.len() / 2]) }
        }
        Reply::File(path) => {
            let mut file = std::fs::File::open(&path).unwrap();
            let len = file.metadata().unwrap().len();
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
            if head { Ok(()) } else { std::io::copy(&mut file, &mut out).map(drop) }
        }
        Reply::Validated { body, etag, last_modified } => {
            let mut validators = String::new();
            if let Some(e) = &etag {
                validators.push_str(&format!("ETag: {e}\r\n"));
            }
            if let Some(d) = &last_modified {
                validators.push_str(&format!("Last-Modified: {d}\r\n"));
            }
            if request.status == 304 {
                write!(out, "HTTP/1.1 304 Not Modified\r\n{validators}Connection: close\r\n\r\n")
            } else {
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{validators}Connection: close\r\n\r\n",
                    body.len()
                );
                if head { Ok(()) } else { out.write_all(&body) }
            }
        }
        Reply::Endless => {
            let _ = write!(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
            let chunk = vec![b'x'; 64 << 10];
            let mut sent = Ok(());
            while !head && sent.is_ok() {
                sent = write!(out, "{:x}\r\n", chunk.len())
                    .and_then(|()| out.write_all(&chunk))
                    .and_then(|()| out.write_all(b"\r\n"));
            }
            Ok(())
        }
        Reply::Trickle { body, every } => {
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let mut sent = Ok(());
            for byte in body.iter().take(if head { 0 } else { body.len() }) {
                sent = out.write_all(&[*byte]).and_then(|()| out.flush());
                if sent.is_err() {
                    break;
                }
                std::thread::sleep(every);
            }
            sent
        }
        Reply::Redirect(location) => {
            write!(out, "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
    };
    let _ = out.flush();
    let _ = out.shutdown(std::net::Shutdown::Both);
}

/// Whether a conditional request names the file's current state: its ETag
/// (weak comparison; a list, or `*`), else a date not before its Last-Modified
/// (RFC 9110 §13.2.2).
pub fn not_modified(request: &Request, etag: Option<&str>, last_modified: Option<&str>) -> bool {
    let weak = |e: &str| e.trim().trim_start_matches("W/").to_owned();
    if let Some(wanted) = request.header("if-none-match") {
        return etag.is_some_and(|e| wanted.split(',').any(|w| w.trim() == "*" || weak(w) == weak(e)));
    }
    let date = |d: &str| time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc2822).ok();
    match (request.header("if-modified-since").and_then(date), last_modified.and_then(date)) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// A small but real binary package.
pub fn deb(name: &str, version: &str, arch: &str, depends: Option<&str>) -> Vec<u8> {
    let mut fields = vec![
        ("Package".to_owned(), name.to_owned()),
        ("Version".to_owned(), version.to_owned()),
        ("Architecture".to_owned(), arch.to_owned()),
        ("Maintainer".to_owned(), "Fixture <fixture@example.com>".to_owned()),
    ];
    if let Some(d) = depends {
        fields.push(("Depends".to_owned(), d.to_owned()));
    }
    fields.push(("Recommends".to_owned(), "kiro-repo".to_owned()));
    fields.push((
        "Description".to_owned(),
        format!("{name} fixture\n Built by the test suite.\n .\n Version {version}."),
    ));
    let mut b = DebBuilder::new(ControlParagraph { fields });
    b.file(&format!("/usr/share/doc/{name}/VERSION"), 0o644, format!("{version}\n"));
    b.build().unwrap()
}

pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Kiro-shaped metadata (current nested form) for one release.
pub fn kiro_metadata(up: &Upstream, version: &str, deb_path: &str) -> Vec<u8> {
    serde_json::json!({
        "currentRelease": version,
        "releases": [
            {"version": version, "updateTo": {"version": version, "pub_date": "2025-11-20T10:00:00Z",
                "notes": format!("Kiro {version}"), "url": up.url(deb_path)}},
            {"version": version, "updateTo": {"url": up.url(&format!("/signed/{version}/certificate.pem"))}},
            {"version": version, "updateTo": {"url": up.url(&format!("/signed/{version}/signature.bin"))}},
        ]
    })
    .to_string()
    .into_bytes()
}

/// Serve a Kiro release at the usual paths and point the metadata at it.
pub fn publish_kiro(up: &Upstream, version: &str) -> Vec<u8> {
    let bytes = deb("kiro", version, "amd64", Some("libc6 (>= 2.28)"));
    let deb_path = format!("/signed/{version}/deb/kiro-ide-{version}-stable-linux-x64.deb");
    up.set(&deb_path, Reply::Body(bytes.clone()));
    up.set(&format!("/signed/{version}/certificate.pem"), Reply::Body(format!("CERT {version}\n").into_bytes()));
    up.set(&format!("/signed/{version}/signature.bin"), Reply::Body(format!("SIG {version}").into_bytes()));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(up, version, &deb_path)));
    bytes
}

/// A workspace: config, state and output directories for one test.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// The repository's own `config/`, with sources pointed at `up`: kiro and
    /// kiro-repo; kiro-cli with [`Workspace::with_kiro_cli`]. (kiro-cli's
    /// source is one URL that always holds a file: configured, it offers a
    /// package or fails in every run, which tests of other things must not see.)
    pub fn new(up: &Upstream) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        std::fs::create_dir_all(cfg.join("packages")).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        std::fs::copy(root.join("repository.yaml"), cfg.join("repository.yaml")).unwrap();
        let ws = Workspace { dir };
        for name in ["kiro", "kiro-repo"] {
            ws.configure_shipped(up, name);
        }
        ws
    }

    /// Add kiro-cli as shipped (`latest_url`), its URL pointed at `up`'s
    /// `/latest/kiro-cli.deb`.
    pub fn with_kiro_cli(&self, up: &Upstream) {
        self.configure_shipped(up, "kiro-cli");
    }

    /// Copy the shipped `config/packages/<name>.yaml` with its upstream URLs pointed at `up`.
    fn configure_shipped(&self, up: &Upstream, name: &str) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let text = std::fs::read_to_string(root.join(format!("packages/{name}.yaml"))).unwrap();
        let text = text
            .replace(
                "https://prod.download.desktop.kiro.dev/stable/metadata-linux-x64-deb-stable.json",
                &up.url("/stable/metadata.json"),
            )
            .replace(
                "https://desktop-release.q.us-east-1.amazonaws.com/latest/kiro-cli.deb",
                &up.url("/latest/kiro-cli.deb"),
            );
        let upstream =
            |l: &&str| l.trim_start().split(':').next().is_some_and(|k| k.ends_with("url")) && l.contains("https://");
        assert!(
            !text.lines().any(|l| upstream(&l)),
            "{name}.yaml has an upstream URL the fixture does not replace:\n{text}"
        );
        std::fs::write(self.path(&format!("config/packages/{name}.yaml")), text).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn pkgrelay(&self, args: &[&str]) -> Output {
        self.pkgrelay_with(args, |_| {})
    }

    /// `pkgrelay` with extra environment (e.g. AWS clients pointed at the emulator).
    pub fn pkgrelay_with(&self, args: &[&str], env: impl FnOnce(&mut Command)) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkgrelay"));
        cmd.args(args).current_dir(self.dir.path()).env("PKGRELAY_LOG", "warn").env("NO_COLOR", "1");
        env(&mut cmd);
        let out = cmd.output().unwrap();
        eprintln!(
            "$ pkgrelay {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `pkgrelay sync`, asserting it exits 0; returns its stdout.
    pub fn sync(&self, extra: &[&str]) -> String {
        let mut args = vec!["sync"];
        args.extend_from_slice(extra);
        let out = self.pkgrelay(&args);
        assert!(out.status.success(), "sync failed");
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn verify(&self) -> Output {
        self.pkgrelay(&["verify"])
    }

    /// Every file of the published repository, by relative path.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let root = self.path("public");
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(p.strip_prefix(&root).unwrap().display().to_string(), std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Start `pkgrelay serve` on a free loopback port; killed on drop.
    pub fn serve(&self) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pkgrelay"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .current_dir(self.dir.path())
            .env("PKGRELAY_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let url = first.split_whitespace().find(|w| w.starts_with("http://")).expect("serve prints its URL").to_owned();
        Served { child, url }
    }
}

pub struct Served {
    child: Child,
    pub url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real apt client with private configuration, state, cache and dpkg status.
pub struct Apt {
    pub root: tempfile::TempDir,
}

impl Apt {
    /// `source_line` is a whole `deb [signed-by=…] URL suite component` line.
    /// Installs are only simulated (`-s`): the dpkg status is a private file.
    pub fn new(source_line: &str) -> Apt {
        Self::build(source_line, None)
    }

    /// An apt client that really installs, with `dpkg --root` into `root` (a
    /// [`dpkg_root`]), whose status file it then reads.
    pub fn with_dpkg_root(source_line: &str, root: &Path) -> Apt {
        Self::build(source_line, Some(root))
    }

    fn build(source_line: &str, dpkg_root: Option<&Path>) -> Apt {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in [
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/sources.list.d",
            "etc/apt/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
            "download",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("etc/apt/sources.list"), format!("{source_line}\n")).unwrap();
        // An installed libc6, so that packages depending on it resolve.
        std::fs::write(
            r.join("status"),
            "Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 1\n\
Maintainer: Fixture <fixture@example.com>\nArchitecture: amd64\nMulti-Arch: same\nVersion: 2.36-9\nDescription: fixture\n",
        )
        .unwrap();
        let p = r.display();
        std::fs::write(
            r.join("apt.conf"),
            format!(
                "Dir::Etc \"{p}/etc/apt\";\nDir::Etc::Parts \"{p}/etc/apt/apt.conf.d\";\n\
Dir::Etc::SourceList \"{p}/etc/apt/sources.list\";\nDir::Etc::SourceParts \"{p}/etc/apt/sources.list.d\";\n\
Dir::Etc::Trusted \"{p}/etc/apt/trusted.gpg\";\nDir::Etc::TrustedParts \"{p}/etc/apt/trusted.gpg.d\";\n\
Dir::Etc::Preferences \"{p}/etc/apt/preferences\";\nDir::Etc::PreferencesParts \"{p}/etc/apt/preferences.d\";\n\
Dir::State \"{p}/state\";\nDir::State::status \"{p}/status\";\nDir::Cache \"{p}/cache\";\nDir::Log \"{p}/log\";\n\
APT::Architecture \"amd64\";\nAPT::Architectures {{ \"amd64\"; }};\nAcquire::Languages \"none\";\n\
Debug::NoLocking \"true\";\nAPT::Sandbox::User \"root\";\nAcquire::Retries \"0\";\n"
            ),
        )
        .unwrap();
        if let Some(d) = dpkg_root {
            let d = d.display();
            let mut conf = std::fs::OpenOptions::new().append(true).open(r.join("apt.conf")).unwrap();
            write!(
                conf,
                "Dir::State::status \"{d}/var/lib/dpkg/status\";\n\
DPkg::Options {{ \"--root={d}\"; \"--admindir={d}/var/lib/dpkg\"; \"--log={d}/var/log/dpkg.log\"; \"--force-confold\"; }};\n\
DPkg::Run-Directory \"{d}\";\n"
            )
            .unwrap();
        }
        Apt { root }
    }

    pub fn run(&self, tool: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(tool)
            .args(args)
            .env("APT_CONFIG", self.root.path().join("apt.conf"))
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .current_dir(self.root.path().join("download"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("$ {tool} {}\n{text}", args.join(" "));
        (out.status.success(), text)
    }

    pub fn download_dir(&self) -> PathBuf {
        self.root.path().join("download")
    }
}

/// A private dpkg root for [`Apt::with_dpkg_root`]: an empty dpkg database,
/// and a static busybox as `/bin/sh` and the few tools maintainer scripts and
/// dpkg expect inside the root (dpkg chroots into it to run them). Never the
/// host's root.
pub fn dpkg_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/log",
        "bin",
        "usr/bin",
        "sbin",
        "usr/sbin",
        "tmp",
        "etc",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(r.join("var/lib/dpkg/available"), "").unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("busybox-static is required for maintainer scripts in the private root (.ci/run installs it)");
    std::fs::copy(busybox, r.join("bin/busybox")).unwrap();
    for tool in [
        "sh", "sed", "rm", "mv", "cat", "cp", "mkdir", "chmod", "ls", "tar", "diff", "find", "rmdir", "readlink",
        "test", "grep",
    ] {
        for dir in ["bin", "usr/bin"] {
            let _ = std::os::unix::fs::symlink("/bin/busybox", r.join(dir).join(tool));
        }
    }
    for tool in ["ldconfig", "start-stop-daemon"] {
        let path = r.join("sbin").join(tool);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        Command::new("chmod").arg("755").arg(&path).status().unwrap();
        let _ = std::os::unix::fs::symlink(format!("/sbin/{tool}"), r.join("usr/sbin").join(tool));
    }
    root
}

/// Read a file completely (helper for readability in tests).
pub fn slurp(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    std::fs::File::open(path).unwrap().read_to_end(&mut v).unwrap();
    v
}
