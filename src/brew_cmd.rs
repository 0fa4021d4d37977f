//! `pkgrelay brew …`: tools for a Homebrew mirror beside the pipeline.
//!
//! `brew import-hash FILE` seeds a mirror's store from an earlier mirror's
//! `bottles_hash.json` (`pkgrelay_core::brew_import`): each bottle that mirror
//! left at `bottles/<flat name>` is checked (SHA-256 against the hash file
//! and formula.json, size against the registry) and given its name
//! `blobs/sha256/<hex>` without a second copy where the store allows, and
//! recorded, so that the next sync downloads none of them. Locally (the
//! directories of `pkgrelay sync`) or on a deployed stack
//! (`--outputs-file F --env E`: its table and bucket).

use crate::Dirs;
use crate::aws_outputs::StackOutputs;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use pkgrelay_core::brew_import::{self, PlanFrom};
use pkgrelay_core::local;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum BrewAction {
    /// Seed the mirror's store from an earlier mirror's bottles_hash.json
    /// (file name → SHA-256) and the bottles it left under bottles/, without
    /// downloading them again.
    ImportHash(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The hash file: a JSON object of flat bottle file name → SHA-256.
    file: PathBuf,
    /// The Homebrew mirror of config/repositories.yaml to seed.
    #[arg(long, default_value = "brew")]
    repository: String,
    /// Plan from this formula.json instead of fetching the mirror's
    /// api_url (it must be the one the next sync sees).
    #[arg(long)]
    formula_json: Option<PathBuf>,
    /// Objects checked at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Exit non-zero (2) when any entry was refused (default: report and exit 0).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    dirs: Dirs,
    /// A deployed stack's outputs (`cdk deploy --outputs-file`): its table and bucket instead of the local ones.
    #[arg(long)]
    outputs_file: Option<PathBuf>,
    /// The deployment (`dev`, `staging`, `prod`) in the outputs file.
    #[arg(long, default_value = "dev")]
    env: String,
}

pub async fn run(action: BrewAction) -> anyhow::Result<ExitCode> {
    match action {
        BrewAction::ImportHash(args) => import_hash(args).await,
    }
}

async fn import_hash(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("hash file {}", args.file.display()))?;
    let hashes = brew_import::read_hash_file(&bytes, &args.file.display().to_string())?;
    let config = args.dirs.load()?;
    let observer = Arc::new(pkgrelay_core::steps::Quiet);
    // Scratch space for formula.json; kept until the import is done.
    let work = tempfile::tempdir()?;
    let (ctx, what) = match &args.outputs_file {
        Some(file) => {
            let stack = StackOutputs::read(file, &args.env)?;
            let sdk = crate::aws_outputs::sdk_config().await;
            let ctx =
                stack.repository_context(&sdk, config, Some(&args.repository), work.path().to_owned(), observer)?;
            (ctx, format!("stack {} (bucket {})", stack.stack, stack.bucket))
        }
        None => {
            let paths = args.dirs.paths();
            let ctx = local::unsigned_repository_context(config, Some(&args.repository), &paths, observer)?;
            (ctx, format!("{} and {}", paths.out.display(), paths.state.display()))
        }
    };
    let mirror = brew_import::mirror_of(&ctx)?.clone();
    println!("importing {} entries of {} into mirror {} ({what})", hashes.len(), args.file.display(), args.repository);
    let plan_from = match args.formula_json {
        Some(path) => PlanFrom::File(path),
        None => PlanFrom::Api,
    };
    let report = brew_import::import(&ctx, &mirror, hashes, plan_from, args.jobs as usize).await?;
    print!("{report}");
    let refused = report.refused().count();
    if refused > 0 {
        println!("refused entries lose nothing: their objects stay as they were, and `pkgrelay sync` downloads them");
    }
    Ok(if args.strict && refused > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
