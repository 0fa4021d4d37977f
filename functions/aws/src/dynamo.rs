//! [`PackageStore`] on DynamoDB.
//!
//! Two tables:
//! - the packages table, partition key `package_id` (`name#version#arch`), with
//!   the GSI `package-name-index` (`package_name`, `version`). Each
//!   [`PackageEntry`] is stored as a native item (serde_dynamo), so its fields
//!   (`package_name`, `version`, `sha256`, `size`, `filename`, …) are ordinary
//!   attributes; reading an item back gives the identical entry.
//! - the state table, partition key `suite`: one item per suite holding the
//!   generation counter `generation`, the live publication `published` (a map)
//!   and its number `published_generation` (a plain number for the condition);
//!   and one item per `latest_url` source, keyed `source#<package>`, holding
//!   its [`SourceState`] as the map `source`, and one item per refused
//!   candidate, keyed `rejected#<package_id>`, holding its [`Rejection`] as
//!   the map `rejection`. Suite names never contain `#` (configuration
//!   refuses them), so the kinds of key cannot meet.
//!
//! Every write that must not lose a race is conditional: inserts never overwrite
//! (`attribute_not_exists`), the counter is an atomic `ADD`, and a publication is
//! recorded only over an older one. Reads of the base table are strongly
//! consistent; `versions_of` reads the GSI, which is eventually consistent.
//!
//! Throttling is left to the SDK's retry policy: build clients with [`client`]
//! (standard retry, 8 attempts), or configure a client passed in the same way.

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TransactWriteItem, Update,
};
use pkgrelay_core::model::{Lease, PackageEntry, Publication, Rejection, SourceState, SuiteState};
use pkgrelay_core::store::{Allocation, InsertOutcome, PackageStore, PublishRecord, StoreError};
use std::collections::HashMap;

/// DynamoDB's item size limit (400 KB, attribute names and values together).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// An item's size as DynamoDB counts it against [`MAX_ITEM_BYTES`]: the UTF-8
/// length of every attribute name plus its value (strings: UTF-8 bytes;
/// numbers: about one byte per two significant digits plus one; binary: bytes;
/// booleans and nulls: 1; lists and maps: 3 bytes plus 1 per element, plus the
/// elements). Written here because the SDK does not compute it; checked before
/// a write so that an over-size entry fails with its own name, not the
/// service's generic ValidationException.
pub fn item_size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => number(n),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::Ss(l) => l.iter().map(String::len).sum(),
            AttributeValue::Ns(l) => l.iter().map(|n| number(n)).sum(),
            AttributeValue::Bs(l) => l.iter().map(|b| b.as_ref().len()).sum(),
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<usize>(),
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + value(v)).sum::<usize>(),
            _ => 0,
        }
    }
    fn number(n: &str) -> usize {
        let digits = n.trim_start_matches('-').replace('.', "");
        let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
        significant.div_ceil(2) + 1
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// Name of the GSI on (`package_name`, `version`).
pub const PACKAGE_NAME_INDEX: &str = "package-name-index";

type Item = HashMap<String, AttributeValue>;

/// A DynamoDB client from shared SDK configuration, with the retry policy the
/// store relies on against throttling (standard mode, exponential backoff with
/// jitter, 8 attempts).
pub fn client(config: &SdkConfig) -> Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(config)
        .retry_config(RetryConfig::standard().with_max_attempts(8))
        .build();
    Client::from_conf(conf)
}

/// [`PackageStore`] over a packages table and a state table (see the module docs).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    packages_table: String,
    state_table: String,
    page_size: Option<i32>,
}

impl DynamoStore {
    /// The client should be built with [`client`] (or carry an equivalent retry
    /// configuration): throttling is retried by the SDK, not here.
    pub fn new(client: Client, packages_table: impl Into<String>, state_table: impl Into<String>) -> DynamoStore {
        DynamoStore { client, packages_table: packages_table.into(), state_table: state_table.into(), page_size: None }
    }

    /// Items per Scan/Query page (DynamoDB's default is 1 MB of data). Mostly
    /// useful for exercising pagination in tests.
    pub fn with_page_size(mut self, items: i32) -> DynamoStore {
        self.page_size = Some(items);
        self
    }

    fn decode(item: Item) -> Result<PackageEntry, StoreError> {
        let id = string_attr(&item, "package_id");
        serde_dynamo::from_item(item)
            .map_err(|e| StoreError::Corrupt { id: id.unwrap_or_else(|| "?".into()), message: e.to_string() })
    }

