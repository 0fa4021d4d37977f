//! `staging_upload`: `.deb` files dropped into the private `staging/` prefix
//! (locally a directory, on AWS the bucket's `staging/` prefix). The package's
//! own control paragraph names it.
//!
//! `staging/` is an inbox: each object is taken once. A good one is offered
//! as a candidate and, once record-metadata has recorded it, leaves `staging/`
//! (the pool holds it). A bad one — unreadable, not a package, a package no
//! `staging_upload` configuration names, a key the store cannot hold —
//! moves to `staging/rejected/` with a `.reason` text beside it, and never
//! holds back the good ones beside it. Nothing is read twice.
//!
//! On AWS the move is a CopyObject and a DeleteObject; the EventBridge rule
//! (`statemachine/staging-rule.json`) does not match copies, so moving a file
//! into `staging/rejected/` starts no run.

use super::{ArtifactFile, Fetched, Refused, STAGING_PREFIX, Source, SourceContext};
use crate::blob::{BlobError, ObjectStore, WriteMode};
use crate::config::PackageConfig;
use crate::digest::Checksums;
use crate::fetch::Expected;
use crate::model::{Candidate, PackageEntry, SourceType};
use crate::steps::{Context, StepError, StepResult};
use anyhow::anyhow;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where refused uploads go, each with `<name>.reason` beside it.
pub const REJECTED_PREFIX: &str = "staging/rejected/";

/// `type: staging_upload` (no other fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagingUpload {}

/// One staged .deb: its key, control paragraph and digests.
pub struct Staged {
    key: String,
    control: crate::deb::ControlParagraph,
    sums: Checksums,
}

/// A staged object moved to `staging/rejected/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedRejection {
    /// The key it had in `staging/`.
    pub key: String,
    /// Where it is now (`None`: it could not be moved, see `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
    pub reason: String,
}

/// The name a staged key gets under `staging/rejected/`: its path below
/// `staging/`, flattened (`staging//a/b.deb` -> `a_b.deb`).
fn rejected_key(key: &str) -> String {
    let rel = key.strip_prefix(STAGING_PREFIX).unwrap_or(key);
    let name: String =
        rel.split('/').filter(|s| !s.is_empty() && *s != "." && *s != "..").collect::<Vec<_>>().join("_");
    format!("{REJECTED_PREFIX}{}", if name.is_empty() { "unnamed" } else { &name })
}

/// Move a staged object to `staging/rejected/` with its reason beside it.
/// Errors of the store are returned (the caller reports them); the reason
/// file is written first, so an object that cannot be moved still says why.
pub async fn reject_staged(private: &dyn ObjectStore, key: &str, reason: &str) -> StagedRejection {
    let to = rejected_key(key);
    let text = format!("{key}: {reason}\n");
    let moved = async {
        private.put_bytes(&format!("{to}.reason"), text.into_bytes(), WriteMode::Overwrite).await?;
        private.copy(key, &to, WriteMode::Overwrite).await?;
        private.delete(key).await?;
        Ok::<(), BlobError>(())
    }
    .await;
    match moved {
        Ok(()) => {
            tracing::warn!(key, rejected = %to, "staged file rejected: {reason}");
            StagedRejection { key: key.to_owned(), moved_to: Some(to), reason: reason.to_owned() }
        }
        Err(e) => {
            tracing::error!(key, "staged file rejected ({reason}) but could not be moved: {e}");
            StagedRejection {
                key: key.to_owned(),
                moved_to: None,
                reason: format!("{reason} (and it could not be moved to {to}: {e})"),
            }
        }
    }
}

/// A staged file read: what it is, and, read in place, its whole check.
type ReadStaged = (Staged, Option<crate::deb::Checked>);

/// Read one staged .deb through a temporary copy (a store that is not a
/// directory), or in place where [`read_in_place`] did not already.
async fn read_one(ctx: &SourceContext<'_>, key: &str) -> anyhow::Result<ReadStaged> {
    crate::blob::check_key(key).map_err(|_| anyhow::anyhow!("the key {key:?} is not a plain path"))?;
    if let Some(path) = ctx.private.local_path(key) {
        return read_in_place(key, &path, &ctx.deb_limits);
    }
    let tmp = tempfile::NamedTempFile::new_in(ctx.work_dir)?;
    ctx.private.get_to_file(key, tmp.path()).await?;
    let control = crate::deb::read_control_with(tmp.path(), &ctx.deb_limits)?;
    staged(key, control, Checksums::of_file(tmp.path())?, None)
}

