//! The functions' configuration, from the environment the CDK stack sets:
//!
//! | variable | meaning |
//! |---|---|
//! | `PACKAGES_TABLE` | DynamoDB packages table of the APT repository |
//! | `PACKAGES_TABLES` | JSON `{"<name>": "<table>"}`: the packages table of every other repository of `repositories.yaml` (absent: none) |
//! | `STATE_TABLE` | DynamoDB per-suite state table |
//! | `BUCKET` | S3 bucket holding the repository, `staging/` and `generations/` |
//! | `CONFIG_LOCATION` | `s3://bucket/prefix/` or a directory holding repository.yaml and packages/ |
//! | `SIGNING_KEY_SECRET_ARN` | Secrets Manager secret with the armored signing key (build-index only) |
//! | `BOTTLE_NAMES_KVS_ARN` | CloudFront key value store of the Homebrew mirrors' flat bottle names (publish only, when there is a mirror) |
//! | `PKGRELAY_ENV` | deployment (`dev`, `staging`, `prod`): selects `environments.<env>` in repository.yaml |
//! | `WORK_DIR` | scratch space, default `/tmp` |
//!
//! A function serves every repository of the list: the state machine names
//! the one an invocation is for (the envelope's `repository`, see
//! [`crate::lambda`]), and [`Connection::context`] builds that repository's
//! context through `pkgrelay_core::context`, over the clients made once.
//!
//! | `AWS_ENDPOINT_URL` | (tests) the local AWS API server; read by the SDK itself |
//! | `PKGRELAY_S3_FORCE_PATH_STYLE` | (tests) `true` for path-style S3 addressing |

use crate::dynamo::DynamoStore;
use crate::s3::S3Store;
use anyhow::{Context as _, anyhow};
use pkgrelay_core::blob::ObjectStore;
use pkgrelay_core::config::{Config, FormatName, RepositoryEntry};
use pkgrelay_core::sign::SigningKey;
use pkgrelay_core::steps::{Context, Quiet};
use std::path::PathBuf;
use std::sync::Arc;

/// What a function needs beyond the store and the bucket.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// Read the signing key secret (build-index only: least privilege).
    pub signing_key: bool,
}

#[derive(Debug, Clone)]
pub struct FunctionEnv {
    pub packages_table: String,
    /// The packages tables of the repositories other than the APT one, by name.
    pub packages_tables: std::collections::BTreeMap<String, String>,
    pub state_table: String,
    pub bucket: String,
    pub config_location: String,
    pub signing_key_secret: Option<String>,
    pub bottle_names_kvs: Option<String>,
    pub deployment: Option<String>,
    pub work_dir: PathBuf,
    pub force_path_style: bool,
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow!("environment variable {name} is not set"))
}

impl FunctionEnv {
    pub fn from_env() -> anyhow::Result<FunctionEnv> {
        Ok(FunctionEnv {
            packages_table: var("PACKAGES_TABLE")?,
            packages_tables: match std::env::var("PACKAGES_TABLES") {
                Ok(json) if !json.trim().is_empty() => serde_json::from_str(&json)
                    .map_err(|e| anyhow!("PACKAGES_TABLES is not a JSON object of names: {e}"))?,
                _ => Default::default(),
            },
            state_table: var("STATE_TABLE")?,
            bucket: var("BUCKET")?,
            config_location: var("CONFIG_LOCATION")?,
            signing_key_secret: std::env::var("SIGNING_KEY_SECRET_ARN").ok().filter(|s| !s.is_empty()),
            bottle_names_kvs: std::env::var("BOTTLE_NAMES_KVS_ARN").ok().filter(|s| !s.is_empty()),
            deployment: std::env::var("PKGRELAY_ENV").ok().filter(|s| !s.is_empty()),
            work_dir: std::env::var("WORK_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir()),
            force_path_style: std::env::var("PKGRELAY_S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1"),
        })
    }

    /// The clients, the configuration and the signing key, once per cold start.
    pub async fn connect(&self, needs: Needs) -> anyhow::Result<Connection> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        // Both clients retry throttling with backoff (standard mode, 8 attempts).
        let s3 = crate::s3::client(&sdk, self.force_path_style);
        let dynamodb = crate::dynamo::client(&sdk);
        let mut config = self.load_config(&s3).await?;
        if let Some(env) = &self.deployment {
            config = config.for_environment(env)?;
        }
        let bucket: Arc<dyn ObjectStore> = Arc::new(
            S3Store::new(s3.clone(), &self.bucket).with_layout(pkgrelay_core::context::bucket_layout(&config)?),
        );
        let key = if needs.signing_key {
            let arn = self
                .signing_key_secret
                .as_deref()
                .ok_or_else(|| anyhow!("environment variable SIGNING_KEY_SECRET_ARN is not set"))?;
            Some(Arc::new(crate::secrets::signing_key(&aws_sdk_secretsmanager::Client::new(&sdk), arn).await?))
        } else {
            None
        };
        let edge_names = self
            .bottle_names_kvs
            .as_deref()
            .map(|arn| Arc::new(crate::kvs::KeyValueStore::new(&sdk, arn)) as Arc<dyn pkgrelay_core::blob::EdgeNames>);
        Ok(Connection { env: self.clone(), dynamodb, bucket, config, key, edge_names })
    }

