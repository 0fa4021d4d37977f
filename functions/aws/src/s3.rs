//! [`ObjectStore`] on S3.
//!
//! Keys are used as object keys unchanged, after [`check_key`]. Every object
//! carries its hex SHA256 in the user metadata `sha256`; that is what write-once
//! keys are compared by, and what a copy carries over.
//!
//! - Uploads stream from disk: one PutObject up to [`PART_SIZE`], a multipart
//!   upload above that, reading one part into memory at a time (a 2 GiB file
//!   needs 16 MiB of buffer, not 2 GiB). A failed multipart upload is aborted.
//!   Parts left behind by a process killed mid-upload need the bucket's
//!   `AbortIncompleteMultipartUpload` lifecycle rule.
//! - The SHA256 the caller passes is checked: S3 verifies it on PutObject
//!   (`x-amz-checksum-sha256`), and the multipart path hashes the parts as it
//!   reads them and aborts before completing on a mismatch.
//! - [`WriteMode::WriteOnce`] writes are conditional (`If-None-Match: *`); when
//!   the key exists, the stored `sha256` decides: equal is success, different is
//!   [`BlobError::Conflict`]. Nothing is overwritten.
//! - Content-Type and Cache-Control are not this store's to decide: an
//!   [`ObjectLayout`] given at construction ([`S3Store::with_layout`]) says
//!   what each key is (the repository format for its files, `no-store` for
//!   private prefixes). Without one, every object is private.

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use pkgrelay_core::blob::{
    Adopted, BlobError, ObjectInfo, ObjectLayout, ObjectStore, PrivateLayout, WriteMode, check_key,
};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Files up to this size are sent in one PutObject; larger ones in parts of
/// this size (S3 allows 10,000 parts: 160 GiB).
pub const PART_SIZE: u64 = 16 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;

/// The user-metadata key holding an object's hex SHA256.
pub const SHA256_METADATA: &str = "sha256";

/// An S3 client from shared SDK configuration, with standard retries (8
/// attempts). `force_path_style` is for emulators and custom endpoints.
pub fn client(config: &SdkConfig, force_path_style: bool) -> Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .retry_config(RetryConfig::standard().with_max_attempts(8))
        .force_path_style(force_path_style)
        .build();
    Client::from_conf(conf)
}

/// Percent-encode a key for `x-amz-copy-source` (everything but unreserved
/// characters and `/`): version strings bring `+`, `~` and `:` into pool keys.
fn encode_copy_source(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The 32-byte digest of a hex SHA256, or an error naming the key.
/// A key that is read or removed, never written: any key S3 can hold. Someone
/// else's upload may be `staging//x.deb` (S3 has no directories, so nothing
/// is unsafe about it); it must still be movable out of `staging/`.
/// Keys this store writes are plain paths ([`check_key`]).
fn existing_key(key: &str) -> Result<(), BlobError> {
    if key.is_empty() || key.len() > 1024 {
        return Err(BlobError::BadKey { key: key.to_owned() });
    }
    Ok(())
}

fn parse_sha256(key: &str, sha256: &str) -> Result<[u8; 32], BlobError> {
    hex::decode(sha256)
        .ok()
        .and_then(|d| <[u8; 32]>::try_from(d).ok())
        .ok_or_else(|| BlobError::io(key, format!("{sha256:?} is not a hex SHA256")))
}

pub(crate) fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// The key exists (412), or a concurrent conditional write is in flight (409).
fn is_precondition_failure<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(err.code(), Some("PreconditionFailed" | "ConditionalRequestConflict")) || status(err) == Some(412)
}

pub(crate) fn is_not_found<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err.code() {
        // NoSuchBucket is a 404 too, and must not read as a missing key.
        Some(code) => matches!(code, "NoSuchKey" | "NotFound"),
        None => status(err) == Some(404),
    }
}

