//! `[tracker] kind = "redmine"`: a node that syncs one project of a Redmine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::Deserialize;

use super::Secret;
use crate::tracker::{DEFAULT_EVENT_FIELD, RedmineSettings};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedmineConfig {
    /// Redmine's root address, like `https://redmine.example.com`.
    pub url: String,
    /// The API key of the Redmine user twinsync writes as; or `api-key-file`.
    pub api_key: Option<Secret>,
    pub api_key_file: Option<PathBuf>,
    /// The project's identifier, as in `/projects/IDENTIFIER`.
    pub project: String,
    /// The issue custom field (format Text) where twinsync records its sync events.
    #[serde(default = "default_event_field")]
    pub event_field: String,
    /// How often Redmine is asked for changes, in milliseconds.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
}

fn default_event_field() -> String {
    DEFAULT_EVENT_FIELD.to_string()
}

fn default_poll_interval_ms() -> u64 {
    2_000
}

impl RedmineConfig {
    /// What loading the file can tell: the rest is checked against Redmine when the node
    /// opens.
    pub(super) fn check(&self, file: &Path) -> Result<()> {
        let at = |message: &str| {
            anyhow!(
                "{}: [tracker] kind = \"redmine\": {message}",
                file.display()
            )
        };
        if self.api_key.is_none() == self.api_key_file.is_none() {
            return Err(at("needs exactly one of `api-key` and `api-key-file`"));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(at(
                "`url` must be Redmine's address, starting with http:// or https://",
            ));
        }
        if self.project.trim().is_empty() {
            return Err(at("`project` must be the identifier of a Redmine project"));
        }
        Ok(())
    }

    /// The settings to connect with; `resolve` makes the key file's path absolute.
    pub fn settings(&self, resolve: impl Fn(&Path) -> PathBuf) -> Result<RedmineSettings> {
        let api_key = match (&self.api_key, &self.api_key_file) {
            (Some(key), _) => key.clone(),
            (None, Some(file)) => Secret::from_file(&resolve(file))?,
            (None, None) => unreachable!("checked when loading"),
        };
        Ok(RedmineSettings {
            url: self.url.clone(),
            api_key,
            project: self.project.clone(),
            event_field: self.event_field.clone(),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{EXAMPLE, NodeConfig, TrackerConfig};

    fn parse(tracker: &str) -> Result<NodeConfig, String> {
        let text = format!("instance = \"A\"\n\n[tracker]\n{tracker}");
        NodeConfig::parse(Path::new("node.toml"), &text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_examples_redmine_block_is_valid() {
        let block: Vec<&str> = EXAMPLE
            .lines()
            .skip_while(|line| *line != "# [tracker]")
            .skip(1)
            .take_while(|line| !line.is_empty())
            .map(|line| line.strip_prefix("# ").unwrap_or(line))
            .collect();
        let config = parse(&block.join("\n")).unwrap();
        let TrackerConfig::Redmine(redmine) = &config.tracker else {
            panic!("not a Redmine tracker: {:?}", config.tracker);
        };
        assert_eq!(redmine.project, "internal");
        let error = redmine.settings(|p| p.to_path_buf()).unwrap_err();
        assert!(format!("{error:#}").contains("redmine.key"), "{error:#}");
    }

    #[test]
    fn a_redmine_tracker_needs_one_key_an_address_and_a_project() {
        let config = parse("kind = \"redmine\"\nurl = \"http://127.0.0.1:3100\"\napi-key = \"k\"\nproject = \"internal\"").unwrap();
        let TrackerConfig::Redmine(redmine) = &config.tracker else {
            panic!("not a Redmine tracker");
        };
        let settings = redmine.settings(|p| p.to_path_buf()).unwrap();
        assert_eq!(settings.event_field, "twinsync event");
        assert_eq!(settings.api_key.expose(), "k");

        for (tracker, expected) in [
            (
                "kind = \"redmine\"\nurl = \"http://x\"\nproject = \"p\"",
                "node.toml: [tracker] kind = \"redmine\": needs exactly one of `api-key` and `api-key-file`",
            ),
            (
                "kind = \"redmine\"\nurl = \"http://x\"\napi-key = \"k\"\napi-key-file = \"f\"\nproject = \"p\"",
                "node.toml: [tracker] kind = \"redmine\": needs exactly one of `api-key` and `api-key-file`",
            ),
            (
                "kind = \"redmine\"\nurl = \"redmine.example.com\"\napi-key = \"k\"\nproject = \"p\"",
                "node.toml: [tracker] kind = \"redmine\": `url` must be Redmine's address, starting with http:// or https://",
            ),
        ] {
            assert_eq!(parse(tracker).unwrap_err(), expected);
        }
        let error = parse("kind = \"redmine\"\nurl = \"http://x\"\napi-key = \"k\"\nproject = \"p\"\nprojct = \"q\"").unwrap_err();
        assert!(error.contains("unknown field `projct`"), "{error}");
    }
}
