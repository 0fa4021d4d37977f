//! The media status table on DynamoDB against the emulator (through
//! tests/localaws' gateway): new records written a hundred to a conditional
//! transaction, never over a record that exists (a cancelled transaction
//! falls back to one conditional put each), batch reads of more than 100
//! keys, and the ids the status index finds.

mod common;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use pkgrelay_aws::media::{DynamoStatusTable, STATUS_INDEX};
use pkgrelay_core::media::MediaStatus;
use pkgrelay_core::media::status::{Condition, StatusRecord, StatusTable};

async fn table() -> (aws_sdk_dynamodb::Client, String) {
    let client = pkgrelay_aws::dynamo::client(&common::sdk_config().await);
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let name = format!("pkgrelay-media-status-{}-{millis:x}", std::process::id());
    let attr =
        |n: &str| AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build();
    let key = |n: &str, t| KeySchemaElement::builder().attribute_name(n).key_type(t).build();
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk").unwrap())
        .attribute_definitions(attr("status").unwrap())
        .attribute_definitions(attr("updated_at").unwrap())
        .key_schema(key("pk", KeyType::Hash).unwrap())
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(STATUS_INDEX)
                .key_schema(key("status", KeyType::Hash).unwrap())
                .key_schema(key("updated_at", KeyType::Range).unwrap())
                .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (client, name)
}

#[tokio::test]
async fn new_records_in_transactions_never_over_an_existing_one() {
    let (client, name) = table().await;
    let status = DynamoStatusTable::new(client, &name);
    let now = time::OffsetDateTime::now_utc();
    let mut done = StatusRecord::new("gopro", "m0042", None, now);
    done.status = MediaStatus::Completed;
    done.bytes = 12_345;
    assert!(status.put(&done, Condition::Absent).await.unwrap());

    let new: Vec<StatusRecord> = (0..250).map(|i| StatusRecord::new("gopro", &format!("m{i:04}"), None, now)).collect();
    // 250 records, one of which exists: its hundred fall back to single puts.
    assert_eq!(status.put_new(&new).await.unwrap(), 249);
    let ids: Vec<String> = new.iter().map(|r| r.media_id.clone()).collect();
    let found = status.get_many("gopro", &ids).await.unwrap();
    assert_eq!(found.len(), 250);
    assert_eq!(found["m0042"].status, MediaStatus::Completed, "not overwritten");
    assert_eq!(found["m0042"].bytes, 12_345);
    assert_eq!(found["m0199"].status, MediaStatus::Pending);
    // Written again: nothing is new.
    assert_eq!(status.put_new(&new[..120]).await.unwrap(), 0);
    let mut listed = status.ids_not_deleted("gopro").await.unwrap();
    listed.sort();
    assert_eq!(listed, ids);
}
