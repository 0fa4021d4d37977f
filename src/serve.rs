//! `pkgrelay serve`: the published directory over HTTP, for apt on this machine.
//!
//! It binds a loopback address unless told otherwise explicitly: an address
//! that is not loopback is refused without `--allow-remote`, and served with
//! a warning with it (the repository is public by design, but a developer's
//! `serve` also exposes whatever else lands in the directory, to whoever can
//! reach the machine).

use axum::Router;
use axum::extract::Request;
use std::path::Path;
use std::process::ExitCode;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

/// Answer every request in full. `If-Modified-Since` has one-second resolution,
/// and a sync can rewrite InRelease within the second apt last fetched it: a
/// 304 then would hide the new index from apt.
async fn unconditional(mut req: Request) -> Request {
    req.headers_mut().remove(axum::http::header::IF_MODIFIED_SINCE);
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
    if !out.join("dists").is_dir() {
        anyhow::bail!("{} holds no published repository yet: run `pkgrelay sync` first", out.display());
    }
    let app = Router::new()
        .fallback_service(ServeDir::new(out))
        .layer(axum::middleware::map_request(unconditional))
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
