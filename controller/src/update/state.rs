//! Durable per-message state: `STATE_DIR/messages/NAME.json` for each claimed spool file.
//!
//! The state contains what must survive a restart: how often the message was tried, when it may
//! be tried next, the last error, when the first attempt started (the wait for the original
//! counts from there, not from the last restart), and which original the loop picked before
//! it created the replacement. The last one is synced to disk before `CreateItem`, so a replay
//! after a crash between creating the replacement and deleting the original deletes that
//! original and no other item with the same Message-ID.
//!
//! A state file without its spool file in `cur/` is left over from a crash after the message
//! was finished; [`StateStore::remove_orphans`] deletes those at start.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The format version of a state file.
pub const STATE_FORMAT: u32 = 1;

/// How far a message got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Claimed, nothing done in Sent Items yet.
    Claimed,
    /// The original was not in Sent Items yet; the loop looks again later.
    WaitingForOriginal,
    /// The loop picked an original and is about to create the replacement.
    Creating,
    /// The replacement exists; the original is still to be deleted.
    Created,
}

/// The state of one claimed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageState {
    /// Format version.
    pub format: u32,
    /// The spool file name.
    pub name: String,
    /// The key of the rewrite, once the file was parsed.
    pub source_key: Option<String>,
    /// The mailbox, once resolved.
    pub mailbox: Option<String>,
    /// How far the message got.
    pub phase: Phase,
    /// When the loop claimed the file, or found it in `cur/` after a restart.
    pub claimed_at: DateTime<Utc>,
    /// When the first attempt started.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// Failed attempts, throttling not counted.
    pub attempts: u32,
    /// Attempts that the server throttled.
    pub throttled_attempts: u32,
    /// Searches that did not find the original yet.
    #[serde(default)]
    pub original_searches: u32,
    /// The earliest time of the next attempt.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last error, as logged.
    pub last_error: Option<String>,
    /// The store ID of the original that the loop picked to replace.
    pub original_item: Option<String>,
    /// The store ID of the replacement, once created.
    pub created_item: Option<String>,
}

impl MessageState {
    /// Returns the state of a file claimed now.
    pub fn new(name: &str, claimed_at: DateTime<Utc>) -> Self {
        Self {
            format: STATE_FORMAT,
            name: name.to_owned(),
            source_key: None,
            mailbox: None,
            phase: Phase::Claimed,
            claimed_at,
            first_attempt_at: None,
            attempts: 0,
            throttled_attempts: 0,
            original_searches: 0,
            next_attempt_at: None,
            last_error: None,
            original_item: None,
            created_item: None,
        }
    }
}

/// An I/O failure on a state file.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} the message state `{}`: {source}; check that the state directory is writable", path.display())]
pub struct StateError {
    /// `read`, `write` or `delete`.
    pub action: &'static str,
    /// The state file.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// The folder of message states.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// Opens `STATE_DIR/messages`, creating it when missing.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        let dir = state_dir.join("messages");
        std::fs::create_dir_all(&dir).map_err(|source| StateError {
            action: "create",
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Reads the state of `name`. A missing file returns `None`. A file that does not parse
    /// (a disk that lost its contents) is logged and returns `None` too, because the
    /// message can be processed again from scratch: the marker in Sent Items prevents a
    /// second rewrite.
    pub fn load(&self, name: &str) -> Result<Option<MessageState>, StateError> {
        let path = self.path(name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        match serde_json::from_slice::<MessageState>(&bytes) {
            Ok(state) if state.format == STATE_FORMAT => Ok(Some(state)),
            Ok(state) => {
                tracing::warn!(path = %path.display(), format = state.format, "ignoring a message state of another format");
                Ok(None)
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring a message state that does not parse");
                Ok(None)
            }
        }
    }

    /// Writes the state of a message atomically. With `durable`, the write is synced to disk
    /// before this returns, for the step that a replay depends on.
    pub fn save(&self, state: &MessageState, durable: bool) -> Result<(), StateError> {
        let path = self.path(&state.name);
        let json = serde_json::to_vec(state).expect("a message state serializes");
        let result = if durable {
            crate::fsutil::write_atomic(&path, &json, false)
        } else {
            write_replace(&path, &json)
        };
        result.map_err(|source| StateError {
            action: "write",
            path,
            source,
        })
    }

    /// Deletes the state of a finished message.
    pub fn remove(&self, name: &str) -> Result<(), StateError> {
        let path = self.path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError {
                action: "delete",
                path,
                source,
            }),
        }
    }

    /// Deletes the states whose spool file is no longer claimed, and returns how many.
    pub fn remove_orphans(&self, claimed: &HashSet<String>) -> Result<usize, StateError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| StateError {
            action: "list",
            path: self.dir.clone(),
            source,
        })?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(name) = file_name
                .to_str()
                .and_then(|name| name.strip_suffix(".json"))
            else {
                continue;
            };
            if !name.starts_with('.') && !claimed.contains(name) {
                self.remove(name)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Writes through a temporary file and a rename, without syncing: readers see the old or
/// the new state, and a crash may keep the old one, which only repeats an attempt.
fn write_replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = StateStore::open(dir.path()).expect("opens");
        let mut state = MessageState::new("1.2_3.host", Utc::now());
        state.phase = Phase::Creating;
        state.original_item = Some("AAMk=".into());
        state.attempts = 2;

        store.save(&state, true).expect("saves");

        assert_eq!(store.load("1.2_3.host").expect("loads"), Some(state));
    }

    #[test]
    fn missing_and_corrupt_states_load_as_none() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = StateStore::open(dir.path()).expect("opens");
        std::fs::write(dir.path().join("messages/bad.json"), b"{not json").expect("writes");

        assert_eq!(store.load("absent").expect("loads"), None);
        assert_eq!(store.load("bad").expect("loads"), None);
    }

    #[test]
    fn orphans_are_removed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = StateStore::open(dir.path()).expect("opens");
        for name in ["kept", "orphan"] {
            store
                .save(&MessageState::new(name, Utc::now()), false)
                .expect("saves");
        }

        let removed = store
            .remove_orphans(&HashSet::from(["kept".to_owned()]))
            .expect("removes");

        assert_eq!(removed, 1);
        assert!(store.load("kept").expect("loads").is_some());
        assert!(store.load("orphan").expect("loads").is_none());
    }
}
