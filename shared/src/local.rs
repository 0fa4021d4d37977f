//! The embedded defaults: a [`Context`] over an SQLite file and directories, as
//! `pkgrelay` uses on one machine.
//!
//! ```text
//! <state>/state.db          package store (SQLite)
//! <state>/signing-key.asc   archive key, generated on first run unless configured
//! <state>/staging/          drop .deb files here for staging_upload sources
//! <state>/generations/      per-generation signed files and manifests (private)
//! <state>/tmp/              downloads in progress
//! <out>/                    the published repository
//! ```

use crate::apt::AptRepository;
use crate::blob::DirStore;
use crate::config::Config;
use crate::fetch::{Fetcher, RetryPolicy};
use crate::sign::SigningKey;
use crate::steps::{Context, Observer};
use crate::store::SqliteStore;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the local pipeline keeps things.
#[derive(Debug, Clone)]
pub struct LocalPaths {
    pub config: PathBuf,
    pub state: PathBuf,
    pub out: PathBuf,
}

impl LocalPaths {
    pub fn key_file(&self) -> PathBuf {
        self.state.join("signing-key.asc")
    }
    pub fn staging(&self) -> PathBuf {
        self.state.join("staging")
    }
}

/// The archive key: the configured file, else `<state>/signing-key.asc`,
/// generated there on first use. Returns the key and whether it was generated.
pub fn load_or_generate_key(config: &Config, paths: &LocalPaths) -> anyhow::Result<(SigningKey, bool)> {
    let read = |file: &Path| -> anyhow::Result<SigningKey> {
        let data = std::fs::read(file).with_context(|| format!("signing key {}", file.display()))?;
        SigningKey::from_bytes(&data).with_context(|| format!("signing key {}", file.display()))
    };
    if let Some(file) = &config.repository.signing.key_file {
        let file = if file.is_absolute() { file.clone() } else { config.dir.join(file) };
        return Ok((read(&file)?, false));
    }
    let file = paths.key_file();
    if file.exists() {
        return Ok((read(&file)?, false));
    }
    let key = SigningKey::generate(&config.repository.signing.user_id)?;
    std::fs::create_dir_all(&paths.state)?;
    write_private(&file, key.to_armored_secret()?.as_bytes())?;
    Ok((key, true))
}

/// Write a secret file readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// Build the step context over SQLite and directories.
pub fn context(
    config: Config,
    paths: &LocalPaths,
    key: SigningKey,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<Context> {
    build(config, paths, Some(Arc::new(key)), observer)
}

/// The same context without a signing key, for work that never signs
/// (download and record: `pkgrelay migrate`); no key is generated.
pub fn unsigned_context(config: Config, paths: &LocalPaths, observer: Arc<dyn Observer>) -> anyhow::Result<Context> {
    build(config, paths, None, observer)
}

fn build(
    config: Config,
    paths: &LocalPaths,
    key: Option<Arc<SigningKey>>,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<Context> {
    let work_dir = paths.state.join("tmp");
    std::fs::create_dir_all(&work_dir)?;
    std::fs::create_dir_all(paths.staging())?;
    let store = SqliteStore::open(&paths.state.join("state.db"))?;
    let format = AptRepository { config: config.repository.clone(), key };
    Ok(Context {
        config: Arc::new(config),
        store: Arc::new(store),
        public: Arc::new(DirStore::new(&paths.out).with_context(|| format!("{}", paths.out.display()))?),
        private: Arc::new(DirStore::new(&paths.state)?),
        fetcher: Fetcher::new(RetryPolicy::default())?,
        format: Arc::new(format),
        work_dir,
        observer,
    })
}
