//! `pkgrelay verify`: walk a published repository the way a client trusts it —
//! InRelease (signature), every index file it lists (size, SHA256, by-hash copy),
//! every pool file every Packages names (size, SHA256) — and report each thing
//! that is missing or wrong. Parsing uses `deb822-lossless`, not our renderer.

use crate::blob::{BlobError, ObjectStore};
use crate::config::RepositoryConfig;
use crate::digest::Checksums;
use deb822_lossless::Deb822;
use std::path::Path;
use std::str::FromStr;

/// What verification found.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub index_files: usize,
    pub packages: usize,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

async fn read(store: &dyn ObjectStore, key: &str, report: &mut Report) -> Option<Vec<u8>> {
    match store.get_bytes(key).await {
        Ok(b) => Some(b),
        Err(BlobError::NotFound { .. }) => {
            report.problems.push(format!("{key}: missing"));
            None
        }
        Err(e) => {
            report.problems.push(e.to_string());
            None
        }
    }
}

/// `(sha256, size, path)` lines of a Release hash field.
fn hash_lines(value: &str) -> Vec<(String, u64, String)> {
    value
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.parse().ok()?, w.next()?.to_owned()))
        })
        .collect()
}

fn parse_release_date(value: &str) -> Option<time::OffsetDateTime> {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] UTC"
    );
    time::PrimitiveDateTime::parse(value.trim(), &fmt).ok().map(|t| t.assume_utc())
}

pub async fn verify(store: &dyn ObjectStore, repo: &RepositoryConfig, work_dir: &Path) -> Report {
    let mut report = Report::default();
    let dists = format!("dists/{}", repo.suite);
    let Some(keyring) = read(store, &repo.keyring_name, &mut report).await else {
        return report;
    };
    let Some(inrelease) = read(store, &format!("{dists}/InRelease"), &mut report).await else {
        return report;
    };
    let release = match crate::sign::verify_clearsigned(&inrelease, &keyring) {
        Ok(text) => text,
        Err(e) => {
            report.problems.push(format!("{dists}/InRelease: signature does not verify: {e:#}"));
            return report;
        }
    };
    if let (Some(plain), Some(sig)) = (
        read(store, &format!("{dists}/Release"), &mut report).await,
        read(store, &format!("{dists}/Release.gpg"), &mut report).await,
    ) {
        if let Err(e) = crate::sign::verify_detached(&plain, &sig, &keyring) {
            report.problems.push(format!("{dists}/Release.gpg: signature does not verify: {e:#}"));
        }
        if plain != release {
            report.problems.push(format!("{dists}/Release differs from the text signed in InRelease"));
        }
    }
    let text = String::from_utf8_lossy(&release).into_owned();
    let parsed = match Deb822::from_str(&text) {
        Ok(p) => p,
        Err(e) => {
            report.problems.push(format!("{dists}/InRelease: unparseable: {e:?}"));
            return report;
        }
    };
    let Some(fields) = parsed.paragraphs().next() else {
        report.problems.push(format!("{dists}/InRelease: empty"));
        return report;
    };
    if let Some(until) = fields.get("Valid-Until").as_deref().and_then(parse_release_date)
        && until < time::OffsetDateTime::now_utc()
    {
        report.problems.push(format!("{dists}/InRelease: expired (Valid-Until {until})"));
    }
    let listed = hash_lines(&fields.get("SHA256").unwrap_or_default());
    if listed.is_empty() {
        report.problems.push(format!("{dists}/InRelease: lists no SHA256 index files"));
    }

    for (sha, size, path) in &listed {
        let key = format!("{dists}/{path}");
        report.index_files += 1;
        let Some(bytes) = read(store, &key, &mut report).await else {
            continue;
        };
        let got = Checksums::of(&bytes);
        if got.size != *size || &got.sha256 != sha {
            report.problems.push(format!(
                "{key}: does not match Release (size {} sha256 {}, Release says size {size} sha256 {sha})",
                got.size, got.sha256
            ));
            continue;
        }
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let by_hash = format!("{dists}/{dir}/by-hash/SHA256/{sha}");
        match store.exists(&by_hash).await {
            Ok(true) => {}
            _ => report.problems.push(format!("{by_hash}: missing (Acquire-By-Hash clients need it)")),
        }
        if path.ends_with("/Packages") {
            verify_packages(store, &key, &String::from_utf8_lossy(&bytes), work_dir, &mut report).await;
        }
    }
    report
}

async fn verify_packages(store: &dyn ObjectStore, key: &str, text: &str, work_dir: &Path, report: &mut Report) {
    let parsed = match Deb822::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            report.problems.push(format!("{key}: unparseable: {e:?}"));
            return;
        }
    };
    for para in parsed.paragraphs() {
        report.packages += 1;
        let name = para.get("Package").unwrap_or_default();
        let (Some(filename), Some(size), Some(sha)) = (para.get("Filename"), para.get("Size"), para.get("SHA256"))
        else {
            report.problems.push(format!("{key}: stanza {name:?} lacks Filename, Size or SHA256"));
            continue;
        };
        let Ok(tmp) = tempfile::NamedTempFile::new_in(work_dir) else {
            report.problems.push(format!("{}: cannot create a temporary file", work_dir.display()));
            return;
        };
        if let Err(e) = store.get_to_file(&filename, tmp.path()).await {
            report.problems.push(match e {
                BlobError::NotFound { .. } => format!("{filename}: missing (listed in {key})"),
                e => e.to_string(),
            });
            continue;
        }
        match Checksums::of_file(tmp.path()) {
            Ok(got) if got.sha256 == sha && got.size.to_string() == size => {}
            Ok(got) => report.problems.push(format!(
                "{filename}: does not match {key} (size {} sha256 {}, index says size {size} sha256 {sha})",
                got.size, got.sha256
            )),
            Err(e) => report.problems.push(format!("{filename}: {e}")),
        }
    }
}
