//! Step-level tests on the embedded backends: the contracts the state machine
//! relies on, without HTTP (a staging upload is the source).

use super::*;
use crate::blob::{DirStore, ObjectStore, WriteMode};
use crate::config::Config;
use crate::deb::{ControlParagraph, DebBuilder};
use crate::local::{LocalPaths, context, load_or_generate_key};

fn deb(name: &str, version: &str) -> Vec<u8> {
    let fields = [("Package", name), ("Version", version), ("Architecture", "all"), ("Description", "t\n test")];
    DebBuilder::new(ControlParagraph { fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() })
        .build()
        .unwrap()
}

fn setup() -> (tempfile::TempDir, Context) {
    setup_with(|_| {})
}

/// [`setup`], with the copied configuration edited before it is loaded.
fn setup_with(edit: impl FnOnce(&std::path::Path)) -> (tempfile::TempDir, Context) {
    let dir = tempfile::tempdir().unwrap();
    // The repository's own configuration, with only the staging source.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let config_dir = dir.path().join("config");
    std::fs::create_dir_all(config_dir.join("packages")).unwrap();
    std::fs::copy(shipped.join("repository.yaml"), config_dir.join("repository.yaml")).unwrap();
    std::fs::copy(shipped.join("packages/kiro-repo.yaml"), config_dir.join("packages/kiro-repo.yaml")).unwrap();
    let paths =
        LocalPaths { config: config_dir.clone(), state: dir.path().join("state"), out: dir.path().join("public") };
    edit(&config_dir);
    let config = Config::load(&config_dir).unwrap();
    let (key, _) = load_or_generate_key(&config, &paths).unwrap();
    let ctx = context(config, &paths, key, std::sync::Arc::new(Quiet)).unwrap();
    (dir, ctx)
}

async fn stage(ctx: &Context, version: &str) {
    ctx.private
        .put_bytes(&format!("staging/kiro-repo_{version}_all.deb"), deb("kiro-repo", version), WriteMode::Overwrite)
        .await
        .unwrap();
}

async fn candidates(ctx: &Context, checked: &CheckSourcesOutput) -> Vec<crate::model::Candidate> {
    match &checked.candidates_key {
        Some(key) => read_candidates(ctx, key).await.unwrap(),
        None => Vec::new(),
    }
}

async fn ingest_all(ctx: &Context) {
    let checked = check_sources(ctx, CheckSourcesInput::default()).await.unwrap();
    for c in candidates(ctx, &checked).await {
        let staged = download_package(ctx, c).await.unwrap();
        record_metadata(ctx, staged).await.unwrap();
    }
}

#[tokio::test]
async fn builds_take_turns_and_publish_refuses_to_go_backwards() {
    let (_dir, ctx) = setup();
    stage(&ctx, "1.0").await;
    ingest_all(&ctx).await;
    let old = build_index(&ctx, BuildIndexInput::default()).await.unwrap();

    // While generation 1 holds the suite, another build must wait.
    let err = build_index(&ctx, BuildIndexInput::default()).await.unwrap_err();
    assert_eq!(err.error_type(), "PublishInProgress", "{err}");

    // Generation 1 stalls until its lease runs out (simulated); generation 2 takes over.
    ctx.store.release_lease(ctx.suite(), old.generation).await.unwrap();
    stage(&ctx, "1.1").await;
    ingest_all(&ctx).await;
    let new = build_index(&ctx, BuildIndexInput::default()).await.unwrap();
    let stale = publish(&ctx, PublishInput { generation: old.generation, manifest_key: old.manifest_key.clone() })
        .await
        .unwrap();
    assert_eq!(stale.status, PublishStatus::Superseded, "a newer generation is being built");
    assert!(!ctx.public.exists("dists/stable/InRelease").await.unwrap(), "nothing written");

    let out = publish(&ctx, PublishInput { generation: new.generation, manifest_key: new.manifest_key.clone() })
        .await
        .unwrap();
    assert_eq!(out.status, PublishStatus::Published);
    let live = ctx.public.get_bytes("dists/stable/InRelease").await.unwrap();
    let out = publish(&ctx, PublishInput { generation: old.generation, manifest_key: old.manifest_key }).await.unwrap();
    assert_eq!(out.status, PublishStatus::Superseded);
    assert_eq!(out.published_generation, new.generation);
    assert_eq!(ctx.public.get_bytes("dists/stable/InRelease").await.unwrap(), live, "nothing changed");
    // The convenience copy follows the newest kiro-repo by Debian order.
    assert_eq!(
        ctx.public.get_bytes("kiro-repo.deb").await.unwrap(),
        ctx.public.get_bytes("pool/main/k/kiro-repo/kiro-repo_1.1_all.deb").await.unwrap()
    );
    // Publishing released the lease: the next build goes ahead.
    build_index(&ctx, BuildIndexInput::default()).await.unwrap();
}

