//! `pkgrelay serve`: the published directory over HTTP, for apt and brew on
//! this machine.
//!
//! A Homebrew mirror of `repositories.yaml` keeps each bottle once, at
//! `<prefix>blobs/sha256/<hex>`; the two names brew asks for are mapped onto
//! it here ([`pkgrelay_core::brew::rewrite`]), never stored twice:
//! `<prefix>bottles/<url-encoded flat name>` through the mirror's published
//! `bottles_hash.json`, and `<prefix>v2/homebrew/core/<image>/blobs/sha256:<hex>`
//! by the digest in the path. A rewrite in front of S3 must map the same.
//!
//! It binds a loopback address unless told otherwise explicitly: an address
//! that is not loopback is refused without `--allow-remote`, and served with
//! a warning with it (the repository is public by design, but a developer's
//! `serve` also exposes whatever else lands in the directory, to whoever can
//! reach the machine).

use axum::Router;
use axum::extract::{Request, State};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

/// The Homebrew mirrors served: their prefixes, and each one's flat-name
/// map as last read (re-read when `bottles_hash.json` changes).
struct Mirrors {
    out: PathBuf,
    prefixes: Vec<String>,
    maps: Mutex<HashMap<String, (Option<SystemTime>, Arc<HashMap<String, String>>)>>,
}

impl Mirrors {
    fn load(out: &Path, config: &Path) -> Mirrors {
        let prefixes = match pkgrelay_core::config::Config::load(config) {
            Ok(c) => c
                .repositories
                .iter()
                .filter(|r| r.format == pkgrelay_core::config::FormatName::Homebrew)
                .map(|r| r.prefix.clone())
                .collect(),
            Err(e) => {
                tracing::warn!("{e}: serving no Homebrew mirror's bottle names");
                Vec::new()
            }
        };
        Mirrors { out: out.to_owned(), prefixes, maps: Mutex::new(HashMap::new()) }
    }

    /// The mirror's flat name → SHA-256 map.
    fn flat_map(&self, prefix: &str) -> Arc<HashMap<String, String>> {
        let path = self.out.join(prefix).join(pkgrelay_core::brew::BOTTLES_HASH);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let mut maps = self.maps.lock().unwrap();
        if let Some((seen, map)) = maps.get(prefix)
            && *seen == modified
        {
            return map.clone();
        }
        let map: HashMap<String, String> =
            std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let map = Arc::new(map);
        maps.insert(prefix.to_owned(), (modified, map.clone()));
        map
    }

    /// The stored path for a request `path` (leading `/`), if it names a
    /// mirror's bottle by one of brew's names.
    fn rewrite(&self, path: &str) -> Option<String> {
        let rel = path.strip_prefix('/')?;
        let prefix = self.prefixes.iter().find(|p| !p.is_empty() && rel.starts_with(p.as_str()))?;
        let inside = &rel[prefix.len()..];
        let key = pkgrelay_core::brew::rewrite(inside, |name| self.flat_map(prefix).get(name).cloned())?;
        Some(format!("/{prefix}{key}"))
    }

    fn is_mirror(&self, path: &str) -> bool {
        let rel = path.trim_start_matches('/');
        self.prefixes.iter().any(|p| !p.is_empty() && rel.starts_with(p.as_str()))
    }
}

/// Map brew's bottle names onto the stored blob, and answer the APT
/// repository's requests in full: `If-Modified-Since` has one-second
/// resolution, and a sync can rewrite InRelease within the second apt last
/// fetched it: a 304 then would hide the new index from apt. A mirror's API
/// files keep conditional requests (brew's curl `--time-cond`): a stale 304
/// there leaves brew with the previous, consistent API until its next update.
async fn route(State(mirrors): State<Arc<Mirrors>>, mut req: Request) -> Request {
    let path = req.uri().path().to_owned();
    if !mirrors.is_mirror(&path) {
        req.headers_mut().remove(axum::http::header::IF_MODIFIED_SINCE);
        return req;
    }
    if let Some(to) = mirrors.rewrite(&path)
        && let Ok(uri) = to.parse::<axum::http::Uri>()
    {
        *req.uri_mut() = uri;
    }
    req
}

/// Whether `bind` may be served: loopback always, anything else only when
/// `allow_remote` says so.
fn check_bind(bind: std::net::SocketAddr, allow_remote: bool) -> anyhow::Result<()> {
    if bind.ip().is_loopback() || allow_remote {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve on {bind}: it is not a loopback address, so anyone who can reach this machine could read \
         what is served; use --bind 127.0.0.1:<port>, or add --allow-remote to serve beyond this machine"
    )
}

pub async fn run(
    out: &Path,
    bind: std::net::SocketAddr,
    allow_remote: bool,
    config: &Path,
) -> anyhow::Result<ExitCode> {
    check_bind(bind, allow_remote)?;
    let mirrors = Mirrors::load(out, config);
    let mirror_published = mirrors.prefixes.iter().any(|p| out.join(p).join("api").is_dir());
    if !out.join("dists").is_dir() && !mirror_published {
        anyhow::bail!("{} holds no published repository yet: run `pkgrelay sync` first", out.display());
    }
    let app = Router::new()
        .fallback_service(ServeDir::new(out))
        .layer(axum::middleware::map_request_with_state(Arc::new(mirrors), route))
        .layer(TraceLayer::new_for_http());
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "serving {} on {addr}, which is not a loopback address: anyone who can reach this machine can read it",
            out.display()
        );
    }
    tracing::info!("serving {} at http://{addr}/", out.display());
    // The source line for apt on this machine (first line of output: scripts read it).
    match pkgrelay_core::config::Config::load_repository(config) {
        Ok(repo) => {
            let keyring =
                std::path::absolute(out.join(&repo.keyring_name)).unwrap_or_else(|_| out.join(&repo.keyring_name));
            println!(
                "deb [signed-by={}] http://{addr}/ {} {}",
                keyring.display(),
                repo.suite,
                repo.components.join(" ")
            );
        }
        Err(_) => println!("deb [signed-by=<keyring>] http://{addr}/ <suite> <components>"),
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_unless_told() {
        for addr in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.2:0"] {
            assert!(check_bind(addr.parse().unwrap(), false).is_ok(), "{addr}");
        }
        for addr in ["0.0.0.0:8080", "[::]:8080", "192.168.1.10:80"] {
            let e = check_bind(addr.parse().unwrap(), false).unwrap_err().to_string();
            assert!(e.contains("not a loopback address") && e.contains("--allow-remote"), "{addr}: {e}");
            assert!(check_bind(addr.parse().unwrap(), true).is_ok(), "{addr}");
        }
    }
}
