//! Building a step's [`Context`]: the one place where a configuration, the
//! backends a process was handed (the store of record, the public and the
//! private object store), the signing key and the repository format are put
//! together.
//!
//! Every caller comes through here: the CLI on embedded defaults
//! ([`crate::local`]), the CLI against a deployed stack (`src/aws_outputs.rs`)
//! and the Lambda functions (`pkgrelay_aws::env`). What differs between them
//! is only which backends they hand over; which repository of the
//! deployment's list a context serves, its format, where its public files
//! live (its prefix), how the scratch space is laid out and how fetches
//! behave is decided here, once.

use crate::apt::AptRepository;
use crate::blob::{BucketLayout, ObjectLayout, ObjectMeta, ObjectStore, Prefixed};
use crate::brew::BrewRepository;
use crate::config::{Config, FormatName, RepositoryEntry};
use crate::fetch::{Fetcher, RetryPolicy};
use crate::repository::RepositoryFormat;
use crate::sign::SigningKey;
use crate::steps::{Context, Observer};
use crate::store::PackageStore;
use anyhow::{Context as _, anyhow};
use std::path::PathBuf;
use std::sync::Arc;

/// What a process brings to a context: where entries are recorded and where
/// objects go.
pub struct Backends {
    /// The repository's own store of record: each repository of a
    /// deployment has its own (see [`crate::local::store_file`] and, on AWS,
    /// the packages table per repository), since build-index reads every
    /// entry of it into one index.
    pub store: Arc<dyn PackageStore>,
    /// The deployment's published objects (a bucket, `public/`), every
    /// repository's under its prefix.
    pub public: Arc<dyn ObjectStore>,
    /// Private objects: `staging/`, `generations/`, `runs/`.
    pub private: Arc<dyn ObjectStore>,
    /// The names a rewrite in front of `public` resolves (AWS: a CloudFront
    /// key value store; none locally, where `serve` rewrites by itself).
    pub edge_names: Option<Arc<dyn crate::blob::EdgeNames>>,
}

/// The format of `entry`, signing with `key` (`None`: a process that never
/// renders an APT index, and so never holds the secret; a Homebrew mirror
/// signs nothing). An error for a Homebrew entry whose settings were not
/// loaded with the list (a `Config` assembled by hand).
pub fn format(
    config: &Config,
    entry: &RepositoryEntry,
    key: Option<Arc<SigningKey>>,
) -> anyhow::Result<Arc<dyn RepositoryFormat>> {
    Ok(match entry.format {
        FormatName::Apt => Arc::new(AptRepository {
            config: config.repository.clone(),
            key,
            keep: config.packages.iter().filter_map(|p| p.keep.map(|n| (p.name.clone(), n))).collect(),
        }),
        FormatName::Homebrew => {
            let settings = config.homebrew.get(&entry.name).ok_or_else(|| {
                anyhow!("repository {} (format homebrew): its settings ({:?}) are not loaded", entry.name, entry.config)
            })?;
            Arc::new(BrewRepository { name: entry.name.clone(), config: settings.clone() })
        }
    })
}

/// A format as the layout of its files.
struct FormatLayout(Arc<dyn RepositoryFormat>);

impl ObjectLayout for FormatLayout {
    fn meta(&self, key: &str) -> ObjectMeta {
        self.0.object_meta(key)
    }
}

/// What each object of a deployment's bucket is (Content-Type, caching): the
/// private prefixes are private, everything else belongs to the repository
/// under whose prefix it is. A backend that sends headers (S3) is built
/// with this.
pub fn bucket_layout(config: &Config) -> anyhow::Result<Arc<dyn ObjectLayout>> {
    let repositories = config
        .repositories
        .iter()
        .map(|r| Ok((r.prefix.clone(), Arc::new(FormatLayout(format(config, r, None)?)) as Arc<dyn ObjectLayout>)))
        .collect::<anyhow::Result<_>>()?;
    Ok(Arc::new(BucketLayout { repositories }))
}

/// The repository `name` of `config` (`None`: the APT repository).
pub fn entry<'a>(config: &'a Config, name: Option<&str>) -> anyhow::Result<&'a RepositoryEntry> {
    match name {
        None => config.apt_entry().ok_or_else(|| anyhow!("the configuration lists no APT repository")),
        Some(name) => config.repository_entry(name).map_err(|e| anyhow!(e)),
    }
}

