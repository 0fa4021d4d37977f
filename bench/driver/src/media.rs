//! The media sync's benchmark half (`bench/media.sh`, issue 14
//! "Performance"): the tests' fake GoPro API serving a generated library
//! until killed, the SHA-256 of a generated file, and the copy path of
//! download-media in-process (`media-copy`: for when the function binary is
//! not there to run).
//!
//! The fake itself is `tests/common/gopro.rs`, included as a module
//! (`main.rs`), not a copy: the benchmark serves exactly what the tests serve.

use crate::fake_gopro::{FakeGoPro, FakeMedia, sha256_of};
use anyhow::{Context as _, bail};
use std::path::Path;
use std::time::{Duration, Instant};

/// The id of the one large video of a served library.
pub const BIG_ID: &str = "BenchBigVideo";

/// `--name value` pairs of a subcommand's arguments.
fn options(args: &[String]) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let Some(name) = name.strip_prefix("--") else { bail!("expected --option, got {name:?}") };
        let value = it.next().with_context(|| format!("--{name} needs a value"))?;
        out.insert(name.to_owned(), value.replace('_', ""));
    }
    Ok(out)
}

/// The library: `media` items listed (all `ready`), newest first by
/// `created_at`; with `video_bytes > 0` the newest of them is one video of
/// that size (id [`BIG_ID`]), the rest a mix of videos (9 in 10) and photos
/// of a few MiB each (only their listing matters here).
pub fn library(media: usize, video_bytes: u64) -> Vec<FakeMedia> {
    let start = time::macros::datetime!(2020-01-01 00:00 UTC);
    let rfc3339 = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut out = Vec::with_capacity(media);
    for i in 0..media {
        let when = rfc3339(start + time::Duration::hours(i as i64));
        let id = format!("M{i:07}");
        let name = format!("GX01{:04}.MP4", i % 10_000);
        let m = if i % 10 == 9 {
            FakeMedia::photo(&id, &format!("GOPR{:04}.JPG", i % 10_000), &when, 3_000_000 + i as u64)
        } else {
            FakeMedia::video(&id, &name, &when, 40_000_000 + i as u64 * 1_000)
        };
        out.push(m);
    }
    if video_bytes > 0 && media > 0 {
        let newest = rfc3339(start + time::Duration::hours(media as i64 + 24));
        out[media - 1] = FakeMedia::video(BIG_ID, "GX010001.MP4", &newest, video_bytes);
    }
    out
}

/// `gopro-serve --media N --video-bytes B --port-file F [--secs S]`: the fake
/// on 127.0.0.1 until killed (or S seconds, 3600 by default). Its base URLs
/// and the cookie login it accepts go to F (`key=value` lines, written
/// whole once both hosts listen) and stdout.
pub fn serve(args: &[String]) -> anyhow::Result<()> {
    let o = options(args)?;
    let num = |k: &str, default: Option<u64>| -> anyhow::Result<u64> {
        match (o.get(k), default) {
            (Some(v), _) => v.parse().with_context(|| format!("--{k} {v:?} is not a number")),
            (None, Some(d)) => Ok(d),
            (None, None) => bail!("--{k} is required"),
        }
    };
    let media = num("media", None)? as usize;
    let video_bytes = num("video-bytes", Some(0))?;
    let secs = num("secs", Some(3600))?;
    let port_file = o.get("port-file").context("--port-file is required")?;
    let fake = FakeGoPro::start(library(media, video_bytes));
    let text = format!(
        "api={}\nfiles={}\ncookie_token={}\nuser_id={}\nbig_id={}\nmedia={media}\nvideo_bytes={video_bytes}\n",
        fake.api,
        fake.files,
        FakeGoPro::COOKIE_TOKEN,
        FakeGoPro::USER_ID,
        if video_bytes > 0 { BIG_ID } else { "" },
    );
    let tmp = format!("{port_file}.tmp");
    std::fs::write(&tmp, &text)?;
    std::fs::rename(&tmp, port_file)?;
    print!("{text}");
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(fake);
    Ok(())
}

/// `gopro-sha256 ID BYTES`: the SHA-256 of the fake's single-file media `ID`
/// of `BYTES` bytes, generated again (what the copy in S3 must hash to).
pub fn sha256(id: &str, bytes: u64) -> anyhow::Result<()> {
    println!("{}", sha256_of(&FakeGoPro::seed(id, None), bytes));
    Ok(())
}

/// A checkpoint that keeps nothing (the in-process copy has no status table).
struct NoCheckpoint;

#[async_trait::async_trait]
impl pkgrelay_core::media::transfer::Checkpoint for NoCheckpoint {
    async fn save(
        &self,
        _: Option<&pkgrelay_core::media::transfer::UploadProgress>,
    ) -> Result<(), pkgrelay_core::media::MediaError> {
        Ok(())
    }
}

/// `media-copy --config DIR --bucket B --item FILE`: what download-media
/// runs for one item, in this process: the cookie login of the fake, a
/// fresh descriptor (`MediaProvider::source_files`), and each source file
/// through `media::transfer::copy_file` into `pkgrelay_aws::media_s3::S3Multipart`
/// (S3 from `AWS_ENDPOINT_URL`, path style). The status-table writes
/// download-media makes around it are left out (a checkpoint that keeps
/// nothing). Prints `key=value` lines.
pub async fn copy(args: &[String]) -> anyhow::Result<()> {
    use pkgrelay_core::media::transfer::{CopyRequest, copy_file};
    use pkgrelay_core::media::{Credentials, MediaItem, MediaProvider, Secret, Session};
    let o = options(args)?;
    let get = |k: &str| o.get(k).with_context(|| format!("--{k} is required"));
    let config = pkgrelay_core::media::settings::load(Path::new(get("config")?))?;
    let item: MediaItem = serde_json::from_slice(&std::fs::read(get("item")?)?)?;
    let provider = pkgrelay_core::media::gopro::GoPro::new(config)?;
    let session = Session {
        credentials: Credentials::Cookie {
            access_token: Secret::new(FakeGoPro::COOKIE_TOKEN),
            user_id: FakeGoPro::USER_ID.to_owned(),
            user_agent: None,
        },
    };
    let sdk = aws_config::load_from_env().await;
    let store = pkgrelay_aws::media_s3::S3Multipart::new(pkgrelay_aws::s3::client(&sdk, true), get("bucket")?);
    let started = Instant::now();
    let files = provider.source_files(&session, &item).await?;
    let single = files.len() == 1;
    let mut bytes = 0;
    for file in &files {
        let request = CopyRequest {
            file,
            expected_size: if single { item.file_size } else { None },
            previous: None,
            resume: None,
            deadline: None,
        };
        let copied = copy_file(&provider, &session, &store, &NoCheckpoint, request).await?;
        bytes += copied.bytes;
        println!("key={}", copied.key);
        println!("sha256={}", copied.sha256);
        println!("crc64nvme={}", copied.crc64nvme);
    }
    let secs = started.elapsed().as_secs_f64();
    println!("files={}", files.len());
    println!("bytes={bytes}");
    println!("copy_s={secs:.3}");
    println!("mb_per_s={:.1}", bytes as f64 / secs / 1e6);
    println!("hwm_kib={}", crate::vm_hwm_kib());
    Ok(())
}
