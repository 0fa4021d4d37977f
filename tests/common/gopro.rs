//! A fake GoPro cloud API on 127.0.0.1 for the media sync's tests: both ways
//! of logging in, the media library in pages, download descriptors, and the
//! presigned file URLs on a second host (another port) that honour `Range`
//! and `HEAD` and expire.
//!
//! It follows `UPSTREAMS.md` ("GoPro cloud", from the public clients
//! dustin/gopro-plus and itsankoff/gopro-plus) and issue 14. Where those
//! sources do not say what the real service does, the fake makes a choice and
//! says so in a comment starting `UNCONFIRMED:`; a test that depends on such a
//! choice tests the fake, not GoPro.
//!
//! File bytes are generated on the fly from the media id, the item number and
//! the label ([`content`]): a 4 GiB video needs no disk, any range of it can be
//! served, and a test computes the expected SHA-256 by generating the same
//! stream ([`sha256_of`]).
//!
//! The servers are plain threads over `std::net` (one thread per connection,
//! `Connection: close`), like the other fixtures in `tests/common`.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `Accept` header every API call carries (UPSTREAMS.md).
pub const ACCEPT: &str = "application/vnd.gopro.jk.media+json; version=2.0.0";

/// A browser User-Agent, as the cookie login needs.
pub const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";

/// One file of a media item, as the descriptor will list it.
#[derive(Debug, Clone)]
pub struct FakeFile {
    /// Chapter or burst frame number; `None` for a single-file item.
    pub item_number: Option<u32>,
    /// Bytes.
    pub size: u64,
}

/// One media item of the library.
#[derive(Debug, Clone)]
pub struct FakeMedia {
    pub id: String,
    /// `Video`, `Photo`, `Burst`, `Chaptered`, … (UPSTREAMS.md's list).
    pub kind: String,
    /// May be empty: the client falls back to `<id>.<file_extension>`.
    pub filename: String,
    pub file_extension: String,
    /// RFC 3339, e.g. `2025-07-14T09:30:00Z`.
    pub captured_at: String,
    pub created_at: String,
    /// `ready`, `transcoding`, `uploading`, `failure`, …
    pub ready_to_view: String,
    pub camera_model: String,
    /// Milliseconds, as a string (UPSTREAMS.md).
    pub source_duration: Option<String>,
    /// The source files: one, or one per chapter / burst frame.
    pub files: Vec<FakeFile>,
    /// Gone upstream: the descriptor answers 404.
    pub deleted: bool,
    /// Still in the listing although deleted (a listing that lags).
    /// UNCONFIRMED: whether GoPro's listing can lag behind a deletion.
    pub listed_when_deleted: bool,
}

impl FakeMedia {
    /// A video of one file of `size` bytes.
    pub fn video(id: &str, filename: &str, captured_at: &str, size: u64) -> FakeMedia {
        FakeMedia {
            id: id.to_owned(),
            kind: "Video".to_owned(),
            filename: filename.to_owned(),
            file_extension: "mp4".to_owned(),
            captured_at: captured_at.to_owned(),
            created_at: captured_at.to_owned(),
            ready_to_view: "ready".to_owned(),
            camera_model: "HERO12 Black".to_owned(),
            source_duration: Some("61000".to_owned()),
            files: vec![FakeFile { item_number: None, size }],
            deleted: false,
            listed_when_deleted: false,
        }
    }

    /// A video recorded in chapters, one file per chapter (item numbers from 1).
    pub fn chaptered(id: &str, filename: &str, captured_at: &str, sizes: &[u64]) -> FakeMedia {
        let files = sizes.iter().enumerate().map(|(i, s)| FakeFile { item_number: Some(i as u32 + 1), size: *s });
        FakeMedia {
            kind: "Chaptered".to_owned(),
            files: files.collect(),
            ..FakeMedia::video(id, filename, captured_at, 0)
        }
    }

    /// A burst: `frames` photos, item numbers from 1.
    pub fn burst(id: &str, filename: &str, captured_at: &str, frames: u32, size: u64) -> FakeMedia {
        let files = (1..=frames).map(|n| FakeFile { item_number: Some(n), size });
        FakeMedia {
            kind: "Burst".to_owned(),
            file_extension: "jpg".to_owned(),
            source_duration: None,
            files: files.collect(),
            ..FakeMedia::video(id, filename, captured_at, 0)
        }
    }

