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

    /// Returns the `then` and `else` of the conditional in `allOf` at `pointer` whose `if`
    /// tests `field` against `value`.
    fn conditional<'a>(
        schema: &'a serde_json::Value,
        pointer: &str,
        field: &str,
        value: serde_json::Value,
    ) -> (&'a serde_json::Value, &'a serde_json::Value) {
        let rules = schema
            .pointer(&format!("{pointer}/allOf"))
            .and_then(|rules| rules.as_array())
            .unwrap_or_else(|| panic!("{pointer} has no allOf"));
        let rule = rules
            .iter()
            .find(|rule| rule["if"]["properties"][field]["const"] == value)
            .unwrap_or_else(|| panic!("{pointer} has no rule for {field} = {value}"));
        (&rule["then"], &rule["else"])
    }

    #[test]
    fn schema_ties_app_registration_to_environment() {
        let json = serde_json::to_value(schema()).unwrap();

        let (hybrid, on_premises) = conditional(&json, "", "environment", "hybrid".into());

        assert_eq!(hybrid["required"], serde_json::json!(["appRegistration"]));
        assert_eq!(
            on_premises["not"]["required"],
            serde_json::json!(["appRegistration"])
        );
    }

    #[test]
    fn schema_ties_fields_to_modes() {
        let json = serde_json::to_value(schema()).unwrap();

        let (manual, autodiscover) =
            conditional(&json, "/$defs/ExchangeSpec", "connection", "manual".into());
        let (automatic, manual_registration) = conditional(
            &json,
            "/$defs/AppRegistrationSpec",
            "mode",
            "automatic".into(),
        );
        let (created, existing) = conditional(&json, "/$defs/AccountSpec", "create", true.into());

        assert_eq!(manual["required"], serde_json::json!(["server"]));
        assert!(autodiscover["not"]["anyOf"].is_array());
        assert_eq!(automatic["required"], serde_json::json!(["provisioner"]));
        assert_eq!(
            manual_registration["required"],
            serde_json::json!(["clientId"])
        );
        assert_eq!(
            created["properties"]["password"]["required"],
            serde_json::json!(["fromFile"])
        );
        assert_eq!(
            existing["not"]["required"],
            serde_json::json!(["container"])
        );
    }

    #[test]
    fn schema_requires_exactly_one_credential() {
        let json = serde_json::to_value(schema()).unwrap();

        assert_eq!(
            json["$defs"]["CredentialSpec"]["oneOf"],
            serde_json::json!([{ "required": ["certificate"] }, { "required": ["clientSecret"] }])
        );
    }

    #[test]
    fn schema_checks_value_formats() {
        let json = serde_json::to_value(schema()).unwrap();
        let definitions = &json["$defs"];

        for (value, pattern) in [
            (
                &definitions["AccountSpec"]["properties"]["upn"],
                crate::spec::pattern::ADDRESS,
            ),
            (
                &definitions["AppRegistrationSpec"]["properties"]["tenantId"],
                crate::spec::pattern::GUID,
            ),
            (
                &definitions["CertificateSpec"]["properties"]["thumbprint"],
                crate::spec::pattern::THUMBPRINT,
            ),
            (
                &definitions["ReconcileSpec"]["properties"]["interval"],
                crate::spec::pattern::DURATION,
            ),
            (
                &definitions["SecretRef"]["oneOf"][0]["properties"]["fromEnv"],
                crate::spec::pattern::ENV_NAME,
            ),
            (
                &definitions["UpdateLoopSpec"]["properties"]["spoolDir"],
                crate::spec::pattern::PATH,
            ),
        ] {
            assert_eq!(value["pattern"], pattern, "{value}");
        }
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
        // Conditions such as `if`/`then` restate properties without describing them.
        let conditions = ["allOf", "anyOf", "not", "if", "then", "else"];
        for (key, child) in object
            .iter()
            .filter(|(key, _)| !conditions.contains(&key.as_str()))
        {
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
