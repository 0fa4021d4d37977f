//! `pkgrelay serve`: the published directory over HTTP, for apt on this machine.

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

pub async fn run(out: &Path, bind: std::net::SocketAddr, config: &Path) -> anyhow::Result<ExitCode> {
    if !out.join("dists").is_dir() {
        anyhow::bail!("{} holds no published repository yet: run `pkgrelay sync` first", out.display());
    }
    let app = Router::new()
        .fallback_service(ServeDir::new(out))
        .layer(axum::middleware::map_request(unconditional))
        .layer(TraceLayer::new_for_http());
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
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
