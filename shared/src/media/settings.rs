//! A media sync's settings file, `config/media.yaml`, checked at load like
//! the rest of the configuration (errors name the file and the field):
//!
//! ```yaml
//! gopro:
//!   api_url: https://api.gopro.com        # the default
//!   download_hosts: ["*.example.net"]     # hosts the presigned file URLs may point to
//! ```
//!
//! Which host GoPro presigns its file URLs on is not confirmed
//! (UPSTREAMS.md), so none is allowed until the file names it: a refused
//! download says which host to add.

use super::gopro::GoProConfig;
use crate::config::ConfigError;
use crate::fetch::{check_host_pattern, check_url_allowed};
use serde::Deserialize;
use std::path::Path;

/// The settings file's name in the configuration directory.
pub const FILE: &str = "media.yaml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaYaml {
    gopro: GoProYaml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GoProYaml {
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    download_hosts: Vec<String>,
}

/// Load `dir/media.yaml` into the GoPro provider's configuration.
pub fn load(dir: &Path) -> Result<GoProConfig, ConfigError> {
    let path = dir.join(FILE);
    let e = |field: Option<&str>, message: String| ConfigError {
        file: path.clone(),
        field: field.map(str::to_owned),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|err| e(None, format!("cannot read: {err}")))?;
    let doc: MediaYaml = serde_norway::from_str(&text).map_err(|err| e(None, err.to_string()))?;
    let mut config = GoProConfig::default();
    if let Some(url) = doc.gopro.api_url {
        check_url_allowed(&url).map_err(|err| e(Some("gopro.api_url"), err.to_string()))?;
        config.api_base = url;
    }
    for h in &doc.gopro.download_hosts {
        check_host_pattern(h).map_err(|err| e(Some("gopro.download_hosts"), err))?;
    }
    config.download_hosts = doc.gopro.download_hosts;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "gopro: {}\n").unwrap();
        let c = load(dir.path()).unwrap();
        assert_eq!(c.api_base, "https://api.gopro.com");
        assert!(c.download_hosts.is_empty());
        std::fs::write(dir.path().join(FILE), "gopro: {api_url: 'ftp://x'}\n").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("media.yaml") && err.contains("gopro.api_url"), "{err}");
        std::fs::write(dir.path().join(FILE), "gopro: {download_hosts: ['a b']}\n").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("gopro.download_hosts"), "{err}");
        std::fs::write(dir.path().join(FILE), "gopro: {typo: 1}\n").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
