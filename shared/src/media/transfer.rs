//! One source file copied into object storage in parts, with no temporary
//! file, resumable after a crash, checked end to end.
//!
//! The bytes flow once: from the provider's ranged GET through SHA-256 and
//! CRC-64/NVME into part buffers of [`PART_SIZE`], each part uploaded while
//! the next is filling. The store is a [`MultipartStore`]: S3's multipart
//! upload on AWS (pkgrelay-aws), a directory of part files locally.
//!
//! Why CRC-64/NVME: it is the checksum S3 can verify over a *whole* object
//! uploaded in parts (a "full-object" checksum; SHA-256 is only ever
//! per-part there). The client sends each part's CRC and the whole object's;
//! S3 refuses the completion when its own combination differs. SHA-256 is
//! computed as well, for the status table and for comparing with what the
//! provider serves.
//!
//! Resuming: after each part the progress (upload id, parts done, bytes, the
//! two hash states) is handed to a [`Checkpoint`], which the download step
//! keeps in the item's status record. A later attempt with that progress asks
//! the store which parts it holds (S3: ListParts); when they agree with the
//! progress, it asks the provider for the rest with `Range` and goes on. When
//! they do not (the upload was aborted, or a part is missing), the upload is
//! aborted and the file starts again. An upload never becomes visible before
//! `complete`: an interrupted copy leaves no partial object.

use super::{MediaError, MediaProvider, Session, SourceFile};
use base64::Engine as _;
use bytes::BytesMut;
use crc_fast::{CrcAlgorithm, Digest as Crc};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sha2::Sha256;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// S3 multipart part size (issue 14: 100 MiB; at most 10,000 parts: files
/// up to ~976 GiB).
pub const PART_SIZE: u64 = 100 * 1024 * 1024;

/// A stored object, as the store describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    /// The full-object CRC-64/NVME, base64 of the big-endian 8 bytes, when stored with one.
    pub crc64nvme: Option<String>,
}

/// A part the store holds of an upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub number: u32,
    pub size: u64,
    pub etag: String,
}

/// What a store of media objects does: S3's multipart upload, or its local stand-in.
#[async_trait::async_trait]
pub trait MultipartStore: Send + Sync {
    /// The size of every part but the last ([`PART_SIZE`]; a test store may say less).
    fn part_size(&self) -> u64 {
        PART_SIZE
    }
    /// The object at `key`, if any.
    async fn head(&self, key: &str) -> Result<Option<StoredObject>, MediaError>;
    /// Start an upload whose completion will carry a full-object CRC-64/NVME.
    async fn create(&self, key: &str) -> Result<String, MediaError>;
    /// The parts of an upload in progress, in order; `None` when the upload is gone.
    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Option<Vec<StoredPart>>, MediaError>;
    /// Upload one part (`crc64nvme`: base64 of the part's CRC); answers its ETag.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: bytes::Bytes,
        crc64nvme: &str,
    ) -> Result<String, MediaError>;
    /// Make the object visible, the store checking the whole object's CRC-64/NVME.
    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
        crc64nvme: &str,
    ) -> Result<(), MediaError>;
    /// Forget an upload and its parts.
    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), MediaError>;
    /// Write a small object (one part's worth or less) in one request.
    async fn put(&self, key: &str, body: bytes::Bytes, crc64nvme: &str) -> Result<(), MediaError>;
}

/// An upload in progress, as kept between attempts (in the item's status record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadProgress {
    pub key: String,
    pub upload_id: String,
    pub part_size: u64,
    /// Parts uploaded, numbered 1..=parts_done.
    pub parts_done: u32,
    /// Bytes of those parts.
    pub bytes_done: u64,
    /// SHA-256's state after `bytes_done` bytes (hex of its serialized state).
    pub sha256_state: String,
    /// CRC-64/NVME's state after `bytes_done` bytes.
    pub crc_state: u64,
}