    /// A photo.
    pub fn photo(id: &str, filename: &str, captured_at: &str, size: u64) -> FakeMedia {
        FakeMedia {
            kind: "Photo".to_owned(),
            file_extension: "jpg".to_owned(),
            source_duration: None,
            ..FakeMedia::video(id, filename, captured_at, size)
        }
    }

    /// The listing's `file_size`: the sum of the source files.
    /// UNCONFIRMED: for chaptered media and bursts, whether `file_size` is
    /// the sum of the parts or the size of one of them.
    pub fn file_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// The OAuth client the fake knows, and its current tokens.
#[derive(Debug, Clone)]
struct OAuth {
    client_id: String,
    client_secret: String,
    /// The one refresh token that works now: each refresh rotates it.
    refresh_token: String,
    /// Access tokens issued, with their expiry (fake clock, Unix seconds).
    access: HashMap<String, i64>,
    /// `expires_in` of the tokens issued.
    expires_in: i64,
    issued: u32,
}

/// The cookie login the fake knows.
#[derive(Debug, Clone)]
struct CookieLogin {
    access_token: String,
    user_id: String,
    revoked: bool,
}

struct State {
    media: Vec<FakeMedia>,
    oauth: OAuth,
    cookie: CookieLogin,
    /// Injected 429s: the next API requests answer 429 with this `Retry-After` (seconds).
    throttle: VecDeque<u64>,
    /// Lifetime of presigned URLs, seconds.
    /// UNCONFIRMED: about an hour, according to UPSTREAMS.md's question mark.
    url_lifetime: i64,
    /// Added to the wall clock: a test moves time forward to expire URLs and tokens.
    clock_offset: i64,
    /// Key of the fake's URL signatures.
    signing_key: String,
    /// Every access token issued so far expires once this many more
    /// descriptors have been served (a token dying mid-run).
    expire_after_descriptors: Option<u32>,
}

impl State {
    fn now(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 + self.clock_offset
    }
}

/// One request either host answered (the tests read these).
#[derive(Debug, Clone)]
pub struct Logged {
    /// `api` or `files`.
    pub host: &'static str,
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
}

impl Logged {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The fake: the API on one port, the presigned file host on another.
pub struct FakeGoPro {
    /// `http://127.0.0.1:<port>`: what the client is configured with.
    pub api: String,
    /// `http://localhost:<port>`: where the presigned URLs point. By the
    /// name `localhost` so that the client's host policy can allow it as a
    /// host of its own (the API being on 127.0.0.1).
    pub files: String,
    state: Arc<Mutex<State>>,
    log: Arc<Mutex<Vec<Logged>>>,
    stop: Arc<AtomicBool>,
    addrs: [std::net::SocketAddr; 2],
}

impl FakeGoPro {
    /// The credentials the fake accepts at first.
    pub const CLIENT_ID: &'static str = "fake-client-id";
    pub const CLIENT_SECRET: &'static str = "fake-client-secret";
    pub const REFRESH_TOKEN: &'static str = "rt-initial";
    /// An access token valid from the start (until the fake's clock moves a day on).
    pub const ACCESS_TOKEN: &'static str = "at-initial";
    /// The cookie login: a JWE-shaped token (five dot-separated parts) and a user id.
    pub const COOKIE_TOKEN: &'static str = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXY.Y2lwaGVy.dGFn";
    pub const USER_ID: &'static str = "0b4e7a52-3f3e-4c1b-9a63-6a0d2f1e9c11";

    pub fn start(media: Vec<FakeMedia>) -> FakeGoPro {
        let api_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let files_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addrs = [api_listener.local_addr().unwrap(), files_listener.local_addr().unwrap()];
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let state = Arc::new(Mutex::new(State {
            media,
            oauth: OAuth {
                client_id: Self::CLIENT_ID.to_owned(),
                client_secret: Self::CLIENT_SECRET.to_owned(),
                refresh_token: Self::REFRESH_TOKEN.to_owned(),
                access: HashMap::from([(Self::ACCESS_TOKEN.to_owned(), now + 86_400)]),
                // UNCONFIRMED: the lifetime GoPro gives access tokens.
                expires_in: 7 * 86_400,
                issued: 0,
            },
            cookie: CookieLogin {
                access_token: Self::COOKIE_TOKEN.to_owned(),
                user_id: Self::USER_ID.to_owned(),
                revoked: false,
            },
            throttle: VecDeque::new(),
            url_lifetime: 3600,
            clock_offset: 0,
            signing_key: format!("key-{now}-{}", addrs[0].port()),
            expire_after_descriptors: None,
        }));
        let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let files_base = format!("http://localhost:{}", addrs[1].port());
        for (listener, host) in [(api_listener, "api"), (files_listener, "files")] {
            let (state, log, stop, files_base) = (state.clone(), log.clone(), stop.clone(), files_base.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (state, log, files_base) = (state.clone(), log.clone(), files_base.clone());
                    std::thread::spawn(move || serve(conn, host, &state, &log, &files_base));
                }
            });
        }
        FakeGoPro { api: format!("http://{}", addrs[0]), files: files_base, state, log, stop, addrs }
    }