#[tokio::test]
async fn staged_upload_with_other_bytes_is_a_conflict() {
    let (_dir, ctx) = setup();
    stage(&ctx, "1.0").await;
    ingest_all(&ctx).await;
    // Same name and version, other bytes.
    let mut other = DebBuilder::new(ControlParagraph {
        fields: [
            ("Package", "kiro-repo"),
            ("Version", "1.0"),
            ("Architecture", "all"),
            ("Description", "other\n bytes"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    });
    other.file("/etc/x", 0o644, "x");
    ctx.private.put_bytes("staging/again.deb", other.build().unwrap(), WriteMode::Overwrite).await.unwrap();
    let checked = check_sources(&ctx, CheckSourcesInput::default()).await.unwrap();
    let again = candidates(&ctx, &checked)
        .await
        .into_iter()
        .find(|c| c.url == "staging/again.deb")
        .expect("a new location is a candidate");
    let err = download_package(&ctx, again).await.unwrap_err();
    assert_eq!(err.error_type(), "PackageConflict", "{err}");
    let pool = DirStore::new(_dir.path().join("public")).unwrap();
    assert_eq!(pool.get_bytes("pool/main/k/kiro-repo/kiro-repo_1.0_all.deb").await.unwrap(), deb("kiro-repo", "1.0"));
}

/// Counts object writes (put, copy) and passes everything through.
struct Counting {
    inner: std::sync::Arc<dyn ObjectStore>,
    writes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl ObjectStore for Counting {
    async fn put_bytes(&self, key: &str, data: Vec<u8>, mode: WriteMode) -> Result<(), crate::blob::BlobError> {
        self.writes.lock().unwrap().push(key.to_owned());
        self.inner.put_bytes(key, data, mode).await
    }
    async fn put_file(
        &self,
        key: &str,
        path: &std::path::Path,
        sha256: &str,
        mode: WriteMode,
    ) -> Result<(), crate::blob::BlobError> {
        self.writes.lock().unwrap().push(key.to_owned());
        self.inner.put_file(key, path, sha256, mode).await
    }
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, crate::blob::BlobError> {
        self.inner.get_bytes(key).await
    }
    async fn get_to_file(&self, key: &str, path: &std::path::Path) -> Result<(), crate::blob::BlobError> {
        self.inner.get_to_file(key, path).await
    }
    async fn copy(&self, from: &str, to: &str, mode: WriteMode) -> Result<(), crate::blob::BlobError> {
        self.writes.lock().unwrap().push(to.to_owned());
        self.inner.copy(from, to, mode).await
    }
    async fn exists(&self, key: &str) -> Result<bool, crate::blob::BlobError> {
        self.inner.exists(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<crate::blob::ObjectInfo>, crate::blob::BlobError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), crate::blob::BlobError> {
        self.writes.lock().unwrap().push(format!("delete {key}"));
        self.inner.delete(key).await
    }
}

/// Adding one amd64 package to a published repository writes only what
/// changed: the pool file, amd64's three index files (by-hash and canonical),
/// Release, Release.gpg, InRelease, index.html and the manifest — 12 objects.
#[tokio::test]
async fn adding_one_package_writes_only_what_changed() {
    let (dir, mut ctx) = setup();
    let cfg = std::sync::Arc::make_mut(&mut ctx.config);
    let mut bench = cfg.package("kiro-repo").unwrap().clone();
    bench.name = "bench".into();
    bench.architecture = "amd64".into();
    cfg.packages.push(bench);
    let stage_bench = |version: String| {
        let fields =
            [("Package", "bench"), ("Version", version.as_str()), ("Architecture", "amd64"), ("Description", "b\n b")];
        DebBuilder::new(ControlParagraph {
            fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        })
        .build()
        .unwrap()
    };
    for i in 0..30 {
        let v = format!("1.{i}");
        ctx.private
            .put_bytes(&format!("staging/bench_{v}_amd64.deb"), stage_bench(v), WriteMode::Overwrite)
            .await
            .unwrap();
    }
    stage(&ctx, "1.0").await;
    ingest_all(&ctx).await;
    let built = build_index(&ctx, BuildIndexInput::default()).await.unwrap();
    publish(&ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await.unwrap();

    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    ctx.public = std::sync::Arc::new(Counting { inner: ctx.public.clone(), writes: writes.clone() });
    ctx.private = std::sync::Arc::new(Counting { inner: ctx.private.clone(), writes: writes.clone() });
    // The new package arrives in staging (that upload is the user's, not ours).
    DirStore::new(dir.path().join("state"))
        .unwrap()
        .put_bytes("staging/bench_2.0_amd64.deb", stage_bench("2.0".into()), WriteMode::Overwrite)
        .await
        .unwrap();
    ingest_all(&ctx).await;
    let built = build_index(&ctx, BuildIndexInput::default()).await.unwrap();
    publish(&ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await.unwrap();
    let writes = writes.lock().unwrap().clone();
    // The run's candidate list (private: it goes through the private store so
    // that no state of the state machine carries it), 12 public objects, the
    // retention ledger (nothing is past its grace period: nothing deleted),
    // and the staged file leaving the inbox.
    assert_eq!(
        writes.iter().filter(|w| w.starts_with("delete ")).collect::<Vec<_>>(),
        ["delete staging/bench_2.0_amd64.deb"]
    );
    assert!(writes.len() <= 15, "{} writes: {writes:#?}", writes.len());
    assert!(writes.iter().any(|w| w == "generations/stable/retention.json"), "{writes:#?}");
    assert_eq!(writes.iter().filter(|w| w.starts_with("runs/")).count(), 1, "{writes:#?}");
    assert!(writes.iter().any(|w| w == "pool/main/b/bench/bench_2.0_amd64.deb"));
    assert!(writes.iter().any(|w| w == "dists/stable/InRelease"));
    assert!(!writes.iter().any(|w| w.contains("binary-arm64")), "arm64 did not change: {writes:#?}");
}

/// A rebuild of an unchanged repository (forced, or the re-signing that keeps
/// Valid-Until fresh) compresses nothing: the live generation's Packages.gz and
/// Packages.xz are reused, not written again. One that went missing from the
/// public store is compressed again, to the same bytes.
#[tokio::test]
async fn unchanged_packages_reuse_the_live_compressed_files() {
    let (_dir, mut ctx) = setup();
    stage(&ctx, "1.0").await;
    ingest_all(&ctx).await;
    let manifest_of = |key: String| {
        let private = ctx.private.clone();
        async move {
            serde_json::from_slice::<crate::repository::Manifest>(&private.get_bytes(&key).await.unwrap()).unwrap()
        }
    };
    let built = build_index(&ctx, BuildIndexInput::default()).await.unwrap();
    let first = manifest_of(built.manifest_key.clone()).await;
    publish(&ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await.unwrap();
    assert_eq!(first.compressed.len(), 4, "amd64 and arm64, .gz and .xz: {:#?}", first.compressed);

    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let public = ctx.public.clone();
    ctx.public = std::sync::Arc::new(Counting { inner: public.clone(), writes: writes.clone() });
    let built = build_index(&ctx, BuildIndexInput { force_rebuild: true, ..Default::default() }).await.unwrap();
    let second = manifest_of(built.manifest_key.clone()).await;
    publish(&ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await.unwrap();
    assert_eq!(second.compressed, first.compressed);
    let written = writes.lock().unwrap().clone();
    for c in &first.compressed {
        assert!(!written.contains(&c.key), "{} written again: {written:#?}", c.key);
    }
    assert!(written.iter().any(|w| w == "dists/stable/InRelease"), "forced: republished: {written:#?}");

    // Lost behind our back: compressed again, to the same content-addressed key.
    let lost = first.compressed.iter().find(|c| c.path.ends_with("binary-amd64/Packages.xz")).unwrap();
    let bytes = public.get_bytes(&lost.key).await.unwrap();
    public.delete(&lost.key).await.unwrap();
    writes.lock().unwrap().clear();
    let built = build_index(&ctx, BuildIndexInput { force_rebuild: true, ..Default::default() }).await.unwrap();
    assert_eq!(manifest_of(built.manifest_key.clone()).await.compressed, first.compressed);
    assert!(writes.lock().unwrap().contains(&lost.key));
    assert_eq!(public.get_bytes(&lost.key).await.unwrap(), bytes);
}

/// A run that records entries and then fails to build or publish leaves them
/// unpublished; the next run sees nothing new upstream, yet must publish them.
#[tokio::test]
async fn entries_recorded_but_never_published_make_the_next_run_publish() {
    let (_dir, ctx) = setup();
    stage(&ctx, "1.0").await;
    ingest_all(&ctx).await;
    let built = build_index(&ctx, BuildIndexInput::default()).await.unwrap();
    publish(&ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await.unwrap();
    let checked = check_sources(&ctx, CheckSourcesInput::default()).await.unwrap();
    assert_eq!((checked.candidate_count, checked.unpublished, checked.proceed), (0, 0, false), "{checked:?}");

    // 1.1 is recorded; its run dies before build-index.
    stage(&ctx, "1.1").await;
    ingest_all(&ctx).await;
    let checked = check_sources(&ctx, CheckSourcesInput::default()).await.unwrap();
    assert_eq!((checked.candidate_count, checked.unpublished, checked.proceed), (0, 1, true), "{checked:?}");

    // A generation built from the store as it is now publishes it; then all is quiet again.
    let built = build_index(&ctx, BuildIndexInput::default()).await.unwrap();
    publish(&ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await.unwrap();
    let checked = check_sources(&ctx, CheckSourcesInput::default()).await.unwrap();
    assert_eq!((checked.unpublished, checked.proceed), (0, false), "{checked:?}");
}

/// Whatever the .deb carries travels: a 200 KB control paragraph goes to
/// record-metadata through the private store, not inline.
#[tokio::test]
async fn a_large_control_paragraph_travels_through_the_private_store() {
    let (_dir, ctx) = setup();
    let mut big = DebBuilder::new(ControlParagraph {
        fields: [
            ("Package", "kiro-repo"),
            ("Version", "2.0"),
            ("Architecture", "all"),
            ("Description", &format!("big\n {}", "y".repeat(200_000))),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    });
    big.file("/etc/x", 0o644, "x");
    ctx.private.put_bytes("staging/big.deb", big.build().unwrap(), WriteMode::Overwrite).await.unwrap();
    let checked = check_sources(&ctx, CheckSourcesInput::default()).await.unwrap();
    let candidate = candidates(&ctx, &checked).await.pop().unwrap();
    let staged = download_package(&ctx, candidate).await.unwrap();
    assert!(staged.entry.is_none(), "not inline");
    let key = staged.entry_key.clone().unwrap();
    assert!(key.starts_with(ENTRIES_PREFIX), "{key}");
    assert!(serde_json::to_vec(&staged).unwrap().len() < 1024, "the step's output stays small");
    let recorded = record_metadata(&ctx, staged).await.unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Inserted);
    let entry = ctx.store.get("kiro-repo#2.0#all").await.unwrap().unwrap();
    assert!(entry.apt().unwrap().control.get("Description").unwrap().len() > 200_000);
}

/// `keep: 1` on kiro-repo and the given grace period.
fn retention_setup(grace: &str) -> (tempfile::TempDir, Context) {
    setup_with(|config| {
        let package = config.join("packages/kiro-repo.yaml");
        let text = std::fs::read_to_string(&package).unwrap().replacen("source:", "keep: 1\nsource:", 1);
        std::fs::write(&package, text).unwrap();
        let repository = config.join("repository.yaml");
        let text = std::fs::read_to_string(&repository).unwrap();
        assert!(text.contains("\n  grace: 7d\n"), "repository.yaml sets retention.grace");
        let text = text.replace("\n  grace: 7d\n", &format!("\n  grace: {grace}\n"));
        std::fs::write(&repository, text).unwrap();
    })
}

/// Stage `version`, run the steps through publish; `failed`: candidates the
/// run counts as failed.
async fn release(ctx: &Context, version: &str, failed: usize) -> PublishOutput {
    stage(ctx, version).await;
    ingest_all(ctx).await;
    let built = build_index(ctx, BuildIndexInput { failed, ..Default::default() }).await.unwrap();
    publish(ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await.unwrap()
}

async fn rebuild(ctx: &Context) -> PublishOutput {
    let built = build_index(ctx, BuildIndexInput { force_rebuild: true, ..Default::default() }).await.unwrap();
    publish(ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await.unwrap()
}

fn by_hash_files(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![dir.join("public/dists")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.path().to_string_lossy().contains("/by-hash/") {
                out.insert(e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[tokio::test]
async fn nothing_leaves_within_the_grace_period() {
    let (dir, ctx) = retention_setup("7d");
    release(&ctx, "1.0", 0).await;
    let by_hash_before = by_hash_files(dir.path());
    let out = release(&ctx, "1.1", 0).await;
    let r = out.retention.unwrap();
    assert_eq!((r.deleted, r.deleted_generations, r.deferred), (0, 0, 0), "{r:?}");
    assert_eq!(r.grace_seconds, 7 * 86_400);
    // 1.0's pool file and the replaced Packages' by-hash files wait; so does
    // generation 1's manifest.
    assert!(r.in_grace >= 2, "{r:?}");
    assert_eq!(r.generations_in_grace, 1, "{r:?}");
    assert!(dir.path().join("public/pool/main/k/kiro-repo/kiro-repo_1.0_all.deb").exists());
    assert!(by_hash_files(dir.path()).is_superset(&by_hash_before));
    assert!(dir.path().join("state/generations/stable/00000001/manifest.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_period_what_no_generation_references_leaves() {
    let (dir, ctx) = retention_setup("0s");
    release(&ctx, "1.0", 0).await;
    let gen1_by_hash = by_hash_files(dir.path());
    let out = release(&ctx, "1.1", 0).await;
    let r = out.retention.unwrap();
    let pool = |v: &str| dir.path().join(format!("public/pool/main/k/kiro-repo/kiro-repo_{v}_all.deb"));
    assert!(!pool("1.0").exists(), "pruned by keep and past its grace period: {r:?}");
    assert!(pool("1.1").exists());
    // Generation 1's Packages files (every architecture lists kiro-repo
    // `all`) are replaced: their by-hash copies left; generation 2's stay.
    let now = by_hash_files(dir.path());
    assert!(gen1_by_hash.iter().any(|k| !now.contains(k)), "{gen1_by_hash:?} {now:?}");
    assert_eq!(r.deleted, 1 + gen1_by_hash.difference(&now).count(), "{r:?}");
    let manifest = crate::steps::build_index::generation_prefix("stable", 1) + "/manifest.json";
    // The manifest of the generation replaced just now waits for the next publish.
    assert!(dir.path().join("state").join(&manifest).exists());
    // Nothing the live generation references is gone.
    let live: crate::repository::Manifest =
        serde_json::from_slice(&ctx.private.get_bytes(&out_manifest(&ctx).await).await.unwrap()).unwrap();
    for key in &live.references {
        assert!(ctx.public.exists(key).await.unwrap(), "{key} is referenced and must exist");
    }
    let r = rebuild(&ctx).await.retention.unwrap();
    assert_eq!(r.deleted_generations, 1, "{r:?}");
    assert!(!dir.path().join("state").join(&manifest).exists());
    assert!(dir.path().join("state/generations/stable/00000002/manifest.json").exists(), "kept one more publish");
    // The repository as a client sees it is whole.
    verify_public(dir.path(), &ctx).await;
}

/// `pkgrelay verify` over the public directory: every index file and pool
/// file the published InRelease leads to is there, with its size.
async fn verify_public(dir: &std::path::Path, ctx: &Context) {
    let store = DirStore::new(dir.join("public")).unwrap();
    let reader = crate::apt::verify::StoreReader { store: &store, location: "public".into(), work_dir: dir.to_owned() };
    let options = crate::apt::verify::Options::default();
    let report = crate::apt::verify::verify(&reader, &ctx.config.repository, &options).await;
    assert!(report.ok(), "{:?}", report.errors);
}

async fn out_manifest(ctx: &Context) -> String {
    ctx.store.suite("stable").await.unwrap().published.unwrap().manifest_key
}

#[tokio::test]
async fn a_run_with_failures_deletes_nothing_and_the_next_clean_one_does() {
    let (dir, ctx) = retention_setup("0s");
    release(&ctx, "1.0", 0).await;
    let r = release(&ctx, "1.1", 1).await.retention.unwrap();
    assert_eq!((r.deleted, r.deleted_generations), (0, 0), "{r:?}");
    assert!(r.held.as_deref().is_some_and(|h| h.contains("failures")), "{r:?}");
    assert!(r.deferred >= 1, "{r:?}");
    let pool = dir.path().join("public/pool/main/k/kiro-repo/kiro-repo_1.0_all.deb");
    assert!(pool.exists(), "an unreferenced file survives a run with failures");
    let r = rebuild(&ctx).await.retention.unwrap();
    assert!(r.deleted >= 1 && r.held.is_none(), "{r:?}");
    assert!(!pool.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_listed_again_after_its_file_left_is_left_out() {
    let (dir, mut ctx) = retention_setup("0s");
    release(&ctx, "1.0", 0).await;
    release(&ctx, "1.1", 0).await;
    assert!(!dir.path().join("public/pool/main/k/kiro-repo/kiro-repo_1.0_all.deb").exists());
    // keep raised: the store still has 1.0, its file is gone.
    let config = dir.path().join("config");
    let package = config.join("packages/kiro-repo.yaml");
    let text = std::fs::read_to_string(&package).unwrap().replace("keep: 1\n", "");
    std::fs::write(&package, text).unwrap();
    let paths = LocalPaths { config: config.clone(), state: dir.path().join("state"), out: dir.path().join("public") };
    let loaded = Config::load(&config).unwrap();
    let (key, _) = load_or_generate_key(&loaded, &paths).unwrap();
    ctx = context(loaded, &paths, key, std::sync::Arc::new(Quiet)).unwrap();
    let out = rebuild(&ctx).await;
    assert_eq!(out.packages, 1, "1.0 is not listed: its file is gone");
    verify_public(dir.path(), &ctx).await;
}

/// check-sources checks a staged file whole and download-package takes that
/// check only for the same bytes: a file rewritten in place in between is
/// not taken on the strength of the earlier check (nothing reaches the pool,
/// and the next run takes the new upload); a file left alone is taken.
#[tokio::test]
async fn a_staged_file_rewritten_after_its_check_is_not_taken() {
    let (dir, ctx) = setup();
    stage(&ctx, "1.0").await;
    stage(&ctx, "1.1").await;
    let checked = check_sources(&ctx, CheckSourcesInput::default()).await.unwrap();
    assert_eq!(ctx.staged_checks.lock().unwrap().len(), 2, "both checked whole by the scan");
    let mut list = candidates(&ctx, &checked).await;
    list.sort_by(|a, b| a.url.cmp(&b.url));
    // Same name, other bytes: a cut copy of the package, written over the
    // staged file's own inode.
    let path = dir.path().join("state/staging/kiro-repo_1.1_all.deb");
    let bytes = deb("kiro-repo", "1.1");
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let err = download_package(&ctx, list[1].clone()).await.unwrap_err();
    assert_eq!(err.error_type(), "TransientError", "{err}");
    assert!(err.to_string().contains("changed since it was checked"), "{err}");
    assert!(!ctx.public.exists("pool/main/k/kiro-repo/kiro-repo_1.1_all.deb").await.unwrap());
    let staged = download_package(&ctx, list[0].clone()).await.unwrap();
    record_metadata(&ctx, staged).await.unwrap();
    assert!(ctx.staged_checks.lock().unwrap().is_empty(), "each check taken once");
    assert_eq!(
        ctx.public.get_bytes("pool/main/k/kiro-repo/kiro-repo_1.0_all.deb").await.unwrap(),
        deb("kiro-repo", "1.0")
    );
}
