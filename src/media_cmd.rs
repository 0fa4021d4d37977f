//! `pkgrelay media sync`: a cloud media library (GoPro) copied into a
//! directory on embedded defaults, one status row per item in SQLite, as the
//! AWS media pipeline will do with S3 and DynamoDB (`pkgrelay_core::media`).
//!
//! The provider's settings are `config/media.yaml`
//! (`pkgrelay_core::media::settings`).
//!
//! The credentials are a JSON document (`--credentials`, what the Secrets
//! Manager secret holds on AWS); rotated tokens are written back to it.

use anyhow::{Context as _, anyhow};
use clap::Args;
use pkgrelay_core::media::gopro::GoPro;
use pkgrelay_core::media::local::{LocalSync, StatusDb};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct MediaSyncArgs {
    /// Configuration directory (media.yaml).
    #[arg(long, default_value = "config")]
    config: PathBuf,
    /// The credentials document (OAuth or cookie form; README: "GoPro media sync").
    #[arg(long, default_value = ".pkgrelay/gopro-credentials.json")]
    credentials: PathBuf,
    /// State directory (the status table, media.db).
    #[arg(long, default_value = ".pkgrelay")]
    state: PathBuf,
    /// Where the files go: `<out>/media/gopro/<yyyy>/<mm>/<dd>/<filename>`.
    #[arg(long, default_value = "library")]
    out: PathBuf,
    /// Exit non-zero when an item failed (default: report and exit 0).
    #[arg(long)]
    strict: bool,
}

pub async fn sync(args: MediaSyncArgs) -> anyhow::Result<ExitCode> {
    let config = pkgrelay_core::media::settings::load(&args.config)?;
    let provider = GoPro::new(config).map_err(|e| anyhow!("{e}"))?;
    std::fs::create_dir_all(&args.state).with_context(|| format!("{}", args.state.display()))?;
    let db = StatusDb::open(&args.state.join("media.db"))?;
    let run = LocalSync { provider: &provider, credentials: args.credentials.clone(), dir: args.out.clone(), db: &db };
    let summary = run.run().await?;
    println!("copied: {} ({} bytes)", summary.copied, summary.bytes);
    println!("already copied: {}", summary.already);
    println!("deleted upstream (copy kept): {}", summary.deleted);
    println!("not ready yet: {}", summary.not_ready);
    println!("failed: {}", summary.failed);
    for row in db.all("gopro")? {
        if let pkgrelay_core::media::MediaStatus::Failed { reason } = &row.status {
            println!("  {}: {reason}", row.media_id);
        }
    }
    if summary.credentials_rotated {
        println!("credentials refreshed and written back to {}", args.credentials.display());
    }
    Ok(if args.strict && summary.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
