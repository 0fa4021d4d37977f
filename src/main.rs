//! `pkgrelay`: mirror upstream releases into a signed APT repository.
//!
//! The CLI runs the same five steps as the AWS Lambda functions, in-process, on
//! embedded defaults (SQLite in `./.pkgrelay`, the repository in `./public`),
//! and can serve and verify the result. Each subcommand lives in its own module.

mod aws_cmd;
mod aws_outputs;
mod brew_cmd;
mod config_package;
mod executions;
mod keys;
mod media_cmd;
mod migrate;
mod progress;
mod serve;
mod status;
mod sync;
mod verify;

use clap::{Args, Parser, Subcommand};
use pkgrelay_core::config::Config;
use pkgrelay_core::local::LocalPaths;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "pkgrelay", version, about = "Mirror upstream releases into signed package repositories")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where configuration, state and the published repository live.
#[derive(Args, Clone)]
struct Dirs {
    /// Configuration directory (repository.yaml, packages/*.yaml).
    #[arg(long, default_value = "config")]
    config: PathBuf,
    /// State directory (SQLite store, signing key, staging/).
    #[arg(long, default_value = ".pkgrelay")]
    state: PathBuf,
    /// Published repository directory.
    #[arg(long, default_value = "public")]
    out: PathBuf,
}

impl Dirs {
    fn paths(&self) -> LocalPaths {
        LocalPaths { config: self.config.clone(), state: self.state.clone(), out: self.out.clone() }
    }
    fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config)?)
    }

    /// The local staging directory of a state directory.
    fn staging_of(state: &std::path::Path) -> PathBuf {
        LocalPaths { config: PathBuf::new(), state: state.to_owned(), out: PathBuf::new() }.staging()
    }
}

#[derive(Subcommand)]
enum Command {
    /// Ask every source for new releases, download and record them, publish the repository.
    Sync {
        #[command(flatten)]
        dirs: Dirs,
        /// Ask no source: rebuild and re-sign the index from the store alone.
        #[arg(long)]
        force_rebuild: bool,
        /// Exit non-zero when any source or package failed (default: report and exit 0
        /// as long as the published repository is consistent).
        #[arg(long)]
        strict: bool,
        /// The repository of config/repositories.yaml to run (default: the APT repository).
        #[arg(long)]
        repository: Option<String>,
    },
    /// Serve the published repository over HTTP on a loopback address.
    Serve {
        #[arg(long, default_value = "public")]
        out: PathBuf,
        /// Address to listen on; one that is not loopback needs --allow-remote.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// Allow a --bind address that is not loopback (anyone who can reach it can read what is served).
        #[arg(long)]
        allow_remote: bool,
        /// Configuration directory, to print the source line apt needs.
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
    /// Check the published repository (a directory, or --url as apt reads it):
    /// signature, validity, every index file, every pool file.
    Verify(verify::VerifyArgs),
    /// The repository configuration package (kiro-repo): build, publish.
    ConfigPackage {
        #[command(subcommand)]
        action: config_package::ConfigPackageAction,
    },
    /// Operate the deployed pipeline on AWS: start and follow executions, their history.
    Aws {
        #[command(subcommand)]
        action: aws_cmd::AwsAction,
    },
    /// One-time migration of the earlier single-package system's store.
    Migrate(migrate::MigrateArgs),
    /// What the store says: the live generation, unpublished entries, refused candidates and staged files.
    Status(status::StatusArgs),
    /// Forget refused candidates: the next run fetches them again.
    ClearRejection(status::ClearArgs),
    /// A cloud media library (GoPro) copied into a directory: `media sync`.
    Media {
        #[command(subcommand)]
        action: MediaAction,
    },
    /// A Homebrew mirror's tools: seed its store from an earlier mirror's bottles_hash.json.
    Brew {
        #[command(subcommand)]
        action: brew_cmd::BrewAction,
    },
    /// The archive signing key.
    Key {
        #[command(subcommand)]
        action: keys::KeyAction,
        #[command(flatten)]
        dirs: Dirs,
    },
}

#[derive(Subcommand)]
enum MediaAction {
    /// Copy every ready item not copied yet, in original quality; one status row per item.
    Sync(media_cmd::MediaSyncArgs),
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PKGRELAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .compact()
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Sync { dirs, force_rebuild, strict, repository } => {
            sync::run(&dirs, force_rebuild, strict, repository.as_deref()).await
        }
        Command::Serve { out, bind, allow_remote, config } => serve::run(&out, bind, allow_remote, &config).await,
        Command::Verify(args) => verify::run(&args).await,
        Command::Key { action, dirs } => keys::run(action, &dirs),
        Command::ConfigPackage { action } => config_package::run(action).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Aws { action } => aws_cmd::run(action).await,
        Command::Brew { action } => brew_cmd::run(action).await,
        Command::Status(args) => status::status(args).await,
        Command::ClearRejection(args) => status::clear(args).await,
        Command::Media { action: MediaAction::Sync(args) } => media_cmd::sync(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