/// The context of a step for the repository `repository` of `config`
/// (`None`: the APT repository) over `backends`, downloads in `work_dir`
/// (created if missing), progress to `observer`.
pub fn build(
    config: Config,
    repository: Option<&str>,
    backends: Backends,
    key: Option<Arc<SigningKey>>,
    work_dir: PathBuf,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<Context> {
    let entry = entry(&config, repository)?.clone();
    std::fs::create_dir_all(&work_dir).with_context(|| format!("scratch directory {}", work_dir.display()))?;
    // A repository below the root sees its own files only, as if at the root.
    let public: Arc<dyn ObjectStore> = if entry.prefix.is_empty() {
        backends.public
    } else {
        Arc::new(Prefixed { inner: backends.public, prefix: entry.prefix.clone() })
    };
    let format = format(&config, &entry, key)?;
    // A Homebrew mirror is one package to check-sources: its source plans
    // every bottle of the mirror's settings.
    let mirror_packages = match (entry.format, config.homebrew.get(&entry.name)) {
        (FormatName::Homebrew, Some(settings)) => vec![crate::sources::Homebrew::package(&entry.name, settings)],
        _ => Vec::new(),
    };
    Ok(Context {
        format,
        mirror_packages,
        config: Arc::new(config),
        store: backends.store,
        public,
        private: backends.private,
        edge_names: backends.edge_names,
        fetcher: Fetcher::new(RetryPolicy::default())?,
        staged_checks: Default::default(),
        work_dir,
        observer,
        repository: entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{Caching, DirStore};
    use crate::steps::Quiet;

    fn write(dir: &std::path::Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The shipped configuration plus a Homebrew mirror under `brew/`.
    fn with_mirror() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        write(dir.path(), "repository.yaml", &std::fs::read_to_string(shipped.join("repository.yaml")).unwrap());
        for f in std::fs::read_dir(shipped.join("packages")).unwrap() {
            let f = f.unwrap().path();
            let name = format!("packages/{}", f.file_name().unwrap().to_string_lossy());
            write(dir.path(), &name, &std::fs::read_to_string(&f).unwrap());
        }
        write(
            dir.path(),
            "repositories.yaml",
            "repositories:\n  - {name: apt, format: apt}\n  - {name: brew, format: homebrew, prefix: brew/, config: homebrew.yaml}\n",
        );
        write(
            dir.path(),
            "homebrew.yaml",
            "api_url: https://formulae.brew.sh/api\nregistry_url: https://ghcr.io/v2/homebrew/core\n\
             allowed_hosts: [pkg-containers.githubusercontent.com]\nformulae: [wget]\ntags: [arm64_sonoma]\n\
             base_url: https://mirror.example.com/brew\n",
        );
        let config = Config::load(dir.path()).unwrap();
        (dir, config)
    }

    fn backends(root: &std::path::Path) -> Backends {
        Backends {
            store: Arc::new(crate::store::SqliteStore::open(&root.join("state.db")).unwrap()),
            public: Arc::new(DirStore::new(&root.join("public")).unwrap()),
            private: Arc::new(DirStore::new(&root.join("private")).unwrap()),
            edge_names: None,
        }
    }

    #[test]
    fn each_repository_gets_its_format_prefix_and_state_record() {
        let (dir, config) = with_mirror();
        let apt =
            build(config.clone(), None, backends(dir.path()), None, dir.path().join("tmp"), Arc::new(Quiet)).unwrap();
        assert_eq!(apt.repository.name, "apt");
        assert_eq!(apt.suite(), "stable");
        assert_eq!(apt.format.published_marker().as_deref(), Some("dists/stable/InRelease"));

        let brew =
            build(config.clone(), Some("brew"), backends(dir.path()), None, dir.path().join("tmp"), Arc::new(Quiet))
                .unwrap();
        assert_eq!((brew.repository.name.as_str(), brew.suite()), ("brew", "brew"));
        assert_eq!(brew.format.published_marker().as_deref(), Some("api/formula.jws.json"));
        let names: Vec<&str> = brew.packages().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["brew"], "the APT packages are not the mirror's: one package stands for it");
        assert!(brew.package("python@3.13").is_some_and(|p| p.name == "brew"), "every formula is the mirror's");
        assert!(apt.package("python@3.13").is_none());
        // Its public files live under its prefix, as if at the root.
        let public = brew.public.local_path("bottles/x.tar.gz").unwrap();
        assert!(public.ends_with("public/brew/bottles/x.tar.gz"), "{}", public.display());

        let e = build(config, Some("nope"), backends(dir.path()), None, dir.path().join("tmp"), Arc::new(Quiet))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("\"nope\"") && e.contains("apt, brew"), "{e}");
    }

    #[test]
    fn the_bucket_layout_asks_the_format_under_whose_prefix_a_key_is() {
        let (_dir, config) = with_mirror();
        let layout = bucket_layout(&config).unwrap();
        let meta = |key: &str| {
            let m = layout.meta(key);
            (m.content_type, m.caching)
        };
        assert_eq!(
            meta("pool/main/k/kiro/kiro_1_amd64.deb"),
            ("application/vnd.debian.binary-package", Caching::Immutable)
        );
        assert_eq!(meta("dists/stable/InRelease"), ("text/plain; charset=utf-8", Caching::Short));
        assert_eq!(meta("brew/bottles/wget-1.0.arm64_sonoma.bottle.tar.gz"), ("application/gzip", Caching::Immutable));
        assert_eq!(meta("brew/api/formula.jws.json"), ("application/json", Caching::Short));
        assert_eq!(meta("generations/brew/1/manifest.json"), ("application/json", Caching::Private));
        assert_eq!(meta("staging/x.deb").1, Caching::Private);
    }
}
