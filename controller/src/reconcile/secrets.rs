//! Secret files that apply generates, written so that a crash does not leave a secret valid
//! in the directory or in Entra ID but missing from its file.
//!
//! A secret that siuctl generates itself (an account password, a certificate) is staged
//! before the remote change that makes it valid: it is written to `FILE.pending` (mode
//! 0600), then the change is made, then the staged file is renamed over `FILE`. A crash
//! before the change leaves `FILE` as it was. A crash after it leaves a staged secret that
//! is valid, which the next `plan` finds and finishes with
//! [`Step::FinishSecretWrite`](super::plan::Step::FinishSecretWrite).
//!
//! A secret that the remote side generates (a client secret from Graph, the password that
//! account creation sets) can only be written after the change. It is written atomically,
//! and a crash in between leaves the old file, which the next `plan` finds invalid and
//! replaces.

use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;

/// Returns the path where a secret for `file` is staged.
pub fn staged_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".pending");
    file.with_file_name(name)
}

/// Writes `contents` as the staged secret of `file`, readable by the owner only.
pub fn stage(file: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic(&staged_path(file), contents, true)
}

/// Moves the staged secret of `file` into place.
pub fn commit(file: &Path) -> io::Result<()> {
    let staged = staged_path(file);
    std::fs::rename(&staged, file)?;
    if let Some(parent) = file.parent()
        && let Ok(directory) = std::fs::File::open(parent)
    {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// Removes the staged secret of `file`, for a change that failed. A missing file is fine.
pub fn discard(file: &Path) -> io::Result<()> {
    match std::fs::remove_file(staged_path(file)) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Writes a secret that is already valid straight to `file`, readable by the owner only.
pub fn write(file: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic(file, contents, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_secret_replaces_the_file_on_commit() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("svc.password");
        std::fs::write(&file, "old\n").expect("old secret");

        stage(&file, b"new\n").expect("stage");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "old\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("svc.password.pending")).expect("read"),
            "new\n"
        );

        commit(&file).expect("commit");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "new\n");
        assert!(!staged_path(&file).exists());
    }

    #[cfg(unix)]
    #[test]
    fn staged_secret_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("app.pem");

        stage(&file, b"key").expect("stage");

        let mode = std::fs::metadata(staged_path(&file))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn discard_ignores_a_missing_stage() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("app.pem");

        discard(&file).expect("nothing to discard");
        stage(&file, b"key").expect("stage");
        discard(&file).expect("discard");

        assert!(!staged_path(&file).exists());
    }
}
