//! The spool directory: the update loop's side of the maildir-style contract in
//! `docs/spool.md`.
//!
//! Writers deliver into `new/`. The loop claims a file by renaming it into `cur/`, which
//! fails for every other claimant once one has won, so exactly one process owns a file.
//! A finished file is deleted from `cur/`. A file that fails for good moves into `failed/`
//! next to a `NAME.reason` text file, and the loop never deletes it. Files that a crash left
//! in `cur/` belong to the next run, which processes them again.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};

/// An I/O failure on the spool, with the path involved.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} `{}`: {source}; check that the spool directory exists and that siuctl may write to it", path.display())]
pub struct SpoolError {
    /// The failed action: `read`, `claim`, `delete`, ...
    pub action: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// A file that the loop owns, in `cur/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedFile {
    /// The file name, the same in every folder of the spool.
    pub name: String,
    /// When the writer delivered it: the file's modification time.
    pub delivered_at: DateTime<Utc>,
}

/// A spool directory and its folders.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

impl Spool {
    /// Opens the spool at `root`, creating the folders that are missing.
    pub fn open(root: &Path) -> Result<Self, SpoolError> {
        let spool = Self {
            root: root.to_path_buf(),
        };
        for folder in ["tmp", "new", "cur", "failed"] {
            let path = spool.root.join(folder);
            std::fs::create_dir_all(&path).map_err(|source| SpoolError {
                action: "create",
                path: path.clone(),
                source,
            })?;
        }
        Ok(spool)
    }

    /// Returns the spool's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the `new/` folder, where writers deliver.
    pub fn new_dir(&self) -> PathBuf {
        self.root.join("new")
    }

    /// Returns the `cur/` folder, where claimed files wait until they are finished.
    pub fn cur_dir(&self) -> PathBuf {
        self.root.join("cur")
    }

    /// Returns the `failed/` folder.
    pub fn failed_dir(&self) -> PathBuf {
        self.root.join("failed")
    }

    /// Lists the names of delivered files in `new/`, sorted, which is delivery order for
    /// maildir names (they start with the delivery time in seconds).
    pub fn list_new(&self) -> Result<Vec<String>, SpoolError> {
        list_names(&self.new_dir())
    }

    /// Lists the names of files in `cur/`: files this process claimed, or that an earlier
    /// run claimed and did not finish.
    pub fn list_claimed(&self) -> Result<Vec<String>, SpoolError> {
        list_names(&self.cur_dir())
    }