    /// The item of `table` whose (string) partition key `key_name` is
    /// `key_value`, read strongly consistently; `projection` limits the
    /// attributes returned.
    async fn get_item(
        &self,
        table: &str,
        key_name: &str,
        key_value: &str,
        projection: Option<&str>,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key(key_name, AttributeValue::S(key_value.into()))
            .set_projection_expression(projection.map(str::to_owned))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(table, "GetItem", e))?;
        Ok(out.item)
    }

    /// The stored SHA256 of `package_id`, read strongly consistently.
    async fn stored_sha256(&self, package_id: &str) -> Result<Option<String>, StoreError> {
        let item = self.get_item(&self.packages_table, "package_id", package_id, Some("sha256")).await?;
        Ok(item.as_ref().and_then(|i| string_attr(i, "sha256")))
    }

    async fn suite_item(&self, suite: &str) -> Result<Option<Item>, StoreError> {
        self.get_item(&self.state_table, "suite", suite, None).await
    }

    /// A conditional UpdateItem on the state table's item keyed `suite` (a
    /// suite's, or a source's `source#<package>`): `request` adds the
    /// expressions (table and key are set). A failed condition is
    /// [`Updated::CheckFailed`], with the item as it was if the request asked for
    /// it (`ReturnValuesOnConditionCheckFailure::AllOld`); any other error is
    /// [`StoreError::Backend`] naming the state table and UpdateItem.
    async fn update_suite(
        &self,
        suite: &str,
        request: impl FnOnce(UpdateItemFluentBuilder) -> UpdateItemFluentBuilder,
    ) -> Result<Updated, StoreError> {
        let builder =
            self.client.update_item().table_name(&self.state_table).key("suite", AttributeValue::S(suite.into()));
        match request(builder).send().await {
            Ok(out) => Ok(Updated::Done(out.attributes)),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Updated::CheckFailed(failed.item().cloned()))
                }
                _ => Err(backend(&self.state_table, "UpdateItem", err)),
            },
        }
    }
}

/// The outcome of [`DynamoStore::update_suite`].
enum Updated {
    /// The attributes the request asked for (`return_values`), if any.
    Done(Option<Item>),
    /// The condition failed; the item as it was, if the service sent it back.
    CheckFailed(Option<Item>),
}

/// Reads `table` with a strongly consistent Scan, page by page (`page_size`
/// items a page, or DynamoDB's default of 1 MB), and calls `f` on each item, in
/// order: one page in memory at a time, never the whole table. The first error,
/// of the service (naming the table and Scan) or of `f`, ends the scan.
pub(crate) async fn scan_pages<E>(
    client: &Client,
    table: &str,
    page_size: Option<i32>,
    mut f: impl FnMut(Item) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<StoreError>,
{
    let mut pages = client.scan().table_name(table).consistent_read(true).set_limit(page_size).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| backend(table, "Scan", e))?;
        for item in page.items.unwrap_or_default() {
            f(item)?;
        }
    }
    Ok(())
}

/// An SDK error as [`StoreError::Backend`], naming the table, the operation and
/// the service's error code, followed by the full error chain.
pub(crate) fn backend<E, R>(table: &str, operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().unwrap_or("no error code").to_owned();
    StoreError::Backend(format!("DynamoDB {operation} on table {table}: {code}: {}", DisplayErrorContext(&err)))
}

