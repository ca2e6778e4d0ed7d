//! The JSON Schema of a siu/v1 spec, generated from the raw model and its doc comments.
//!
//! The repository keeps a copy at `specs/schema/siu-v1.schema.json` for editors, and the
//! examples point the YAML language server at it. A test fails when the copy is stale.

use crate::spec::Spec;

/// Returns the JSON Schema (draft 2020-12) of a siu/v1 spec.
pub fn schema() -> schemars::Schema {
    schemars::schema_for!(Spec)
}

/// Returns [`schema`] as pretty-printed JSON with a trailing newline, the form stored in
/// the repository.
pub fn schema_json() -> String {
    let mut json = serde_json::to_string_pretty(&schema()).expect("a schema serializes to JSON");
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema file in the repository, relative to this crate.
    const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/siu-v1.schema.json");

    #[test]
    fn stored_schema_is_current() {
        let stored = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_default();

        assert!(
            stored == schema_json(),
            "specs/schema/siu-v1.schema.json is stale; regenerate it with `cargo run -p siuctl -- schema > specs/schema/siu-v1.schema.json`"
        );
    }

    #[test]
    fn schema_describes_every_property() {
        let json = serde_json::to_value(schema()).unwrap();
        let mut missing = Vec::new();
        collect_undescribed(&json, "", &mut missing);

        assert!(
            missing.is_empty(),
            "properties without a description: {missing:?}"
        );
    }

    #[test]
    fn schema_rejects_unknown_fields() {
        let json = serde_json::to_value(schema()).unwrap();

        assert_eq!(json["additionalProperties"], serde_json::Value::Bool(false));
    }

    fn collect_undescribed(value: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        let Some(object) = value.as_object() else {
            return;
        };
        if let Some(properties) = object.get("properties").and_then(|p| p.as_object()) {
            // An enum variant such as `{ fromEnv: NAME }` carries its description on the
            // variant's object, around its single property.
            let described_variant = properties.len() == 1 && object.contains_key("description");
            for (name, property) in properties.iter().filter(|_| !described_variant) {
                if property.get("description").is_none() {
                    missing.push(format!("{path}/{name}"));
                }
            }
        }
        for (key, child) in object {
            match child {
                serde_json::Value::Object(_) => {
                    collect_undescribed(child, &format!("{path}/{key}"), missing)
                }
                serde_json::Value::Array(items) => {
                    for item in items {
                        collect_undescribed(item, &format!("{path}/{key}"), missing);
                    }
                }
                _ => {}
            }
        }
    }
}