/// Where progress is kept between attempts.
#[async_trait::async_trait]
pub trait Checkpoint: Send + Sync {
    /// Keep `progress` (`None`: nothing in progress any more).
    async fn save(&self, progress: Option<&UploadProgress>) -> Result<(), MediaError>;
}

/// A file copied (or found already there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedFile {
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
    /// Base64 of the big-endian CRC-64/NVME of the whole file.
    pub crc64nvme: String,
    /// Bytes transferred by this attempt (0 when the object was already there).
    pub transferred: u64,
    /// From the request to the first byte, when bytes were transferred.
    #[serde(skip)]
    pub first_byte: Option<Duration>,
}

/// What a copy knows beforehand.
pub struct CopyRequest<'a> {
    pub file: &'a SourceFile,
    /// The size upstream announces for this file (the listing's `file_size`
    /// for a single-file item, else the presigned HEAD's); the copy must
    /// come to exactly this many bytes.
    pub expected_size: Option<u64>,
    /// What the status table says was copied to this key before, if anything:
    /// an object of that size and CRC is not copied again.
    pub previous: Option<&'a CopiedFile>,
    /// Progress an earlier attempt left.
    pub resume: Option<UploadProgress>,
    /// Stop cleanly (progress kept, [`MediaError::Interrupted`]) rather than
    /// start a part that cannot finish before this instant.
    pub deadline: Option<Instant>,
}

/// Copy `request.file` from `provider` into `store`: skipped when the store
/// already holds what the status table recorded for the key, resumed from
/// `request.resume` when the store still holds those parts, else from the
/// first byte.
pub async fn copy_file(
    provider: &dyn MediaProvider,
    session: &Session,
    store: &dyn MultipartStore,
    checkpoint: &dyn Checkpoint,
    request: CopyRequest<'_>,
) -> Result<CopiedFile, MediaError> {
    let _ = session; // the presigned URLs carry the authorization
    let key = request.file.key.as_str();
    if let Some(previous) = request.previous.filter(|p| p.key == key) {
        let expected_ok = request.expected_size.is_none_or(|size| size == previous.bytes);
        if expected_ok && let Some(stored) = store.head(key).await? {
            if stored.size == previous.bytes && stored.crc64nvme.as_deref() == Some(previous.crc64nvme.as_str()) {
                return Ok(CopiedFile { transferred: 0, first_byte: None, ..previous.clone() });
            }
        }
    }
    let resumed = match request.resume.filter(|p| p.key == key) {
        Some(progress) => resume(store, checkpoint, progress, request.expected_size).await?,
        None => None,
    };
    let mut hashes = match &resumed {
        Some(p) => Hashes::restore(p)?,
        None => Hashes::new(),
    };
    let offset = resumed.as_ref().map_or(0, |p| p.bytes_done);
    let mut upload = Upload { store, checkpoint, key, progress: resumed, parts: Vec::new() };
    if let Some(p) = &upload.progress {
        // The parts S3 holds, as `resume` checked them.
        upload.parts = store.list_parts(key, &p.upload_id).await?.unwrap_or_default();
        upload.parts.truncate(p.parts_done as usize);
    }

    // The provider writes into one end, the part loop reads the other: the
    // bytes are hashed and cut into parts as they arrive, one part uploading
    // while the next fills, so at most two parts are in memory.
    let (mut writer, reader) = tokio::io::duplex(PIPE_BYTES);
    let started = Instant::now();
    let download = async {
        let result = provider.download(request.file, offset, &mut writer).await;
        drop(writer); // EOF for the reader, whatever happened
        result
    };
    let pump = upload.pump(reader, &mut hashes, offset, request.deadline, started);
    let (downloaded, pumped) = tokio::join!(download, pump);
    // The part loop stopping (a deadline, an S3 error) closes the pipe under
    // the download: its error is then only the echo of the loop's.
    let pumped = pumped?;
    let transfer = downloaded?;
    let total = offset + transfer.bytes;
    // The size the listing (or HEAD) announced, else the one the response
    // gave; when both are known they must agree as well.
    let expected = request.expected_size.or(transfer.total_size);
    let disagree = matches!((request.expected_size, transfer.total_size), (Some(a), Some(b)) if a != b);
    if let Some(expected) = expected
        && (total != expected || disagree)
    {
        // Wrong length: what is uploaded cannot be trusted to be a prefix of
        // the right file either. Start again next time.
        upload.forget().await?;
        return Err(MediaError::Length { what: format!("{} ({key})", request.file.url), expected, received: total });
    }
    let crc64nvme = crc_base64(hashes.crc.finalize());
    let sha256 = hex::encode(hashes.sha.finalize_reset());
    match &upload.progress {
        None => {
            // Smaller than one part: one PUT.
            store.put(key, pumped.tail.freeze(), &crc64nvme).await?;
        }
        Some(progress) => {
            let upload_id = progress.upload_id.clone();
            if !pumped.tail.is_empty() {
                let number = upload.parts.len() as u32 + 1;
                let body = pumped.tail.freeze();
                let size = body.len() as u64;
                let part_crc = crc_base64(crc_fast::checksum(CrcAlgorithm::Crc64Nvme, &body));
                let etag = store.upload_part(key, &upload_id, number, body, &part_crc).await?;
                upload.parts.push(StoredPart { number, size, etag });
            }
            store.complete(key, &upload_id, &upload.parts, &crc64nvme).await?;
        }
    }
    checkpoint.save(None).await?;
    Ok(CopiedFile {
        key: key.to_owned(),
        bytes: total,
        sha256,
        crc64nvme,
        transferred: transfer.bytes,
        first_byte: pumped.first_byte.map(|t| t.duration_since(started)),
    })
}

