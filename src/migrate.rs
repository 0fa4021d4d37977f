//! `pkgrelay migrate`: the one-time migration of the earlier single-package
//! system's store (`pkgrelay_core::migrate`), on the local SQLite file (its
//! `releases` table in `<state>/state.db`) or, with `--outputs-file`, on the
//! deployed stack's DynamoDB and bucket.

use crate::Dirs;
use anyhow::anyhow;
use clap::Args;
use pkgrelay_core::local;
use pkgrelay_core::migrate::{self, Options, SqliteLegacy};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    dirs: Dirs,
    /// Show old and new side by side for the first items; download, write and
    /// delete nothing (the backup is still written and verified).
    #[arg(long)]
    dry_run: bool,
    /// Directory for the JSONL backup of the old items (default: the state directory).
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Items per batch, for migrating and for deleting.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Items shown side by side by --dry-run.
    #[arg(long, default_value_t = 5)]
    show: usize,
    /// The package the old items are releases of (default: the one
    /// external_download package in the configuration).
    #[arg(long)]
    package: Option<String>,
    /// `cdk deploy --outputs-file` output: migrate the deployed stack's table
    /// and bucket instead of the local store.
    #[arg(long, requires_all = ["env", "legacy_table"])]
    outputs_file: Option<PathBuf>,
    /// Deployment whose stack (`pkgrelay-<env>`) to read from --outputs-file.
    #[arg(long, requires = "outputs_file")]
    env: Option<String>,
    /// The earlier system's DynamoDB table (partition key `version`).
    #[arg(long, requires = "outputs_file")]
    legacy_table: Option<String>,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let config = args.dirs.load()?;
    let opts = Options {
        dry_run: args.dry_run,
        backup_dir: args.backup_dir.clone().unwrap_or_else(|| args.dirs.state.clone()),
        batch_size: args.batch_size as usize,
        show: args.show,
        package: args.package.clone(),
    };
    let observer = Arc::new(crate::progress::Bars::new());
    let report = match (&args.outputs_file, &args.env, &args.legacy_table) {
        (Some(file), Some(env), Some(table)) => {
            let stack = crate::aws_outputs::StackOutputs::read(file, env)?;
            let sdk = crate::aws_outputs::sdk_config().await;
            let work = tempfile::tempdir()?;
            let ctx = stack.context(&sdk, config, work.path().to_owned(), observer)?;
            let legacy = pkgrelay_aws::legacy::DynamoLegacy::new(pkgrelay_aws::dynamo::client(&sdk), table);
            tracing::info!(stack = %stack.stack, table = %stack.packages_table, bucket = %stack.bucket, "migrating into the deployed stack");
            migrate::run(&ctx, &legacy, &opts).await?
        }
        (None, _, _) => {
            let paths = args.dirs.paths();
            let ctx = local::unsigned_context(config, &paths, observer)?;
            let legacy = SqliteLegacy::open(&paths.state.join("state.db"))?;
            migrate::run(&ctx, &legacy, &opts).await?
        }
        _ => return Err(anyhow!("--outputs-file needs --env and --legacy-table")),
    };
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}
