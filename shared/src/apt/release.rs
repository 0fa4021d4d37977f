//! The suite's `Release` file: what the repository is and the digests of every
//! index file, which InRelease and Release.gpg then sign.

use crate::config::RepositoryConfig;
use crate::digest::Checksums;
use std::fmt::Write as _;
use time::OffsetDateTime;

/// An index file listed in Release, by its path relative to `dists/<suite>/`.
#[derive(Debug, Clone)]
pub struct IndexFile {
    pub path: String,
    pub checksums: Checksums,
}

/// RFC 2822 date in UTC as Release files write it: `Sat, 21 Nov 2026 23:50:07 UTC`.
pub fn release_date(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] UTC"
    );
    t.to_offset(time::UtcOffset::UTC).format(&fmt).expect("formattable")
}

pub fn render_release(
    repo: &RepositoryConfig,
    date: OffsetDateTime,
    valid_until: OffsetDateTime,
    files: &[IndexFile],
) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        out.push_str(name);
        out.push(':');
        super::packages::write_value(&mut out, value);
        out.push('\n');
    };
    field("Origin", &repo.origin);
    field("Label", &repo.label);
    field("Suite", &repo.suite);
    field("Codename", &repo.codename);
    field("Date", &release_date(date));
    field("Valid-Until", &release_date(valid_until));
    field("Architectures", &repo.architectures.join(" "));
    field("Components", &repo.components.join(" "));
    field("Description", &repo.description);
    field("Acquire-By-Hash", "yes");
    let width = files.iter().map(|f| f.checksums.size.to_string().len()).max().unwrap_or(1);
    for (name, pick) in [
        ("MD5Sum", (|c: &Checksums| c.md5.clone()) as fn(&Checksums) -> String),
        ("SHA1", |c| c.sha1.clone()),
        ("SHA256", |c| c.sha256.clone()),
    ] {
        out.push_str(name);
        out.push_str(":\n");
        for f in files {
            let _ = writeln!(out, " {} {:>width$} {}", pick(&f.checksums), f.checksums.size, f.path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn date_format() {
        assert_eq!(release_date(datetime!(2026-11-21 23:50:07 UTC)), "Sat, 21 Nov 2026 23:50:07 UTC");
    }
}
