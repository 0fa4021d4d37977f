//! `EdgeNames` on a CloudFront key value store: the Homebrew mirrors' flat
//! bottle names (`brew/bottles/<name>-<version>.<tag>.bottle.tar.gz` →
//! SHA-256), which the CloudFront Function in front of each mirror
//! (cdk/functions/brew-rewrite.js) reads to serve the one stored blob.
//!
//! The store takes `UpdateKeys` batches, each conditional on the store's
//! current ETag (optimistic concurrency: a concurrent writer makes the next
//! batch fail with a conflict, and this re-reads the ETag and tries again).
//! CloudFront's quotas (key ≤ 512 bytes, value ≤ 1 KB, the whole store
//! ≤ 5 MB) leave room for ~30,000 bottle names of a full mirror.

use async_trait::async_trait;
use aws_sdk_cloudfrontkeyvaluestore as kvs;
use kvs::config::endpoint::{Params, ResolveEndpoint};
use kvs::types::{DeleteKeyRequestListItem, PutKeyRequestListItem};
use pkgrelay_core::blob::{BlobError, EdgeNames};

/// Puts per `UpdateKeys` request: the API takes at most 50 changes at once.
const BATCH: usize = 50;
/// ETag conflicts (another writer between DescribeKeyValueStore and UpdateKeys) tolerated in a row.
const CONFLICT_RETRIES: usize = 5;

pub struct KeyValueStore {
    client: kvs::Client,
    arn: String,
}

impl KeyValueStore {
    pub fn new(sdk: &aws_config::SdkConfig, arn: &str) -> KeyValueStore {
        let mut config = kvs::config::Builder::from(sdk);
        if sdk.endpoint_url().is_some() {
            config = config.endpoint_resolver(AsGiven(kvs::config::endpoint::DefaultResolver::new()));
        }
        KeyValueStore { client: kvs::Client::from_conf(config.build()), arn: arn.to_owned() }
    }

    /// One UpdateKeys, conditional on `etag`; on a conflict (another writer
    /// in between) the ETag is read again and the batch sent again. The new ETag.
    async fn update(
        &self,
        etag: &str,
        puts: Option<Vec<PutKeyRequestListItem>>,
        deletes: Option<Vec<DeleteKeyRequestListItem>>,
        keys: &[String],
    ) -> Result<String, BlobError> {
        let mut etag = etag.to_owned();
        let mut conflicts = 0;
        loop {
            let sent = self
                .client
                .update_keys()
                .kvs_arn(&self.arn)
                .if_match(&etag)
                .set_puts(puts.clone())
                .set_deletes(deletes.clone())
                .send()
                .await;
            match sent {
                Ok(out) => return Ok(out.e_tag().to_owned()),
                Err(e)
                    if e.as_service_error().is_some_and(|s| s.is_conflict_exception())
                        && conflicts < CONFLICT_RETRIES =>
                {
                    conflicts += 1;
                    etag = self.etag().await?;
                }
                Err(e) => {
                    return Err(BlobError::io(
                        &self.arn,
                        format!(
                            "UpdateKeys ({} names, first {}): {}",
                            keys.len(),
                            keys.first().map_or("-", String::as_str),
                            aws_sdk_s3::error::DisplayErrorContext(&e)
                        ),
                    ));
                }
            }
        }
    }

    async fn etag(&self) -> Result<String, BlobError> {
        let out = self.client.describe_key_value_store().kvs_arn(&self.arn).send().await.map_err(|e| {
            BlobError::io(&self.arn, format!("DescribeKeyValueStore: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))
        })?;
        Ok(out.e_tag().to_owned())
    }
}

#[async_trait]
impl EdgeNames for KeyValueStore {
    async fn put(&self, entries: &[(String, String)]) -> Result<(), BlobError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut etag = self.etag().await?;
        for batch in entries.chunks(BATCH) {
            let puts: Vec<PutKeyRequestListItem> = batch
                .iter()
                .map(|(k, v)| PutKeyRequestListItem::builder().key(k).value(v).build())
                .collect::<Result<_, _>>()
                .map_err(|e| BlobError::io(&self.arn, format!("key value store entry: {e}")))?;
            let keys: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
            etag = self.update(&etag, Some(puts), None, &keys).await?;
        }
        tracing::info!(names = entries.len(), kvs = %self.arn, "bottle names written to the key value store");
        Ok(())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), BlobError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut etag = self.etag().await?;
        for batch in keys.chunks(BATCH) {
            let deletes: Vec<DeleteKeyRequestListItem> = batch
                .iter()
                .map(|k| DeleteKeyRequestListItem::builder().key(k).build())
                .collect::<Result<_, _>>()
                .map_err(|e| BlobError::io(&self.arn, format!("key value store entry: {e}")))?;
            etag = self.update(&etag, None, Some(deletes), batch).await?;
        }
        tracing::info!(names = keys.len(), kvs = %self.arn, "bottle names removed from the key value store");
        Ok(())
    }
}

/// The service's own endpoint rules, except that a configured endpoint URL
/// (`AWS_ENDPOINT_URL`: the tests' local AWS) is used as given. AWS's rules
/// put the key value store's account id in front of a configured endpoint's
/// host (`http://123456789012.127.0.0.1:4566`), a name that nothing on
/// loopback resolves; the signing scheme (SigV4A) stays as the rules say.
#[derive(Debug)]
struct AsGiven(kvs::config::endpoint::DefaultResolver);

impl ResolveEndpoint for AsGiven {
    fn resolve_endpoint<'a>(&'a self, params: &'a Params) -> kvs::config::endpoint::EndpointFuture<'a> {
        use futures_util::FutureExt as _;
        // The service's rules are computed at once (a ready future).
        let resolved = match self.0.resolve_endpoint(params).now_or_never() {
            Some(r) => r,
            None => Err("the key value store's endpoint rules did not resolve at once".into()),
        };
        kvs::config::endpoint::EndpointFuture::ready(resolved.map(|resolved| {
            let Some(given) = params.endpoint() else { return resolved };
            let mut endpoint = kvs::config::endpoint::Endpoint::builder().url(given.trim_end_matches('/').to_owned());
            for (k, v) in resolved.properties() {
                endpoint = endpoint.property(k.clone(), v.clone());
            }
            endpoint.build()
        }))
    }
}
