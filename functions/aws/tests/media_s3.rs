//! The media bucket's multipart store against the emulator (through
//! tests/localaws' gateway, as functions/aws/tests/backends.rs does): a file
//! copied in parts with a full-object CRC-64/NVME that S3 checks, a copy cut
//! short resumed from the parts S3 lists, a wrong checksum refused.
//!
//! Parts are 5 MiB (S3's minimum) so that a few MiB take the multipart path;
//! the 100 MiB parts of the deployed function go through the same calls.

mod common;

use pkgrelay_aws::media_s3::S3Multipart;
use pkgrelay_core::media::transfer::{CopyRequest, MultipartStore, copy_file, crc64nvme};
use pkgrelay_core::testing::media::{Kept, MemoryProvider, bytes_of, file, session};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;
const PART: u64 = 5 * MIB;

async fn client() -> aws_sdk_s3::Client {
    pkgrelay_aws::s3::client(&common::sdk_config().await, true)
}

async fn bucket(client: &aws_sdk_s3::Client, tag: &str) -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let name = format!("pkgrelay-media-{tag}-{}-{millis:x}", std::process::id());
    client.create_bucket().bucket(&name).send().await.unwrap();
    name
}

async fn get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let o = client.get_object().bucket(bucket).key(key).send().await.unwrap();
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn multipart_with_full_object_checksum_resumed_after_a_cut() {
    let client = client().await;
    let bucket = bucket(&client, "resume").await;
    let store = S3Multipart::new(client.clone(), &bucket).with_part_size(PART);
    let len = PART * 3 + 12_345;
    let data = bytes_of(len, 7);
    let provider = MemoryProvider::new(data.clone());
    *provider.cut_after.lock().unwrap() = Some(PART * 2 + MIB);
    let (kept, f) = (Kept::default(), file("media/gopro/2025/01/02/GX010001.MP4"));
    let request = |resume| CopyRequest { file: &f, expected_size: Some(len), previous: None, resume, deadline: None };

    let err = copy_file(&provider, &session(), &store, &kept, request(None)).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(store.head(&f.key).await.unwrap(), None, "nothing visible before completion");
    let progress = kept.0.lock().unwrap().clone().unwrap();
    assert_eq!(progress.parts_done, 2);
    let parts = store.list_parts(&f.key, &progress.upload_id).await.unwrap().unwrap();
    assert_eq!(parts.len(), 2, "{parts:?}");

    let copied = copy_file(&provider, &session(), &store, &kept, request(Some(progress))).await.unwrap();
    assert_eq!(*provider.offsets.lock().unwrap(), vec![0, PART * 2]);
    assert_eq!(copied.sha256, hex::encode(Sha256::digest(&data)));
    assert_eq!(copied.crc64nvme, crc64nvme(&data));
    let stored = store.head(&f.key).await.unwrap().unwrap();
    assert_eq!(stored.size, len);
    assert_eq!(stored.crc64nvme.as_deref(), Some(copied.crc64nvme.as_str()), "S3's full-object CRC-64/NVME");
    assert_eq!(get(&client, &bucket, &f.key).await, data);
    let open = client.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert!(open.uploads().is_empty(), "no upload left open: {:?}", open.uploads());

    // Copied once: the same object is not copied again.
    let again =
        CopyRequest { file: &f, expected_size: Some(len), previous: Some(&copied), resume: None, deadline: None };
    let second = copy_file(&provider, &session(), &store, &kept, again).await.unwrap();
    assert_eq!(second.transferred, 0);
    assert_eq!(provider.offsets.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_small_file_is_one_put_and_a_wrong_checksum_is_refused() {
    let client = client().await;
    let bucket = bucket(&client, "small").await;
    let store = S3Multipart::new(client.clone(), &bucket).with_part_size(PART);
    let data = bytes_of(300_000, 3);
    let provider = MemoryProvider::new(data.clone());
    let (kept, f) = (Kept::default(), file("media/gopro/2025/01/02/GOPR0001.JPG"));
    let request = CopyRequest { file: &f, expected_size: Some(300_000), previous: None, resume: None, deadline: None };
    let copied = copy_file(&provider, &session(), &store, &kept, request).await.unwrap();
    assert_eq!(get(&client, &bucket, &f.key).await, data);
    assert_eq!(store.head(&f.key).await.unwrap().unwrap().crc64nvme, Some(copied.crc64nvme));

    // S3 checks the body against the CRC it is given.
    let err = store.put("media/x/bad", bytes::Bytes::from(data.clone()), &crc64nvme(b"other bytes")).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert_eq!(store.head("media/x/bad").await.unwrap(), None);
    // And a completion whose full-object CRC is not the parts'.
    let id = store.create("media/x/parts").await.unwrap();
    let body = bytes::Bytes::from(bytes_of(PART, 9));
    let etag = store.upload_part("media/x/parts", &id, 1, body.clone(), &crc64nvme(&body)).await.unwrap();
    let part = pkgrelay_core::media::transfer::StoredPart { number: 1, size: PART, etag };
    let err = store.complete("media/x/parts", &id, &[part], &crc64nvme(b"not these")).await.unwrap_err();
    assert!(err.to_string().contains("CompleteMultipartUpload"), "{err}");
    assert_eq!(store.head("media/x/parts").await.unwrap(), None);
    store.abort("media/x/parts", &id).await.unwrap();
    assert_eq!(store.list_parts("media/x/parts", &id).await.unwrap(), None);
}
