//! The UI form is the code's contract: `component_config/configSchema.json` offers exactly the
//! parameters the parser accepts, with the same kinds, defaults and required keys.

use dbt_cloud_job_trigger::config::{Described, FORM_ONLY_KEYS, PARAMETERS};
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/component_config/configSchema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The definition of the parameter `key`.
fn described(key: &str) -> Described {
    PARAMETERS
        .iter()
        .map(|p| p.describe())
        .find(|p| p.key == key)
        .unwrap()
}

/// The form's fields, without its buttons (which are not saved in the config).
fn fields(schema: &Value) -> Vec<(&String, &Value)> {
    schema["properties"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, field)| field["type"] != "button")
        .collect()
}

#[test]
fn the_form_offers_exactly_the_parameters_the_parser_accepts() {
    let schema = schema();
    let offered: Vec<&str> = fields(&schema)
        .iter()
        .map(|(key, _)| key.as_str())
        .collect();
    let accepted: Vec<&str> = PARAMETERS.iter().map(|p| p.describe().key).collect();
    for key in &offered {
        assert!(
            accepted.contains(key),
            "the form offers {key}, which the parser refuses"
        );
    }
    for key in &accepted {
        assert!(
            offered.contains(key),
            "the parser accepts {key}, which the form does not offer"
        );
    }
}

/// The form's buttons save keys of their own, which the parser ignores without a warning; any
/// other key it does not know is warned about.
#[test]
fn the_parser_ignores_exactly_the_keys_of_the_forms_buttons() {
    let schema = schema();
    let mut buttons: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, field)| field["type"] == "button")
        .map(|(key, _)| key.as_str())
        .collect();
    buttons.sort();
    let mut ignored = FORM_ONLY_KEYS.to_vec();
    ignored.sort();
    assert_eq!(buttons, ignored);
}

#[test]
fn kinds_defaults_and_required_keys_agree() {
    let schema = schema();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for (key, field) in fields(&schema) {
        let parameter = described(key);
        assert_eq!(field["type"], parameter.json_type.name(), "{key}");
        let expected_default = parameter.default.unwrap_or(Value::Null);
        let form_default = field.get("default").cloned().unwrap_or(Value::Null);
        let same = match (&form_default, &expected_default) {
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (a, b) => a == b,
        };
        assert!(
            same,
            "{key}: the form's default {form_default} is not the parser's {expected_default}"
        );
        assert_eq!(
            required.contains(&key.as_str()),
            parameter.required,
            "{key}: required in one and not the other"
        );
    }
}

#[test]
fn the_form_follows_keboola_conventions() {
    let schema = schema();
    let properties = schema["properties"].as_object().unwrap();
    for (key, field) in properties {
        assert!(
            field["propertyOrder"].is_u64(),
            "{key} has no propertyOrder"
        );
        if key.starts_with('#') {
            assert_eq!(field["format"], "password", "{key}");
        }
    }
    let job = &properties["job_id"];
    assert_eq!(job["format"], "select");
    assert_eq!(job["enum"], serde_json::json!([]));
    assert_eq!(job["options"]["async"]["action"], "listJobs");
    // Keboola's autoload is a list of fields to watch (empty: load when the form opens).
    assert_eq!(job["options"]["async"]["autoload"], serde_json::json!([]));
    // Its text says the id can be typed: the dropdown must take a value it did not list.
    assert_eq!(job["options"]["creatable"], true);
    let mut buttons: Vec<(&str, &str)> = properties
        .values()
        .filter(|f| f["type"] == "button")
        .map(|f| {
            (
                f["format"].as_str().unwrap(),
                f["options"]["async"]["action"].as_str().unwrap(),
            )
        })
        .collect();
    buttons.sort();
    assert_eq!(
        buttons,
        [
            ("sync-action", "listRecentRuns"),
            ("test-connection", "testConnection")
        ]
    );
    for key in [
        "max_wait_time",
        "ignore_artifacts",
        "artifacts_must_succeed",
        "cancel_on_terminate",
        "cancel_on_timeout",
        "poll_interval",
        "artifact_concurrency",
    ] {
        assert_eq!(
            properties[key]["options"]["dependencies"]["wait_for_result"], true,
            "{key} shows only when waiting"
        );
    }
}

