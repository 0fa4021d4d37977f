//! `pkgrelay config-package`: build the repository configuration package
//! (kiro-repo) and publish it into `staging/`, locally or on AWS, where the
//! next sync (the S3 event, on AWS) picks it up.

use crate::Dirs;
use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use pkgrelay_core::apt::config_package::ConfigPackage;
use pkgrelay_core::config::Config;
use pkgrelay_core::digest::Checksums;
use pkgrelay_core::local;
use pkgrelay_core::store::{PackageStore, SqliteStore};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ConfigPackageAction {
    /// Write `<name>_<version>_all.deb` into --out.
    Build {
        #[command(flatten)]
        opts: Opts,
        /// Directory to write the package into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Build it and put it into staging/: the state directory, or with
    /// --outputs-file the bucket of the deployed stack.
    Publish {
        #[command(flatten)]
        opts: Opts,
        /// `cdk deploy --outputs-file` output: publish to that stack's bucket.
        #[arg(long)]
        outputs_file: Option<PathBuf>,
        /// Build and validate, upload nothing.
        #[arg(long)]
        dry_run: bool,
        /// After the upload, follow the execution it starts (found by the staging
        /// key in its input) and return once the package is in the public index.
        #[arg(long, requires = "outputs_file")]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 1800)]
        wait_timeout: u64,
        /// With --wait: one JSON document at the end instead of live lines.
        #[arg(long, requires = "wait")]
        json: bool,
    },
}

#[derive(Args)]
pub struct Opts {
    /// Package version; default: the next after the newest recorded one.
    #[arg(long)]
    version: Option<String>,
    #[arg(long, default_value = "config")]
    config: PathBuf,
    /// State directory (local store and archive key).
    #[arg(long, default_value = ".pkgrelay")]
    state: PathBuf,
    /// Deployment whose repository URL goes into the source list
    /// (`environments` in repository.yaml); default: `base_url`.
    #[arg(long)]
    env: Option<String>,
    /// The archive's public keyring (binary); default: from the local archive key.
    #[arg(long)]
    keyring: Option<PathBuf>,
    /// The package to build (default: repository.yaml's `convenience_copy`).
    #[arg(long)]
    package: Option<String>,
}

/// The version after `newest`: its last numeric component plus one.
pub fn next_version(newest: Option<&str>) -> String {
    let Some(v) = newest else { return "1.0".into() };
    let (head, last) = v.rsplit_once('.').unwrap_or(("", v));
    match last.parse::<u64>() {
        Ok(n) if head.is_empty() => format!("{}", n + 1),
        Ok(n) => format!("{head}.{}", n + 1),
        Err(_) => format!("{v}.1"),
    }
}

struct Built {
    file_name: String,
    bytes: Vec<u8>,
}

fn build(opts: &Opts, config: &Config, version: &str) -> anyhow::Result<Built> {
    let repo = &config.repository;
    let name = opts
        .package
        .as_deref()
        .or(repo.convenience_copy.as_deref())
        .ok_or_else(|| anyhow!("no --package given and repository.yaml names no convenience_copy"))?;
    let package = config.package(name).ok_or_else(|| anyhow!("no package {name:?} in {}", opts.config.display()))?;
    let base_url = repo.base_url_for(opts.env.as_deref()).map_err(|e| anyhow!(e))?;
    let keyring = match &opts.keyring {
        Some(file) => std::fs::read(file).with_context(|| format!("keyring {}", file.display()))?,
        None => {
            let paths =
                local::LocalPaths { config: opts.config.clone(), state: opts.state.clone(), out: PathBuf::new() };
            local::load_or_generate_key(config, &paths)?.0.public_keyring()?
        }
    };
    let pkg = ConfigPackage { repository: repo, package, version, base_url, keyring: &keyring };
    let bytes = pkg.build()?;
    // Validate what was built with the same reader the pipeline uses.
    let control = pkgrelay_core::deb::read_control_from(&bytes[..]).context("reading back the built package")?;
    if control.get("Version") != Some(version) || control.get("Package") != Some(name) {
        bail!("the built package does not read back as {name} {version}");
    }
    tracing::info!(package = name, version, %base_url, sha256 = %Checksums::of(&bytes).sha256, "built {}", pkg.file_name());
    Ok(Built { file_name: pkg.file_name(), bytes })
}

fn newest_recorded_local(state: &Path, name: &str) -> anyhow::Result<Option<String>> {
    let db = state.join("state.db");
    if !db.exists() {
        return Ok(None);
    }
    let store = SqliteStore::open(&db)?;
    let rt = tokio::runtime::Handle::current();
    let versions = tokio::task::block_in_place(|| rt.block_on(store.versions_of(name)))?;
    Ok(versions.into_iter().map(|e| e.version).max_by(|a, b| pkgrelay_core::version::compare(a, b)))
}

pub async fn run(action: ConfigPackageAction) -> anyhow::Result<ExitCode> {
    match action {
        ConfigPackageAction::Build { opts, out } => {
            let config = Config::load(&opts.config)?;
            let version = match &opts.version {
                Some(v) => v.clone(),
                None => next_version(newest_recorded_local(&opts.state, package_name(&opts, &config)?)?.as_deref()),
            };
            let built = build(&opts, &config, &version)?;
            std::fs::create_dir_all(&out)?;
            let path = out.join(&built.file_name);
            write_atomically(&path, &built.bytes)?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        ConfigPackageAction::Publish { opts, outputs_file, dry_run, wait, wait_timeout, json } => {
            let config = Config::load(&opts.config)?;
            let name = package_name(&opts, &config)?.to_owned();
            match outputs_file {
                None => {
                    let version = match &opts.version {
                        Some(v) => v.clone(),
                        None => next_version(newest_recorded_local(&opts.state, &name)?.as_deref()),
                    };
                    let built = build(&opts, &config, &version)?;
                    let staging = Dirs::staging_of(&opts.state);
                    let path = staging.join(&built.file_name);
                    if dry_run {
                        println!("dry run: would put {} into {}", built.file_name, staging.display());
                    } else {
                        std::fs::create_dir_all(&staging)?;
                        write_atomically(&path, &built.bytes)?;
                        tracing::info!("staged {}: the next `pkgrelay sync` publishes it", path.display());
                        println!("{}", path.display());
                    }
                }
                Some(file) => {
                    let env = opts
                        .env
                        .as_deref()
                        .ok_or_else(|| anyhow!("--outputs-file needs --env (dev, staging, prod)"))?;
                    let stack = crate::aws_outputs::StackOutputs::read(&file, env)?;
                    let aws = stack.clients().await;
                    let version = match &opts.version {
                        Some(v) => v.clone(),
                        None => next_version(aws.newest_recorded(&name).await?.as_deref()),
                    };
                    let built = build(&opts, &config, &version)?;
                    let key = format!("{}{}", stack.staging_prefix, built.file_name);
                    if dry_run {
                        println!("dry run: would put {} into s3://{}/{key}", built.file_name, stack.bucket);
                    } else {
                        let uploaded_at = time::OffsetDateTime::now_utc();
                        aws.stage(&key, &built.bytes).await?;
                        tracing::info!(stack = %stack.stack, state_machine = %stack.state_machine_arn, "uploaded s3://{}/{key}: the S3 event starts the rebuild", stack.bucket);
                        if !json {
                            println!("s3://{}/{key}", stack.bucket);
                        }
                        if wait {
                            let live = Live { config: &config, env, name: &name, version: &version, key: &key };
                            return wait_until_live(&stack, &live, uploaded_at, wait_timeout, json).await;
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The package `publish --wait` waits for.
struct Live<'a> {
    config: &'a Config,
    env: &'a str,
    name: &'a str,
    version: &'a str,
    /// Its staging key: the execution the upload starts has it in its input.
    key: &'a str,
}

/// Find the execution the upload started (the staging rule's input names the
/// key; one started up to a minute before the upload counts, for clock skew),
/// follow it, then read the public index over HTTP until it lists the package
/// (CloudFront may serve the previous InRelease for a while).
async fn wait_until_live(
    stack: &crate::aws_outputs::StackOutputs,
    live: &Live<'_>,
    uploaded_at: time::OffsetDateTime,
    timeout_seconds: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use crate::executions::{Executions, view_for};
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(timeout_seconds);
    let executions = Executions::new(&crate::aws_outputs::sdk_config().await);
    let mut view = view_for(json);
    view.note(&format!("waiting for the execution the upload starts (input key {})", live.key));
    let since = uploaded_at - time::Duration::minutes(1);
    let arn = executions.find_by_staging_key(&stack.state_machine_arn, live.key, since, deadline).await?;
    view.note(&format!("following {arn}"));
    let outcome = executions.follow(&arn, view.as_mut()).await?;
    let id_prefix = format!("{}#{}#", live.name, live.version);
    let item_failure = outcome
        .summary
        .as_ref()
        .and_then(|s| s.items.as_ref())
        .and_then(|items| items.failed.iter().find(|f| f.package_id.starts_with(&id_prefix)).cloned());
    if !outcome.succeeded() || item_failure.is_some() {
        crate::aws_cmd::print_outcome(&outcome, json)?;
        if let Some(f) = item_failure {
            eprintln!("error: {} {} was not published: {}: {}", live.name, live.version, f.error, f.cause);
        }
        return Ok(ExitCode::FAILURE);
    }
    let base = match &stack.repository_url {
        Some(url) => url.clone(),
        None => live.config.repository.base_url_for(Some(live.env)).map_err(|e| anyhow!(e))?.to_string(),
    };
    let reader = crate::verify::HttpReader::new(&base)?;
    let repo = &live.config.repository;
    let packages = loop {
        let last = match pkgrelay_core::apt::verify::find_package(&reader, repo, live.name, live.version).await {
            Ok(Some(path)) => break path,
            Ok(None) => format!("{} {} is not in the public index at {base} yet", live.name, live.version),
            Err(e) => format!("the public index at {base}: {e}"),
        };
        if Instant::now() >= deadline {
            crate::aws_cmd::print_outcome(&outcome, json)?;
            bail!("{last} (gave up after {timeout_seconds} s)");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let listed_at = reader.url(&packages);
    if json {
        let mut doc = serde_json::to_value(&outcome)?;
        doc["live"] = serde_json::json!({"package": live.name, "version": live.version, "packages_url": listed_at});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for line in outcome.report() {
            println!("{line}");
        }
        println!("{} {} is live: listed in {listed_at}", live.name, live.version);
    }
    Ok(ExitCode::SUCCESS)
}

fn package_name<'a>(opts: &'a Opts, config: &'a Config) -> anyhow::Result<&'a str> {
    opts.package
        .as_deref()
        .or(config.repository.convenience_copy.as_deref())
        .ok_or_else(|| anyhow!("no --package given and repository.yaml names no convenience_copy"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::next_version;

    #[test]
    fn next_versions() {
        assert_eq!(next_version(None), "1.0");
        assert_eq!(next_version(Some("1.0")), "1.1");
        assert_eq!(next_version(Some("1.9")), "1.10");
        assert_eq!(next_version(Some("2")), "3");
        assert_eq!(next_version(Some("1.0~rc1")), "1.0~rc1.1");
    }
}
