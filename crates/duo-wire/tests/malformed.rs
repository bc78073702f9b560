//! Generated malformed input for the protocol's parsers (proptest, 4000 cases each): arbitrary
//! bytes and arbitrary JSON as response envelopes, arbitrary `Authorization` values and dates.
//! Nothing panics; an envelope is accepted only when `stat` says what it is, and a rejected one
//! names the field; credentials are accepted only in Duo's exact shape.

use duoprov_duo_wire::date::parse_date;
use duoprov_duo_wire::envelope::{EnvelopeError, Outcome, parse};
use duoprov_duo_wire::verify::parse_authorization;
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        "\\PC{0,10}".prop_map(Value::String),
        prop::sample::select(vec!["OK", "FAIL", "ok", "300", "-1", "42901"]).prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec!["stat", "response", "metadata", "code", "message", "message_detail", "next_offset", "prev_offset", "total_objects"])
                        .prop_map(str::to_owned),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Envelope-shaped objects whose members have any type.
fn envelope_like() -> impl Strategy<Value = Value> {
    (prop_oneof![Just(json!("OK")), Just(json!("FAIL")), json_value()], json_value(), json_value(), json_value(), json_value())
        .prop_map(|(stat, response, metadata, code, message)| {
            json!({"stat": stat, "response": response, "metadata": metadata, "code": code, "message": message})
        })
}

fn check(body: &[u8], v: Option<&Value>) -> Result<(), TestCaseError> {
    match parse(body) {
        Ok(Outcome::Ok { .. }) => prop_assert_eq!(v.map(|v| &v["stat"]), Some(&json!("OK"))),
        Ok(Outcome::Fail(_)) => prop_assert_eq!(v.map(|v| &v["stat"]), Some(&json!("FAIL"))),
        Err(EnvelopeError::BadField { field, .. }) => {
            prop_assert!(["stat", "metadata", "metadata.next_offset", "metadata.prev_offset", "metadata.total_objects"].contains(&field), "{}", field);
        }
        Err(EnvelopeError::Empty | EnvelopeError::NotJson { .. }) => prop_assert!(v.is_none()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn envelope_parse_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let v = serde_json::from_slice::<Value>(&bytes).ok();
        check(&bytes, v.as_ref())?;
    }

    #[test]
    fn envelope_parse_takes_any_json(v in prop_oneof![envelope_like(), json_value()]) {
        check(v.to_string().as_bytes(), Some(&v))?;
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow(n in 1usize..20_000) {
        let body = format!("{{\"stat\":\"OK\",\"response\":{}{}}}", "[".repeat(n), "]".repeat(n));
        let _ = parse(body.as_bytes());
    }

    #[test]
    fn authorization_is_accepted_only_in_duo_shape(text in "\\PC{0,80}", raw in prop::collection::vec(any::<u8>(), 0..90)) {
        let _ = parse_authorization(&text);
        let basic = format!("Basic {}", base64_encode(&raw));
        if let Ok(c) = parse_authorization(&basic) {
            prop_assert!(!c.ikey.is_empty());
            prop_assert!(c.signature.len() == 40 || c.signature.len() == 128);
            prop_assert!(c.signature.bytes().all(|b| b.is_ascii_hexdigit()));
            prop_assert!(!format!("{c:?}").contains(&c.signature), "Debug shows the signature");
        }
    }

    #[test]
    fn dates_of_any_text_parse_or_fail(text in "\\PC{0,40}", ascii in "[ -~]{0,40}") {
        let _ = parse_date(&text);
        let _ = parse_date(&ascii);
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
