//! [`LegacyStore`] on DynamoDB: the earlier single-package system's table
//! (partition key `version`, a string), read for `pkgrelay migrate` and emptied
//! once everything is migrated.
//!
//! Items are read with a paginated, strongly consistent Scan and handed over as
//! plain JSON objects (serde_dynamo), so the backup keeps every attribute.
//! Deletes go out as BatchWriteItem requests of at most 25, and whatever the
//! service reports as unprocessed is sent again with backoff. Errors name the
//! table, the operation and the service's error code.

use crate::dynamo::{backend, scan_pages};
use anyhow::{Context as _, anyhow, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use pkgrelay_core::migrate::{LegacyStore, RawItem};
use std::time::Duration;

/// BatchWriteItem's limit.
const BATCH: usize = 25;
/// Tries for one batch while items come back unprocessed.
const ATTEMPTS: u32 = 8;

/// The old table.
#[derive(Debug, Clone)]
pub struct DynamoLegacy {
    client: Client,
    table: String,
    page_size: Option<i32>,
}

impl DynamoLegacy {
    /// Build the client with [`crate::dynamo::client`] (retries throttling).
    pub fn new(client: Client, table: impl Into<String>) -> DynamoLegacy {
        DynamoLegacy { client, table: table.into(), page_size: None }
    }

    /// Items per Scan page (to exercise pagination in tests).
    pub fn with_page_size(mut self, items: i32) -> DynamoLegacy {
        self.page_size = Some(items);
        self
    }

    async fn delete_batch(&self, versions: &[String]) -> anyhow::Result<()> {
        let mut requests = versions
            .iter()
            .map(|v| {
                let delete = DeleteRequest::builder().key("version", AttributeValue::S(v.clone())).build()?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, aws_sdk_dynamodb::error::BuildError>>()
            .context("building a BatchWriteItem request")?;
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=ATTEMPTS {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| backend(&self.table, "BatchWriteItem", e))?;
            requests = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            if attempt < ATTEMPTS {
                tracing::warn!(table = %self.table, unprocessed = requests.len(), "BatchWriteItem: retrying unprocessed deletes");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        bail!(
            "DynamoDB BatchWriteItem on table {}: {} deletes still unprocessed after {ATTEMPTS} attempts",
            self.table,
            requests.len()
        )
    }
}

#[async_trait::async_trait]
impl LegacyStore for DynamoLegacy {
    fn name(&self) -> String {
        format!("DynamoDB table {}", self.table)
    }

    async fn items(&self) -> anyhow::Result<Vec<RawItem>> {
        let mut items = Vec::new();
        scan_pages(&self.client, &self.table, self.page_size, |item| -> anyhow::Result<()> {
            let version = item.get("version").and_then(|v| v.as_s().ok()).cloned();
            let raw = serde_dynamo::from_item(item).map_err(|e| {
                anyhow!(
                    "DynamoDB table {}: item {} is not readable as JSON: {e}",
                    self.table,
                    version.as_deref().unwrap_or("?")
                )
            })?;
            items.push(raw);
            Ok(())
        })
        .await?;
        Ok(items)
    }

    async fn delete(&self, versions: &[String]) -> anyhow::Result<()> {
        for chunk in versions.chunks(BATCH) {
            self.delete_batch(chunk).await?;
        }
        Ok(())
    }
}