/// Read one staged .deb in place (a directory store): checked whole as dpkg
/// would in the same read that hashes it (the check is returned, for
/// download-package to take). A file that fails that check is read as
/// before (control paragraph and digests): download-package then refuses
/// it with its own reason, as it does on every store.
fn read_in_place(key: &str, path: &std::path::Path, limits: &crate::deb::DebLimits) -> anyhow::Result<ReadStaged> {
    match crate::deb::check_package_hashed(path, limits) {
        Ok(checked) => staged(key, checked.control.clone(), checked.checksums.clone(), Some(checked)),
        Err(_) => staged(key, crate::deb::read_control_with(path, limits)?, Checksums::of_file(path)?, None),
    }
}

fn staged(
    key: &str,
    control: crate::deb::ControlParagraph,
    sums: Checksums,
    checked: Option<crate::deb::Checked>,
) -> anyhow::Result<ReadStaged> {
    for field in ["Package", "Version", "Architecture"] {
        if control.get(field).is_none_or(str::is_empty) {
            anyhow::bail!("its control paragraph has no {field}");
        }
    }
    Ok((Staged { key: key.to_owned(), control, sums }, checked))
}

/// Staged files read in place at once, at most this many threads.
const READ_THREADS: usize = 4;

/// [`read_in_place`] for every file of `paths` that has one, on a few
/// threads (each takes the next file of the list as it is done: no hand-off
/// per file, which is what made a thread per file slower than none); the
/// results in the order of `paths`, `None` where there is no path.
fn read_all_in_place(
    keys: &[String],
    paths: &[Option<std::path::PathBuf>],
    limits: &crate::deb::DebLimits,
) -> Vec<Option<anyhow::Result<ReadStaged>>> {
    let todo = paths.iter().filter(|p| p.is_some()).count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(READ_THREADS).min(todo.div_ceil(64)).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(path) = paths.get(i) else { return done };
            if let Some(path) = path {
                done.push((i, read_in_place(&keys[i], path, limits)));
            }
        }
    };
    let mut out: Vec<Option<anyhow::Result<ReadStaged>>> = paths.iter().map(|_| None).collect();
    let parts = if threads == 1 {
        vec![work()]
    } else {
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            let mut parts = vec![work()];
            parts.extend(others.into_iter().map(|h| h.join().expect("reading a staged file does not panic")));
            parts
        })
    };
    for (i, result) in parts.into_iter().flatten() {
        out[i] = Some(result);
    }
    out
}

