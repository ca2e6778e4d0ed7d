//! Prometheus metrics and the health endpoint of `siuctl run --metrics-addr`.
//!
//! `GET /metrics` returns the OpenMetrics text format; `GET /healthz` returns `200 ok` while
//! the loop runs with an applied configuration and `503` with the problem otherwise.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::outcome::Outcome;

/// Labels of one series, such as `reason="out_of_scope"`.
type Labels = Vec<(&'static str, String)>;

/// The loop's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    updated: Family<Labels, Counter>,
    skipped: Family<Labels, Counter>,
    failed: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    throttling: Family<Labels, Counter>,
    queue: Family<Labels, Gauge>,
    latency: Histogram,
    health: RwLock<Option<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the metrics, registered under the `siuctl_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("siuctl");
        let updated = Family::<Labels, Counter>::default();
        let skipped = Family::<Labels, Counter>::default();
        let failed = Family::<Labels, Counter>::default();
        let retries = Family::<Labels, Counter>::default();
        let throttling = Family::<Labels, Counter>::default();
        let queue = Family::<Labels, Gauge>::default();
        // From 50 ms to about 14 hours: a message can wait for its original for up to
        // the original wait timeout, seven days at most.
        let latency = Histogram::new(exponential_buckets(0.05, 2.0, 20));
        registry.register(
            "messages_updated",
            "Messages whose processed version is in Sent Items, by result (replaced, kept_original)",
            updated.clone(),
        );
        registry.register(
            "messages_skipped",
            "Messages left alone, by reason",
            skipped.clone(),
        );
        registry.register(
            "messages_failed",
            "Messages moved to the spool's failed folder, by reason",
            failed.clone(),
        );
        registry.register(
            "message_retries",
            "Attempts that will be retried, by error class",
            retries.clone(),
        );
        registry.register(
            "throttling_events",
            "Answers that asked the loop to slow down, by service",
            throttling.clone(),
        );
        registry.register(
            "queue_depth",
            "Messages by state: new (delivered, unclaimed), waiting (claimed, to retry), in_flight",
            queue.clone(),
        );
        registry.register(
            "update_latency_seconds",
            "Time from delivery into the spool to the processed message in Sent Items",
            latency.clone(),
        );
        Self {
            registry,
            updated,
            skipped,
            failed,
            retries,
            throttling,
            queue,
            latency,
            health: RwLock::new(Some("starting".to_owned())),
        }
    }

    /// Counts a finished message; `latency` is the time since delivery, for updates.
    pub fn record(&self, outcome: &Outcome, latency: Option<Duration>) {
        match outcome {
            Outcome::Updated { kept_original, .. } => {
                let result = if *kept_original {
                    "kept_original"
                } else {
                    "replaced"
                };
                self.updated
                    .get_or_create(&vec![("result", result.to_owned())])
                    .inc();
                if let Some(latency) = latency {
                    self.latency.observe(latency.as_secs_f64());
                }
            }
            Outcome::Skipped { reason, .. } => {
                self.skipped
                    .get_or_create(&vec![("reason", (*reason).to_owned())])
                    .inc();
            }
            Outcome::Failed { reason, .. } => {
                self.failed
                    .get_or_create(&vec![("reason", reason.clone())])
                    .inc();
            }
        }
    }

    /// Counts an attempt that will be retried.
    pub fn record_retry(&self, class: &'static str) {
        self.retries
            .get_or_create(&vec![("class", class.to_owned())])
            .inc();
    }

    /// Counts a throttling response.
    pub fn record_throttling(&self, service: &'static str) {
        self.throttling
            .get_or_create(&vec![("service", service.to_owned())])
            .inc();
    }

    /// Sets the queue depths.
    pub fn set_queue(&self, new: usize, waiting: usize, in_flight: usize) {
        for (state, value) in [("new", new), ("waiting", waiting), ("in_flight", in_flight)] {
            self.queue
                .get_or_create(&vec![("state", state.to_owned())])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// Marks the loop healthy, or unhealthy with the problem.
    pub fn set_health(&self, problem: Option<String>) {
        *self.health.write().expect("health lock") = problem;
    }

    /// Returns the OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Serves `/metrics` and `/healthz` on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let router = axum::Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(health_handler))
        .with_state(metrics);
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
    });
    tracing::info!(addr = %local, "serving /metrics and /healthz");
    Ok(local)
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn health_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.health.read().expect("health lock").clone() {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_appear_in_the_text() {
        let metrics = Metrics::new();
        metrics.record(
            &Outcome::Updated {
                kept_original: false,
                replay: false,
            },
            Some(Duration::from_millis(120)),
        );
        metrics.record(
            &Outcome::Skipped {
                reason: "out_of_scope",
                detail: String::new(),
            },
            None,
        );
        metrics.record_throttling("ews");
        metrics.set_queue(3, 1, 2);

        let text = metrics.encode();

        for line in [
            "siuctl_messages_updated_total{result=\"replaced\"} 1",
            "siuctl_messages_skipped_total{reason=\"out_of_scope\"} 1",
            "siuctl_throttling_events_total{service=\"ews\"} 1",
            "siuctl_queue_depth{state=\"new\"} 3",
            "siuctl_update_latency_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
