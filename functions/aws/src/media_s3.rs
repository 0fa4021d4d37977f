//! PLACEHOLDER (branch media-steps): the S3 `MultipartStore` is written on
//! another branch (`S3Multipart::new(client, bucket)`); this stand-in only
//! lets pkgrelay-aws compile until that file is merged over it. Every call
//! fails.

use pkgrelay_core::media::MediaError;
use pkgrelay_core::media::transfer::{MultipartStore, StoredObject, StoredPart};

pub struct S3Multipart {
    _client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Multipart {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> S3Multipart {
        S3Multipart { _client: client, bucket: bucket.into() }
    }

    fn missing(&self) -> MediaError {
        MediaError::Write { what: format!("s3://{}", self.bucket), message: "S3Multipart not merged yet".into() }
    }
}

#[async_trait::async_trait]
impl MultipartStore for S3Multipart {
    async fn head(&self, _: &str) -> Result<Option<StoredObject>, MediaError> {
        Err(self.missing())
    }
    async fn create(&self, _: &str) -> Result<String, MediaError> {
        Err(self.missing())
    }
    async fn list_parts(&self, _: &str, _: &str) -> Result<Option<Vec<StoredPart>>, MediaError> {
        Err(self.missing())
    }
    async fn upload_part(&self, _: &str, _: &str, _: u32, _: bytes::Bytes, _: &str) -> Result<String, MediaError> {
        Err(self.missing())
    }
    async fn complete(&self, _: &str, _: &str, _: &[StoredPart], _: &str) -> Result<(), MediaError> {
        Err(self.missing())
    }
    async fn abort(&self, _: &str, _: &str) -> Result<(), MediaError> {
        Err(self.missing())
    }
    async fn put(&self, _: &str, _: bytes::Bytes, _: &str) -> Result<(), MediaError> {
        Err(self.missing())
    }
}
