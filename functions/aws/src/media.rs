//! The media pipeline on AWS (statemachine/media.md): the status table on
//! DynamoDB, the credentials in Secrets Manager, and the functions'
//! [`MediaContext`] from their environment.
//!
//! | variable | meaning |
//! |---|---|
//! | `MEDIA_BUCKET` | the media bucket (objects under `media/`, run files under `runs/media/`) |
//! | `MEDIA_STATUS_TABLE` | the status table (partition key `pk`; GSI `by-status`) |
//! | `MEDIA_SECRET_ARN` | the credentials secret (authenticate, list-media, download-media; summarize has none) |
//! | `CONFIG_LOCATION` | a directory, or `s3://bucket/prefix/`, holding `media.yaml` |
//! | `MEDIA_PROVIDER` | `gopro` (the default) |
//! | `PKGRELAY_ENV` | the metric lines' `Environment` dimension (default `default`) |
//! | `AWS_ENDPOINT_URL`, `PKGRELAY_S3_FORCE_PATH_STYLE` | tests only, as for the package functions |
//! | `PKGRELAY_INVOKE_TIMEOUT_SECS` | tests only: under `--invoke` (no Lambda deadline), the deadline download-media stops before, from the start |

use anyhow::{Context as _, anyhow};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use pkgrelay_core::blob::ObjectStore;
use pkgrelay_core::media::credentials::{CredentialStore, CredentialsError};
use pkgrelay_core::media::status::{BATCH_READ, Condition, StatusRecord, StatusTable, status_key};
use pkgrelay_core::media::steps::{MediaBackends, MediaContext, MetricsSink, StderrMetrics, StdoutMetrics};
use pkgrelay_core::media::{Credentials, MediaError, MediaProvider, MediaStatus};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The status table's index by status (partition `status`, sort `updated_at`).
pub const STATUS_INDEX: &str = "by-status";

// ---- The status table ----

/// [`StatusTable`] on DynamoDB: one item per media item, keyed `pk`, the
/// record's fields as native attributes (serde_dynamo).
pub struct DynamoStatusTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoStatusTable {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoStatusTable {
        DynamoStatusTable { client, table: table.into() }
    }

    fn fail(&self, operation: &str, e: impl std::error::Error) -> MediaError {
        MediaError::Network {
            what: format!("DynamoDB {operation} on table {}", self.table),
            message: DisplayErrorContext(e).to_string(),
        }
    }

    fn decode(&self, item: HashMap<String, AttributeValue>) -> Result<StatusRecord, MediaError> {
        serde_dynamo::from_item(item).map_err(|e| MediaError::Invalid {
            what: format!("a record of table {}", self.table),
            message: e.to_string(),
        })
    }
}

