//! The deployed stack, as `cdk deploy --outputs-file` describes it, and what
//! the CLI does there: read the store, drop a file into staging/, run steps
//! against it (a [`Context`] over its table and bucket).

use anyhow::{Context as _, anyhow};
use pkgrelay_core::blob::{ObjectStore, WriteMode};
use pkgrelay_core::config::Config;
use pkgrelay_core::steps::{Context, Observer};
use pkgrelay_core::store::PackageStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct StackOutputs {
    pub stack: String,
    pub bucket: String,
    pub packages_table: String,
    pub state_table: String,
    pub state_machine_arn: String,
    pub staging_prefix: String,
    /// Where apt reaches the repository (CloudFront); older stacks lack the output.
    pub repository_url: Option<String>,
    /// The packages table of every other repository of repositories.yaml
    /// (output `PackagesTables`, JSON; absent when the APT repository is alone).
    pub packages_tables: std::collections::BTreeMap<String, String>,
}

impl StackOutputs {
    /// Read the outputs of stack `pkgrelay-<env>` from `file`.
    pub fn read(file: &Path, env: &str) -> anyhow::Result<StackOutputs> {
        let how = format!("produce it with `cdk deploy -c env={env} --outputs-file {}` in cdk/", file.display());
        let text =
            std::fs::read_to_string(file).map_err(|e| anyhow!("stack outputs {}: {e}; {how}", file.display()))?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("stack outputs {} are not JSON", file.display()))?;
        let stack = format!("pkgrelay-{env}");
        let outputs = doc.get(&stack).ok_or_else(|| {
            let found: Vec<&str> = doc.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
            anyhow!("{} has no stack {stack} (it has: {}); {how}", file.display(), found.join(", "))
        })?;
        let get = |name: &str| -> anyhow::Result<String> {
            outputs.get(name).and_then(|v| v.as_str()).map(str::to_owned).ok_or_else(|| {
                anyhow!("{}: stack {stack} has no output {name}; redeploy the current cdk/ app ({how})", file.display())
            })
        };
        Ok(StackOutputs {
            bucket: get("BucketName")?,
            packages_table: get("PackagesTableName")?,
            state_table: get("StateTableName")?,
            state_machine_arn: get("StateMachineArn")?,
            staging_prefix: get("StagingPrefix")?,
            repository_url: outputs.get("RepositoryUrl").and_then(|v| v.as_str()).map(str::to_owned),
            packages_tables: match outputs.get("PackagesTables").and_then(|v| v.as_str()) {
                Some(json) => serde_json::from_str(json).with_context(|| {
                    format!("{}: output PackagesTables of stack {stack} is not a JSON object of names", file.display())
                })?,
                None => Default::default(),
            },
            stack,
        })
    }

    /// Clients from the usual AWS configuration chain (profile, env, SSO, …).
    pub async fn clients(&self) -> StackClients {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let path_style = std::env::var("PKGRELAY_S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1");
        StackClients {
            bucket: pkgrelay_aws::s3::S3Store::new(pkgrelay_aws::s3::client(&sdk, path_style), &self.bucket),
            store: pkgrelay_aws::dynamo::DynamoStore::new(
                pkgrelay_aws::dynamo::client(&sdk),
                &self.packages_table,
                &self.state_table,
            ),
        }
    }

    /// The stack's store and bucket, from the usual AWS configuration chain.
    pub async fn store_and_bucket(&self) -> (pkgrelay_aws::dynamo::DynamoStore, pkgrelay_aws::s3::S3Store) {
        let clients = self.clients().await;
        (clients.store, clients.bucket)
    }

    /// A step context over the stack's store and bucket, as the functions build
    /// it (functions/aws/src/env.rs), with `config` (the directory the stack
    /// bundles) and no signing key: for steps that never sign.
    pub fn context(
        &self,
        sdk: &aws_config::SdkConfig,
        config: Config,
        work_dir: PathBuf,
        observer: Arc<dyn Observer>,
    ) -> anyhow::Result<Context> {
        self.repository_context(sdk, config, None, work_dir, observer)
    }

    /// [`StackOutputs::context`] for repository `repository` of
    /// repositories.yaml (`None`: the APT repository), over its own packages
    /// table.
    pub fn repository_context(
        &self,
        sdk: &aws_config::SdkConfig,
        config: Config,
        repository: Option<&str>,
        work_dir: PathBuf,
        observer: Arc<dyn Observer>,
    ) -> anyhow::Result<Context> {
        let entry = pkgrelay_core::context::entry(&config, repository)?;
        let packages_table = if entry.format == pkgrelay_core::config::FormatName::Apt {
            self.packages_table.clone()
        } else {
            self.packages_tables.get(&entry.name).cloned().ok_or_else(|| {
                anyhow!(
                    "stack {} has no packages table for repository {} (output PackagesTables); redeploy the \
                     current cdk/ app with this repositories.yaml",
                    self.stack,
                    entry.name
                )
            })?
        };
        let bucket: Arc<dyn ObjectStore> = Arc::new(
            pkgrelay_aws::s3::S3Store::new(pkgrelay_aws::s3::client(sdk, path_style()), &self.bucket)
                .with_layout(pkgrelay_core::context::bucket_layout(&config)?),
        );
        let backends = pkgrelay_core::context::Backends {
            store: Arc::new(pkgrelay_aws::dynamo::DynamoStore::new(
                pkgrelay_aws::dynamo::client(sdk),
                &packages_table,
                &self.state_table,
            )),
            public: bucket.clone(),
            private: bucket,
            // The operator's commands never publish.
            edge_names: None,
        };
        pkgrelay_core::context::build(config, repository, backends, None, work_dir, observer)
    }
}

/// SDK configuration from the usual AWS configuration chain (profile, env, SSO, …).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}

/// Path-style S3 addressing (`PKGRELAY_S3_FORCE_PATH_STYLE`, for local AWS emulators).
fn path_style() -> bool {
    std::env::var("PKGRELAY_S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1")
}

pub struct StackClients {
    bucket: pkgrelay_aws::s3::S3Store,
    store: pkgrelay_aws::dynamo::DynamoStore,
}

impl StackClients {
    pub async fn newest_recorded(&self, name: &str) -> anyhow::Result<Option<String>> {
        let versions = self.store.versions_of(name).await?;
        Ok(versions.into_iter().map(|e| e.version).max_by(|a, b| pkgrelay_core::version::compare(a, b)))
    }

    pub async fn stage(&self, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.bucket.put_bytes(key, bytes.to_vec(), WriteMode::Overwrite).await?;
        Ok(())
    }
}
