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

use crate::sign::{SignatureVariant, canon_params, method_has_body};

/// `Content-Type` of a v4/v5 JSON body.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// `Content-Type` of a v2 form body.
pub const CONTENT_TYPE_FORM: &str = "application/x-www-form-urlencoded";

/// A request's parameters laid out for the wire and for signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Query string without the leading `?` (empty when there is none).
    pub query: String,
    /// Body bytes (empty for GET/DELETE).
    pub body: Vec<u8>,
    /// `Content-Type` to send with the body, if there is one.
    pub content_type: Option<&'static str>,
    /// The canonical-parameters line to sign.
    pub canon_params: String,
}

/// Lays out string parameters for `method` under `variant`, the way Duo's official clients do:
/// GET/DELETE put them in the query; POST/PUT/PATCH put them in a form body (v2) or a JSON object
/// body (v4/v5, canonical parameters then empty; no parameters give `{}`). The query and form
/// body use the canonical encoding, so the bytes sent are exactly the bytes signed.
///
/// ```
/// use duoprov_duo_wire::params::prepare;
/// use duoprov_duo_wire::SignatureVariant;
/// let p = prepare(SignatureVariant::V5, "GET", &[("username", "a b")]);
/// assert_eq!((p.query.as_str(), p.canon_params.as_str(), p.body.len()), ("username=a%20b", "username=a%20b", 0));
/// let p = prepare(SignatureVariant::V5, "POST", &[("username", "a b")]);
/// assert_eq!((p.query.as_str(), p.canon_params.as_str(), p.body.as_slice()), ("", "", br#"{"username":"a b"}"#.as_slice()));
/// let p = prepare(SignatureVariant::V2Sha1, "POST", &[("username", "a b")]);
/// assert_eq!((p.query.as_str(), p.canon_params.as_str(), p.body.as_slice()), ("", "username=a%20b", b"username=a%20b".as_slice()));
/// ```
pub fn prepare<K: AsRef<str>, V: AsRef<str>>(variant: SignatureVariant, method: &str, params: &[(K, V)]) -> Prepared {
    if method_has_body(method) {
        if variant.params_in_json_body(method) {
            Prepared {
                query: String::new(),
                body: json_body_from_pairs(params).into_bytes(),
                content_type: Some(CONTENT_TYPE_JSON),
                canon_params: String::new(),
            }
        } else {
            let canon = canon_str_params(params);
            Prepared { query: String::new(), body: canon.clone().into_bytes(), content_type: Some(CONTENT_TYPE_FORM), canon_params: canon }
        }
    } else {
        let canon = canon_str_params(params);
        Prepared { query: canon.clone(), body: Vec::new(), content_type: None, canon_params: canon }
    }
}

/// Same as [`prepare`] for v4/v5 POST/PUT/PATCH, but with an arbitrary JSON object as the body
/// (for endpoints whose parameters are not flat strings, e.g. `/admin/v1/bulk` operations).
/// For other variants or methods, a JSON object is not a valid parameter set and the string
/// members are laid out with [`prepare`] (non-string members are serialised with [`canon_json`]).
pub fn prepare_json(variant: SignatureVariant, method: &str, body: &serde_json::Map<String, Value>) -> Prepared {
    if variant.params_in_json_body(method) {
        return Prepared {
            query: String::new(),
            body: canon_json(&Value::Object(body.clone())).into_bytes(),
            content_type: Some(CONTENT_TYPE_JSON),
            canon_params: String::new(),
        };
    }
    let pairs: Vec<(String, String)> = body
        .iter()
        .map(|(k, v)| (k.clone(), match v {
            Value::String(s) => s.clone(),
            other => canon_json(other),
        }))
        .collect();
    prepare(variant, method, &pairs)
}

fn canon_str_params<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let as_bytes: Vec<(&[u8], &[u8])> = params.iter().map(|(k, v)| (k.as_ref().as_bytes(), v.as_ref().as_bytes())).collect();
    canon_params(&as_bytes)
}

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
