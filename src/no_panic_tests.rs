//! Property tests: the config parser and the decoding of API answers meet arbitrary bytes and
//! arbitrary JSON, and must answer with a clean error, never a panic.
//!
//! CI runs 10,000 cases per property; `PROPTEST_CASES=N cargo test --lib no_panic` runs more.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::config;
use crate::dbt_cloud::client::tests_support::{decode_answer, error_details};
use crate::dbt_cloud::Run;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
        "[0-9 ]{0,22}".prop_map(Value::String),
        prop_oneof![
            Just("https://"),
            Just("http://127.0.0.1:1"),
            Just("cloud.getdbt.com/api/v2")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keys the decoders look for, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "status",
            "data",
            "user_message",
            "status_message",
            "href",
            "artifacts_saved",
            "started_at",
            "run_steps",
            "index",
            "name",
            "trigger",
            "cause",
            "created_at",
            "account_id",
            "job_id",
            "#api_key",
            "cause",
            "wait_for_result",
            "max_wait_time",
            "dbt_cloud_url",
            "ignore_artifacts",
            "debug",
            "parameters",
            "detail",
        ])
        .prop_map(str::to_owned),
        ".{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn config_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = config::parse(&bytes);
    }

    #[test]
    fn config_parser_never_panics_on_json(parameters in json_value(), root in json_value()) {
        let mut document = match root { Value::Object(map) => map, _ => Map::new() };
        document.insert("parameters".into(), parameters);
        let _ = config::parse(Value::Object(document).to_string().as_bytes());
    }

    #[test]
    fn config_parser_never_panics_on_known_keys(values in prop::collection::vec(json_value(), config::PARAMETERS.len())) {
        let parameters: Map<String, Value> =
            config::PARAMETERS.iter().map(|p| p.describe().key.to_owned()).zip(values).collect();
        for action in config::ACTIONS {
            let document = json!({ "action": action, "parameters": parameters });
            let _ = config::parse(document.to_string().as_bytes());
        }
    }

    #[test]
    fn answer_decoding_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_answer::<Run>(&bytes);
        let _ = decode_answer::<Vec<Run>>(&bytes);
        let _ = decode_answer::<Option<Vec<String>>>(&bytes);
        let _ = error_details(&bytes);
    }

    #[test]
    fn answer_decoding_never_panics_on_json(data in json_value(), status in json_value()) {
        let body = json!({ "status": status, "data": data }).to_string();
        prop_assert!(decode_answer::<Value>(body.as_bytes()).is_some());
        if let Some(run) = decode_answer::<Run>(body.as_bytes()) {
            let _ = (run.current_step(), run.failed_step());
        }
        let _ = decode_answer::<Option<Vec<String>>>(body.as_bytes());
        let _ = error_details(body.as_bytes());
    }
}