#[async_trait::async_trait]
impl StatusTable for DynamoStatusTable {
    async fn get_many(&self, provider: &str, ids: &[String]) -> Result<HashMap<String, StatusRecord>, MediaError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(BATCH_READ) {
            // A key asked twice in one batch is refused: each once.
            let mut keys: Vec<String> = chunk.iter().map(|id| status_key(provider, id)).collect();
            keys.sort();
            keys.dedup();
            let mut pending: Vec<HashMap<String, AttributeValue>> =
                keys.into_iter().map(|k| HashMap::from([("pk".to_owned(), AttributeValue::S(k))])).collect();
            let mut delay = Duration::from_millis(50);
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| self.fail("BatchGetItem", e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| self.fail("BatchGetItem", e))?;
                for item in out.responses.unwrap_or_default().remove(&self.table).unwrap_or_default() {
                    let record = self.decode(item)?;
                    if record.provider == provider {
                        found.insert(record.media_id.clone(), record);
                    }
                }
                // Throttled keys come back unprocessed: asked again after a backoff.
                if let Some(unprocessed) = out.unprocessed_keys.unwrap_or_default().remove(&self.table) {
                    pending = unprocessed.keys;
                    if !pending.is_empty() {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        Ok(found)
    }

    /// One record by GetItem (download-media's role has no BatchGetItem).
    async fn get(&self, provider: &str, media_id: &str) -> Result<Option<StatusRecord>, MediaError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(status_key(provider, media_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.fail("GetItem", e))?;
        out.item.map(|item| self.decode(item)).transpose()
    }

    async fn put(&self, record: &StatusRecord, condition: Condition) -> Result<bool, MediaError> {
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(record)
            .map_err(|e| MediaError::Invalid { what: format!("record {}", record.pk()), message: e.to_string() })?;
        let mut request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        match &condition {
            Condition::None => {}
            Condition::Absent => request = request.condition_expression("attribute_not_exists(pk)"),
            Condition::StatusIn(names) => {
                let placeholders: Vec<String> = (0..names.len()).map(|i| format!(":s{i}")).collect();
                request = request
                    .condition_expression(format!(
                        "attribute_not_exists(pk) OR #status IN ({})",
                        placeholders.join(", ")
                    ))
                    .expression_attribute_names("#status", "status");
                for (p, name) in placeholders.iter().zip(names) {
                    request = request.expression_attribute_values(p, AttributeValue::S((*name).to_owned()));
                }
            }
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(self.fail("PutItem", e)),
        }
    }

    /// A hundred conditional puts to a TransactWriteItems request (its
    /// limit): 50 requests for a first run of 5,000 items instead of 5,000,
    /// each record still written only where none exists. A transaction one
    /// of whose records exists already (a run meeting another) is cancelled
    /// whole; its records are then put one by one, each on its own condition.
    /// (A transaction costs twice the write units: ~$0.006 for 5,000 records,
    /// once per item's life.)
    async fn put_new(&self, records: &[StatusRecord]) -> Result<usize, MediaError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let mut written = 0;
        for chunk in records.chunks(100) {
            let mut items = Vec::with_capacity(chunk.len());
            for record in chunk {
                let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(record).map_err(|e| {
                    MediaError::Invalid { what: format!("record {}", record.pk()), message: e.to_string() }
                })?;
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map_err(|e| self.fail("TransactWriteItems", e))?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
                Ok(_) => written += chunk.len(),
                Err(e) if e.code() == Some("TransactionCanceledException") => {
                    for record in chunk {
                        written += usize::from(self.put(record, Condition::Absent).await?);
                    }
                }
                Err(e) => return Err(self.fail("TransactWriteItems", e)),
            }
        }
        Ok(written)
    }

    async fn ids_not_deleted(&self, provider: &str) -> Result<Vec<String>, MediaError> {
        // The status index, one status at a time; only the key is read (it is
        // projected whatever the index's projection).
        let prefix = format!("{provider}#");
        let mut ids = Vec::new();
        for status in [MediaStatus::Pending, MediaStatus::InProgress, MediaStatus::Completed]
            .iter()
            .map(MediaStatus::as_str)
            .chain(["FAILED"])
        {
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(STATUS_INDEX)
                    .key_condition_expression("#status = :s")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":s", AttributeValue::S(status.to_owned()))
                    .projection_expression("pk")
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| self.fail("Query", e))?;
                for item in out.items.unwrap_or_default() {
                    if let Some(AttributeValue::S(pk)) = item.get("pk")
                        && let Some(id) = pk.strip_prefix(&prefix)
                    {
                        ids.push(id.to_owned());
                    }
                }
                match out.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

// ---- The credentials secret ----

/// [`CredentialStore`] on a Secrets Manager secret holding the credentials
/// document as its string. Versions are the secret's version ids.
pub struct SecretCredentials {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretCredentials {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> SecretCredentials {
        SecretCredentials { client, secret_id: secret_id.into() }
    }

    fn fail(&self, message: String) -> CredentialsError {
        CredentialsError { place: format!("secret {}", self.secret_id), message }
    }
}

/// The `ClientRequestToken` of the version that follows `previous`: the same
/// for every try of one rotation, so that a retried PutSecretValue makes no
/// second version. A UUID's shape (Secrets Manager takes 32 to 64 characters).
pub fn rotation_token(previous: &str) -> String {
    let h = hex::encode(sha2::Sha256::digest(format!("pkgrelay-media-rotation\0{previous}").as_bytes()));
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[async_trait::async_trait]
impl CredentialStore for SecretCredentials {
    async fn read(&self, version: Option<&str>) -> Result<(Credentials, String), CredentialsError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.fail(format!("GetSecretValue: {}", DisplayErrorContext(e))))?;
        let text = out.secret_string().ok_or_else(|| self.fail("no string value".into()))?;
        let credentials = Credentials::from_json(text, &format!("secret {}", self.secret_id))?;
        let version = out.version_id().ok_or_else(|| self.fail("GetSecretValue answered no version id".into()))?;
        Ok((credentials, version.to_owned()))
    }

    async fn write(&self, credentials: &Credentials, previous: &str) -> Result<String, CredentialsError> {
        let token = rotation_token(previous);
        let result = self
            .client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(credentials.to_json())
            .client_request_token(&token)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.version_id().unwrap_or(&token).to_owned()),
            // This rotation was written already (a retry after a lost answer,
            // or a concurrent run refreshing from the same version): its version stands.
            Err(e) if e.code() == Some("ResourceExistsException") => {
                tracing::warn!(secret = self.secret_id, "rotation already written: keeping that version");
                Ok(token)
            }
            Err(e) => Err(self.fail(format!("PutSecretValue: {}", DisplayErrorContext(e)))),
        }
    }
}

