//! `pkgrelay verify`: check a published repository as a client would, in a
//! directory (`--out`) or over HTTP (`--url`, what users' apt sees through
//! CloudFront or `pkgrelay serve`). The checks are `pkgrelay_core::apt::verify`'s;
//! this module reads the repository for them ([`HttpReader`] over reqwest) and
//! prints findings per file and a one-line verdict, or one JSON document.
//!
//! A Homebrew mirror (DESIGN.md) does not exist yet: once it does, its checks
//! (the bottle URLs brew would request) go beside the APT ones in
//! [`verify_repository`], reading through the same [`RepositoryReader`].

use crate::Dirs;
use anyhow::{Context as _, anyhow};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pkgrelay_core::apt::verify::{self, Digest, ReadError, Report, RepositoryReader, StoreReader};
use pkgrelay_core::blob::DirStore;
use pkgrelay_core::config::RepositoryConfig;
use pkgrelay_core::digest::Hasher;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    dirs: Dirs,
    /// Verify the repository at this URL (over HTTP, as apt reads it) instead of --out.
    #[arg(long)]
    url: Option<String>,
    /// The keyring (binary or armored) InRelease must be signed with; default: the
    /// keyring the repository publishes, which proves consistency, not authenticity.
    #[arg(long)]
    keyring: Option<PathBuf>,
    /// Hash every pool file (SHA256). Default: with --url, compare sizes (HEAD);
    /// in a directory, always hash.
    #[arg(long)]
    deep: bool,
    /// Print one JSON document instead of lines.
    #[arg(long)]
    json: bool,
}

/// A repository over HTTP(S): GET for index files, HEAD for sizes, streamed
/// GET for digests. 404, and the 403 that S3 behind CloudFront answers for a
/// key that does not exist, mean missing.
pub struct HttpReader {
    base: url::Url,
    client: reqwest::Client,
}