/// The pipe between the provider's download and the part loop.
const PIPE_BYTES: usize = 4 * 1024 * 1024;

/// Base64 of a CRC-64's big-endian bytes: how S3 writes checksums.
pub fn crc_base64(crc: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// The CRC-64/NVME of `bytes`, as S3 writes it.
pub fn crc64nvme(bytes: &[u8]) -> String {
    crc_base64(crc_fast::checksum(CrcAlgorithm::Crc64Nvme, bytes))
}

/// Check recorded progress against the parts the store holds. Anything that
/// does not agree (the upload gone, parts missing or of other sizes, a
/// progress beyond the announced size) is dropped, the upload aborted: the
/// file starts again rather than risk a wrong object.
async fn resume(
    store: &dyn MultipartStore,
    checkpoint: &dyn Checkpoint,
    progress: UploadProgress,
    expected_size: Option<u64>,
) -> Result<Option<UploadProgress>, MediaError> {
    let key = progress.key.as_str();
    let parts = store.list_parts(key, &progress.upload_id).await?;
    let agrees = parts.as_ref().is_some_and(|parts| {
        let listed: Vec<&StoredPart> = parts.iter().take(progress.parts_done as usize).collect();
        listed.len() == progress.parts_done as usize
            && listed.iter().enumerate().all(|(i, p)| p.number == i as u32 + 1 && p.size == progress.part_size)
            && progress.bytes_done == u64::from(progress.parts_done) * progress.part_size
            && progress.part_size == store.part_size()
            && expected_size.is_none_or(|size| progress.bytes_done < size)
            && Hashes::restore(&progress).is_ok()
    });
    if agrees {
        // Parts beyond the recorded ones (uploaded, then the crash before the
        // checkpoint) are uploaded again under the same numbers.
        return Ok(Some(progress));
    }
    if parts.is_some() {
        store.abort(key, &progress.upload_id).await?;
    }
    checkpoint.save(None).await?;
    Ok(None)
}

/// SHA-256 and CRC-64/NVME over the same bytes, resumable.
struct Hashes {
    sha: Sha256,
    crc: Crc,
}

impl Hashes {
    fn new() -> Hashes {
        Hashes { sha: Sha256::new(), crc: Crc::new(CrcAlgorithm::Crc64Nvme) }
    }

    fn restore(progress: &UploadProgress) -> Result<Hashes, MediaError> {
        let invalid = || MediaError::Invalid {
            what: format!("{}: recorded upload progress", progress.key),
            message: "the SHA-256 state cannot be restored".into(),
        };
        let bytes = hex::decode(&progress.sha256_state).map_err(|_| invalid())?;
        let state = SerializedState::<Sha256>::try_from(bytes.as_slice()).map_err(|_| invalid())?;
        let sha = Sha256::deserialize(&state).map_err(|_| invalid())?;
        Ok(Hashes { sha, crc: Crc::new_with_init_state(CrcAlgorithm::Crc64Nvme, progress.crc_state) })
    }

    fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.crc.update(bytes);
    }

    fn snapshot(&self) -> (String, u64) {
        (hex::encode(self.sha.serialize()), self.crc.get_state())
    }
}