/// Read every staged .deb once; move the bad ones aside.
async fn scan(ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Staged>> {
    let mut out = Vec::new();
    let keys: Vec<String> = ctx
        .private
        .list(STAGING_PREFIX)
        .await?
        .into_iter()
        .map(|o| o.key)
        .filter(|key| !key.starts_with(REJECTED_PREFIX) && key.ends_with(".deb"))
        .collect();
    // A directory store: every file read in place first, several at once.
    let paths: Vec<_> =
        keys.iter().map(|key| crate::blob::check_key(key).ok().and_then(|()| ctx.private.local_path(key))).collect();
    let mut read = read_all_in_place(&keys, &paths, &ctx.deb_limits);
    for (key, read) in keys.iter().zip(read.iter_mut()) {
        let result = match read.take() {
            Some(result) => result,
            None => read_one(ctx, key).await,
        };
        match result {
            Ok((staged, checked)) => {
                let package = staged.control.get("Package").unwrap_or_default();
                if ctx.staging_packages.iter().any(|p| p == package) {
                    if let Some(checked) = checked {
                        ctx.staged_checks.lock().unwrap().insert(staged.key.clone(), checked);
                    }
                    out.push(staged);
                } else {
                    let reason = format!(
                        "it is package {package}, and no package of the configuration (config/packages/) takes \
                         {package} from staging (source type staging_upload)"
                    );
                    let rejection = reject_staged(ctx.private, key, &reason).await;
                    ctx.rejected.lock().unwrap().push(rejection);
                }
            }
            Err(e) => {
                // Unreadable is a property of the file, unless the store failed to
                // hand it over: those are worth another try by the next run (and
                // a file removed since the listing is simply gone).
                match e.downcast_ref::<BlobError>() {
                    Some(BlobError::NotFound { .. }) => continue,
                    Some(_) => return Err(e.context(format!("staged file {key}"))),
                    None => {}
                }
                let reason = format!("not a package pkgrelay can read: {e:#}");
                let rejection = reject_staged(ctx.private, key, &reason).await;
                ctx.rejected.lock().unwrap().push(rejection);
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl Source for StagingUpload {
    async fn candidates(&self, package: &PackageConfig, ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Candidate>> {
        let staged = ctx.staged.get_or_try_init(|| scan(ctx)).await?;
        Ok(staged
            .iter()
            .filter(|s| s.control.get("Package") == Some(package.name.as_str()))
            .map(|s| Candidate {
                package: package.name.clone(),
                version: s.control.get("Version").unwrap_or_default().to_owned(),
                architecture: s.control.get("Architecture").unwrap_or_default().to_owned(),
                source_type: SourceType::StagingUpload,
                url: s.key.clone(),
                expected_size: Some(s.sums.size),
                expected_sha256: Some(s.sums.sha256.clone()),
                companions: vec![],
                pub_date: None,
                notes: None,
                latest: None,
                metadata: None,
            })
            .collect())
    }

    /// The staged object itself. On a directory store it is never copied:
    /// the pool file becomes the same inode, and once recorded the staging
    /// name goes ([`Source::recorded`]). No file is created for it at all,
    /// not even a temporary one: on ext4 allocating an inode dominated a
    /// bulk import.
    ///
    /// A file check-sources checked whole in this process is opened, and if
    /// it still has the bytes that were checked (SHA256 alone decides it;
    /// the other digests are those bytes' too), the open file is the
    /// artifact: its descriptor pins the inode that was hashed, and the
    /// pool links it from there (one directory operation). Anything else
    /// is hard-linked into the scratch directory (which pins the inode
    /// too), or copied from a store that is not a directory, and hashed.
    async fn fetch(
        &self,
        ctx: &Context,
        _package: &PackageConfig,
        candidate: &Candidate,
        expected: &Expected,
    ) -> StepResult<Fetched> {
        let local = ctx.private.local_path(&candidate.url);
        let checked = ctx.staged_checks.lock().unwrap().remove(&candidate.url);
        if let (Some(checked), Some(path)) = (checked, &local)
            && expected.sha256.as_deref().is_none_or(|want| want == checked.checksums.sha256)
            && let Ok(file) = std::fs::File::open(path)
            && crate::digest::sha256_open(&file)? == checked.checksums.sha256
        {
            return Ok(Fetched {
                file: ArtifactFile::Open(file),
                checksums: checked.checksums.clone(),
                validators: None,
                metadata: None,
                checked: Some(checked),
            });
        }
        let linked = local.and_then(|path| {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = ctx.work_dir.join(format!("staged-{}-{n}", std::process::id()));
            std::fs::hard_link(&path, &name).ok().and_then(|()| tempfile::TempPath::try_from_path(name).ok())
        });
        let file = match linked {
            Some(file) => file,
            None => {
                let file = tempfile::Builder::new().prefix("download-").tempfile_in(&ctx.work_dir)?.into_temp_path();
                ctx.private.get_to_file(&candidate.url, &file).await?;
                file
            }
        };
        let checksums = Checksums::of_file(&file)?;
        if let Some(want) = &expected.sha256
            && want != &checksums.sha256
        {
            // Replaced by a new upload since check-sources read it: not a
            // bad file, a newer one, which the next run takes.
            return Err(StepError::Transient(anyhow!(
                "{}: changed since it was checked (SHA256 {want}, now {}); the next run takes the new upload",
                candidate.url,
                checksums.sha256
            )));
        }
        Ok(Fetched { file: file.into(), checksums, validators: None, metadata: None, checked: None })
    }

    /// A refused upload leaves the inbox for `staging/rejected/`, its
    /// reason beside it: nothing to remember in the store.
    async fn refused(&self, ctx: &Context, candidate: &Candidate, e: StepError) -> Refused {
        let rejection = reject_staged(ctx.private.as_ref(), &candidate.url, &format!("{e}")).await;
        Refused::Handled(match rejection.moved_to {
            Some(to) => e.context(format!("moved to {to}")),
            None => e,
        })
    }

    /// The inbox is emptied only now that the store holds the entry: a
    /// failure before this leaves the upload for the next run.
    async fn recorded(&self, ctx: &Context, entry: &PackageEntry) {
        if let Err(e) = ctx.private.delete(&entry.source_url).await {
            tracing::warn!(key = %entry.source_url, "recorded, but the staged file could not be removed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_names_are_flat_and_plain() {
        assert_eq!(rejected_key("staging/kiro-repo_1.0_all.deb"), "staging/rejected/kiro-repo_1.0_all.deb");
        assert_eq!(rejected_key("staging//x.deb"), "staging/rejected/x.deb");
        assert_eq!(rejected_key("staging/a/../b.deb"), "staging/rejected/a_b.deb");
        assert_eq!(rejected_key("staging/"), "staging/rejected/unnamed");
    }
}
