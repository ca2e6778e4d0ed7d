//! The configuration last applied: what `siuctl run` updates Sent Items with.
//!
//! `apply` writes `STATE_DIR/applied.json` after its steps succeed (or succeed with
//! warnings): the desired state it applied plus what it discovered on the way, such as the
//! EWS URL that Autodiscover found and the client ID of an application it registered. The
//! update loop reads only this file, never the spec directly, so an edited spec changes the
//! running service only once it has been applied. The file holds secret references, never
//! secret values.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use siu_specs::DesiredState;
use url::Url;
use uuid::Uuid;

/// The format version of `applied.json`.
pub const APPLIED_FORMAT: u32 = 1;

/// How the update loop reaches Exchange Online mailboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CloudMailPath {
    /// EWS with a Bearer token.
    Ews,
    /// Microsoft Graph.
    Graph,
}

/// What `apply` found out that the spec does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovered {
    /// The on-premises EWS URL: the spec's, or the one Autodiscover returned.
    pub ews_url: Url,
    /// The application's client ID: the spec's for manual registration, the registered
    /// application's for automatic registration.
    pub client_id: Option<Uuid>,
    /// The path chosen for cloud mailboxes: `mailAccess: auto` resolves to EWS when
    /// Exchange Online allows the application to use it, and to Graph otherwise.
    pub cloud_mail_path: Option<CloudMailPath>,
}

/// The contents of `STATE_DIR/applied.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedConfig {
    /// Format version.
    pub format: u32,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
    /// Fingerprint of the desired view that was applied.
    pub desired_fingerprint: String,
    /// The desired state as applied.
    pub desired: DesiredState,
    /// What apply discovered.
    pub discovered: Discovered,
}

impl AppliedConfig {
    /// The file's path in a state directory.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("applied.json")
    }

    /// Reads the applied configuration; `Ok(None)` when nothing was applied yet.
    ///
    /// A file that is not JSON of the applied configuration fails with
    /// [`std::io::ErrorKind::InvalidData`], and one of another format version with
    /// [`std::io::ErrorKind::Unsupported`].
    pub fn load(state_dir: &Path) -> std::io::Result<Option<Self>> {
        let path = Self::path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let config: Self = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{} is not a siuctl applied configuration ({e})",
                            path.display()
                        ),
                    )
                })?;
                if config.format != APPLIED_FORMAT {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        format!(
                            "{} has format {}, but this siuctl reads format {APPLIED_FORMAT}; run the siuctl that wrote it, or delete the file and run `siuctl apply`",
                            path.display(),
                            config.format
                        ),
                    ));
                }
                Ok(Some(config))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the applied configuration atomically.
    pub fn save(&self) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("the applied configuration serializes");
        crate::fsutil::write_atomic(
            &Self::path(&self.desired.update_loop.state_dir),
            &json,
            false,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_configuration_round_trips() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let spec = dir.path().join("spec.yaml");
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/hybrid-automatic.yaml");
        std::fs::copy(&example, &spec).expect("example copies");
        let mut desired = siu_specs::load(&spec).expect("the example is valid");
        desired.update_loop.state_dir = dir.path().join("state");
        let config = AppliedConfig {
            format: APPLIED_FORMAT,
            applied_at: Utc::now(),
            desired_fingerprint: "abc".into(),
            desired,
            discovered: Discovered {
                ews_url: Url::parse("https://mail.contoso.com/EWS/Exchange.asmx").expect("url"),
                client_id: Some(Uuid::nil()),
                cloud_mail_path: Some(CloudMailPath::Graph),
            },
        };
        config.save().expect("saves");
        let back = AppliedConfig::load(&dir.path().join("state"))
            .expect("loads")
            .expect("exists");
        assert_eq!(back, config);
    }
}
