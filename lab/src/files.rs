//! Writing the lab directory's files: atomically, and private where they hold secrets.

use std::io::Write;
use std::path::Path;

use crate::LabError;

/// Writes a file that only the owner may read (mode 0600 on Unix), replacing it atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), LabError> {
    write_atomic(path, contents, true)
}

/// Writes a world-readable file, replacing it atomically.
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), LabError> {
    write_atomic(path, contents, false)
}

fn write_atomic(path: &Path, contents: &[u8], private: bool) -> Result<(), LabError> {
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = parent.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(&temporary)
        .map_err(|e| LabError::io(&temporary, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| LabError::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| LabError::io(path, e))
}
