//! Test support shared by this crate's tests and the AWS backends' tests
//! (feature `test-support`): a store entry with plausible fields.

use crate::deb::ControlParagraph;
use crate::digest::Checksums;
use crate::model::{ConfigFields, EntryMetadata, PackageEntry, SourceType, package_id};

/// A minimal but complete entry for `name` `version` `arch` whose artifact is `bytes`.
pub fn entry(name: &str, version: &str, arch: &str, bytes: &[u8]) -> PackageEntry {
    PackageEntry {
        package_id: package_id(name, version, arch),
        package_name: name.into(),
        version: version.into(),
        architecture: arch.into(),
        metadata: EntryMetadata::Apt(crate::apt::AptMetadata {
            control: ControlParagraph {
                fields: vec![
                    ("Package".into(), name.into()),
                    ("Version".into(), version.into()),
                    ("Architecture".into(), arch.into()),
                ],
            },
        }),
        config: ConfigFields::default(),
        filename: format!("pool/main/{}/{name}/{name}_{version}_{arch}.deb", &name[..1]),
        checksums: Checksums::of(bytes),
        source_type: SourceType::ExternalDownload,
        source_url: format!("https://example.com/{name}_{version}.deb"),
        announced_version: None,
        companions: vec![],
        pub_date: None,
        notes: None,
        processed_timestamp: "2026-01-01T00:00:00Z".into(),
    }
}

/// Media sync test parts: a provider serving bytes from memory (and cutting a
/// response short on request), a checkpoint kept in memory, a cookie session.
pub mod media {
    use crate::media::transfer::{Checkpoint, UploadProgress};
    use crate::media::{
        Authenticated, Credentials, Listing, MediaError, MediaItem, MediaProvider, PresignedUrl, Session, SourceFile,
        Transfer,
    };
    use std::sync::Mutex;
    use tokio::io::{AsyncWrite, AsyncWriteExt};

    /// `len` bytes of an xorshift stream from `seed` (nothing compresses them).
    pub fn bytes_of(len: u64, seed: u64) -> Vec<u8> {
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

    /// Serves `data` from any offset; `cut_after` cuts the next response
    /// after that many bytes (a connection reset); `offsets` records where
    /// each download started.
    pub struct MemoryProvider {
        pub data: Vec<u8>,
        pub cut_after: Mutex<Option<u64>>,
        pub offsets: Mutex<Vec<u64>>,
    }

    impl MemoryProvider {
        pub fn new(data: Vec<u8>) -> MemoryProvider {
            MemoryProvider { data, cut_after: Mutex::new(None), offsets: Mutex::default() }
        }
    }

    #[async_trait::async_trait]
    impl MediaProvider for MemoryProvider {
        fn name(&self) -> &'static str {
            "test"
        }
        async fn authenticate(&self, _: &Credentials, _: time::OffsetDateTime) -> Result<Authenticated, MediaError> {
            unreachable!("a transfer needs no login")
        }
        async fn list(&self, _: &Session) -> Result<Listing, MediaError> {
            unreachable!("a transfer lists nothing")
        }
        async fn source_files(&self, _: &Session, _: &MediaItem) -> Result<Vec<SourceFile>, MediaError> {
            unreachable!("a transfer is given its file")
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
                // Cut exactly after `cut` bytes of this response.
                let chunk = match cut {
                    Some(c) if sent >= c => {
                        return Err(MediaError::Network {
                            what: "GET test".into(),
                            message: "connection reset".into(),
                        });
                    }
                    Some(c) => &chunk[..chunk.len().min((c - sent) as usize)],
                    None => chunk,
                };
                sink.write_all(chunk)
                    .await
                    .map_err(|e| MediaError::Write { what: "sink".into(), message: e.to_string() })?;
                sent += chunk.len() as u64;
            }
            Ok(Transfer { bytes: sent, total_size: Some(self.data.len() as u64) })
        }
    }

    /// Progress kept in memory.
    #[derive(Default)]
    pub struct Kept(pub Mutex<Option<UploadProgress>>);

    #[async_trait::async_trait]
    impl Checkpoint for Kept {
        async fn save(&self, progress: Option<&UploadProgress>) -> Result<(), MediaError> {
            *self.0.lock().unwrap() = progress.cloned();
            Ok(())
        }
    }

    /// A cookie session (a transfer does not use it).
    pub fn session() -> Session {
        Session {
            credentials: Credentials::from_json(r#"{"kind":"cookie","access_token":"t","user_id":"u"}"#, "test")
                .unwrap(),
        }
    }

    /// A source file to copy to `key` (its URL is never asked).
    pub fn file(key: &str) -> SourceFile {
        SourceFile {
            media_id: "m".into(),
            item_number: None,
            key: key.into(),
            url: PresignedUrl::new("http://127.0.0.1:1/x?sig=test"),
            head: None,
        }
    }
}