/// The optional fields of the API's trigger body, from dbt Labs' spec.
fn spec_trigger_fields() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dbt-cloud-openapi-v2.yaml"
    ))
    .unwrap();
    let spec: Value = serde_yaml_ng::from_str(&text).unwrap();
    let body = &spec["components"]["schemas"]["TriggerRunRequestRequest"];
    let required: Vec<&str> = body["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let mut fields: Vec<(String, String)> = body["properties"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| !required.contains(&name.as_str()))
        .map(|(name, field)| (name.clone(), field["type"].as_str().unwrap().to_owned()))
        .collect();
    fields.sort();
    fields
}

#[test]
fn the_forms_trigger_overrides_are_every_optional_field_of_the_apis_trigger_body() {
    let schema = schema();
    let mut offered: Vec<(String, String)> = schema["properties"]["trigger_overrides"]
        ["properties"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, field)| (name.clone(), field["type"].as_str().unwrap().to_owned()))
        .collect();
    offered.sort();
    let fields = spec_trigger_fields();
    assert_eq!(
        fields.len(),
        13,
        "the spec's optional trigger fields: {fields:?}"
    );
    assert_eq!(offered, fields);
}

/// Each field's words, choices and bounds are the parameter's definition's: the form says what
/// the parser accepts, in the words written once beside it.
#[test]
fn the_forms_words_choices_and_bounds_are_the_definitions() {
    let schema = schema();
    for (key, field) in fields(&schema) {
        let parameter = described(key);
        assert_eq!(field["title"], parameter.title, "{key}: title");
        let help = field["description"].as_str().unwrap_or_default();
        assert_eq!(help, parameter.help, "{key}: help");
        let form = &parameter.form;
        let choices: Vec<&str> = field["enum"]
            .as_array()
            .map(|words| words.iter().map(|w| w.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(choices, form.choices, "{key}: choices");
        let number = |name: &str| field.get(name).and_then(Value::as_f64);
        assert_eq!(number("minimum"), form.minimum, "{key}: minimum");
        assert_eq!(
            number("exclusiveMinimum"),
            form.exclusive_minimum,
            "{key}: exclusiveMinimum"
        );
        assert_eq!(number("maximum"), form.maximum, "{key}: maximum");
        if let Some(length) = field.get("maxLength") {
            assert_eq!(length.as_u64(), form.max_length.map(|n| n as u64), "{key}");
        }
    }
}

/// The README's table of parameters has a row for each, no other, with the definition's default
/// and every choice.
#[test]
fn the_readmes_parameter_table_is_the_definitions() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let rows: Vec<Vec<&str>> = readme
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| line.trim_matches('|').split(" |").map(str::trim).collect())
        .filter(|cells: &Vec<&str>| cells.len() == 4)
        .collect();
    let described: Vec<_> = PARAMETERS.iter().map(|p| p.describe()).collect();
    let mut in_table: Vec<&str> = rows
        .iter()
        .map(|cells| cells[0].trim_matches('`'))
        .filter(|key| !["testConnection", "listJobs", "listRecentRuns"].contains(key))
        .collect();
    in_table.sort_unstable();
    let mut keys: Vec<&str> = described.iter().map(|p| p.key).collect();
    keys.sort_unstable();
    assert_eq!(in_table, keys);
    for parameter in &described {
        let row = rows
            .iter()
            .find(|cells| cells[0] == format!("`{}`", parameter.key))
            .unwrap();
        if let Some(default) = &parameter.default {
            let shown = match default {
                Value::String(text) => format!("`{text}`"),
                other => format!("`{other}`"),
            };
            assert!(row[2].starts_with(&shown), "{}: {}", parameter.key, row[2]);
        }
        for choice in &parameter.form.choices {
            let named = row.iter().any(|cell| cell.contains(&format!("`{choice}`")));
            assert!(
                named,
                "{}: the README does not name {choice}",
                parameter.key
            );
        }
    }
}

/// The configuration's description in the Developer Portal names every choice of `if_running`.
#[test]
fn the_portal_description_names_every_if_running_choice() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/component_config/configuration_description.md"
    ))
    .unwrap();
    let if_running = described("if_running");
    for choice in if_running.form.choices {
        assert!(text.contains(&format!("`{choice}`")), "{choice}");
    }
}