    /// Claims `new/NAME` by renaming it into `cur/`. Returns `None` when the file is gone,
    /// because another process claimed it first or it was never complete.
    pub fn claim(&self, name: &str) -> Result<Option<ClaimedFile>, SpoolError> {
        check_name(name)?;
        let from = self.new_dir().join(name);
        let to = self.cur_dir().join(name);
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SpoolError {
                    action: "claim",
                    path: from,
                    source,
                });
            }
        }
        // NOTE: the rename is not synced to disk. A crash that loses it puts the file back in
        // new/, where it is claimed again. The marker in Sent Items keeps that replay from
        // rewriting twice, so an fsync per claim would cost time and buy nothing.
        self.claimed(name).map(Some)
    }

    /// Describes a file that is already in `cur/`.
    pub fn claimed(&self, name: &str) -> Result<ClaimedFile, SpoolError> {
        check_name(name)?;
        let path = self.cur_dir().join(name);
        let modified = std::fs::metadata(&path)
            .and_then(|metadata| metadata.modified())
            .map_err(|source| SpoolError {
                action: "read",
                path: path.clone(),
                source,
            })?;
        Ok(ClaimedFile {
            name: name.to_owned(),
            delivered_at: DateTime::<Utc>::from(modified),
        })
    }

    /// Reads a claimed file, refusing files larger than `max_bytes` and anything but a
    /// regular file.
    ///
    /// A symlink is not followed, because it would upload whatever file it names, such as
    /// `/etc/shadow`, into a mailbox. A FIFO or device is not read, because the read could
    /// block the loop for good.
    pub fn read_claimed(&self, name: &str, max_bytes: u64) -> Result<ReadResult, SpoolError> {
        let path = self.cur_dir().join(name);
        let read_error = |source| SpoolError {
            action: "read",
            path: path.clone(),
            source,
        };
        let metadata = std::fs::symlink_metadata(&path).map_err(read_error)?;
        if !metadata.file_type().is_file() {
            return Ok(ReadResult::NotRegular {
                kind: file_kind(&metadata.file_type()),
            });
        }
        if metadata.len() > max_bytes {
            return Ok(ReadResult::TooLarge {
                size: metadata.len(),
            });
        }

        // The file can be swapped for a symlink or a FIFO between the check and the open, so
        // the open does not follow symlinks or wait for a writer, and the check is repeated
        // on what was opened.
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        }
        let mut file = match options.open(&path) {
            Ok(file) => file,
            #[cfg(unix)]
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                return Ok(ReadResult::NotRegular { kind: "symlink" });
            }
            Err(error) => return Err(read_error(error)),
        };
        let metadata = file.metadata().map_err(read_error)?;
        if !metadata.file_type().is_file() {
            return Ok(ReadResult::NotRegular {
                kind: file_kind(&metadata.file_type()),
            });
        }
        if metadata.len() > max_bytes {
            return Ok(ReadResult::TooLarge {
                size: metadata.len(),
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or_default());
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(read_error)?;
        Ok(ReadResult::Bytes(bytes))
    }

    /// Deletes a finished file from `cur/`. A file that is already gone counts as deleted.
    pub fn finish(&self, name: &str) -> Result<(), SpoolError> {
        check_name(name)?;
        let path = self.cur_dir().join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SpoolError {
                action: "delete",
                path,
                source,
            }),
        }
    }

    /// Moves a claimed file into `failed/`, next to `NAME.reason` with the time and the
    /// reason. The reason file is written and synced first, so a failed file never lacks
    /// its reason.
    pub fn fail(&self, name: &str, reason: &str) -> Result<PathBuf, SpoolError> {
        check_name(name)?;
        let failed = self.failed_dir();
        let reason_path = failed.join(format!("{name}.reason"));
        let text = format!(
            "{}\n{}\n",
            Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            reason.trim_end()
        );
        write_synced(&reason_path, text.as_bytes()).map_err(|source| SpoolError {
            action: "write",
            path: reason_path.clone(),
            source,
        })?;

        let from = self.cur_dir().join(name);
        let to = failed.join(name);
        std::fs::rename(&from, &to).map_err(|source| SpoolError {
            action: "move to failed/",
            path: from,
            source,
        })?;
        sync_dir(&failed);
        Ok(to)
    }

    /// Lists the reasons of failed files, by file name.
    pub fn failed_reasons(&self) -> Result<Vec<(String, String)>, SpoolError> {
        let mut reasons = Vec::new();
        for name in list_names(&self.failed_dir())? {
            let Some(file) = name.strip_suffix(".reason") else {
                continue;
            };
            let path = self.failed_dir().join(&name);
            let text = std::fs::read_to_string(&path).map_err(|source| SpoolError {
                action: "read",
                path,
                source,
            })?;
            reasons.push((file.to_owned(), text));
        }
        Ok(reasons)
    }
}

/// The outcome of [`Spool::read_claimed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// The file's contents.
    Bytes(Vec<u8>),
    /// The file is larger than the limit.
    TooLarge {
        /// Its size in bytes.
        size: u64,
    },
    /// The name is not a regular file.
    NotRegular {
        /// Its kind: `symlink`, `directory`, `FIFO`, `socket`, `device` or `special file`.
        kind: &'static str,
    },
}

/// Names the kind of a file that is not a regular file.
fn file_kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "FIFO";
        }
        if file_type.is_socket() {
            return "socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "device";
        }
    }
    if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// Lists the file names in a folder, skipping names that start with `.` (editors' and
/// writers' temporary files), sorted.
fn list_names(dir: &Path) -> Result<Vec<String>, SpoolError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SpoolError {
        action: "list",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SpoolError {
            action: "list",
            path: dir.to_path_buf(),
            source,
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::warn!(dir = %dir.display(), name = ?entry.file_name(), "skipping a spool file whose name is not UTF-8; rename it");
            continue;
        };
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Rejects names that would leave the folder.
fn check_name(name: &str) -> Result<(), SpoolError> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\0') {
        return Err(SpoolError {
            action: "use",
            path: PathBuf::from(name),
            source: std::io::Error::new(
                ErrorKind::InvalidInput,
                "a spool file name must not be empty, start with `.` or contain `/`",
            ),
        });
    }
    Ok(())
}

