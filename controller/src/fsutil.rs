//! File writes that never leave a half-written file behind, and the lock that keeps two
//! applies of one spec apart.

use std::io::Write;
use std::path::Path;

/// Writes `contents` to `path` through a temporary file in the same directory, synced and
/// renamed over the target, so that readers see the old or the new file, never a mix.
/// `private` restricts the file to its owner (0600 on Unix), for secrets.
pub fn write_atomic(path: &Path, contents: &[u8], private: bool) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    // `create_new` (O_EXCL) neither follows a symlink planted at the temporary path nor
    // reuses a file that someone else created there with wider permissions.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let opened = match options.open(&temporary) {
        // A crashed writer with the same process ID can leave its temporary file behind.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&temporary)?;
            options.open(&temporary)
        }
        opened => opened,
    };
    let result = opened.and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    std::fs::rename(&temporary, path)?;
    // The rename is durable only once the directory entry is on disk.
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Takes the exclusive lock on `path`, creating the file and its directory, and holds it until
/// the returned file is closed. Returns `Ok(None)` when another process holds the lock. The
/// operating system releases it when the process ends, so a killed process leaves no lock.
pub fn try_lock(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(error)) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn write_atomic_ignores_planted_temporary_file() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().expect("temporary directory");
        let target = dir.path().join("svc.password");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").expect("the victim is written");
        let temporary = dir
            .path()
            .join(format!(".svc.password.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &temporary).expect("the symlink is planted");

        write_atomic(&target, b"secret", true).expect("the write succeeds");

        assert_eq!(
            std::fs::read_to_string(&victim).expect("the victim is readable"),
            "untouched"
        );
        assert_eq!(
            std::fs::read_to_string(&target).expect("the target is readable"),
            "secret"
        );
        let mode = std::fs::metadata(&target)
            .expect("the target exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!temporary.exists(), "no temporary file is left");
    }
}
