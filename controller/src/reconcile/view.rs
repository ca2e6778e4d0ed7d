//! The comparable shape of a configuration: flat `resource.attribute: value` lines, built the
//! same way from the desired state and from what the providers observed, so that a text diff
//! of the two shows drift line by line.
//!
//! A value that could not be read is [`Value::Unknown`] and renders as `(unknown: reason)`;
//! the diff shows it, but the plan never turns it into a change.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One observed or desired value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum Value {
    /// A known value in its display form.
    Known(String),
    /// The read failed; the reason says why.
    Unknown(String),
    /// The attribute does not apply, for example a group's members when the group is absent.
    Absent,
}

impl Value {
    /// A known value.
    pub fn of(value: impl fmt::Display) -> Self {
        Value::Known(value.to_string())
    }

    /// A known boolean rendered as `yes`/`no`.
    pub fn flag(value: bool) -> Self {
        Value::Known(if value { "yes" } else { "no" }.to_string())
    }

    /// Whether the read failed.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown(_))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Known(value) => f.write_str(value),
            Value::Unknown(reason) => write!(f, "(unknown: {reason})"),
            Value::Absent => f.write_str("(absent)"),
        }
    }
}

/// A configuration as ordered `key: value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    entries: BTreeMap<String, Value>,
}

impl View {
    /// Sets `key` to `value`.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        self.entries.insert(key.into(), value);
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// Every entry, ordered by key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Renders one `key: value` line per entry.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (key, value) in &self.entries {
            text.push_str(key);
            text.push_str(": ");
            text.push_str(&value.to_string());
            text.push('\n');
        }
        text
    }

    /// A unified diff from `live` to `desired`, empty when they render the same.
    pub fn diff(live: &View, desired: &View) -> String {
        let live = live.render();
        let desired = desired.render();
        if live == desired {
            return String::new();
        }
        similar::TextDiff::from_lines(&live, &desired)
            .unified_diff()
            .context_radius(1)
            .header("live", "desired")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_changed_lines_only() {
        let mut live = View::default();
        live.set("account.exists", Value::flag(false));
        live.set("account.upn", Value::of("svc@contoso.com"));
        let mut desired = live.clone();
        desired.set("account.exists", Value::flag(true));
        let diff = View::diff(&live, &desired);
        assert!(diff.contains("-account.exists: no"), "{diff}");
        assert!(diff.contains("+account.exists: yes"), "{diff}");
        assert!(diff.contains(" account.upn: svc@contoso.com"), "{diff}");
    }

    #[test]
    fn equal_views_have_no_diff() {
        let mut view = View::default();
        view.set("a", Value::of(1));
        assert_eq!(View::diff(&view, &view.clone()), "");
    }

    #[test]
    fn unknown_renders_its_reason() {
        assert_eq!(
            Value::Unknown("LDAP timed out".into()).to_string(),
            "(unknown: LDAP timed out)"
        );
    }
}