/// Writes a file and syncs it to disk.
fn write_synced(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Syncs a directory so that renames into it survive a crash; failures only cost durability,
/// so they are logged and not returned.
pub(crate) fn sync_dir(dir: &Path) {
    let result = std::fs::File::open(dir).and_then(|dir| dir.sync_all());
    if let Err(error) = result {
        tracing::debug!(dir = %dir.display(), %error, "failed to sync a directory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(spool: &Spool, name: &str, contents: &[u8]) {
        std::fs::write(spool.root().join("tmp").join(name), contents).expect("write tmp");
        std::fs::rename(
            spool.root().join("tmp").join(name),
            spool.new_dir().join(name),
        )
        .expect("deliver");
    }

    #[test]
    fn open_creates_every_folder() {
        let dir = tempfile::tempdir().expect("temporary directory");

        let spool = Spool::open(&dir.path().join("spool")).expect("opens");

        for folder in ["tmp", "new", "cur", "failed"] {
            assert!(spool.root().join(folder).is_dir(), "{folder} missing");
        }
    }

    #[test]
    fn claim_moves_the_file_once() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let spool = Spool::open(dir.path()).expect("opens");
        deliver(&spool, "1.1_1.host", b"message");

        let first = spool.claim("1.1_1.host").expect("claims");
        let second = spool.claim("1.1_1.host").expect("second claim runs");

        assert_eq!(first.map(|file| file.name), Some("1.1_1.host".to_owned()));
        assert_eq!(second, None);
        assert!(spool.cur_dir().join("1.1_1.host").exists());
        assert!(spool.list_new().expect("lists").is_empty());
        assert_eq!(spool.list_claimed().expect("lists"), ["1.1_1.host"]);
    }

    #[test]
    fn list_new_is_sorted_and_skips_dot_files() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let spool = Spool::open(dir.path()).expect("opens");
        for name in ["2.1_1.host", "1.1_1.host", ".hidden"] {
            deliver(&spool, name, b"m");
        }

        assert_eq!(
            spool.list_new().expect("lists"),
            ["1.1_1.host", "2.1_1.host"]
        );
    }

    #[test]
    fn fail_keeps_the_file_with_its_reason() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let spool = Spool::open(dir.path()).expect("opens");
        deliver(&spool, "3.1_1.host", b"broken");
        spool.claim("3.1_1.host").expect("claims");

        let moved = spool
            .fail("3.1_1.host", "the file is not an RFC 5322 message")
            .expect("moves");

        assert_eq!(std::fs::read(&moved).expect("failed file"), b"broken");
        let reasons = spool.failed_reasons().expect("reads reasons");
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].0, "3.1_1.host");
        assert!(
            reasons[0]
                .1
                .ends_with("the file is not an RFC 5322 message\n"),
            "{:?}",
            reasons[0].1
        );
        assert!(spool.list_claimed().expect("lists").is_empty());
    }

    #[test]
    fn finish_deletes_and_tolerates_a_missing_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let spool = Spool::open(dir.path()).expect("opens");
        deliver(&spool, "4.1_1.host", b"m");
        spool.claim("4.1_1.host").expect("claims");

        spool.finish("4.1_1.host").expect("deletes");
        spool.finish("4.1_1.host").expect("already gone");

        assert!(spool.list_claimed().expect("lists").is_empty());
    }

    #[test]
    fn names_that_leave_the_folder_are_rejected() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let spool = Spool::open(dir.path()).expect("opens");

        for name in ["", "../x", ".x", "a/b"] {
            assert!(spool.claim(name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn read_claimed_refuses_files_over_the_limit() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let spool = Spool::open(dir.path()).expect("opens");
        deliver(&spool, "5.1_1.host", b"0123456789");
        spool.claim("5.1_1.host").expect("claims");

        assert_eq!(
            spool.read_claimed("5.1_1.host", 5).expect("reads"),
            ReadResult::TooLarge { size: 10 }
        );
        assert_eq!(
            spool.read_claimed("5.1_1.host", 10).expect("reads"),
            ReadResult::Bytes(b"0123456789".to_vec())
        );
    }
}