    /// Every request so far, both hosts, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }

    /// Requests to `path` (no query) on either host.
    pub fn requests_to(&self, path: &str) -> Vec<Logged> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    /// The next `count` API requests answer 429 with `Retry-After: <seconds>`.
    pub fn throttle(&self, count: usize, retry_after_secs: u64) {
        self.state.lock().unwrap().throttle.extend(std::iter::repeat_n(retry_after_secs, count));
    }

    /// Revoke the cookie login: `GET /media/user` and every call with it answer 401.
    pub fn revoke_cookie(&self) {
        self.state.lock().unwrap().cookie.revoked = true;
    }

    /// Move the fake's clock: presigned URLs and access tokens expire by it.
    pub fn advance_clock(&self, secs: i64) {
        self.state.lock().unwrap().clock_offset += secs;
    }

    /// The lifetime of the presigned URLs issued from now on.
    pub fn set_url_lifetime(&self, secs: i64) {
        self.state.lock().unwrap().url_lifetime = secs;
    }

    /// `expires_in` of the access tokens issued from now on.
    pub fn set_token_lifetime(&self, secs: i64) {
        self.state.lock().unwrap().oauth.expires_in = secs;
    }

    /// The access tokens issued so far stop working after `n` more download
    /// descriptors have been served: a token that dies in the middle of a run
    /// (before the expiry it was issued with, as a revoked token would).
    pub fn expire_access_tokens_after_descriptors(&self, n: u32) {
        self.state.lock().unwrap().expire_after_descriptors = Some(n);
    }

    /// The refresh token that works now (after rotations).
    pub fn current_refresh_token(&self) -> String {
        self.state.lock().unwrap().oauth.refresh_token.clone()
    }

    /// How many tokens `POST /v1/oauth2/token` has issued.
    pub fn tokens_issued(&self) -> u32 {
        self.state.lock().unwrap().oauth.issued
    }

    /// Delete a media item upstream: gone from the listing, its descriptor 404.
    pub fn delete(&self, id: &str) {
        self.with_media(id, |m| m.deleted = true);
    }

    /// Delete a media item whose listing entry lingers: still listed, descriptor 404.
    pub fn delete_keep_listed(&self, id: &str) {
        self.with_media(id, |m| {
            m.deleted = true;
            m.listed_when_deleted = true;
        });
    }

    pub fn add(&self, media: FakeMedia) {
        self.state.lock().unwrap().media.push(media);
    }

    fn with_media(&self, id: &str, f: impl FnOnce(&mut FakeMedia)) {
        let mut state = self.state.lock().unwrap();
        f(state.media.iter_mut().find(|m| m.id == id).unwrap_or_else(|| panic!("no fake media {id}")));
    }

    /// The seed of a source file's generated bytes (for [`content`] and [`sha256_of`]): the media id and item number.
    pub fn seed(id: &str, item_number: Option<u32>) -> String {
        format!("{id}/{}", item_number.unwrap_or(0))
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for addr in self.addrs {
            let _ = TcpStream::connect(addr);
        }
    }
}