impl HttpReader {
    pub fn new(base: &str) -> anyhow::Result<HttpReader> {
        let with_slash = if base.ends_with('/') { base.to_owned() } else { format!("{base}/") };
        let base = url::Url::parse(&with_slash).with_context(|| format!("--url {base:?}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(anyhow!("--url {base}: only http:// and https:// repositories can be read"));
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("pkgrelay-verify/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()?;
        Ok(HttpReader { base, client })
    }

    pub fn url(&self, path: &str) -> String {
        self.base.join(path).map(String::from).unwrap_or_else(|_| format!("{}{path}", self.base))
    }

    /// A request, tried again after network errors and 5xx answers (three tries).
    async fn send(&self, method: reqwest::Method, path: &str) -> Result<reqwest::Response, ReadError> {
        let url = self.url(path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.client.request(method.clone(), &url).send().await;
            let retry = match &outcome {
                Ok(r) => r.status().is_server_error(),
                Err(e) => !e.is_builder(),
            };
            if retry && attempt < 3 {
                tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
                continue;
            }
            return match outcome {
                Ok(r) if r.status().is_success() => Ok(r),
                Ok(r) if matches!(r.status().as_u16(), 403 | 404) => {
                    Err(ReadError::Missing(format!("HTTP {} for {url}", r.status().as_u16())))
                }
                Ok(r) => Err(ReadError::Failed(format!("HTTP {} for {url}", r.status()))),
                Err(e) => Err(ReadError::Failed(format!("{url}: {}", error_chain(&e)))),
            };
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[async_trait::async_trait]
impl RepositoryReader for HttpReader {
    fn location(&self) -> String {
        self.base.to_string()
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        let response = self.send(reqwest::Method::GET, path).await?;
        let url = self.url(path);
        response.bytes().await.map(|b| b.to_vec()).map_err(|e| ReadError::Failed(format!("{url}: {}", error_chain(&e))))
    }

    async fn size(&self, path: &str) -> Result<u64, ReadError> {
        let response = self.send(reqwest::Method::HEAD, path).await?;
        // The header itself: for a HEAD, reqwest's content_length() is the (empty) body's.
        let header = response.headers().get(reqwest::header::CONTENT_LENGTH);
        match header.and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
            Some(size) => Ok(size),
            None => self.digest(path).await.map(|d| d.size),
        }
    }

    async fn digest(&self, path: &str) -> Result<Digest, ReadError> {
        let mut response = self.send(reqwest::Method::GET, path).await?;
        let mut hasher = Hasher::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => hasher.update(&chunk),
                Ok(None) => break,
                Err(e) => return Err(ReadError::Failed(format!("{}: {}", self.url(path), error_chain(&e)))),
            }
        }
        let sums = hasher.finish();
        Ok(Digest { size: sums.size, sha256: sums.sha256 })
    }
}

/// The checks of the repository's kind. Only APT exists; the Homebrew
/// mirror's (bottle URLs, manifests, the API files brew verifies) belong here
/// once that format does.
pub async fn verify_repository(
    reader: &dyn RepositoryReader,
    repository: &RepositoryConfig,
    options: &verify::Options,
) -> Report {
    verify::verify(reader, repository, options).await
}

pub async fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let repository = pkgrelay_core::config::Config::load_repository(&args.dirs.config)?;
    let keyring = match &args.keyring {
        Some(file) => Some(std::fs::read(file).with_context(|| format!("--keyring {}", file.display()))?),
        None => None,
    };
    let spinner = (!args.json && std::io::stdout().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        // {msg}, not {wide_msg}: a line exactly as wide as the terminal wraps and is drawn twice.
        bar.set_style(ProgressStyle::with_template("{spinner} {pos} files checked: {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let progress: Option<verify::Progress> = spinner.clone().map(|bar| {
        Box::new(move |path: &str| {
            bar.inc(1);
            let chars: Vec<char> = path.chars().collect();
            let tail: String = chars[chars.len().saturating_sub(60)..].iter().collect();
            bar.set_message(if chars.len() > 60 { format!("…{tail}") } else { tail });
        }) as verify::Progress
    });
    let scratch = tempfile::tempdir()?;
    let (location, deep, report) = match &args.url {
        Some(url) => {
            let reader = HttpReader::new(url)?;
            let options = verify::Options { keyring, deep: args.deep, progress, ..verify::Options::default() };
            (reader.location(), args.deep, verify_repository(&reader, &repository, &options).await)
        }
        None => {
            let store = DirStore::new(&args.dirs.out)?;
            let reader = StoreReader {
                store: &store,
                location: args.dirs.out.display().to_string(),
                work_dir: scratch.path().to_owned(),
            };
            let options = verify::Options { keyring, deep: true, progress, ..verify::Options::default() };
            (reader.location(), true, verify_repository(&reader, &repository, &options).await)
        }
    };
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let verdict = verdict(&location, deep, &report);
    if args.json {
        let mut doc = serde_json::to_value(&report)?;
        doc["location"] = location.into();
        doc["ok"] = report.ok().into();
        doc["pool_check"] = if deep { "sha256" } else { "size" }.into();
        doc["verdict"] = verdict.into();
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for e in &report.errors {
            println!("error: {e}");
        }
        for w in &report.warnings {
            println!("warning: {w}");
        }
        println!("{verdict}");
    }
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// One line: OK or FAILED, where, and what was checked.
fn verdict(location: &str, deep: bool, report: &Report) -> String {
    let checked = format!(
        "{} index files, {} package entries, {} pool files by {}",
        report.index_files,
        report.packages,
        report.pool_files,
        if deep { "size and SHA256" } else { "size" }
    );
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    if report.ok() {
        let signer = report.signed_by.as_deref().map(|f| format!("signed by {f}, ")).unwrap_or_default();
        let until = report.valid_until.as_deref().map(|v| format!("valid until {v}, ")).unwrap_or_default();
        let warnings = if report.warnings.is_empty() {
            String::new()
        } else {
            format!(", {}", plural(report.warnings.len(), "warning"))
        };
        format!("OK {location}: {signer}{until}{checked}{warnings}")
    } else {
        format!(
            "FAILED {location}: {}, {} ({checked})",
            plural(report.errors.len(), "error"),
            plural(report.warnings.len(), "warning")
        )
    }
}