/// The credentials of a function that has no secret (summarize): any read fails.
struct NoCredentials;

#[async_trait::async_trait]
impl CredentialStore for NoCredentials {
    async fn read(&self, _: Option<&str>) -> Result<(Credentials, String), CredentialsError> {
        Err(CredentialsError { place: "MEDIA_SECRET_ARN".into(), message: "not set for this function".into() })
    }
    async fn write(&self, _: &Credentials, _: &str) -> Result<String, CredentialsError> {
        self.read(None).await.map(|(_, v)| v)
    }
}

// ---- The functions' environment ----

/// The media functions' configuration (see the module docs).
#[derive(Debug, Clone)]
pub struct MediaEnv {
    pub bucket: String,
    pub status_table: String,
    pub secret_arn: Option<String>,
    pub config_location: String,
    pub provider: String,
    pub deployment: String,
    pub work_dir: std::path::PathBuf,
    pub force_path_style: bool,
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| anyhow!("environment variable {name} is not set"))
}

impl MediaEnv {
    pub fn from_env() -> anyhow::Result<MediaEnv> {
        Ok(MediaEnv {
            bucket: var("MEDIA_BUCKET")?,
            status_table: var("MEDIA_STATUS_TABLE")?,
            secret_arn: var("MEDIA_SECRET_ARN").ok(),
            config_location: var("CONFIG_LOCATION")?,
            provider: var("MEDIA_PROVIDER").unwrap_or_else(|_| "gopro".into()),
            deployment: var("PKGRELAY_ENV").unwrap_or_else(|_| "default".into()),
            work_dir: std::env::var("WORK_DIR").map(Into::into).unwrap_or_else(|_| std::env::temp_dir()),
            force_path_style: std::env::var("PKGRELAY_S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1"),
        })
    }

