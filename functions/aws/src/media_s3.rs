//! The media bucket as a [`MultipartStore`]: S3's multipart upload with a
//! full-object CRC-64/NVME, for `pkgrelay_core::media::transfer::copy_file`.
//!
//! - An upload is created with `ChecksumAlgorithm=CRC64NVME` and
//!   `ChecksumType=FULL_OBJECT`; every part carries its own CRC, and the
//!   completion the whole file's, which S3 compares with the combination of
//!   the parts it holds (`BadDigest` when they differ). Until then nothing is
//!   visible under the key; parts of an upload nobody resumes are removed by
//!   the bucket's `AbortIncompleteMultipartUpload` rule.
//! - Part and single-object bodies are sent with an unsigned payload: the
//!   SDK would otherwise hash every 100 MiB part with SHA-256 once more just
//!   to sign it (over plain HTTP, as in the tests, it must), while the
//!   CRC-64/NVME header already lets S3 refuse a damaged body. The request
//!   itself (key, upload id, checksum header) stays signed.
//! - Errors become [`MediaError::Http`] with the operation, bucket, key and
//!   S3's error code: 5xx and throttling are transient (the Map retries),
//!   anything else (AccessDenied, BadDigest) fails the item with that reason.

use crate::s3::{is_not_found, status};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart};
use pkgrelay_core::media::MediaError;
use pkgrelay_core::media::transfer::{MultipartStore, StoredObject, StoredPart};

/// The media bucket, through one S3 client (made with [`crate::s3::client`]).
pub struct S3Multipart {
    client: Client,
    bucket: String,
    part_size: u64,
}

impl S3Multipart {
    pub fn new(client: Client, bucket: impl Into<String>) -> S3Multipart {
        S3Multipart { client, bucket: bucket.into(), part_size: pkgrelay_core::media::transfer::PART_SIZE }
    }

    /// Parts of another size (S3's minimum is 5 MiB): tests, so that a few
    /// MiB exercise the multipart path.
    pub fn with_part_size(mut self, bytes: u64) -> S3Multipart {
        self.part_size = bytes;
        self
    }

    fn error<E>(&self, operation: &str, key: &str, err: SdkError<E, HttpResponse>) -> MediaError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let what = format!("S3 {operation} s3://{}/{key}", self.bucket);
        match status(&err) {
            // An answer that could not be read (not an error answer).
            Some(status) if (200..300).contains(&status) => MediaError::Invalid {
                what,
                message: aws_sdk_s3::error::DisplayErrorContext(&err).to_string(),
            },
            Some(status) => MediaError::Http {
                what,
                status,
                detail: match (err.code(), err.message()) {
                    (Some(code), Some(message)) => format!(": {code}: {message}"),
                    (Some(code), None) => format!(": {code}"),
                    _ => String::new(),
                },
            },
            // No answer at all (connection, timeout): worth another try.
            None => MediaError::Network { what, message: aws_sdk_s3::error::DisplayErrorContext(&err).to_string() },
        }
    }
}

#[async_trait::async_trait]
impl MultipartStore for S3Multipart {
    fn part_size(&self) -> u64 {
        self.part_size
    }

    async fn head(&self, key: &str) -> Result<Option<StoredObject>, MediaError> {
        let answer =
            self.client.head_object().bucket(&self.bucket).key(key).checksum_mode(ChecksumMode::Enabled).send().await;
        match answer {
            Ok(head) => Ok(Some(StoredObject {
                size: head.content_length().unwrap_or(0).max(0) as u64,
                crc64nvme: head.checksum_crc64_nvme().map(str::to_owned),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error("HeadObject", key, e)),
        }
    }

    async fn create(&self, key: &str) -> Result<String, MediaError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::FullObject)
            .send()
            .await
            .map_err(|e| self.error("CreateMultipartUpload", key, e))?;
        created.upload_id().map(str::to_owned).ok_or_else(|| MediaError::Invalid {
            what: format!("S3 CreateMultipartUpload s3://{}/{key}", self.bucket),
            message: "no upload id in the answer".into(),
        })
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Option<Vec<StoredPart>>, MediaError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let answer = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await;
            let page = match answer {
                Ok(page) => page,
                Err(e) if e.code() == Some("NoSuchUpload") || status(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(self.error("ListParts", key, e)),
            };
            for p in page.parts() {
                parts.push(StoredPart {
                    number: p.part_number().unwrap_or(0).max(0) as u32,
                    size: p.size().unwrap_or(0).max(0) as u64,
                    etag: p.e_tag().unwrap_or_default().to_owned(),
                });
            }
            match (page.is_truncated(), page.next_part_number_marker()) {
                (Some(true), Some(next)) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(Some(parts))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: bytes::Bytes,
        crc64nvme: &str,
    ) -> Result<String, MediaError> {
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number as i32)
            .content_length(body.len() as i64)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(crc64nvme)
            .body(ByteStream::from(body))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| self.error(&format!("UploadPart {number}"), key, e))?;
        Ok(uploaded.e_tag().unwrap_or_default().to_owned())
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
        crc64nvme: &str,
    ) -> Result<(), MediaError> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| CompletedPart::builder().part_number(p.number as i32).e_tag(&p.etag).build())
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .checksum_crc64_nvme(crc64nvme)
            .checksum_type(ChecksumType::FullObject)
            .send()
            .await
            .map_err(|e| self.error("CompleteMultipartUpload", key, e))?;
        Ok(())
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), MediaError> {
        match self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload_id).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") || status(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.error("AbortMultipartUpload", key, e)),
        }
    }

    async fn put(&self, key: &str, body: bytes::Bytes, crc64nvme: &str) -> Result<(), MediaError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(body.len() as i64)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(crc64nvme)
            .body(ByteStream::from(body))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, e))?;
        Ok(())
    }
}
