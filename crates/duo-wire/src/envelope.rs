//! The Duo JSON response envelope: `{"stat":"OK","response":…,"metadata":{…}}` on success and
//! `{"stat":"FAIL","code":…,"message":…,"message_detail":…}` on failure, with paging metadata.
//! Parsing is tolerant where Duo's clients are (a `code` given as a string, `metadata` nested
//! inside `response`, `next_offset` given as a numeric string) and strict everywhere else: a
//! body that is not an envelope is an [`EnvelopeError`], never a panic.
//!
//! Builders ([`ok_body`], [`ok_page_body`], [`fail_body`]) produce the exact shapes for the emulator.
//!
//! ```
//! use duoprov_duo_wire::envelope::{parse, Outcome};
//! let ok = parse(br#"{"stat":"OK","response":[],"metadata":{"next_offset":300,"prev_offset":null,"total_objects":900}}"#)?;
//! let Outcome::Ok { metadata, .. } = ok else { panic!() };
//! assert_eq!(metadata.and_then(|m| m.next_offset), Some(300));
//! let fail = parse(br#"{"stat":"FAIL","code":40002,"message":"Invalid request parameters","message_detail":"username"}"#)?;
//! let Outcome::Fail(f) = fail else { panic!() };
//! assert_eq!((f.code, f.message_detail.as_deref()), (Some(40002), Some("username")));
//! # Ok::<(), duoprov_duo_wire::envelope::EnvelopeError>(())
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A body that is not a Duo envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is empty.
    #[error("empty response body")]
    Empty,
    /// The body is not JSON (e.g. truncated or HTML).
    #[error("response body is not JSON: {detail}")]
    NotJson {
        /// The parser's message (position and kind; never the body).
        detail: String,
    },
    /// The body is JSON but lacks a field the envelope needs, or has it with the wrong type.
    #[error("response envelope field `{field}` is {problem}")]
    BadField {
        /// The field name (`stat`, `response`, `metadata.next_offset`, …).
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// Paging metadata of a list response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Total number of objects, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_objects: Option<u64>,
    /// Offset of the next page; `None` (or absent) on the last page.
    #[serde(default)]
    pub next_offset: Option<u64>,
    /// Offset of the previous page.
    #[serde(default)]
    pub prev_offset: Option<u64>,
}

/// A FAIL envelope's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Duo's numeric code (e.g. 40002, 42901); `None` when absent or not a number.
    pub code: Option<u32>,
    /// The message (e.g. `Invalid request parameters`).
    pub message: String,
    /// The detail, often the offending parameter name.
    pub message_detail: Option<String>,
}

/// A parsed envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `stat` is `OK`.
    Ok {
        /// The `response` member (`Value::Null` when absent).
        response: Value,
        /// Paging metadata (top level, or nested in `response` as some endpoints do).
        metadata: Option<Metadata>,
    },
    /// `stat` is `FAIL`.
    Fail(Failure),
}

fn parse_offset(v: Option<&Value>, field: &'static str) -> Result<Option<u64>, EnvelopeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or(EnvelopeError::BadField { field, problem: "not a non-negative integer" }),
        Some(Value::String(s)) => {
            s.parse::<u64>().map(Some).map_err(|_| EnvelopeError::BadField { field, problem: "not a non-negative integer" })
        }
        Some(_) => Err(EnvelopeError::BadField { field, problem: "not a non-negative integer" }),
    }
}

fn parse_metadata(v: &Value) -> Result<Metadata, EnvelopeError> {
    let obj = v.as_object().ok_or(EnvelopeError::BadField { field: "metadata", problem: "not an object" })?;
    Ok(Metadata {
        total_objects: parse_offset(obj.get("total_objects"), "metadata.total_objects")?,
        next_offset: parse_offset(obj.get("next_offset"), "metadata.next_offset")?,
        prev_offset: parse_offset(obj.get("prev_offset"), "metadata.prev_offset")?,
    })
}

/// Parses a response body as an envelope.
pub fn parse(body: &[u8]) -> Result<Outcome, EnvelopeError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(EnvelopeError::Empty);
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson { detail: e.to_string() })?;
    let Value::Object(mut obj) = v else {
        return Err(EnvelopeError::BadField { field: "stat", problem: "missing (body is not an object)" });
    };
    let stat = match obj.get("stat") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(EnvelopeError::BadField { field: "stat", problem: "not a string" }),
        None => return Err(EnvelopeError::BadField { field: "stat", problem: "missing" }),
    };
    match stat.as_str() {
        "OK" => {
            let response = obj.remove("response").unwrap_or(Value::Null);
            let metadata = match obj.get("metadata") {
                Some(Value::Null) | None => match response.get("metadata") {
                    Some(m) if !m.is_null() => Some(parse_metadata(m)?),
                    _ => None,
                },
                Some(m) => Some(parse_metadata(m)?),
            };
            Ok(Outcome::Ok { response, metadata })
        }
        "FAIL" => {
            let code = match obj.get("code") {
                Some(Value::Number(n)) => n.as_u64().and_then(|c| u32::try_from(c).ok()),
                Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
                _ => None,
            };
            let message = match obj.get("message") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let message_detail = match obj.get("message_detail") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            };
            Ok(Outcome::Fail(Failure { code, message, message_detail }))
        }
        _ => Err(EnvelopeError::BadField { field: "stat", problem: "neither OK nor FAIL" }),
    }
}