/// Write-once outcome for a key that already holds an object with `existing` sha256.
fn compare(key: &str, existing: Option<&str>, new: &str) -> Result<(), BlobError> {
    match existing {
        Some(existing) if existing.eq_ignore_ascii_case(new) => Ok(()),
        existing => Err(BlobError::Conflict {
            key: key.to_owned(),
            existing: existing.unwrap_or("(no sha256 metadata)").to_owned(),
            new: new.to_owned(),
        }),
    }
}

/// The SHA256 a content-addressed key names (`…/by-hash/SHA256/<64 hex>`).
fn content_address(key: &str) -> Option<&str> {
    let (dir, hex) = key.rsplit_once('/')?;
    (dir.ends_with("by-hash/SHA256")
        && hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

fn sha256_of(head: &HeadObjectOutput) -> Option<&str> {
    head.metadata().and_then(|m| m.get(SHA256_METADATA)).map(String::as_str)
}

/// [`ObjectStore`] over one S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    list_page_size: Option<i32>,
    layout: Arc<dyn ObjectLayout>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store").field("bucket", &self.bucket).finish_non_exhaustive()
    }
}

enum Completion {
    Done,
    /// Write-once key taken by someone else between our check and CompleteMultipartUpload.
    KeyExists,
}

impl S3Store {
    /// Build the client with [`client`] (or an equivalent retry configuration).
    pub fn new(client: Client, bucket: impl Into<String>) -> S3Store {
        S3Store { client, bucket: bucket.into(), list_page_size: None, layout: Arc::new(PrivateLayout) }
    }

    /// Content-Type and Cache-Control of every object written from now on,
    /// per key (see the module documentation).
    pub fn with_layout(mut self, layout: Arc<dyn ObjectLayout>) -> S3Store {
        self.layout = layout;
        self
    }

    /// Keys per ListObjectsV2 page (S3's maximum and default is 1000). Mostly
    /// useful for exercising pagination in tests.
    pub fn with_list_page_size(mut self, keys: i32) -> S3Store {
        self.list_page_size = Some(keys);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// An SDK error as [`BlobError::Io`], with the operation, bucket, the S3
    /// error code and the full error chain.
    fn io_err<E>(&self, key: &str, operation: &str, err: SdkError<E, HttpResponse>) -> BlobError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        // HeadObject answers a denial with a bare 403 (no body, so no code):
        // say what it means rather than "no error code".
        if err.code().is_none() && status(&err) == Some(403) {
            return BlobError::io(
                key,
                format!(
                    "S3 {operation} in bucket {}: AccessDenied (HTTP 403 without a body): the role may not s3:GetObject \
                     s3://{}/{key}, or the key does not exist and the role may not s3:ListBucket",
                    self.bucket, self.bucket
                ),
            );
        }
        let code = err.code().unwrap_or("no error code").to_owned();
        BlobError::io(key, format!("S3 {operation} in bucket {}: {code}: {}", self.bucket, DisplayErrorContext(&err)))
    }

    /// HeadObject; `None` when the key does not exist.
    /// A server-side copy of `from` to `to` with the metadata `to` gets as a
    /// public object (its Content-Type and Cache-Control, by the layout).
    fn copy_request(
        &self,
        from: &str,
        to: &str,
    ) -> aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder {
        let meta = self.layout.meta(to);
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(format!("{}/{}", self.bucket, encode_copy_source(from)))
            .metadata_directive(MetadataDirective::Replace)
            .content_type(meta.content_type)
            .cache_control(meta.caching.header())
    }