impl Drop for FakeGoPro {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Generated bytes of the file `seed` ([`FakeGoPro::seed`]) from `offset`,
/// `len` of them: a SplitMix64 stream, each 8-byte word a function of the seed
/// and its position, so any range is generated without the bytes before it.
pub fn content(seed: &str, offset: u64, len: usize) -> Vec<u8> {
    let key = seed_key(seed);
    let mut out = Vec::with_capacity(len);
    let mut pos = offset;
    let end = offset + len as u64;
    while pos < end {
        let word = splitmix(key ^ (pos / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes();
        let from = (pos % 8) as usize;
        let take = (8 - from).min((end - pos) as usize);
        out.extend_from_slice(&word[from..from + take]);
        pos += take as u64;
    }
    out
}

/// SHA-256 (hex) of the first `size` bytes of the file `seed`, generated again.
pub fn sha256_of(seed: &str, size: u64) -> String {
    let mut hasher = Sha256::new();
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(1 << 20) as usize;
        hasher.update(content(seed, pos, n));
        pos += n as u64;
    }
    hex::encode(hasher.finalize())
}

fn seed_key(seed: &str) -> u64 {
    let digest = Sha256::digest(seed.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().unwrap())
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One parsed request, its body read (the token endpoint is a form POST).
struct Incoming {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<String> {
        params(&self.query).remove(name)
    }
}

fn params(s: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

fn read_incoming(conn: &TcpStream) -> Option<Incoming> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let target = words.next()?.to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
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
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(Incoming { method, path, query, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// What to send back.
enum Answer {
    Json(u16, serde_json::Value, Vec<(&'static str, String)>),
    /// A generated file, `[from, to)` of `size`, as 200 or 206.
    Bytes {
        status: u16,
        seed: String,
        from: u64,
        to: u64,
        size: u64,
    },
    Empty(u16, Vec<(&'static str, String)>),
}

fn serve(conn: TcpStream, host: &'static str, state: &Mutex<State>, log: &Mutex<Vec<Logged>>, files_base: &str) {
    let Some(req) = read_incoming(&conn) else { return };
    let answer = match host {
        "api" => api(&req, state, files_base),
        _ => files(&req, state),
    };
    let status = match &answer {
        Answer::Json(s, ..) | Answer::Empty(s, _) | Answer::Bytes { status: s, .. } => *s,
    };
    // Logged before the client can read the answer, so that a test looking
    // once its client is done finds the request.
    log.lock().unwrap().push(Logged {
        host,
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        headers: req.headers.clone(),
        body: req.body.clone(),
        status,
    });
    let head = req.method == "HEAD";
    let mut out = conn;
    let reason = |s: u16| match s {
        200 => "OK",
        206 => "Partial Content",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        _ => "Other",
    };
    match answer {
        Answer::Json(s, body, extra) => {
            let body = serde_json::to_vec(&body).unwrap();
            let mut head_text = format!(
                "HTTP/1.1 {s} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                reason(s),
                body.len()
            );
            for (name, value) in extra {
                head_text.push_str(&format!("{name}: {value}\r\n"));
            }
            head_text.push_str("\r\n");
            let _ = out.write_all(head_text.as_bytes());
            if !head {
                let _ = out.write_all(&body);
            }
        }
        Answer::Empty(s, extra) => {
            let mut head_text = format!("HTTP/1.1 {s} {}\r\nContent-Length: 0\r\nConnection: close\r\n", reason(s));
            for (name, value) in extra {
                head_text.push_str(&format!("{name}: {value}\r\n"));
            }
            head_text.push_str("\r\n");
            let _ = out.write_all(head_text.as_bytes());
        }
        Answer::Bytes { status, seed, from, to, size } => {
            let mut head_text = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: video/mp4\r\nAccept-Ranges: bytes\r\nContent-Length: {}\r\n\
                 ETag: \"{}\"\r\nConnection: close\r\n",
                reason(status),
                to - from,
                hex::encode(&Sha256::digest(format!("{seed}/{size}").as_bytes())[..8]),
            );
            if status == 206 {
                head_text.push_str(&format!("Content-Range: bytes {from}-{}/{size}\r\n", to.saturating_sub(1)));
            }
            head_text.push_str("\r\n");
            if out.write_all(head_text.as_bytes()).is_err() || head {
                return;
            }
            let mut pos = from;
            while pos < to {
                let n = (to - pos).min(256 * 1024) as usize;
                if out.write_all(&content(&seed, pos, n)).is_err() {
                    return; // the client went away (a test cutting a download short)
                }
                pos += n as u64;
            }
        }
    }
}

/// `_embedded.errors[{reason, code, description, id}]` (UPSTREAMS.md).
/// UNCONFIRMED: the values of `reason` and `code`; these are the fake's.
fn error(status: u16, reason: &str, description: &str) -> Answer {
    error_with(status, reason, description, Vec::new())
}

fn error_with(status: u16, reason: &str, description: &str, headers: Vec<(&'static str, String)>) -> Answer {
    let body = serde_json::json!({"_embedded": {"errors": [{
        "reason": reason, "code": status, "description": description,
        "id": format!("err-{}", hex::encode(&Sha256::digest(description.as_bytes())[..6])),
    }]}});
    Answer::Json(status, body, headers)
}

fn api(req: &Incoming, state: &Mutex<State>, files_base: &str) -> Answer {
    let mut state = state.lock().unwrap();
    if let Some(secs) = state.throttle.pop_front() {
        return error_with(429, "RateLimited", "too many requests", vec![("Retry-After", secs.to_string())]);
    }
    if req.method == "POST" && req.path == "/v1/oauth2/token" {
        return token(req, &mut state);
    }
    // UNCONFIRMED: what the API answers without its versioned Accept header;
    // the fake refuses with 406, so a client that forgets it is caught.
    if req.header("accept") != Some(ACCEPT) {
        return error(406, "NotAcceptable", "Accept must be the versioned media type");
    }
    if let Err(answer) = authorized(req, &state) {
        return answer;
    }
    if req.method != "GET" {
        return error(405, "MethodNotAllowed", "GET only");
    }
    if req.path == "/media/user" {
        return Answer::Json(
            200,
            serde_json::json!({"id": state.cookie.user_id, "media_count": state.media.len()}),
            vec![],
        );
    }
    if req.path == "/media/search" {
        return search(req, &state);
    }
    if let Some(id) = req.path.strip_prefix("/media/").and_then(|rest| rest.strip_suffix("/download")) {
        let answer = descriptor(id, &state, files_base);
        match state.expire_after_descriptors {
            Some(0) | None => {}
            Some(1) => {
                let now = state.now();
                state.oauth.access.values_mut().for_each(|expiry| *expiry = now - 1);
                state.expire_after_descriptors = None;
            }
            Some(n) => state.expire_after_descriptors = Some(n - 1),
        }
        return answer;
    }
    error(404, "NotFound", "no such route")
}

/// `POST /v1/oauth2/token`, form-encoded: the refresh grant rotates the refresh token.
fn token(req: &Incoming, state: &mut State) -> Answer {
    if !req.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
        return Answer::Json(400, serde_json::json!({"error": "invalid_request"}), vec![]);
    }
    let form = params(&req.body);
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    // OAuth error bodies as RFC 6749 §5.2 has them.
    // UNCONFIRMED: GoPro's token endpoint's error shape, and whether the
    // password grant still works (the fake refuses it).
    if field("grant_type") != "refresh_token" {
        return Answer::Json(400, serde_json::json!({"error": "unsupported_grant_type"}), vec![]);
    }
    if field("client_id") != state.oauth.client_id || field("client_secret") != state.oauth.client_secret {
        return Answer::Json(401, serde_json::json!({"error": "invalid_client"}), vec![]);
    }
    if field("refresh_token") != state.oauth.refresh_token {
        return Answer::Json(400, serde_json::json!({"error": "invalid_grant"}), vec![]);
    }
    state.oauth.issued += 1;
    let n = state.oauth.issued;
    let access = format!("at-{n}-{}", &state.signing_key[4..]);
    let refresh = format!("rt-{n}-{}", &state.signing_key[4..]);
    let expires = state.now() + state.oauth.expires_in;
    state.oauth.access.insert(access.clone(), expires);
    state.oauth.refresh_token = refresh.clone();
    Answer::Json(
        200,
        serde_json::json!({
            "access_token": access, "expires_in": state.oauth.expires_in,
            "refresh_token": refresh, "resource_owner_id": state.cookie.user_id,
            "token_type": "Bearer",
        }),
        vec![],
    )
}

/// Either `Authorization: Bearer <token>` from the token endpoint, or the
/// cookies of a web login with a browser User-Agent.
fn authorized(req: &Incoming, state: &State) -> Result<(), Answer> {
    if let Some(bearer) = req.header("authorization").and_then(|a| a.strip_prefix("Bearer ")) {
        return match state.oauth.access.get(bearer) {
            Some(expires) if *expires > state.now() => Ok(()),
            Some(_) => Err(error(401, "Unauthorized", "access token expired")),
            None => Err(error(401, "Unauthorized", "invalid access token")),
        };
    }
    let cookies: HashMap<&str, &str> =
        req.header("cookie").unwrap_or_default().split(';').filter_map(|c| c.trim().split_once('=')).collect();
    let (Some(token), Some(user)) = (cookies.get("gp_access_token"), cookies.get("gp_user_id")) else {
        return Err(error(401, "Unauthorized", "no credentials"));
    };
    // UNCONFIRMED: what a non-browser User-Agent gets (itsankoff/gopro-plus
    // sends a browser's); the fake answers 403, as a bot filter would.
    if !req.header("user-agent").is_some_and(|ua| ua.starts_with("Mozilla/")) {
        return Err(error(403, "Forbidden", "browser User-Agent required"));
    }
    if *token != state.cookie.access_token || *user != state.cookie.user_id || state.cookie.revoked {
        return Err(error(401, "Unauthorized", "login expired or revoked"));
    }
    Ok(())
}

/// The fields the listing can return, by name.
fn media_json(m: &FakeMedia) -> serde_json::Map<String, serde_json::Value> {
    let mut o = serde_json::json!({
        "id": m.id, "type": m.kind, "filename": m.filename, "file_extension": m.file_extension,
        "file_size": m.file_size(), "captured_at": m.captured_at, "created_at": m.created_at,
        "ready_to_view": m.ready_to_view, "camera_model": m.camera_model,
        "source_duration": m.source_duration, "width": 3840, "height": 2160,
        "gopro_media_type": m.kind,
    });
    std::mem::take(o.as_object_mut().unwrap())
}

/// `GET /media/search?fields=…&order_by=created_at&per_page=N&page=P`.
fn search(req: &Incoming, state: &State) -> Answer {
    // UNCONFIRMED: the cap of 100 per page.
    let per_page: usize = req.param("per_page").and_then(|p| p.parse().ok()).unwrap_or(30).clamp(1, 100);
    let page: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    if page == 0 {
        // Pages start at 1 (old clients started at 0).
        return error(400, "BadRequest", "page starts at 1");
    }
    let fields: Vec<String> =
        req.param("fields").map(|f| f.split(',').map(str::to_owned).collect()).unwrap_or_else(|| vec!["id".into()]);
    let mut listed: Vec<&FakeMedia> = state.media.iter().filter(|m| !m.deleted || m.listed_when_deleted).collect();
    // UNCONFIRMED: the direction of `order_by=created_at`; the fake lists newest first.
    listed.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let total = listed.len();
    let total_pages = total.div_ceil(per_page);
    let media: Vec<serde_json::Value> = listed
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|m| {
            let all = media_json(m);
            // Only the fields asked for (and the id).
            let picked = all.into_iter().filter(|(k, _)| k == "id" || fields.iter().any(|f| f == k)).collect();
            serde_json::Value::Object(picked)
        })
        .collect();
    Answer::Json(
        200,
        serde_json::json!({
            "_pages": {"current_page": page, "per_page": per_page, "total_items": total, "total_pages": total_pages},
            "_embedded": {"media": media, "errors": []},
        }),
        vec![],
    )
}

/// A presigned URL on the files host: `method` only, until `expires`.
/// UNCONFIRMED: the real ones are S3/CloudFront presigned URLs; only "separately
/// presigned for GET and HEAD, expiring, no auth header" is known.
fn presign(state: &State, files_base: &str, method: &str, seed: &str, size: u64) -> String {
    let expires = state.now() + state.url_lifetime;
    let path = format!("/v1/{seed}");
    let sig = signature(&state.signing_key, method, &path, expires, size);
    format!("{files_base}{path}?Expires={expires}&Size={size}&Method={method}&Signature={sig}")
}

fn signature(key: &str, method: &str, path: &str, expires: i64, size: u64) -> String {
    hex::encode(Sha256::digest(format!("{key}\n{method}\n{path}\n{expires}\n{size}").as_bytes()))
}

/// `GET /media/{id}/download`: the descriptor.
fn descriptor(id: &str, state: &State, files_base: &str) -> Answer {
    // UNCONFIRMED: 404 (rather than 410) for deleted media; issue 14 treats a
    // 404 on the descriptor as SOURCE_DELETED.
    let Some(m) = state.media.iter().find(|m| m.id == id && !m.deleted) else {
        return error(404, "NotFound", "media not found");
    };
    let mut files = Vec::new();
    let mut variations = Vec::new();
    let chaptered = m.files.len() > 1;
    for f in &m.files {
        let seed = FakeGoPro::seed(&m.id, f.item_number);
        let mut file = serde_json::json!({
            "url": presign(state, files_base, "GET", &seed, f.size),
            "head": presign(state, files_base, "HEAD", &seed, f.size),
            "camera_position": "default", "width": 3840, "height": 2160,
            "orientation": 1, "transforms": [], "available": true,
        });
        if let Some(n) = f.item_number {
            file["item_number"] = n.into();
        }
        files.push(file);
        // The source again as a variation per chapter (what dustin/gopro-plus
        // reads for chaptered media). UNCONFIRMED: whether GoPro lists the
        // source in both `files` and `variations` for every type.
        if m.kind != "Photo" && m.kind != "Burst" {
            let mut v = serde_json::json!({
                "label": "source", "quality": "high", "type": m.file_extension,
                "url": presign(state, files_base, "GET", &seed, f.size),
                "head": presign(state, files_base, "HEAD", &seed, f.size),
                "width": 3840, "height": 2160,
            });
            if let Some(n) = f.item_number {
                v["item_number"] = n.into();
            }
            variations.push(v);
        }
    }
    if m.kind != "Photo" && m.kind != "Burst" {
        // Derived files a copy must skip: the chapters joined, and proxies.
        let derived = |label: &str, size: u64| {
            let seed = format!("{}/{label}", m.id);
            serde_json::json!({
                "label": label, "quality": if label == "mp4_low" { "low" } else { "high" }, "type": "mp4",
                "url": presign(state, files_base, "GET", &seed, size),
                "head": presign(state, files_base, "HEAD", &seed, size),
                "width": 1920, "height": 1080,
            })
        };
        if chaptered {
            variations.push(derived("concat", m.file_size()));
        }
        variations.push(derived("high_res_proxy_mp4", 4096));
        variations.push(derived("mp4_low", 1024));
    }
    let gpmf_seed = format!("{}/gpmf", m.id);
    let sidecars = if m.kind == "Photo" || m.kind == "Burst" {
        vec![]
    } else {
        vec![serde_json::json!({
            "label": "gpmf", "type": "gpmf",
            "url": presign(state, files_base, "GET", &gpmf_seed, 512),
            "head": presign(state, files_base, "HEAD", &gpmf_seed, 512),
        })]
    };
    Answer::Json(
        200,
        serde_json::json!({
            "filename": m.filename,
            "_embedded": {"files": files, "variations": variations, "sprites": [], "sidecar_files": sidecars},
        }),
        vec![],
    )
}

/// The presigned host: checks method, signature and expiry, then serves the
/// generated bytes, honouring `Range: bytes=a-b`, `bytes=a-` and `bytes=-n`.
fn files(req: &Incoming, state: &Mutex<State>) -> Answer {
    let state = state.lock().unwrap();
    let q = params(&req.query);
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let expires: i64 = get("Expires").parse().unwrap_or(0);
    let size: u64 = get("Size").parse().unwrap_or(0);
    let method = get("Method");
    // S3 answers 403 to a bad signature, a wrong method and an expired URL alike.
    if signature(&state.signing_key, &method, &req.path, expires, size) != get("Signature") || method != req.method {
        return Answer::Empty(403, vec![]);
    }
    if expires <= state.now() {
        return Answer::Empty(403, vec![]);
    }
    let seed = req.path.strip_prefix("/v1/").unwrap_or_default().to_owned();
    let Some(range) = req.header("range") else {
        return Answer::Bytes { status: 200, seed, from: 0, to: size, size };
    };
    let bad = || Answer::Empty(416, vec![("Content-Range", format!("bytes */{size}"))]);
    let Some((a, b)) = range.strip_prefix("bytes=").and_then(|r| r.split_once('-')) else { return bad() };
    let (from, to) = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(a), Some(b)) if a <= b => (a, (b + 1).min(size)),
        (Some(a), None) if b.is_empty() => (a, size),
        (None, Some(n)) if a.is_empty() => (size.saturating_sub(n), size),
        _ => return bad(),
    };
    if from >= size {
        return bad();
    }
    Answer::Bytes { status: 206, seed, from, to, size }
}