/// `{"stat":"OK","response":<response>}` as bytes.
pub fn ok_body(response: &Value) -> Vec<u8> {
    let v = serde_json::json!({"stat": "OK", "response": response});
    v.to_string().into_bytes()
}

/// A list page: `{"stat":"OK","response":[…],"metadata":{"total_objects":…,"next_offset":…,"prev_offset":…}}`
/// with all three metadata keys present (`null` when not applicable), as Duo sends them.
pub fn ok_page_body(items: &[Value], metadata: Metadata) -> Vec<u8> {
    let v = serde_json::json!({
        "stat": "OK",
        "response": items,
        "metadata": {
            "total_objects": metadata.total_objects,
            "next_offset": metadata.next_offset,
            "prev_offset": metadata.prev_offset,
        },
    });
    v.to_string().into_bytes()
}

/// `{"stat":"FAIL","code":…,"message":…[,"message_detail":…]}` as bytes.
pub fn fail_body(code: u32, message: &str, message_detail: Option<&str>) -> Vec<u8> {
    let mut v = serde_json::json!({"stat": "FAIL", "code": code, "message": message});
    if let (Some(d), Some(obj)) = (message_detail, v.as_object_mut()) {
        obj.insert("message_detail".into(), Value::String(d.to_owned()));
    }
    v.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_and_fail() {
        let o = parse(br#"{"stat":"OK","response":""}"#);
        assert_eq!(o, Ok(Outcome::Ok { response: Value::String(String::new()), metadata: None }));
        let f = parse(br#"{"stat":"FAIL","code":"42901","message":"Too Many Requests"}"#);
        assert_eq!(
            f,
            Ok(Outcome::Fail(Failure { code: Some(42901), message: "Too Many Requests".into(), message_detail: None }))
        );
    }

    #[test]
    fn metadata_variants() {
        let nested = parse(br#"{"stat":"OK","response":{"metadata":{"next_offset":"5"}}}"#);
        assert!(matches!(nested, Ok(Outcome::Ok { metadata: Some(Metadata { next_offset: Some(5), .. }), .. })));
        let bad = parse(br#"{"stat":"OK","response":[],"metadata":{"next_offset":-1}}"#);
        assert_eq!(bad, Err(EnvelopeError::BadField { field: "metadata.next_offset", problem: "not a non-negative integer" }));
        let last = parse(br#"{"stat":"OK","response":[],"metadata":{"next_offset":null,"prev_offset":0,"total_objects":4}}"#);
        assert!(matches!(last, Ok(Outcome::Ok { metadata: Some(Metadata { next_offset: None, prev_offset: Some(0), total_objects: Some(4) }), .. })));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse(b""), Err(EnvelopeError::Empty));
        assert!(matches!(parse(br#"{"stat":"OK","resp"#), Err(EnvelopeError::NotJson { .. })));
        assert!(matches!(parse(b"<html>"), Err(EnvelopeError::NotJson { .. })));
        assert_eq!(parse(b"[]"), Err(EnvelopeError::BadField { field: "stat", problem: "missing (body is not an object)" }));
        assert_eq!(parse(br#"{"response":1}"#), Err(EnvelopeError::BadField { field: "stat", problem: "missing" }));
        assert_eq!(parse(br#"{"stat":"MAYBE"}"#), Err(EnvelopeError::BadField { field: "stat", problem: "neither OK nor FAIL" }));
    }

    #[test]
    fn builders_roundtrip() {
        let b = fail_body(40002, "Invalid request parameters", Some("username"));
        assert_eq!(
            parse(&b),
            Ok(Outcome::Fail(Failure {
                code: Some(40002),
                message: "Invalid request parameters".into(),
                message_detail: Some("username".into())
            }))
        );
        let m = Metadata { total_objects: Some(4), next_offset: Some(2), prev_offset: None };
        let p = ok_page_body(&[serde_json::json!({"a":1})], m);
        assert!(String::from_utf8_lossy(&p).contains(r#""prev_offset":null"#));
        assert_eq!(parse(&p), Ok(Outcome::Ok { response: serde_json::json!([{"a":1}]), metadata: Some(m) }));
    }
}