/// What the part loop leaves: the bytes after the last full part.
struct Pumped {
    tail: BytesMut,
    first_byte: Option<Instant>,
}

/// A part's upload: the stored part, the progress after it, and its body
/// back (to fill again: a fresh 100 MiB buffer per part costs a page fault
/// per 4 KiB, about a sixth of the copy's CPU time).
type PartFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(StoredPart, UploadProgress, bytes::Bytes), MediaError>> + Send + 'a>>;

/// One multipart upload in the making.
struct Upload<'a> {
    store: &'a dyn MultipartStore,
    checkpoint: &'a dyn Checkpoint,
    key: &'a str,
    progress: Option<UploadProgress>,
    parts: Vec<StoredPart>,
}

impl<'a> Upload<'a> {
    /// Read `reader` to its end: hash everything, upload every full part
    /// (one in flight while the next fills), keep progress after each.
    /// Stops early, progress kept, when a part could not finish before `deadline`.
    async fn pump(
        &mut self,
        mut reader: impl AsyncRead + Unpin,
        hashes: &mut Hashes,
        offset: u64,
        deadline: Option<Instant>,
        started: Instant,
    ) -> Result<Pumped, MediaError> {
        let mut first_byte = None;
        let mut read_total = offset;
        let mut pending: Option<PartFuture<'a>> = None;
        let mut slowest_part = Duration::ZERO;
        let part_size = self.store.part_size();
        let mut spare: Option<BytesMut> = None;
        loop {
            let mut buf = spare.take().unwrap_or_else(|| BytesMut::with_capacity(part_size as usize));
            let part_started = Instant::now();
            let fill = fill_part(&mut reader, &mut buf, part_size, hashes, &mut first_byte);
            let in_flight = async {
                match pending.take() {
                    Some(part) => Some(part.await),
                    None => None,
                }
            };
            let (filled, uploaded) = tokio::join!(fill, in_flight);
            if let Some(uploaded) = uploaded {
                spare = self.part_done(uploaded?).await?;
            }
            filled?;
            read_total += buf.len() as u64;
            if (buf.len() as u64) < part_size {
                return Ok(Pumped { tail: buf, first_byte });
            }
            // A full part: upload it while the next one fills.
            if self.progress.is_none() {
                let upload_id = self.store.create(self.key).await?;
                let (sha256_state, crc_state) = Hashes::new().snapshot();
                let started = UploadProgress {
                    key: self.key.to_owned(),
                    upload_id,
                    part_size,
                    parts_done: 0,
                    bytes_done: 0,
                    sha256_state,
                    crc_state,
                };
                // Kept at once: an attempt that dies before its first part
                // leaves an upload the next one finds (and resumes), not an
                // orphan only the bucket's lifecycle rule would clear.
                self.checkpoint.save(Some(&started)).await?;
                self.progress = Some(started);
            }
            let progress = self.progress.as_ref().unwrap();
            let number = self.parts.len() as u32 + 1;
            let (sha256_state, crc_state) = hashes.snapshot();
            let after = UploadProgress {
                parts_done: number,
                bytes_done: read_total,
                sha256_state,
                crc_state,
                ..progress.clone()
            };
            let (store, key, upload_id) = (self.store, self.key, progress.upload_id.clone());
            let body = buf.freeze();
            pending = Some(Box::pin(async move {
                let size = body.len() as u64;
                let crc = crc64nvme(&body);
                let etag = store.upload_part(key, &upload_id, number, body.clone(), &crc).await?;
                Ok((StoredPart { number, size, etag }, after, body))
            }));
            slowest_part = slowest_part.max(part_started.elapsed());
            // Another part must fit before the deadline, with room to spare
            // for the upload in flight and the checkpoint.
            if let Some(deadline) = deadline
                && Instant::now() + slowest_part * 2 >= deadline
            {
                if let Some(part) = pending.take() {
                    self.part_done(part.await?).await?;
                }
                return Err(MediaError::Interrupted {
                    what: self.key.to_owned(),
                    message: format!(
                        "{} bytes copied in {:.0?}, stopped before the time limit; the next attempt resumes",
                        read_total,
                        started.elapsed()
                    ),
                });
            }
        }
    }