    /// The clients and the provider, once per cold start: the context every
    /// invocation derives its own from ([`MediaContext::for_run`]).
    /// `metrics_to_stderr`: under `--invoke`, where stdout is the result.
    pub async fn connect(&self, metrics_to_stderr: bool) -> anyhow::Result<MediaContext> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let s3 = crate::s3::client(&sdk, self.force_path_style);
        let provider = self.provider(&s3).await?;
        let credentials: Arc<dyn CredentialStore> = match &self.secret_arn {
            Some(arn) => Arc::new(SecretCredentials::new(aws_sdk_secretsmanager::Client::new(&sdk), arn)),
            None => Arc::new(NoCredentials),
        };
        let backends = MediaBackends {
            provider,
            status: Arc::new(DynamoStatusTable::new(crate::dynamo::client(&sdk), &self.status_table)),
            credentials,
            objects: Arc::new(crate::media_s3::S3Multipart::new(s3.clone(), &self.bucket)),
            runs: Arc::new(crate::s3::S3Store::new(s3, &self.bucket)) as Arc<dyn ObjectStore>,
            runs_bucket: self.bucket.clone(),
        };
        let metrics: Arc<dyn MetricsSink> =
            if metrics_to_stderr { Arc::new(StderrMetrics) } else { Arc::new(StdoutMetrics) };
        Ok(MediaContext::new(backends, &self.deployment).with_metrics(metrics))
    }

    /// The provider `MEDIA_PROVIDER` names, configured by `media.yaml`.
    async fn provider(&self, s3: &aws_sdk_s3::Client) -> anyhow::Result<Arc<dyn MediaProvider>> {
        use pkgrelay_core::media::settings;
        if self.provider != "gopro" {
            return Err(anyhow!("MEDIA_PROVIDER {:?}: the only provider is gopro", self.provider));
        }
        let config = match self.config_location.strip_prefix("s3://") {
            None => settings::load(std::path::Path::new(&self.config_location))?,
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let key = format!("{}{}", prefix.trim_end_matches('/'), format_args!("/{}", settings::FILE));
                let key = key.trim_start_matches('/').to_owned();
                std::fs::create_dir_all(&self.work_dir)?;
                let tmp = tempfile::Builder::new().prefix("pkgrelay-media-config-").tempdir_in(&self.work_dir)?;
                crate::s3::S3Store::new(s3.clone(), bucket)
                    .get_to_file(&key, &tmp.path().join(settings::FILE))
                    .await
                    .with_context(|| format!("{} from s3://{bucket}/{key}", settings::FILE))?;
                settings::load(tmp.path())?
            }
        };
        Ok(Arc::new(pkgrelay_core::media::gopro::GoPro::new(config).map_err(|e| anyhow!("{e}"))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_tokens_are_stable_and_uuid_shaped() {
        let t = rotation_token("a1b2c3d4-0000-4000-8000-000000000001");
        assert_eq!(t, rotation_token("a1b2c3d4-0000-4000-8000-000000000001"));
        assert_ne!(t, rotation_token("a1b2c3d4-0000-4000-8000-000000000002"));
        assert_eq!(t.len(), 36);
        assert_eq!(t.matches('-').count(), 4);
    }

    #[test]
    fn records_are_native_items_and_come_back_whole() {
        use pkgrelay_core::media::status::FileRecord;
        use pkgrelay_core::media::transfer::UploadProgress;
        let now = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        let mut r = StatusRecord::new("gopro", "m1", Some(now), now);
        r.status = MediaStatus::Failed { reason: "HTTP 500".into() };
        r.attempts = 3;
        r.bytes = 5_000_000_000;
        r.retry_after = Some(now + time::Duration::hours(6));
        r.files.push(FileRecord {
            key: "media/gopro/a".into(),
            bytes: 1,
            sha256: "ab".into(),
            crc64nvme: "AA==".into(),
        });
        r.upload = Some(UploadProgress {
            key: "media/gopro/b".into(),
            upload_id: "u".into(),
            part_size: 100 << 20,
            parts_done: 2,
            bytes_done: 200 << 20,
            sha256_state: "00ff".into(),
            crc_state: u64::MAX,
        });
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&r).unwrap();
        assert_eq!(item["pk"], AttributeValue::S("gopro#m1".into()));
        assert_eq!(item["status"], AttributeValue::S("FAILED".into()));
        assert_eq!(item["reason"], AttributeValue::S("HTTP 500".into()));
        assert_eq!(item["attempts"], AttributeValue::N("3".into()));
        assert_eq!(item["updated_at"], AttributeValue::S("2026-01-01T00:00:00Z".into()));
        assert!(matches!(&item["files"], AttributeValue::L(l) if l.len() == 1));
        assert!(
            matches!(&item["upload"], AttributeValue::M(m) if m["crc_state"] == AttributeValue::N(u64::MAX.to_string()))
        );
        let back: StatusRecord = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back, r);
    }
}
