//! `pkgrelay status` and `pkgrelay clear-rejection`: what a repository's store
//! says about itself — the live generation, entries recorded but not yet
//! published, candidates refused and remembered, staged files moved to
//! `staging/rejected/` — and forgetting a refusal so that the next run fetches
//! the candidate again. Locally (the state directory) or on a deployed stack
//! (`--outputs-file F --env E`).

use crate::Dirs;
use crate::aws_outputs::StackOutputs;
use anyhow::Context as _;
use clap::Args;
use pkgrelay_core::blob::{DirStore, ObjectStore};
use pkgrelay_core::sources::REJECTED_PREFIX;
use pkgrelay_core::store::{PackageStore, SqliteStore};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Which repository: the local state directory, or a deployed stack.
#[derive(Args, Clone)]
pub struct Target {
    #[command(flatten)]
    dirs: Dirs,
    /// A deployed stack's outputs (`cdk deploy --outputs-file`): its store and bucket instead of the local ones.
    #[arg(long)]
    outputs_file: Option<PathBuf>,
    /// The deployment (`dev`, `staging`, `prod`) in the outputs file.
    #[arg(long, default_value = "dev")]
    env: String,
}

struct Opened {
    store: Arc<dyn PackageStore>,
    private: Arc<dyn ObjectStore>,
    suite: String,
    what: String,
}

impl Target {
    async fn open(&self) -> anyhow::Result<Opened> {
        let config = self.dirs.load()?;
        let suite = config.repository.suite.clone();
        match &self.outputs_file {
            Some(file) => {
                let outputs = StackOutputs::read(file, &self.env)?;
                let (store, bucket) = outputs.store_and_bucket().await;
                Ok(Opened {
                    store: Arc::new(store),
                    private: Arc::new(bucket),
                    suite,
                    what: format!("stack {} (bucket {}, table {})", outputs.stack, outputs.bucket, outputs.packages_table),
                })
            }
            None => {
                let paths = self.dirs.paths();
                let db = paths.state.join("state.db");
                anyhow::ensure!(db.exists(), "{} does not exist: nothing has run here yet (pkgrelay sync)", db.display());
                Ok(Opened {
                    store: Arc::new(SqliteStore::open(&db)?),
                    private: Arc::new(DirStore::new(&paths.state).with_context(|| paths.state.display().to_string())?),
                    suite,
                    what: format!("{}", paths.state.display()),
                })
            }
        }
    }
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let opened = args.target.open().await?;
    let suite = opened.store.suite(&opened.suite).await?;
    let rejections = opened.store.all_rejections().await?;
    // Staged files refused: each has its reason beside it.
    let mut staged = Vec::new();
    for object in opened.private.list(REJECTED_PREFIX).await? {
        if let Some(file) = object.key.strip_suffix(".reason") {
            let reason = opened.private.get_bytes(&object.key).await.map(|b| String::from_utf8_lossy(&b).trim().to_owned());
            staged.push(serde_json::json!({"file": file, "reason": reason.unwrap_or_else(|e| format!("unreadable: {e}"))}));
        }
    }
    if args.json {
        let doc = serde_json::json!({
            "repository": opened.what,
            "suite": suite,
            "unpublished": suite.unpublished(),
            "rejections": rejections,
            "staging_rejected": staged,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("repository: {}", opened.what);
    match &suite.published {
        Some(p) => println!(
            "suite {}: generation {} live since {} (valid until {}), {} generations built",
            suite.suite, p.generation, p.date, p.valid_until, suite.generation
        ),
        None => println!("suite {}: nothing published yet", suite.suite),
    }
    println!("entries recorded: {}; not yet published: {}", suite.recorded, suite.unpublished());
    if let Some(lease) = suite.lease {
        println!("generation {} is being built and published (lease until unix time {})", lease.generation, lease.until);
    }
    println!("refused candidates (not fetched again until upstream changes them): {}", rejections.len());
    for r in &rejections {
        println!("  {} [{}] {}: {}", r.package_id, r.error_type, r.rejected_at, r.reason);
        println!("    url {}; clear with `pkgrelay clear-rejection {}`", r.url, r.package_id);
    }
    println!("staged files refused ({REJECTED_PREFIX}): {}", staged.len());
    for s in &staged {
        println!("  {}: {}", s["file"].as_str().unwrap_or_default(), s["reason"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ClearArgs {
    /// Ids of refused candidates (`name#version#architecture`, as `pkgrelay status` lists them).
    ids: Vec<String>,
    /// Every refusal.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    #[command(flatten)]
    target: Target,
}

pub async fn clear(args: ClearArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.all || !args.ids.is_empty(), "name the refused candidates to clear, or --all");
    let opened = args.target.open().await?;
    let ids = if args.all {
        opened.store.all_rejections().await?.into_iter().map(|r| r.package_id).collect()
    } else {
        args.ids
    };
    let mut missing = Vec::new();
    for id in &ids {
        if opened.store.clear_rejection(id).await? {
            println!("cleared {id}: the next run fetches it again");
        } else {
            missing.push(id.as_str());
        }
    }
    if !missing.is_empty() {
        eprintln!("not refused (nothing to clear): {}", missing.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
