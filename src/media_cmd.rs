//! `pkgrelay media sync`: a cloud media library (GoPro) copied into a
//! directory on embedded defaults, one status record per item in SQLite: the
//! same four steps as the AWS media pipeline, in-process
//! (`pkgrelay_core::media::runner`).
//!
//! The provider's settings are `config/media.yaml`
//! (`pkgrelay_core::media::settings`).
//!
//! The credentials are a JSON document (`--credentials`, what the Secrets
//! Manager secret holds on AWS); rotated tokens are written back to it.

use anyhow::{Context as _, anyhow};
use clap::Args;
use pkgrelay_core::media::gopro::GoPro;
use pkgrelay_core::media::local::{self, StatusDb};
use pkgrelay_core::media::{MediaStatus, runner};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
    let provider = Arc::new(GoPro::new(config).map_err(|e| anyhow!("{e}"))?);
    std::fs::create_dir_all(&args.state).with_context(|| format!("{}", args.state.display()))?;
    let db = Arc::new(StatusDb::open(&args.state.join("media.db"))?);
    let ctx = local::context(provider.clone(), &args.credentials, db.clone(), &args.state, &args.out)?;
    let run = runner::run(&ctx).await.map_err(|e| anyhow!("{e}"))?;
    let s = &run.summary;
    println!("copied: {} ({} bytes)", s.copied, s.bytes);
    println!("already copied: {}", run.listing.completed + s.already);
    println!("deleted upstream (copy kept): {}", s.deleted);
    println!("not ready yet: {}", s.not_ready);
    println!("failed: {}", s.failed + s.token_rejected);
    for record in db.all(pkgrelay_core::media::MediaProvider::name(provider.as_ref()))? {
        if let MediaStatus::Failed { reason } = &record.status {
            println!("  {}: {reason}", record.media_id);
        }
    }
    if run.rotated {
        println!("credentials refreshed and written back to {}", args.credentials.display());
    }
    Ok(if args.strict && s.failed + s.token_rejected > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