fn string_attr(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number_attr(item: &Item, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

#[async_trait::async_trait]
impl PackageStore for DynamoStore {
    async fn get(&self, package_id: &str) -> Result<Option<PackageEntry>, StoreError> {
        let item = self.get_item(&self.packages_table, "package_id", package_id, None).await?;
        item.map(Self::decode).transpose()
    }

    async fn get_many(&self, package_ids: &[String]) -> Result<Vec<PackageEntry>, StoreError> {
        let mut out = Vec::with_capacity(package_ids.len());
        // BatchGetItem takes at most 100 keys; the same key twice is refused.
        let mut unique: Vec<&String> = package_ids.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| HashMap::from([("package_id".to_owned(), AttributeValue::S((*id).clone()))]))
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Backend(format!("BatchGetItem request: {e}")))?,
            );
            // Unprocessed keys (throttling, 16 MB answers) are asked again, with a pause.
            let mut pause = std::time::Duration::from_millis(50);
            while let Some(keys) = request.take() {
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.packages_table, keys)
                    .send()
                    .await
                    .map_err(|e| backend(&self.packages_table, "BatchGetItem", e))?;
                for item in answer.responses.and_then(|mut r| r.remove(&self.packages_table)).unwrap_or_default() {
                    out.push(Self::decode(item)?);
                }
                request = answer.unprocessed_keys.and_then(|mut u| u.remove(&self.packages_table));
                if request.is_some() {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
        Ok(out)
    }

    async fn insert(&self, suite: &str, entry: &PackageEntry) -> Result<InsertOutcome, StoreError> {
        let item: Item = serde_dynamo::to_item(entry)
            .map_err(|e| StoreError::Backend(format!("{}: cannot encode as a DynamoDB item: {e}", entry.package_id)))?;
        let size = item_size(&item);
        if size > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge { id: entry.package_id.clone(), bytes: size, limit: MAX_ITEM_BYTES });
        }
        // One transaction: the entry, if its id is new, and the suite's
        // `recorded` mark. Either both happen or neither does, so a recorded
        // entry can never be forgotten by the next run's unpublished check.
        let put = Put::builder()
            .table_name(&self.packages_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(package_id)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Backend(format!("TransactWriteItems request: {e}")))?;
        let mark = Update::builder()
            .table_name(&self.state_table)
            .key("suite", AttributeValue::S(suite.into()))
            .update_expression("ADD #rec :one")
            .expression_attribute_names("#rec", "recorded")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(|e| StoreError::Backend(format!("TransactWriteItems request: {e}")))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(mark).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(InsertOutcome::Inserted),
            Err(e) => e,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() else {
            return Err(backend(&self.packages_table, "TransactWriteItems", err));
        };
        let put_reason = cancelled.cancellation_reasons().first();
        if put_reason.and_then(|r| r.code()) != Some("ConditionalCheckFailed") {
            return Err(backend(&self.packages_table, "TransactWriteItems", err));
        }
        // The id exists. The failed check usually carries the stored item; read it
        // if the service did not send it back.
        let existing = match put_reason.and_then(|r| r.item()).and_then(|i| string_attr(i, "sha256")) {
            Some(sha) => sha,
            None => self.stored_sha256(&entry.package_id).await?.ok_or_else(|| StoreError::Corrupt {
                id: entry.package_id.clone(),
                message: "the conditional insert failed but the item has no sha256".into(),
            })?,
        };
        Ok(if existing == entry.checksums.sha256 {
            InsertOutcome::AlreadyPresent
        } else {
            InsertOutcome::Conflict { existing_sha256: existing }
        })
    }

    async fn for_each_entry(&self, f: &mut (dyn FnMut(PackageEntry) + Send)) -> Result<(), StoreError> {
        // Page by page: one page of items (at most 1 MB) in memory at a time.
        scan_pages(&self.client, &self.packages_table, self.page_size, |item| {
            f(Self::decode(item)?);
            Ok(())
        })
        .await
    }

    async fn versions_of(&self, package_name: &str) -> Result<Vec<PackageEntry>, StoreError> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.packages_table)
            .index_name(PACKAGE_NAME_INDEX)
            .key_condition_expression("package_name = :name")
            .expression_attribute_values(":name", AttributeValue::S(package_name.into()))
            .set_limit(self.page_size)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| backend(&self.packages_table, &format!("Query ({PACKAGE_NAME_INDEX})"), e))?;
        items.into_iter().map(Self::decode).collect()
    }

    async fn suite(&self, suite: &str) -> Result<SuiteState, StoreError> {
        let Some(item) = self.suite_item(suite).await? else {
            return Ok(SuiteState { suite: suite.to_owned(), ..Default::default() });
        };
        let published = item
            .get("published")
            .map(|p| serde_dynamo::from_attribute_value::<_, Publication>(p.clone()))
            .transpose()
            .map_err(|e| StoreError::Corrupt { id: format!("suite {suite}"), message: e.to_string() })?;
        Ok(SuiteState {
            suite: suite.to_owned(),
            generation: number_attr(&item, "generation").unwrap_or(0),
            published,
            lease: lease_of(&item),
            recorded: number_attr(&item, "recorded").unwrap_or(0),
        })
    }

    async fn allocate_generation(&self, suite: &str, now: i64, lease_secs: i64) -> Result<Allocation, StoreError> {
        // One conditional update: the counter moves and the new generation takes
        // the lease, unless an unexpired lease is held. Both SET expressions read
        // the item as it was before the update.
        let update = self
            .update_suite(suite, |u| {
                u.update_expression(
                    "SET #gen = if_not_exists(#gen, :zero) + :one, #lg = if_not_exists(#gen, :zero) + :one, #lu = :until",
                )
                .condition_expression("attribute_not_exists(#lu) OR #lu <= :now")
                .expression_attribute_names("#gen", "generation")
                .expression_attribute_names("#lg", "lease_generation")
                .expression_attribute_names("#lu", "lease_until")
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .expression_attribute_values(":until", AttributeValue::N((now + lease_secs).to_string()))
                .return_values(ReturnValue::UpdatedNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            })
            .await?;
        match update {
            Updated::Done(attributes) => {
                attributes.as_ref().and_then(|a| number_attr(a, "generation")).map(Allocation::Granted).ok_or_else(
                    || StoreError::Corrupt { id: format!("suite {suite}"), message: "no generation returned".into() },
                )
            }
            Updated::CheckFailed(old) => {
                let lease = match old {
                    Some(item) => lease_of(&item),
                    None => self.suite_item(suite).await?.as_ref().and_then(lease_of),
                };
                // The lease may have been released between the check and the read.
                Ok(Allocation::Busy(lease.unwrap_or(Lease { generation: 0, until: now })))
            }
        }
    }

    async fn release_lease(&self, suite: &str, generation: u64) -> Result<(), StoreError> {
        // Done, or the lease had already moved on: either way it is not ours any more.
        self.update_suite(suite, |u| {
            u.update_expression("REMOVE #lg, #lu")
                .condition_expression("#lg = :g")
                .expression_attribute_names("#lg", "lease_generation")
                .expression_attribute_names("#lu", "lease_until")
                .expression_attribute_values(":g", AttributeValue::N(generation.to_string()))
        })
        .await?;
        Ok(())
    }

    async fn record_published(&self, suite: &str, publication: &Publication) -> Result<PublishRecord, StoreError> {
        let published: AttributeValue = serde_dynamo::to_attribute_value(publication)
            .map_err(|e| StoreError::Backend(format!("suite {suite}: cannot encode the publication: {e}")))?;
        let update = self
            .update_suite(suite, |u| {
                u.update_expression("SET #pub = :p, #pg = :g REMOVE #lg, #lu")
                    .condition_expression("#lg = :g AND (attribute_not_exists(#pg) OR #pg < :g)")
                    .expression_attribute_names("#pub", "published")
                    .expression_attribute_names("#pg", "published_generation")
                    .expression_attribute_names("#lg", "lease_generation")
                    .expression_attribute_names("#lu", "lease_until")
                    .expression_attribute_values(":p", published)
                    .expression_attribute_values(":g", AttributeValue::N(publication.generation.to_string()))
                    .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            })
            .await?;
        let item = match update {
            Updated::Done(_) => return Ok(PublishRecord::Recorded),
            Updated::CheckFailed(Some(item)) => Some(item),
            Updated::CheckFailed(None) => self.suite_item(suite).await?,
        };
        let published = item.as_ref().and_then(|i| number_attr(i, "published_generation")).unwrap_or(0);
        if published >= publication.generation {
            Ok(PublishRecord::Superseded { published })
        } else {
            Ok(PublishRecord::LeaseLost)
        }
    }

    async fn source_state(&self, package: &str) -> Result<Option<SourceState>, StoreError> {
        let key = source_key(package);
        let Some(item) = self.get_item(&self.state_table, "suite", &key, None).await? else {
            return Ok(None);
        };
        item.get("source")
            .map(|v| serde_dynamo::from_attribute_value(v.clone()))
            .transpose()
            .map_err(|e| StoreError::Corrupt { id: key, message: e.to_string() })
    }

    async fn record_source(&self, state: &SourceState) -> Result<(), StoreError> {
        let value: AttributeValue = serde_dynamo::to_attribute_value(state)
            .map_err(|e| StoreError::Backend(format!("source {}: cannot encode its record: {e}", state.package)))?;
        // UpdateItem, not PutItem: record-metadata already updates the state
        // table (the suite's recorded mark), and SET of the one attribute
        // replaces the whole record all the same.
        self.update_suite(&source_key(&state.package), |u| {
            u.update_expression("SET #src = :s")
                .expression_attribute_names("#src", "source")
                .expression_attribute_values(":s", value)
        })
        .await?;
        Ok(())
    }
    async fn record_rejection(&self, rejection: &Rejection) -> Result<(), StoreError> {
        let value: AttributeValue = serde_dynamo::to_attribute_value(rejection)
            .map_err(|e| StoreError::Backend(format!("{}: cannot encode the rejection: {e}", rejection.package_id)))?;
        // UpdateItem (SET the one attribute), as record_source: the roles that
        // refuse candidates already update the state table.
        self.update_suite(&rejection_key(&rejection.package_id), |u| {
            u.update_expression("SET #rej = :r")
                .expression_attribute_names("#rej", "rejection")
                .expression_attribute_values(":r", value)
        })
        .await?;
        Ok(())
    }

    async fn rejections(&self, package_ids: &[String]) -> Result<Vec<Rejection>, StoreError> {
        let mut out = Vec::new();
        let mut keys: Vec<String> = package_ids.iter().map(|id| rejection_key(id)).collect();
        keys.sort();
        keys.dedup();
        for chunk in keys.chunks(100) {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(
                    chunk.iter().map(|k| HashMap::from([("suite".to_owned(), AttributeValue::S(k.clone()))])).collect(),
                ))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Backend(format!("BatchGetItem request: {e}")))?;
            let mut pending = Some(request);
            let mut pause = std::time::Duration::from_millis(50);
            while let Some(keys) = pending.take() {
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.state_table, keys)
                    .send()
                    .await
                    .map_err(|e| backend(&self.state_table, "BatchGetItem", e))?;
                for item in answer.responses.and_then(|mut r| r.remove(&self.state_table)).unwrap_or_default() {
                    out.extend(decode_rejection(&item)?);
                }
                pending = answer.unprocessed_keys.and_then(|mut u| u.remove(&self.state_table));
                if pending.is_some() {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
        Ok(out)
    }

    async fn all_rejections(&self) -> Result<Vec<Rejection>, StoreError> {
        // The state table is small (suites, sources, refusals): an operator's
        // Scan of it costs next to nothing; no pipeline step does this.
        let mut out = Vec::new();
        scan_pages(&self.client, &self.state_table, self.page_size, |item| {
            if string_attr(&item, "suite").is_some_and(|k| k.starts_with(REJECTED_PREFIX)) {
                out.extend(decode_rejection(&item)?);
            }
            Ok::<(), StoreError>(())
        })
        .await?;
        out.sort_by(|a, b| a.package_id.cmp(&b.package_id));
        Ok(out)
    }

    async fn clear_rejection(&self, package_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.state_table)
            .key("suite", AttributeValue::S(rejection_key(package_id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| backend(&self.state_table, "DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

/// The state table's key of a source's record.
fn source_key(package: &str) -> String {
    format!("source#{package}")
}

const REJECTED_PREFIX: &str = "rejected#";

fn rejection_key(package_id: &str) -> String {
    format!("{REJECTED_PREFIX}{package_id}")
}

fn decode_rejection(item: &Item) -> Result<Option<Rejection>, StoreError> {
    let key = string_attr(item, "suite").unwrap_or_default();
    item.get("rejection")
        .map(|v| serde_dynamo::from_attribute_value(v.clone()))
        .transpose()
        .map_err(|e| StoreError::Corrupt { id: key, message: e.to_string() })
}

/// The lease fields of a state item, when both are present.
fn lease_of(item: &Item) -> Option<Lease> {
    let generation = number_attr(item, "lease_generation")?;
    let until = item.get("lease_until").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())?;
    Some(Lease { generation, until })
}

/// Create the packages table (with its GSI) and the state table, on-demand
/// billing, and wait until both are active. Tables that already exist are left
/// as they are. For tests and local tooling; deployments create them with CDK.
pub async fn create_tables(client: &Client, packages_table: &str, state_table: &str) -> Result<(), StoreError> {
    let key = |name: &str, key_type| KeySchemaElement::builder().attribute_name(name).key_type(key_type).build();
    let attr =
        |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build();
    let schema = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Backend(format!("table schema: {e}"));

    let gsi = GlobalSecondaryIndex::builder()
        .index_name(PACKAGE_NAME_INDEX)
        .key_schema(key("package_name", KeyType::Hash).map_err(schema)?)
        .key_schema(key("version", KeyType::Range).map_err(schema)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(schema)?;
    let packages = client
        .create_table()
        .table_name(packages_table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("package_id").map_err(schema)?)
        .attribute_definitions(attr("package_name").map_err(schema)?)
        .attribute_definitions(attr("version").map_err(schema)?)
        .key_schema(key("package_id", KeyType::Hash).map_err(schema)?)
        .global_secondary_indexes(gsi);
    let state = client
        .create_table()
        .table_name(state_table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("suite").map_err(schema)?)
        .key_schema(key("suite", KeyType::Hash).map_err(schema)?);

    for (table, request) in [(packages_table, packages), (state_table, state)] {
        match request.send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(backend(table, "CreateTable", e)),
        }
    }
    for table in [packages_table, state_table] {
        use aws_sdk_dynamodb::client::Waiters;
        client.wait_until_table_exists().table_name(table).wait(std::time::Duration::from_secs(300)).await.map_err(
            |e| {
                StoreError::Backend(format!(
                    "DynamoDB table {table} did not become active: {}",
                    DisplayErrorContext(&e)
                ))
            },
        )?;
    }
    Ok(())
}
