//! `pkgrelay sync`: the whole pipeline, in-process.

use crate::Dirs;
use pkgrelay_core::local;
use pkgrelay_core::pipeline;
use pkgrelay_core::steps::CheckSourcesInput;
use std::process::ExitCode;
use std::sync::Arc;

pub async fn run(dirs: &Dirs, force_rebuild: bool, strict: bool, repository: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = dirs.load()?;
    let paths = dirs.paths();
    let (key, generated) = local::load_or_generate_key(&config, &paths)?;
    if generated {
        tracing::info!(
            fingerprint = %key.fingerprint(),
            "generated a new archive signing key in {} (keep it: clients trust this key)",
            paths.key_file().display()
        );
    }
    // Without --repository, every repository of repositories.yaml, in its
    // order (the APT repository alone when the file lists nothing else).
    let names: Vec<Option<String>> = match repository {
        Some(name) => vec![Some(name.to_owned())],
        None if config.repositories.len() <= 1 => vec![None],
        None => config.repositories.iter().map(|r| Some(r.name.clone())).collect(),
    };
    let several = names.len() > 1;
    let mut failed = false;
    for name in names {
        if several {
            println!("repository {}:", name.as_deref().unwrap_or("apt"));
        }
        let observer = Arc::new(crate::progress::Bars::new());
        let ctx = local::repository_context(config.clone(), name.as_deref(), &paths, key.clone(), observer)?;
        failed |= run_one(&ctx, dirs, force_rebuild).await?;
    }
    Ok(if strict && failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// One repository's pipeline and its report; whether anything failed.
async fn run_one(ctx: &pkgrelay_core::steps::Context, dirs: &Dirs, force_rebuild: bool) -> anyhow::Result<bool> {
    let trigger = if force_rebuild { "manual" } else { "cli" };
    let summary = pipeline::run(ctx, CheckSourcesInput { force_rebuild, trigger: Some(trigger.into()) }).await?;

    println!("new: {}", summary.new.len());
    for id in &summary.new {
        println!("  {id}");
    }
    println!("skipped (already processed): {}", summary.already_processed);
    if summary.skipped_rejected > 0 {
        println!(
            "skipped (refused before, unchanged upstream): {} (`pkgrelay status` lists them)",
            summary.skipped_rejected
        );
    }
    println!("failed: {}", summary.failed.len());
    for f in &summary.failed {
        println!("  {} [{}]: {}", f.what, f.error_type, f.message);
    }
    match &summary.published {
        Some(p) => {
            println!(
                "published generation {} ({} packages, valid until {}) to {} for {}",
                p.generation,
                p.packages,
                p.valid_until,
                dirs.out.display(),
                p.url
            );
            for w in &p.warnings {
                println!("  warning: {w}");
            }
            for line in p.retention.iter().flat_map(|r| r.lines()) {
                println!("{line}");
            }
        }
        None => println!("repository unchanged (nothing new, index still fresh)"),
    }
    Ok(!summary.failed.is_empty())
}
