//! The writer's side of the spool: atomic delivery into `new/` and the X- headers that carry
//! what the message itself cannot.
//!
//! A file is created in `tmp/`, written, flushed to disk and renamed into `new/`, so a reader
//! never sees a partial file. Names follow maildir's `<time>.<pid>_<counter>.<hostname>`: the
//! process ID and a per-process counter make them unique on one host, and the host name keeps
//! writers on several hosts apart when the spool is on a shared file system.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};

use super::TransportError;

/// The submitting mailbox of a Send As message, when it differs from From.
pub const SUBMITTER_HEADER: &str = "X-SIU-Submitter";
/// The Message-ID of the original as it sits in Sent Items.
pub const ORIGINAL_MESSAGE_ID_HEADER: &str = "X-SIU-Original-Message-ID";
/// `<index>/<count>` of a split copy, counting from 1.
pub const SPLIT_HEADER: &str = "X-SIU-Split";
/// When the rules engine processed the message, in RFC 3339.
pub const RECEIVED_AT_HEADER: &str = "X-SIU-Received-At";

/// The X- headers of one spool file.
#[derive(Debug, Clone)]
pub(crate) struct SpoolHeaders {
    /// Address of the Send As submitter.
    pub submitter: Option<String>,
    /// Message-ID of the original, angle brackets included.
    pub original_message_id: String,
    /// Index (from 1) and count of a split copy.
    pub split: Option<(usize, usize)>,
    /// When the message was processed.
    pub received_at: DateTime<Utc>,
}

impl SpoolHeaders {
    /// Renders the fields, each ending with `eol`, in the order the spool contract lists them.
    pub fn render(&self, eol: &[u8]) -> Vec<u8> {
        let mut fields: Vec<(&str, String)> = Vec::with_capacity(4);
        if let Some(submitter) = &self.submitter {
            fields.push((SUBMITTER_HEADER, submitter.clone()));
        }
        fields.push((ORIGINAL_MESSAGE_ID_HEADER, self.original_message_id.clone()));
        if let Some((index, count)) = self.split {
            fields.push((SPLIT_HEADER, format!("{index}/{count}")));
        }
        fields.push((
            RECEIVED_AT_HEADER,
            self.received_at
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        ));

        let mut out = Vec::new();
        for (name, value) in fields {
            // Values come from parsed header fields and checked addresses; a line break here
            // would let one field inject another.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            out.extend_from_slice(format!("{name}: {value}").as_bytes());
            out.extend_from_slice(eol);
        }
        out
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` into `spool/new/` through `spool/tmp/` and returns the new file's path.
pub(crate) fn deliver(spool: &Path, bytes: &[u8]) -> Result<PathBuf, TransportError> {
    let tmp_dir = spool.join("tmp");
    let new_dir = spool.join("new");
    for dir in [&tmp_dir, &new_dir] {
        std::fs::create_dir_all(dir).map_err(|error| TransportError::Spool {
            path: dir.clone(),
            error,
        })?;
    }

    let name = unique_name(Utc::now());
    let temporary = tmp_dir.join(&name);
    let delivered = new_dir.join(&name);
    let spool_error = |path: &Path| {
        let path = path.to_path_buf();
        move |error| TransportError::Spool { path, error }
    };

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(spool_error(&temporary))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(spool_error(&temporary))?;
    drop(file);
    if let Err(error) = std::fs::rename(&temporary, &delivered) {
        let _ = std::fs::remove_file(&temporary);
        return Err(TransportError::Spool {
            path: delivered,
            error,
        });
    }
    // The rename is durable only once the directory that now names the file is flushed.
    sync_dir(&new_dir).map_err(spool_error(&new_dir))?;
    Ok(delivered)
}

/// Builds a maildir-style file name, `<seconds>.<pid>_<counter>.<hostname>`.
fn unique_name(now: DateTime<Utc>) -> String {
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.{}_{counter}.{}",
        now.timestamp(),
        std::process::id(),
        hostname()
    )
}

/// Reads the host name once, with `/` written as `\057` and `:` as `\072`, so that it stays one
/// path component and never contains the colon that starts a maildir info suffix.
fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "localhost".into());
        name.replace('/', "\\057").replace(':', "\\072")
    })
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    // Windows cannot open a directory as a file; NTFS journals the rename itself.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_render_in_contract_order() {
        let headers = SpoolHeaders {
            submitter: Some("bob@lab.example".into()),
            original_message_id: "<1@lab.example>".into(),
            split: Some((2, 3)),
            received_at: DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
                .expect("date")
                .with_timezone(&Utc),
        };
        assert_eq!(
            String::from_utf8(headers.render(b"\r\n")).expect("ascii"),
            "X-SIU-Submitter: bob@lab.example\r\n\
             X-SIU-Original-Message-ID: <1@lab.example>\r\n\
             X-SIU-Split: 2/3\r\n\
             X-SIU-Received-At: 2026-03-01T10:00:00.000Z\r\n"
        );
    }

    #[test]
    fn delivery_leaves_nothing_in_tmp() {
        let spool = tempfile::tempdir().expect("temporary directory");
        let first = deliver(spool.path(), b"Subject: a\r\n\r\n").expect("delivers");
        let second = deliver(spool.path(), b"Subject: b\r\n\r\n").expect("delivers");
        assert_ne!(first, second);
        assert_eq!(first.parent(), Some(spool.path().join("new").as_path()));
        assert_eq!(
            std::fs::read(&first).expect("readable"),
            b"Subject: a\r\n\r\n"
        );
        let leftovers = std::fs::read_dir(spool.path().join("tmp"))
            .expect("tmp exists")
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn names_have_maildir_shape() {
        let name = unique_name(Utc::now());
        let parts: Vec<&str> = name.splitn(3, '.').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert!(parts[0].parse::<i64>().is_ok(), "{name}");
        let (pid, counter) = parts[1].split_once('_').expect("pid_counter");
        assert_eq!(pid, std::process::id().to_string());
        assert!(counter.parse::<u64>().is_ok(), "{name}");
        assert!(!parts[2].contains('/'), "{name}");
    }
}
