//! The embedded defaults: a [`Context`] over an SQLite file and directories, as
//! `pkgrelay` uses on one machine.
//!
//! ```text
//! <state>/state.db          the APT repository's package store (SQLite)
//! <state>/<name>.db         the store of every other repository of `repositories.yaml`
//! <state>/signing-key.asc   archive key, generated on first run unless configured
//! <state>/staging/          drop .deb files here for staging_upload sources
//! <state>/generations/      per-generation signed files and manifests (private)
//! <state>/tmp/              downloads in progress
//! <out>/                    the published repositories (the APT one at the root,
//!                           the others under their prefix)
//! ```

use crate::blob::DirStore;
use crate::config::{Config, FormatName, RepositoryEntry};
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

/// The SQLite file of `repository`'s store, in the state directory: the APT
/// repository keeps `state.db` (where it always was), any other its name.
pub fn store_file(repository: &RepositoryEntry) -> String {
    match repository.format {
        FormatName::Apt => "state.db".to_owned(),
        _ => format!("{}.db", repository.name),
    }
}

/// Build the step context of the APT repository over SQLite and directories.
pub fn context(
    config: Config,
    paths: &LocalPaths,
    key: SigningKey,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<Context> {
    build(config, None, paths, Some(Arc::new(key)), observer)
}

/// The context of the repository `repository` of `repositories.yaml`
/// (`None`: the APT repository).
pub fn repository_context(
    config: Config,
    repository: Option<&str>,
    paths: &LocalPaths,
    key: SigningKey,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<Context> {
    build(config, repository, paths, Some(Arc::new(key)), observer)
}

/// The same context without a signing key, for work that never signs
/// (download and record: `pkgrelay migrate`); no key is generated.
pub fn unsigned_context(config: Config, paths: &LocalPaths, observer: Arc<dyn Observer>) -> anyhow::Result<Context> {
    build(config, None, paths, None, observer)
}

/// The context of repository `repository` without a signing key, for work
/// that never signs (`pkgrelay brew import-hash`); no key is generated.
pub fn unsigned_repository_context(
    config: Config,
    repository: Option<&str>,
    paths: &LocalPaths,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<Context> {
    build(config, repository, paths, None, observer)
}

fn build(
    config: Config,
    repository: Option<&str>,
    paths: &LocalPaths,
    key: Option<Arc<SigningKey>>,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<Context> {
    let entry = crate::context::entry(&config, repository)?;
    std::fs::create_dir_all(paths.staging())?;
    let backends = crate::context::Backends {
        store: Arc::new(SqliteStore::open(&paths.state.join(store_file(entry)))?),
        public: Arc::new(DirStore::new(&paths.out).with_context(|| format!("{}", paths.out.display()))?),
        private: Arc::new(DirStore::new(&paths.state)?),
        // `serve` maps brew's flat names itself (bottles_hash.json).
        edge_names: None,
    };
    crate::context::build(config, repository, backends, key, paths.state.join("tmp"), observer)
}
