//! Back-off: shared gates that a throttling response closes for every caller behind it,
//! and jittered exponential delays between attempts.
//!
//! A gate is a "not before" time per key: one per server (EWS URL, Graph) and one per
//! mailbox. Before each request, a caller waits until the gates of its server and mailbox
//! are open. When the server throttles, the caller closes the gate for as long as the server
//! requested (`BackOffMilliseconds`, `Retry-After`), or for an exponential delay when the
//! response names no wait. Callers that wake up when a gate opens spread over a tenth of the wait, so they do
//! not all hit the server in the same millisecond.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// The gates above this count are pruned of the ones already open on the next close.
const PRUNE_ABOVE: usize = 1024;

/// Shared "not before" times by key.
#[derive(Debug, Default)]
pub struct Gates {
    closed_until: Mutex<HashMap<String, Instant>>,
}

impl Gates {
    /// Creates gates that are all open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `key` closed for at least `wait` from now. Returns whether this moved the
    /// opening later, so that callers log one throttling event per extension.
    pub fn close(&self, key: &str, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut gates = self.closed_until.lock().expect("gates lock");
        if gates.len() > PRUNE_ABOVE {
            let now = Instant::now();
            gates.retain(|_, open_at| *open_at > now);
        }
        match gates.get_mut(key) {
            Some(open_at) if *open_at >= until => false,
            Some(open_at) => {
                *open_at = until;
                true
            }
            None => {
                gates.insert(key.to_owned(), until);
                true
            }
        }
    }

    /// Returns when the latest of `keys` opens, or `None` when all are open.
    pub fn opens_at(&self, keys: &[&str]) -> Option<Instant> {
        let now = Instant::now();
        let gates = self.closed_until.lock().expect("gates lock");
        keys.iter()
            .filter_map(|key| gates.get(*key).copied())
            .filter(|open_at| *open_at > now)
            .max()
    }

    /// Waits until every gate in `keys` is open. A gate closed again while waiting is waited
    /// for again.
    pub async fn pass(&self, keys: &[&str]) {
        while let Some(open_at) = self.opens_at(keys) {
            let closed_for = open_at.saturating_duration_since(Instant::now());
            let spread = jitter(closed_for / 10);
            tokio::time::sleep_until(open_at + spread).await;
        }
    }
}

/// Jittered exponential delays: attempt `n` waits between half and all of
/// `min(cap, base * 2^n)`, so retries of many messages spread out ("equal jitter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay of the first retry, before jitter.
    pub base: Duration,
    /// The largest delay.
    pub cap: Duration,
}

impl Backoff {
    /// Returns the delay before retry number `attempt`, counting from 0.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.cap);
        let half = exponential / 2;
        half + jitter(exponential - half)
    }
}

/// Returns a random duration between zero and `max`.
pub fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        for (attempt, full) in [(0, 1), (1, 2), (3, 8), (6, 60), (40, 60)] {
            let delay = backoff.delay(attempt);
            let full = Duration::from_secs(full);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?} outside {:?}..={full:?}",
                full / 2
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn closed_gate_holds_callers_until_it_opens() {
        let gates = Gates::new();
        let start = Instant::now();

        assert!(gates.close("server", Duration::from_secs(5)));
        gates.pass(&["server", "mailbox"]).await;

        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(5), "waited {waited:?}");
        assert!(waited <= Duration::from_millis(5500), "waited {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn shorter_close_keeps_the_later_opening() {
        let gates = Gates::new();

        assert!(gates.close("server", Duration::from_secs(10)));
        assert!(!gates.close("server", Duration::from_secs(1)));

        let opens = gates.opens_at(&["server"]).expect("closed");
        assert!(opens >= Instant::now() + Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn open_gates_do_not_wait() {
        let gates = Gates::new();
        let start = Instant::now();

        gates.pass(&["server"]).await;

        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(gates.opens_at(&["server"]), None);
    }
}
