//! The media bucket's multipart store against the emulator (through
//! tests/localaws' gateway, as functions/aws/tests/backends.rs does): a file
//! copied in parts with a full-object CRC-64/NVME that S3 checks, a copy cut
//! short resumed from the parts S3 lists, a wrong checksum refused.
//!
//! Parts are 5 MiB (S3's minimum) so that a few MiB take the multipart path;
//! the 100 MiB parts of the deployed function go through the same calls.

use aws_config::{BehaviorVersion, Region};
use pkgrelay_aws::media_s3::S3Multipart;
use pkgrelay_core::media::transfer::{Checkpoint, CopyRequest, MultipartStore, UploadProgress, copy_file, crc64nvme};
use pkgrelay_core::media::{
    Authenticated, Credentials, Listing, MediaError, MediaItem, MediaProvider, PresignedUrl, Session, SourceFile,
    Transfer,
};
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use tokio::io::{AsyncWrite, AsyncWriteExt};

const MIB: u64 = 1024 * 1024;
const PART: u64 = 5 * MIB;

async fn client() -> aws_sdk_s3::Client {
    let endpoint = std::env::var("PKGRELAY_AWS_ENDPOINT")
        .expect("PKGRELAY_AWS_ENDPOINT is not set: run the tests through tests/run (moto + localaws)");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "AKIAPKGRELAYTESTONLY",
            "pkgrelay/test/secret+access+key/never+logged",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    pkgrelay_aws::s3::client(&sdk, true)
}

async fn bucket(client: &aws_sdk_s3::Client, tag: &str) -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let name = format!("pkgrelay-media-{tag}-{}-{millis:x}", std::process::id());
    client.create_bucket().bucket(&name).send().await.unwrap();
    name
}

fn bytes_of(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Serves `data` from an offset, cutting one response after `cut_after` bytes.
struct Provider {
    data: Vec<u8>,
    cut_after: Mutex<Option<u64>>,
    offsets: Mutex<Vec<u64>>,
}

#[async_trait::async_trait]
impl MediaProvider for Provider {
    fn name(&self) -> &'static str {
        "test"
    }
    async fn authenticate(&self, _: &Credentials, _: time::OffsetDateTime) -> Result<Authenticated, MediaError> {
        unreachable!()
    }
    async fn list(&self, _: &Session) -> Result<Listing, MediaError> {
        unreachable!()
    }
    async fn source_files(&self, _: &Session, _: &MediaItem) -> Result<Vec<SourceFile>, MediaError> {
        unreachable!()
    }
    async fn file_size(&self, _: &SourceFile) -> Result<Option<u64>, MediaError> {
        Ok(Some(self.data.len() as u64))
    }
    async fn download(
        &self,
        _: &SourceFile,
        offset: u64,
        sink: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<Transfer, MediaError> {
        self.offsets.lock().unwrap().push(offset);
        let cut = self.cut_after.lock().unwrap().take();
        let mut sent = 0u64;
        for chunk in self.data[offset as usize..].chunks(64 * 1024) {
            if cut.is_some_and(|c| sent >= c) {
                return Err(MediaError::Network { what: "GET".into(), message: "connection reset".into() });
            }
            sink.write_all(chunk)
                .await
                .map_err(|e| MediaError::Write { what: "sink".into(), message: e.to_string() })?;
            sent += chunk.len() as u64;
        }
        Ok(Transfer { bytes: sent, total_size: Some(self.data.len() as u64) })
    }
}

#[derive(Default)]
struct Kept(Mutex<Option<UploadProgress>>);

#[async_trait::async_trait]
impl Checkpoint for Kept {
    async fn save(&self, progress: Option<&UploadProgress>) -> Result<(), MediaError> {
        *self.0.lock().unwrap() = progress.cloned();
        Ok(())
    }
}

fn session() -> Session {
    Session {
        credentials: Credentials::from_json(r#"{"kind":"cookie","access_token":"t","user_id":"u"}"#, "test").unwrap(),
    }
}

fn file(key: &str) -> SourceFile {
    SourceFile {
        media_id: "m".into(),
        item_number: None,
        key: key.into(),
        url: PresignedUrl::new("http://127.0.0.1:1/x"),
        head: None,
    }
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
    let provider =
        Provider { data: data.clone(), cut_after: Mutex::new(Some(PART * 2 + MIB)), offsets: Mutex::default() };
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
    let provider = Provider { data: data.clone(), cut_after: Mutex::new(None), offsets: Mutex::default() };
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
