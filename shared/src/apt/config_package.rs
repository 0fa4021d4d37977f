//! The repository configuration package (kiro-repo): a real, byte-reproducible
//! Debian package that installs the source list and the archive keyring, and
//! keeps them right across upgrades and removal.
//!
//! Everything in it comes from configuration: the package's own fields from
//! `config/packages/<name>.yaml`, the repository URL (per environment), suite,
//! components, list and keyring names from `config/repository.yaml`, the
//! keyring from the archive key.

use crate::config::{PackageConfig, RepositoryConfig};
use crate::deb::{ControlParagraph, DebBuilder};
use anyhow::{Context as _, bail};

/// Marker put before the `deb` line while the package is removed (but not
/// purged): the keyring is gone then, and apt must not trip over the list.
const DISABLED: &str = "# disabled while the package is removed: ";

/// What goes into the package.
pub struct ConfigPackage<'a> {
    pub repository: &'a RepositoryConfig,
    pub package: &'a PackageConfig,
    pub version: &'a str,
    /// Repository root URL for the target environment.
    pub base_url: &'a str,
    /// The archive's public key as a binary keyring.
    pub keyring: &'a [u8],
}

impl ConfigPackage<'_> {
    pub fn list_path(&self) -> String {
        format!("/etc/apt/sources.list.d/{}", self.repository.source_list_name)
    }

    pub fn keyring_path(&self) -> String {
        format!("/usr/share/keyrings/{}", self.repository.keyring_name)
    }

    /// `kiro-repo_1.1_all.deb`
    pub fn file_name(&self) -> String {
        format!("{}_{}_all.deb", self.package.name, crate::version::without_epoch(self.version))
    }

    /// The one-line source list.
    pub fn source_list(&self) -> String {
        let r = self.repository;
        format!(
            "# {label} APT repository, installed by the {name} package.\n\
             # Changes here are kept across upgrades (dpkg asks); removing {name} disables this line.\n\
             deb [signed-by={keyring}] {url} {suite} {components}\n",
            label = r.label,
            name = self.package.name,
            keyring = self.keyring_path(),
            url = self.base_url,
            suite = r.suite,
            components = r.components.join(" "),
        )
    }

    fn postinst(&self) -> String {
        format!(
            r#"#!/bin/sh
# {name} postinst: re-enable the source list a removal disabled, and drop keys
# that older manual instructions put where apt trusts them for every repository.
set -e
list={list}
if [ "$1" = configure ]; then
    if [ -f "$list" ]; then
        sed -i 's/^{disabled}//' "$list"
    fi
    rm -f /etc/apt/trusted.gpg.d/{keyring} /etc/apt/trusted.gpg.d/{stem}.asc
fi
exit 0
"#,
            name = self.package.name,
            list = self.list_path(),
            disabled = DISABLED,
            keyring = self.repository.keyring_name,
            stem = self.repository.keyring_name.trim_end_matches(".gpg"),
        )
    }

    fn prerm(&self) -> String {
        format!(
            r#"#!/bin/sh
# {name} prerm: removal takes the keyring away (the list, a conffile, stays
# until purge), so disable the list's deb line rather than break apt update.
set -e
list={list}
case "$1" in
    remove|deconfigure)
        if [ -f "$list" ]; then
            sed -i 's/^deb /{disabled}deb /' "$list"
        fi
        ;;
esac
exit 0
"#,
            name = self.package.name,
            list = self.list_path(),
            disabled = DISABLED,
        )
    }

    fn postrm(&self) -> String {
        format!(
            r#"#!/bin/sh
# {name} postrm: on purge, remove what dpkg leaves behind beside the list.
set -e
list={list}
if [ "$1" = purge ]; then
    rm -f "$list" "$list.dpkg-old" "$list.dpkg-dist" "$list.dpkg-new"
fi
exit 0
"#,
            name = self.package.name,
            list = self.list_path(),
        )
    }

    /// The .deb, byte for byte the same for the same inputs.
    pub fn build(&self) -> anyhow::Result<Vec<u8>> {
        crate::version::parse(self.version).context("--version")?;
        if self.keyring.is_empty() {
            bail!("the archive keyring is empty");
        }
        let p = self.package;
        let fields = [
            ("Package", p.name.as_str()),
            ("Version", self.version),
            ("Architecture", "all"),
            ("Maintainer", p.maintainer.as_str()),
            ("Section", p.section.as_str()),
            ("Priority", p.priority.as_str()),
            ("Homepage", p.homepage.as_str()),
        ];
        let mut control =
            ControlParagraph { fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        if !p.depends.is_empty() {
            control.set("Depends", p.depends.join(", "));
        }
        control.set("Description", description(&p.description));
        let mut deb = DebBuilder::new(control);
        deb.file(&self.list_path(), 0o644, self.source_list())
            .conffile(&self.list_path())
            .file(&self.keyring_path(), 0o644, self.keyring.to_vec())
            .maintainer_script("postinst", self.postinst())
            .maintainer_script("prerm", self.prerm())
            .maintainer_script("postrm", self.postrm());
        deb.build()
    }
}

/// A config description (synopsis line, then paragraphs) as a control-file
/// Description: continuation lines indented, blank lines as ` .`.
fn description(text: &str) -> String {
    let mut lines = text.trim().lines();
    let mut out = lines.next().unwrap_or_default().trim().to_owned();
    for line in lines {
        out.push('\n');
        out.push_str(if line.trim().is_empty() { " ." } else { " " });
        out.push_str(line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        Config::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")).unwrap()
    }

    #[test]
    fn reproducible_and_complete() {
        let cfg = config();
        let pkg = ConfigPackage {
            repository: &cfg.repository,
            package: cfg.package("kiro-repo").unwrap(),
            version: "1.1",
            base_url: "https://apt.example.com/",
            keyring: b"\x99\x00\x33binary keyring",
        };
        let a = pkg.build().unwrap();
        assert_eq!(a, pkg.build().unwrap(), "same inputs, same bytes");
        assert_eq!(pkg.file_name(), "kiro-repo_1.1_all.deb");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(pkg.file_name());
        std::fs::write(&path, &a).unwrap();
        let control = crate::deb::read_control(&path).unwrap();
        assert_eq!(control.get("Package"), Some("kiro-repo"));
        assert_eq!(control.get("Architecture"), Some("all"));
        assert!(control.get("Description").unwrap().starts_with("Kiro APT repository configuration\n "));
        assert!(pkg.source_list().contains(
            "deb [signed-by=/usr/share/keyrings/kiro-archive-keyring.gpg] https://apt.example.com/ stable main\n"
        ));
        let other = ConfigPackage { version: "1.2", ..pkg };
        assert_ne!(a, other.build().unwrap());
    }

    #[test]
    fn descriptions_are_deb822() {
        assert_eq!(description("Synopsis\nLine one\n\nLine two\n"), "Synopsis\n Line one\n .\n Line two");
    }
}
