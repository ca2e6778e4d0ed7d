//! The request journal: a counter per service and operation, the most recent requests, and
//! optionally every EWS body written to a directory for schema validation.
//!
//! Tests read the counters to assert how many calls a command made ("a steady-state plan makes
//! no writes"), and the captured bodies to check that every SOAP message exchanged validates
//! against the Exchange 2016 schema.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::faults::Service;

/// How many recent requests the journal keeps.
const RECENT_LIMIT: usize = 10_000;

/// One finished request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// Which endpoint served it.
    pub service: Service,
    /// The operation (`FindItem`, `GET /applications`, `search`).
    pub operation: String,
    /// The HTTP status, or the LDAP result code for LDAP.
    pub status: u16,
    /// Time from the start of the request to the answer, in microseconds.
    pub latency_us: u64,
    /// The acting identity when known (a UPN or a client ID), never a secret.
    pub actor: Option<String>,
}

/// Counters and recent requests of a running lab.
#[derive(Debug, Default)]
pub struct Journal {
    counters: Mutex<BTreeMap<(Service, String), u64>>,
    recent: Mutex<VecDeque<Entry>>,
    capture_dir: Option<PathBuf>,
    captured: AtomicU64,
}

impl Journal {
    /// A journal that writes captured bodies into `capture_dir` when given.
    pub fn new(capture_dir: Option<PathBuf>) -> Self {
        Self {
            capture_dir,
            ..Self::default()
        }
    }

    /// Records a finished request.
    pub fn record(
        &self,
        service: Service,
        operation: &str,
        status: u16,
        latency: Duration,
        actor: Option<&str>,
    ) {
        *self
            .counters
            .lock()
            .expect("journal counters lock")
            .entry((service, operation.to_string()))
            .or_default() += 1;
        let mut recent = self.recent.lock().expect("journal recent lock");
        if recent.len() == RECENT_LIMIT {
            recent.pop_front();
        }
        recent.push_back(Entry {
            at: Utc::now(),
            service,
            operation: operation.to_string(),
            status,
            latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            actor: actor.map(str::to_string),
        });
    }

    /// How many requests of `service` and `operation` were served.
    pub fn count(&self, service: Service, operation: &str) -> u64 {
        self.counters
            .lock()
            .expect("journal counters lock")
            .get(&(service, operation.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// How many requests `service` served, all operations together.
    pub fn total(&self, service: Service) -> u64 {
        self.counters
            .lock()
            .expect("journal counters lock")
            .iter()
            .filter(|((s, _), _)| *s == service)
            .map(|(_, n)| n)
            .sum()
    }

    /// Every counter, as `service/operation` to count.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.counters
            .lock()
            .expect("journal counters lock")
            .iter()
            .map(|((s, op), n)| (format!("{}/{op}", s.name()), *n))
            .collect()
    }

    /// The most recent requests, oldest first.
    pub fn recent(&self) -> Vec<Entry> {
        self.recent
            .lock()
            .expect("journal recent lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Forgets every counter and recent request.
    pub fn reset(&self) {
        self.counters.lock().expect("journal counters lock").clear();
        self.recent.lock().expect("journal recent lock").clear();
    }

    /// Writes one message body into the capture directory, when capturing is on.
    ///
    /// `kind` is `request` or `response`; the file name starts with a sequence number, so the
    /// files sort in the order they were written.
    pub fn capture(&self, service: Service, operation: &str, kind: &str, body: &[u8]) {
        let Some(dir) = &self.capture_dir else {
            return;
        };
        let n = self.captured.fetch_add(1, Ordering::Relaxed);
        let safe_operation: String = operation
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = dir.join(format!(
            "{n:06}-{}-{safe_operation}-{kind}.xml",
            service.name()
        ));
        if let Err(error) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, body))
        {
            tracing::warn!(path = %path.display(), %error, "failed to capture a message body");
        }
    }

    /// The capture directory, when capturing is on.
    pub fn capture_dir(&self) -> Option<&PathBuf> {
        self.capture_dir.as_ref()
    }
}
