//! Where request parameters travel and how they are serialised, per signature variant:
//! - GET/DELETE (all variants): in the query string;
//! - POST/PUT/PATCH with v2: in an `application/x-www-form-urlencoded` body;
//! - POST/PUT/PATCH with v4/v5: as a JSON object body, and the canonical parameters are empty.
//!
//! The query string and form body are written with exactly the canonical encoding
//! ([`crate::sign::canon_params`]: RFC 3986, `%20`, sorted), so the bytes on the wire are the bytes
//! signed. The JSON body is written like Duo's Python client's `canon_json`
//! (`json.dumps(sort_keys=True, separators=(',', ':'))`: keys sorted, compact, non-ASCII escaped
//! as `\uXXXX`), so duoprov's requests are byte-identical to the official client's.
//!
//! ```
//! use duoprov_duo_wire::params::canon_json;
//! let v = serde_json::json!({"username": "jdoe", "realname": "Jane Doé"});
//! assert_eq!(canon_json(&v), r#"{"realname":"Jane Do\u00e9","username":"jdoe"}"#);
//! ```

use serde_json::Value;

/// Serialises `v` like Python's `json.dumps(v, sort_keys=True, separators=(',', ':'))` with the
/// default `ensure_ascii=True`. Integers are written in decimal; floats with serde_json's shortest
/// representation (Duo parameters are strings, so floats do not occur in practice).
pub fn canon_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            // Python sorts str keys by code point; UTF-8 byte order is the same order.
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                if let Some(x) = m.get(k.as_str()) {
                    write_json(x, out);
                }
            }
            out.push('}');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Builds a JSON object body from string parameters (a repeated key becomes an array of its
/// values, in the order given), serialised with [`canon_json`].
pub fn json_body_from_pairs<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut m = serde_json::Map::new();
    for (k, v) in params {
        let v = Value::String(v.as_ref().to_owned());
        match m.get_mut(k.as_ref()) {
            Some(Value::Array(a)) => a.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
            }
            None => {
                m.insert(k.as_ref().to_owned(), v);
            }
        }
    }
    canon_json(&Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_compatible_escaping() {
        assert_eq!(canon_json(&json!({})), "{}");
        assert_eq!(canon_json(&json!({"b": [1, true, null], "a": "x\"\\\n\u{7f}\u{1}"})), r#"{"a":"x\"\\\n\u007f\u0001","b":[1,true,null]}"#);
        assert_eq!(canon_json(&json!("😀")), r#""\ud83d\ude00""#);
        assert_eq!(canon_json(&json!({"é": 1, "z": 2, "Z": 3})), r#"{"Z":3,"z":2,"\u00e9":1}"#);
    }

    #[test]
    fn pairs_to_json() {
        assert_eq!(json_body_from_pairs(&[("k", "1"), ("k", "2"), ("a", "x")]), r#"{"a":"x","k":["1","2"]}"#);
        assert_eq!(json_body_from_pairs::<&str, &str>(&[]), "{}");
    }
}
