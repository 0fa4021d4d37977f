//! Publish cost: how many objects one `sync` writes when one package is added
//! to a published repository of N. The store is filled with N synthetic
//! entries (20 names, amd64 / arm64 / all), published once, then the object
//! stores are wrapped in a counter (like `Counting` in shared/src/steps/tests.rs)
//! and a new amd64 .deb arrives in staging; the real pipeline runs.

use crate::synth;
use async_trait::async_trait;
use pkgrelay_core::blob::{BlobError, DirStore, ObjectInfo, ObjectStore, WriteMode};
use pkgrelay_core::config::Config;
use pkgrelay_core::local::{LocalPaths, context, load_or_generate_key};
use pkgrelay_core::pipeline;
use pkgrelay_core::steps::{self, BuildIndexInput, CheckSourcesInput, PublishInput, Quiet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Counts object writes (put, copy, delete) and passes everything through.
struct Counting {
    inner: Arc<dyn ObjectStore>,
    store: &'static str,
    writes: Arc<Mutex<Vec<String>>>,
}

impl Counting {
    fn note(&self, what: &str) {
        self.writes.lock().unwrap().push(format!("{}: {what}", self.store));
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_bytes(&self, key: &str, data: Vec<u8>, mode: WriteMode) -> Result<(), BlobError> {
        self.note(&format!("put {key} ({} bytes)", data.len()));
        self.inner.put_bytes(key, data, mode).await
    }
    async fn put_file(&self, key: &str, path: &Path, sha256: &str, mode: WriteMode) -> Result<(), BlobError> {
        self.note(&format!("put {key} (file)"));
        self.inner.put_file(key, path, sha256, mode).await
    }
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        self.inner.get_bytes(key).await
    }
    async fn get_to_file(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        self.inner.get_to_file(key, path).await
    }
    async fn copy(&self, from: &str, to: &str, mode: WriteMode) -> Result<(), BlobError> {
        self.note(&format!("copy {to} <- {from}"));
        self.inner.copy(from, to, mode).await
    }
    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        self.inner.exists(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BlobError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.note(&format!("delete {key}"));
        self.inner.delete(key).await
    }
}

pub async fn run(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let per_name = n.div_ceil(crate::NAMES);
    let config_dir = dir.path().join("config");
    let names: Vec<(String, String)> =
        (0..crate::NAMES).map(|i| (synth::name(i), "type: staging_upload".to_owned())).collect();
    crate::gen_config(&config_dir, "amd64, arm64", &names)?;
    let paths =
        LocalPaths { config: config_dir.clone(), state: dir.path().join("state"), out: dir.path().join("public") };
    let config = Config::load(&config_dir)?;
    let (key, _) = load_or_generate_key(&config, &paths)?;
    let mut ctx = context(config, &paths, key, Arc::new(Quiet))?;

    let t = Instant::now();
    let entries = synth::entries(n, per_name);
    for e in &entries {
        ctx.store.insert(ctx.suite(), e).await?;
    }
    let built = steps::build_index(&ctx, BuildIndexInput::default()).await?;
    steps::publish(&ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await?;
    println!("repository_packages={}", entries.len());
    println!("prepare_ms={:.0}", t.elapsed().as_secs_f64() * 1000.0);

    let writes = Arc::new(Mutex::new(Vec::new()));
    ctx.public = Arc::new(Counting { inner: ctx.public.clone(), store: "public", writes: writes.clone() });
    ctx.private = Arc::new(Counting { inner: ctx.private.clone(), store: "private", writes: writes.clone() });
    // The upload into staging is the user's, not pkgrelay's: not counted.
    let (name, version) = (synth::name(0), "2.0-1");
    DirStore::new(&paths.state)?
        .put_bytes(
            &format!("staging/{name}_{version}_amd64.deb"),
            synth::deb(&name, version, "amd64"),
            WriteMode::Overwrite,
        )
        .await?;
    let t = Instant::now();
    let summary = pipeline::run(&ctx, CheckSourcesInput::default()).await?;
    println!("add_one_ms={:.0}", t.elapsed().as_secs_f64() * 1000.0);
    anyhow::ensure!(
        summary.new.len() == 1,
        "expected one new package, got {:?} (failed: {:?})",
        summary.new,
        summary.failed
    );
    anyhow::ensure!(summary.published.is_some(), "nothing was published");
    let writes = writes.lock().unwrap().clone();
    for w in &writes {
        println!("write: {w}");
    }
    println!("writes={}", writes.len());
    Ok(())
}
