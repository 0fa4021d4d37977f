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
