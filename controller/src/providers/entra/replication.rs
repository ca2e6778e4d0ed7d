//! Waiting for Entra ID replication.
//!
//! Entra ID is eventually consistent: an application, service principal or credential
//! created a moment ago can be unknown to the replica that serves the next request, which
//! then returns 404 (Graph) or AADSTS700016 (token endpoint). Reads right after a write
//! retry with a bounded backoff under a [`ReplicationPolicy`] and report each wait through
//! `tracing::info!` and an optional [`ReplicationCallback`], so that a caller can show
//! "waiting for replication" instead of a failure.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long and how often to retry a read that failed because a write has not replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationPolicy {
    /// Total time to keep retrying before the failure is reported.
    pub timeout: Duration,
    /// The first wait; each later wait doubles, up to `max_delay`.
    pub initial_delay: Duration,
    /// The maximum single wait.
    pub max_delay: Duration,
}

impl Default for ReplicationPolicy {
    fn default() -> Self {
        // Microsoft documents no bound for directory replication. New applications usually
        // appear within a minute; three minutes keeps `apply` from failing on a slow replica
        // without hiding a real "not found" for long.
        Self {
            timeout: Duration::from_secs(180),
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15),
        }
    }
}

impl ReplicationPolicy {
    /// Returns the wait before retry number `attempt` (1 for the first retry), or `None`
    /// when `waited` plus that wait would pass the timeout.
    pub fn next_delay(&self, attempt: u32, waited: Duration) -> Option<Duration> {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let delay = self
            .initial_delay
            .saturating_mul(factor)
            .min(self.max_delay);
        let remaining = self.timeout.checked_sub(waited)?;
        if remaining.is_zero() {
            return None;
        }
        Some(delay.min(remaining))
    }
}

/// One wait for replication, as reported to a [`ReplicationCallback`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationWait {
    /// The object being read, such as `Graph get application (appId 1b2c…)`.
    pub target: String,
    /// The retry that follows this wait, counting from 1.
    pub attempt: u32,
    /// Time spent waiting so far.
    pub waited: Duration,
    /// The wait that starts now.
    pub delay: Duration,
}

impl fmt::Display for ReplicationWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waiting for replication: {} (retry {} in {} ms, waited {} s so far)",
            self.target,
            self.attempt,
            self.delay.as_millis(),
            self.waited.as_secs()
        )
    }
}

/// A function that is called for every wait for replication.
pub type ReplicationCallback = Arc<dyn Fn(&ReplicationWait) + Send + Sync>;

/// Logs a wait and passes it to the callback, if there is one.
pub(crate) fn report(wait: &ReplicationWait, callback: Option<&ReplicationCallback>) {
    tracing::info!(
        target_object = %wait.target,
        attempt = wait.attempt,
        delay_ms = wait.delay.as_millis() as u64,
        waited_s = wait.waited.as_secs(),
        "waiting for replication"
    );
    if let Some(callback) = callback {
        callback(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum() {
        let policy = ReplicationPolicy {
            timeout: Duration::from_secs(100),
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
        };
        let delays: Vec<u64> = (1..=5)
            .map(|attempt| {
                policy
                    .next_delay(attempt, Duration::ZERO)
                    .unwrap()
                    .as_secs()
            })
            .collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn delay_stops_at_the_timeout() {
        let policy = ReplicationPolicy {
            timeout: Duration::from_secs(10),
            initial_delay: Duration::from_secs(4),
            max_delay: Duration::from_secs(4),
        };
        assert_eq!(
            policy.next_delay(3, Duration::from_secs(8)),
            Some(Duration::from_secs(2)),
            "the last wait is cut to the time left"
        );
        assert_eq!(policy.next_delay(4, Duration::from_secs(10)), None);
        assert_eq!(policy.next_delay(4, Duration::from_secs(11)), None);
    }
}