    /// Record an uploaded part; its buffer back, empty, when nothing else holds it.
    async fn part_done(
        &mut self,
        (part, after, body): (StoredPart, UploadProgress, bytes::Bytes),
    ) -> Result<Option<BytesMut>, MediaError> {
        self.parts.push(part);
        self.checkpoint.save(Some(&after)).await?;
        self.progress = Some(after);
        Ok(body.try_into_mut().ok().map(|mut b| {
            b.clear();
            b
        }))
    }

    /// Abort the upload, if one was started, and forget its progress.
    async fn forget(&mut self) -> Result<(), MediaError> {
        if let Some(p) = self.progress.take() {
            self.store.abort(self.key, &p.upload_id).await?;
        }
        self.checkpoint.save(None).await
    }
}

/// Read into `buf` until it holds a part or the reader ends, hashing as it goes.
async fn fill_part(
    reader: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    part_size: u64,
    hashes: &mut Hashes,
    first_byte: &mut Option<Instant>,
) -> Result<(), MediaError> {
    while (buf.len() as u64) < part_size {
        let before = buf.len();
        let want = (part_size as usize - before).min(1 << 20);
        let n = (&mut *reader)
            .take(want as u64)
            .read_buf(buf)
            .await
            .map_err(|e| MediaError::Write { what: "reading the download".into(), message: e.to_string() })?;
        if n == 0 {
            break;
        }
        first_byte.get_or_insert_with(Instant::now);
        hashes.update(&buf[before..]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::media::{Kept, MemoryProvider, bytes_of, session};
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    const PART: u64 = 64 * 1024;

    fn provider(data: Vec<u8>) -> MemoryProvider {
        MemoryProvider::new(data)
    }

    fn file() -> SourceFile {
        crate::testing::media::file("media/test/2025/01/02/a.mp4")
    }

    /// S3's multipart upload in memory, checking what S3 checks.
    #[derive(Default)]
    struct Store {
        objects: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
        uploads: Mutex<BTreeMap<String, BTreeMap<u32, Vec<u8>>>>,
        next: AtomicU64,
        fail_part: Mutex<Option<u32>>,
    }

    #[async_trait::async_trait]
    impl MultipartStore for Store {
        fn part_size(&self) -> u64 {
            PART
        }
        async fn head(&self, key: &str) -> Result<Option<StoredObject>, MediaError> {
            Ok(self
                .objects
                .lock()
                .unwrap()
                .get(key)
                .map(|(b, crc)| StoredObject { size: b.len() as u64, crc64nvme: Some(crc.clone()) }))
        }
        async fn create(&self, _: &str) -> Result<String, MediaError> {
            let id = format!("u{}", self.next.fetch_add(1, Ordering::SeqCst));
            self.uploads.lock().unwrap().insert(id.clone(), BTreeMap::new());
            Ok(id)
        }
        async fn list_parts(&self, _: &str, upload_id: &str) -> Result<Option<Vec<StoredPart>>, MediaError> {
            Ok(self.uploads.lock().unwrap().get(upload_id).map(|parts| {
                parts
                    .iter()
                    .map(|(n, b)| StoredPart { number: *n, size: b.len() as u64, etag: format!("e{n}") })
                    .collect()
            }))
        }
        async fn upload_part(
            &self,
            _: &str,
            upload_id: &str,
            number: u32,
            body: bytes::Bytes,
            crc: &str,
        ) -> Result<String, MediaError> {
            if *self.fail_part.lock().unwrap() == Some(number) {
                return Err(MediaError::Http { what: "UploadPart".into(), status: 500, detail: String::new() });
            }
            assert_eq!(crc, crc64nvme(&body), "part {number}: CRC as S3 computes it");
            let mut uploads = self.uploads.lock().unwrap();
            uploads.get_mut(upload_id).expect("NoSuchUpload").insert(number, body.to_vec());
            Ok(format!("e{number}"))
        }
        async fn complete(
            &self,
            key: &str,
            upload_id: &str,
            parts: &[StoredPart],
            crc: &str,
        ) -> Result<(), MediaError> {
            let stored = self.uploads.lock().unwrap().remove(upload_id).expect("NoSuchUpload");
            let numbers: Vec<u32> = parts.iter().map(|p| p.number).collect();
            assert_eq!(numbers, (1..=parts.len() as u32).collect::<Vec<_>>(), "parts in order, none missing");
            let mut whole = Vec::new();
            for (i, p) in parts.iter().enumerate() {
                let body = &stored[&p.number];
                if i + 1 < parts.len() {
                    assert_eq!(body.len() as u64, PART, "EntityTooSmall");
                }
                whole.extend_from_slice(body);
            }
            assert_eq!(crc, crc64nvme(&whole), "BadDigest: the full-object checksum");
            self.objects.lock().unwrap().insert(key.into(), (whole, crc.into()));
            Ok(())
        }
        async fn abort(&self, _: &str, upload_id: &str) -> Result<(), MediaError> {
            self.uploads.lock().unwrap().remove(upload_id);
            Ok(())
        }
        async fn put(&self, key: &str, body: bytes::Bytes, crc: &str) -> Result<(), MediaError> {
            assert_eq!(crc, crc64nvme(&body));
            self.objects.lock().unwrap().insert(key.into(), (body.to_vec(), crc.into()));
            Ok(())
        }
    }

    fn request<'a>(file: &'a SourceFile, size: u64, resume: Option<UploadProgress>) -> CopyRequest<'a> {
        CopyRequest { file, expected_size: Some(size), previous: None, resume, deadline: None }
    }

    #[tokio::test]
    async fn small_file_is_one_put_with_both_digests() {
        let data = bytes_of(1000, 7);
        let (p, store, kept, f) = (provider(data.clone()), Store::default(), Kept::default(), file());
        let copied = copy_file(&p, &session(), &store, &kept, request(&f, 1000, None)).await.unwrap();
        assert_eq!(copied.bytes, 1000);
        assert_eq!(copied.transferred, 1000);
        assert_eq!(copied.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(copied.crc64nvme, crc64nvme(&data));
        assert_eq!(store.objects.lock().unwrap()[&f.key].0, data);
        assert!(kept.0.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn parts_then_the_same_object_is_not_copied_again() {
        let len = PART * 5 / 2;
        let data = bytes_of(len, 7);
        let (p, store, kept, f) = (provider(data.clone()), Store::default(), Kept::default(), file());
        let copied = copy_file(&p, &session(), &store, &kept, request(&f, len, None)).await.unwrap();
        assert_eq!(store.objects.lock().unwrap()[&f.key].0, data);
        assert_eq!(copied.sha256, hex::encode(Sha256::digest(&data)));
        let mut again = request(&f, len, None);
        again.previous = Some(&copied);
        let second = copy_file(&p, &session(), &store, &kept, again).await.unwrap();
        assert_eq!(second.transferred, 0);
        assert_eq!(p.offsets.lock().unwrap().len(), 1, "no second download");
    }

    #[tokio::test]
    async fn a_cut_download_resumes_from_the_last_part_with_range() {
        let len = PART * 3 + 17;
        let data = bytes_of(len, 7);
        let (p, store, kept, f) = (provider(data.clone()), Store::default(), Kept::default(), file());
        *p.cut_after.lock().unwrap() = Some(PART * 2 + PART / 2);
        let err = copy_file(&p, &session(), &store, &kept, request(&f, len, None)).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(store.objects.lock().unwrap().is_empty(), "nothing visible");
        let progress = kept.0.lock().unwrap().clone().expect("progress kept");
        assert_eq!((progress.parts_done, progress.bytes_done), (2, PART * 2));
        let copied = copy_file(&p, &session(), &store, &kept, request(&f, len, Some(progress))).await.unwrap();
        assert_eq!(*p.offsets.lock().unwrap(), vec![0, PART * 2]);
        assert_eq!(copied.transferred, len - PART * 2);
        assert_eq!(copied.sha256, hex::encode(Sha256::digest(&data)), "SHA-256 over the resumed state");
        assert_eq!(store.objects.lock().unwrap()[&f.key].0, data);
        assert!(store.uploads.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn progress_the_store_does_not_hold_starts_again() {
        let len = PART * 2 + 5;
        let data = bytes_of(len, 7);
        let (p, store, kept, f) = (provider(data.clone()), Store::default(), Kept::default(), file());
        let stale = UploadProgress {
            key: f.key.clone(),
            upload_id: "gone".into(),
            part_size: PART,
            parts_done: 1,
            bytes_done: PART,
            sha256_state: Hashes::new().snapshot().0,
            crc_state: 0,
        };
        copy_file(&p, &session(), &store, &kept, request(&f, len, Some(stale))).await.unwrap();
        assert_eq!(*p.offsets.lock().unwrap(), vec![0]);
        assert_eq!(store.objects.lock().unwrap()[&f.key].0, data);
    }

    #[tokio::test]
    async fn a_failed_part_leaves_nothing_visible_and_a_wrong_length_aborts() {
        let len = PART * 3;
        let data = bytes_of(len, 7);
        let (p, store, kept, f) = (provider(data.clone()), Store::default(), Kept::default(), file());
        *store.fail_part.lock().unwrap() = Some(2);
        assert!(copy_file(&p, &session(), &store, &kept, request(&f, len, None)).await.is_err());
        assert!(store.objects.lock().unwrap().is_empty());
        *store.fail_part.lock().unwrap() = None;
        // The listing said one byte more than the server has: refused, aborted.
        let resume = kept.0.lock().unwrap().clone();
        let err = copy_file(&p, &session(), &store, &kept, request(&f, len + 1, resume)).await.unwrap_err();
        assert!(matches!(err, MediaError::Length { .. }), "{err}");
        assert!(store.objects.lock().unwrap().is_empty());
        assert!(store.uploads.lock().unwrap().is_empty(), "the upload aborted");
        assert!(kept.0.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn a_deadline_stops_between_parts_with_progress_kept() {
        let len = PART * 4;
        let data = bytes_of(len, 7);
        let (p, store, kept, f) = (provider(data.clone()), Store::default(), Kept::default(), file());
        let mut r = request(&f, len, None);
        r.deadline = Some(Instant::now());
        let err = copy_file(&p, &session(), &store, &kept, r).await.unwrap_err();
        assert!(matches!(err, MediaError::Interrupted { .. }), "{err}");
        let progress = kept.0.lock().unwrap().clone().unwrap();
        assert_eq!(progress.parts_done, 1);
        let copied = copy_file(&p, &session(), &store, &kept, request(&f, len, Some(progress))).await.unwrap();
        assert_eq!(copied.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(store.objects.lock().unwrap()[&f.key].0, data);
    }
}
