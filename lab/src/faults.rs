//! Fault injection: errors, throttling, latency, dropped connections and replication delay,
//! configured at start or changed while the lab runs.
//!
//! A rule matches a service and optionally one operation (an EWS operation name such as
//! `FindItem`, a Graph route such as `POST /applications`, an LDAP operation such as
//! `search`). Each endpoint asks [`Faults::decide`] once per request and renders the fault in
//! its own protocol: an EWS `ErrorServerBusy` SOAP fault, a Graph 429 with `Retry-After`, an
//! LDAP `busy` result.

use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The endpoints of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Service {
    /// The Entra token endpoint.
    Token,
    /// Microsoft Graph.
    Graph,
    /// EWS of the on-premises Exchange server.
    Ews,
    /// EWS of Exchange Online.
    ExchangeOnline,
    /// Autodiscover.
    Autodiscover,
    /// The Exchange management shell stand-in.
    Management,
    /// LDAP and LDAPS.
    Ldap,
    /// The lab's own control API.
    Control,
}

impl Service {
    /// The name used in logs, counters and `lab.env`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Token => "token",
            Service::Graph => "graph",
            Service::Ews => "ews",
            Service::ExchangeOnline => "exchangeOnline",
            Service::Autodiscover => "autodiscover",
            Service::Management => "management",
            Service::Ldap => "ldap",
            Service::Control => "control",
        }
    }
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum FaultKind {
    /// Answer with this HTTP status (500, 503, ...) and an empty or protocol-shaped body.
    /// LDAP returns `busy` for 51 or 429 and `unavailable` for any other code.
    Status {
        /// HTTP status code.
        code: u16,
    },
    /// EWS `ErrorServerBusy` with `BackOffMilliseconds`; LDAP returns `busy`, and other
    /// services answer 503 with `Retry-After`.
    ServerBusy {
        /// Back-off the server asks for, in milliseconds.
        back_off_ms: u64,
    },
    /// EWS `ErrorExceededConnectionCount`; LDAP returns `busy`, and other services answer
    /// 503.
    ExceededConnectionCount,
    /// HTTP 429 with `Retry-After` in seconds (Graph's throttling); LDAP answers `busy`.
    TooManyRequests {
        /// Seconds in `Retry-After`.
        retry_after_secs: u64,
    },
    /// Close the connection without an answer.
    Drop,
    /// Delay the answer; combines with one of the others.
    Latency {
        /// Added delay in milliseconds.
        ms: u64,
    },
}

/// One fault rule.
// NOTE: serde cannot combine `deny_unknown_fields` with the flattened `fault`, so a misspelled
// field in a rule is ignored rather than rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// Which endpoint.
    pub service: Service,
    /// Which operation; every operation when absent. Compared case-insensitively.
    #[serde(default)]
    pub operation: Option<String>,
    /// What happens.
    #[serde(flatten)]
    pub fault: FaultKind,
    /// Chance that a matching request gets the fault, 0.0 to 1.0.
    #[serde(default = "always")]
    pub probability: f64,
    /// Stop after this many faults; unlimited when absent.
    #[serde(default)]
    pub remaining: Option<u64>,
}

fn always() -> f64 {
    1.0
}

/// What to do with one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Delay before answering.
    pub latency: Option<Duration>,
    /// The fault to answer with instead of the real answer.
    pub fault: Option<FaultKind>,
}

/// The fault rules of a running lab.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    replication_delay: Mutex<Duration>,
}

impl Faults {
    /// Faults with these rules and replication delay.
    pub fn new(rules: Vec<FaultRule>, replication_delay: Duration) -> Self {
        Self {
            rules: Mutex::new(rules),
            replication_delay: Mutex::new(replication_delay),
        }
    }

    /// Replaces every rule.
    pub fn set_rules(&self, rules: Vec<FaultRule>) {
        *self.rules.lock().expect("fault rules lock") = rules;
    }

    /// Adds a rule.
    pub fn add(&self, rule: FaultRule) {
        self.rules.lock().expect("fault rules lock").push(rule);
    }

    /// The current rules.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.lock().expect("fault rules lock").clone()
    }

    /// How long a new application or service principal stays invisible.
    pub fn replication_delay(&self) -> Duration {
        *self
            .replication_delay
            .lock()
            .expect("replication delay lock")
    }

    /// Changes the replication delay.
    pub fn set_replication_delay(&self, delay: Duration) {
        *self
            .replication_delay
            .lock()
            .expect("replication delay lock") = delay;
    }

    /// Decides what happens to one request of `service` and `operation`.
    pub fn decide(&self, service: Service, operation: &str) -> Decision {
        let mut decision = Decision::default();
        let mut rules = self.rules.lock().expect("fault rules lock");
        let mut rng = rand::rng();
        for rule in rules.iter_mut() {
            let matches = rule.service == service
                && rule
                    .operation
                    .as_deref()
                    .is_none_or(|op| op.eq_ignore_ascii_case(operation));
            if !matches || rule.remaining == Some(0) {
                continue;
            }
            if rule.probability < 1.0 && !rng.random_bool(rule.probability.clamp(0.0, 1.0)) {
                continue;
            }
            match &rule.fault {
                FaultKind::Latency { ms } => {
                    let added = Duration::from_millis(*ms);
                    decision.latency = Some(decision.latency.unwrap_or_default() + added);
                }
                other if decision.fault.is_none() => decision.fault = Some(other.clone()),
                _ => continue,
            }
            if let Some(remaining) = rule.remaining.as_mut() {
                *remaining -= 1;
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rule_stops_after_its_count() {
        let faults = Faults::new(
            vec![FaultRule {
                service: Service::Ews,
                operation: Some("FindItem".into()),
                fault: FaultKind::ServerBusy { back_off_ms: 10 },
                probability: 1.0,
                remaining: Some(2),
            }],
            Duration::ZERO,
        );
        assert!(faults.decide(Service::Ews, "finditem").fault.is_some());
        assert!(faults.decide(Service::Ews, "GetItem").fault.is_none());
        assert!(faults.decide(Service::Ews, "FindItem").fault.is_some());
        assert!(faults.decide(Service::Ews, "FindItem").fault.is_none());
    }

    #[test]
    fn latency_combines_with_an_error() {
        let faults = Faults::new(
            vec![
                FaultRule {
                    service: Service::Graph,
                    operation: None,
                    fault: FaultKind::Latency { ms: 20 },
                    probability: 1.0,
                    remaining: None,
                },
                FaultRule {
                    service: Service::Graph,
                    operation: None,
                    fault: FaultKind::TooManyRequests {
                        retry_after_secs: 1,
                    },
                    probability: 1.0,
                    remaining: None,
                },
            ],
            Duration::ZERO,
        );
        let decision = faults.decide(Service::Graph, "GET /users");
        assert_eq!(decision.latency, Some(Duration::from_millis(20)));
        assert!(matches!(
            decision.fault,
            Some(FaultKind::TooManyRequests { .. })
        ));
    }

    #[test]
    fn rules_parse_from_yaml() {
        let rule: FaultRule = serde_saphyr::from_str(
            "service: ews\noperation: CreateItem\nkind: serverBusy\nbackOffMs: 250\nprobability: 0.1\n",
        )
        .expect("rule parses");
        assert_eq!(rule.fault, FaultKind::ServerBusy { back_off_ms: 250 });
    }
}