    /// The packages table of `repository` (the APT one's is `PACKAGES_TABLE`).
    pub fn packages_table(&self, repository: &RepositoryEntry) -> anyhow::Result<&str> {
        if repository.format == FormatName::Apt {
            return Ok(&self.packages_table);
        }
        self.packages_tables.get(&repository.name).map(String::as_str).ok_or_else(|| {
            anyhow!(
                "repository {}: PACKAGES_TABLES names no table for it (the stack was deployed from another \
                 repositories.yaml?)",
                repository.name
            )
        })
    }

    /// `CONFIG_LOCATION` is a directory, or `s3://bucket/prefix/` copied into the
    /// scratch space first.
    async fn load_config(&self, s3: &aws_sdk_s3::Client) -> anyhow::Result<Config> {
        let Some(rest) = self.config_location.strip_prefix("s3://") else {
            return Ok(Config::load(std::path::Path::new(&self.config_location))?);
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let store = S3Store::new(s3.clone(), bucket);
        // A directory of this process's own: warm containers and, in tests,
        // processes sharing WORK_DIR must never read each other's half-written copy.
        std::fs::create_dir_all(&self.work_dir)?;
        let tmp = tempfile::Builder::new().prefix("pkgrelay-config-").tempdir_in(&self.work_dir)?;
        let dir = tmp.path();
        for object in store.list(prefix).await? {
            let rel = object.key[prefix.len()..].trim_start_matches('/');
            if rel.is_empty() {
                continue;
            }
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().expect("has a parent"))?;
            store.get_to_file(&object.key, &path).await?;
        }
        Config::load(dir).with_context(|| format!("configuration from {}", self.config_location))
    }
}

/// What a function holds for its whole life: clients, configuration, key.
pub struct Connection {
    env: FunctionEnv,
    dynamodb: aws_sdk_dynamodb::Client,
    bucket: Arc<dyn ObjectStore>,
    /// The mirrors' flat bottle names (publish, when the stack has a mirror).
    edge_names: Option<Arc<dyn pkgrelay_core::blob::EdgeNames>>,
    config: Config,
    key: Option<Arc<SigningKey>>,
}

impl Connection {
    /// Whether `name` is the APT repository's name in `repositories.yaml`.
    pub fn is_apt(&self, name: &str) -> bool {
        self.config.apt_entry().is_some_and(|e| e.name == name)
    }

    /// The step context of `repository` (`None`: the APT repository).
    pub fn context(&self, repository: Option<&str>) -> anyhow::Result<Context> {
        let entry = pkgrelay_core::context::entry(&self.config, repository)?;
        let backends = pkgrelay_core::context::Backends {
            store: Arc::new(DynamoStore::new(
                self.dynamodb.clone(),
                self.env.packages_table(entry)?,
                &self.env.state_table,
            )),
            public: self.bucket.clone(),
            private: self.bucket.clone(),
            edge_names: self.edge_names.clone(),
        };
        pkgrelay_core::context::build(
            self.config.clone(),
            repository,
            backends,
            self.key.clone(),
            self.env.work_dir.join("pkgrelay"),
            Arc::new(Quiet),
        )
    }
}

/// Build a signing key from armored text (shared by the secret reader and tests).
pub fn key_from_armored(text: &str) -> anyhow::Result<SigningKey> {
    SigningKey::from_bytes(text.as_bytes())
}