    async fn head(&self, key: &str) -> Result<Option<HeadObjectOutput>, BlobError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => Ok(Some(head)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.io_err(key, "HeadObject", e)),
        }
    }

    /// A conditional write found the key taken: compare with what is there.
    async fn settle_existing(&self, key: &str, sha256: &str) -> Result<(), BlobError> {
        match self.head(key).await? {
            Some(head) => compare(key, sha256_of(&head), sha256),
            // 409: a concurrent write has not landed yet. The caller retries.
            None => Err(BlobError::io(key, "a concurrent write to this write-once key is in progress; retry")),
        }
    }

    /// One PutObject, conditional for write-once keys. S3 checks the body
    /// against `digest`.
    async fn put_object(
        &self,
        key: &str,
        body: ByteStream,
        digest: &[u8; 32],
        mode: WriteMode,
    ) -> Result<(), BlobError> {
        let sha256 = hex::encode(digest);
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body)
            .checksum_sha256(aws_smithy_types::base64::encode(digest))
            .content_type(self.layout.meta(key).content_type)
            .cache_control(self.layout.meta(key).caching.header())
            .metadata(SHA256_METADATA, &sha256);
        if mode == WriteMode::WriteOnce {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if mode == WriteMode::WriteOnce && is_precondition_failure(&e) => {
                self.settle_existing(key, &sha256).await
            }
            Err(e) => Err(self.io_err(key, "PutObject", e)),
        }
    }

    /// Multipart upload of a large file; aborted on any failure.
    async fn put_multipart(&self, key: &str, path: &Path, digest: &[u8; 32], mode: WriteMode) -> Result<(), BlobError> {
        let sha256 = hex::encode(digest);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(self.layout.meta(key).content_type)
            .cache_control(self.layout.meta(key).caching.header())
            .metadata(SHA256_METADATA, &sha256)
            .send()
            .await
            .map_err(|e| self.io_err(key, "CreateMultipartUpload", e))?;
        let upload_id =
            created.upload_id().ok_or_else(|| BlobError::io(key, "CreateMultipartUpload returned no upload id"))?;

        let result = self.upload_parts(key, path, upload_id, digest, mode).await;
        if !matches!(result, Ok(Completion::Done)) {
            self.abort(key, upload_id).await;
        }
        match result? {
            Completion::Done => Ok(()),
            Completion::KeyExists => self.settle_existing(key, &sha256).await,
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        path: &Path,
        upload_id: &str,
        digest: &[u8; 32],
        mode: WriteMode,
    ) -> Result<Completion, BlobError> {
        let mut file = tokio::fs::File::open(path).await.map_err(|e| BlobError::io(key, e))?;
        let mut hasher = Sha256::new();
        let mut parts = Vec::new();
        for number in 1.. {
            // One part in memory at a time; the SDK can resend it on retry.
            let mut part = Vec::with_capacity(PART_SIZE as usize);
            (&mut file).take(PART_SIZE).read_to_end(&mut part).await.map_err(|e| BlobError::io(key, e))?;
            if part.is_empty() {
                break;
            }
            if number > MAX_PARTS as i32 {
                return Err(BlobError::io(key, format!("larger than {MAX_PARTS} parts of {PART_SIZE} bytes")));
            }
            hasher.update(&part);
            let uploaded = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| self.io_err(key, "UploadPart", e))?;
            parts.push(CompletedPart::builder().part_number(number).set_e_tag(uploaded.e_tag).build());
        }
        if hasher.finalize().as_slice() != digest.as_slice() {
            return Err(BlobError::io(
                key,
                format!("{} does not have the SHA256 {}", path.display(), hex::encode(digest)),
            ));
        }

        let mut request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
        if mode == WriteMode::WriteOnce {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(Completion::Done),
            Err(e) if mode == WriteMode::WriteOnce && is_precondition_failure(&e) => Ok(Completion::KeyExists),
            Err(e) => Err(self.io_err(key, "CompleteMultipartUpload", e)),
        }
    }

    /// Best effort: the error that led here is the one worth reporting.
    async fn abort(&self, key: &str, upload_id: &str) {
        let aborted =
            self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload_id).send().await;
        if let Err(e) = aborted {
            let error = DisplayErrorContext(&e);
            tracing::warn!(bucket = %self.bucket, key, upload_id, %error, "AbortMultipartUpload failed");
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn put_bytes(&self, key: &str, data: Vec<u8>, mode: WriteMode) -> Result<(), BlobError> {
        check_key(key)?;
        let digest: [u8; 32] = Sha256::digest(&data).into();
        self.put_object(key, ByteStream::from(data), &digest, mode).await
    }

    async fn put_file(&self, key: &str, path: &Path, sha256: &str, mode: WriteMode) -> Result<(), BlobError> {
        check_key(key)?;
        let digest = parse_sha256(key, sha256)?;
        let size =
            tokio::fs::metadata(path).await.map_err(|e| BlobError::io(key, format!("{}: {e}", path.display())))?.len();
        if size <= PART_SIZE {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| BlobError::io(key, format!("{}: {e}", path.display())))?;
            return self.put_object(key, body, &digest, mode).await;
        }
        // Don't send gigabytes to learn that a write-once key is taken; the
        // conditional CompleteMultipartUpload still settles any race.
        if mode == WriteMode::WriteOnce
            && let Some(head) = self.head(key).await?
        {
            return compare(key, sha256_of(&head), &hex::encode(digest));
        }
        self.put_multipart(key, path, &digest, mode).await
    }

    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        check_key(key)?;
        let object = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(o) => o,
            Err(e) if is_not_found(&e) => {
                return Err(BlobError::NotFound { key: key.to_owned() });
            }
            Err(e) => return Err(self.io_err(key, "GetObject", e)),
        };
        let data = object.body.collect().await.map_err(|e| BlobError::io(key, format!("reading the body: {e}")))?;
        Ok(data.into_bytes().to_vec())
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        check_key(key)?;
        let mut object = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(o) => o,
            Err(e) if is_not_found(&e) => {
                return Err(BlobError::NotFound { key: key.to_owned() });
            }
            Err(e) => return Err(self.io_err(key, "GetObject", e)),
        };
        let write = async {
            let mut file = tokio::fs::File::create(path).await.map_err(|e| e.to_string())?;
            while let Some(chunk) = object.body.next().await {
                file.write_all(&chunk.map_err(|e| format!("reading the body: {e}"))?)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            file.flush().await.map_err(|e| e.to_string())
        };
        if let Err(message) = write.await {
            // Leave no truncated file that could pass for the object.
            let _ = tokio::fs::remove_file(path).await;
            return Err(BlobError::io(key, format!("{}: {message}", path.display())));
        }
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str, mode: WriteMode) -> Result<(), BlobError> {
        existing_key(from)?;
        check_key(to)?;
        // The copy carries the source's SHA256 as metadata. A content-addressed
        // source (`…/by-hash/SHA256/<hex>`, APT's and a mirror's) names it:
        // no HeadObject first. Publishing a full Homebrew mirror copies some
        // 14,000 image indexes, and that request is half of each copy. A
        // missing source still fails the CopyObject itself (NotFound below).
        let sha256 = match content_address(from) {
            Some(hex) => Some(hex.to_owned()),
            None => {
                let source = self.head(from).await?.ok_or_else(|| BlobError::NotFound { key: from.to_owned() })?;
                sha256_of(&source).map(str::to_owned)
            }
        };
        // CopyObject honours If-None-Match on S3 but not on every emulator:
        // check first (this is also the cheap path when the copy already
        // exists), and keep the condition for races.
        if mode == WriteMode::WriteOnce
            && let Some(existing) = self.head(to).await?
        {
            return compare(to, sha256_of(&existing), sha256.as_deref().unwrap_or("(no sha256 metadata)"));
        }
        // A single CopyObject handles objects up to 5 GiB; larger ones would
        // need a multipart upload with UploadPartCopy. Repository files stay far below.
        let mut request = self.copy_request(from, to);
        if let Some(sha256) = &sha256 {
            request = request.metadata(SHA256_METADATA, sha256);
        }
        if mode == WriteMode::WriteOnce {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Err(BlobError::NotFound { key: from.to_owned() }),
            Err(e) if mode == WriteMode::WriteOnce && is_precondition_failure(&e) => {
                self.settle_existing(to, sha256.as_deref().unwrap_or("(no sha256 metadata)")).await
            }
            Err(e) => Err(self.io_err(to, "CopyObject", e)),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        check_key(key)?;
        Ok(self.head(key).await?.is_some())
    }

    /// The object is read through once (GetObject) for its checksums, then
    /// copied server-side (CopyObject): S3 has no second name for an object,
    /// so the bytes are stored twice until the old name is deleted, but they
    /// never leave the region again. The copy is conditional on the ETag read
    /// (`x-amz-copy-source-if-match`), so what lands at `to` is what was
    /// checked, and carries the `sha256` metadata write-once keys are
    /// compared by (an object an earlier mirror stored has none).
    async fn adopt(&self, from: &str, to: &str, sha256: &str, size: Option<u64>) -> Result<Adopted, BlobError> {
        existing_key(from)?;
        check_key(to)?;
        let mut object = match self.client.get_object().bucket(&self.bucket).key(from).send().await {
            Ok(o) => o,
            Err(e) if is_not_found(&e) => return Err(BlobError::NotFound { key: from.to_owned() }),
            Err(e) => return Err(self.io_err(from, "GetObject", e)),
        };
        let etag = object.e_tag().map(str::to_owned);
        let length = object.content_length().map(|n| n.max(0) as u64);
        let mut hasher = pkgrelay_core::digest::ParallelHasher::new();
        while let Some(chunk) = object.body.next().await {
            let chunk = chunk.map_err(|e| BlobError::io(from, format!("reading the body: {e}")))?;
            hasher.update(&chunk);
        }
        let checksums = hasher.finish();
        if length.is_some_and(|n| n != checksums.size) {
            return Err(BlobError::io(
                from,
                format!("read {} bytes of an object of {}: the transfer was cut", checksums.size, length.unwrap_or(0)),
            ));
        }
        if !Adopted::matches(&checksums, sha256, size) {
            return Ok(Adopted { checksums, placed: false });
        }
        if from == to {
            return Ok(Adopted { checksums, placed: true });
        }
        if let Some(existing) = self.head(to).await? {
            compare(to, sha256_of(&existing), sha256)?;
            return Ok(Adopted { checksums, placed: true });
        }
        // One CopyObject copies up to 5 GiB; above that a multipart upload
        // with UploadPartCopy would be needed, which is not built: no bottle
        // of homebrew/core comes near it.
        if checksums.size > 5 * 1024 * 1024 * 1024 {
            return Err(BlobError::io(
                from,
                format!("{} bytes: more than one CopyObject copies (5 GiB); not adopted", checksums.size),
            ));
        }
        let mut request = self.copy_request(from, to).metadata(SHA256_METADATA, &checksums.sha256).if_none_match("*");
        if let Some(etag) = &etag {
            request = request.copy_source_if_match(etag);
        }
        match request.send().await {
            Ok(_) => Ok(Adopted { checksums, placed: true }),
            Err(e) if is_not_found(&e) => Err(BlobError::NotFound { key: from.to_owned() }),
            Err(e) if is_precondition_failure(&e) => match self.head(to).await? {
                // Another writer put the same blob there meanwhile.
                Some(existing) => {
                    compare(to, sha256_of(&existing), sha256)?;
                    Ok(Adopted { checksums, placed: true })
                }
                None => Err(BlobError::io(
                    from,
                    "the object changed while it was being checked (its ETag moved); nothing was copied",
                )),
            },
            Err(e) => Err(self.io_err(to, "CopyObject", e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BlobError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_max_keys(self.list_page_size)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.io_err(prefix, "ListObjectsV2", e))?;
            out.extend(page.contents().iter().filter_map(|o| {
                Some(ObjectInfo { key: o.key()?.to_owned(), size: o.size().unwrap_or(0).max(0) as u64 })
            }));
        }
        // S3 lists in UTF-8 byte order already; sort anyway, as the trait promises.
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        existing_key(key)?;
        // S3 answers 204 for a missing key as well.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.io_err(key, "DeleteObject", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encoding() {
        assert_eq!(encode_copy_source("pool/a/b_1.0+dfsg~rc1_all.deb"), "pool/a/b_1.0%2Bdfsg~rc1_all.deb");
        assert_eq!(encode_copy_source("a b/1:2"), "a%20b/1%3A2");
    }
}
