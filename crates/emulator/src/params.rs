//! Request parameters as Duo accepts them: from the query string (any method), from an
//! `application/x-www-form-urlencoded` body (signature v2) or from an `application/json` object
//! body (v4/v5). Values from query and form are strings; JSON values keep their type, and the
//! getters accept both spellings (`"1"`/`true`, a JSON-encoded list string or a real array).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ApiError;

/// Decoded parameters (the last value wins for a repeated key).
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: BTreeMap<String, Value>,
    missing_code: u32,
}

/// How the body was interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json`.
    Json,
    /// Any other content type with a non-empty body.
    Other,
}

/// Classifies a body by its `Content-Type` (case-insensitive, parameters ignored).
pub fn body_kind(content_type: Option<&str>, body: &[u8]) -> BodyKind {
    if body.is_empty() {
        return BodyKind::Empty;
    }
    let ct = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "application/json" => BodyKind::Json,
        _ => BodyKind::Other,
    }
}

/// Decodes `application/x-www-form-urlencoded` text (also used for query strings: `+` is a
/// space) into ordered pairs. Invalid UTF-8 is replaced, as form decoding does.
pub fn decode_form(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl Params {
    /// Builds parameters from the query pairs and the body.
    pub fn build(
        query: &[(String, String)],
        kind: BodyKind,
        body: &[u8],
        missing_code: u32,
    ) -> Result<Self, ApiError> {
        let mut values = BTreeMap::new();
        for (k, v) in query {
            values.insert(k.clone(), Value::String(v.clone()));
        }
        match kind {
            BodyKind::Empty => {}
            BodyKind::Form => {
                for (k, v) in decode_form(body) {
                    values.insert(k, Value::String(v));
                }
            }
            BodyKind::Json => {
                let parsed: Value = serde_json::from_slice(body)
                    .map_err(|_| ApiError::invalid("body (not valid JSON)"))?;
                let Value::Object(obj) = parsed else {
                    return Err(ApiError::invalid("body (JSON body must be an object)"));
                };
                for (k, v) in obj {
                    values.insert(k, v);
                }
            }
            BodyKind::Other => return Err(ApiError::invalid("Content-Type")),
        }
        Ok(Self {
            values,
            missing_code,
        })
    }

    /// Parameters from a JSON object (bulk operation bodies).
    pub fn from_object(obj: serde_json::Map<String, Value>, missing_code: u32) -> Self {
        Self {
            values: obj.into_iter().collect(),
            missing_code,
        }
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// Parameter names.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The raw value.
    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// The error for a missing required parameter (40002 or 40001 by setting).
    pub fn missing(&self, key: &str) -> ApiError {
        if self.missing_code == 40001 {
            ApiError::missing_40001(key)
        } else {
            ApiError::invalid(key)
        }
    }

    /// A string value; numbers and booleans are accepted as their text, `null` as absent.
    pub fn opt_str(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ApiError::invalid(key)),
        }
    }

    /// A required non-empty string.
    pub fn req_str(&self, key: &str) -> Result<String, ApiError> {
        match self.opt_str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(ApiError::invalid(key)),
            None => Err(self.missing(key)),
        }
    }

    /// A boolean: `true`/`false`, `1`/`0` (strings, numbers or JSON booleans).
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(ApiError::invalid(key)),
            },
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "1" | "true" => Ok(Some(true)),
                "0" | "false" => Ok(Some(false)),
                _ => Err(ApiError::invalid(key)),
            },
            Some(_) => Err(ApiError::invalid(key)),
        }
    }

    /// A non-negative integer.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, ApiError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|v| Some(v as usize))
                .ok_or_else(|| ApiError::invalid(key)),
            Some(Value::String(s)) => s
                .trim()
                .parse::<usize>()
                .map(Some)
                .map_err(|_| ApiError::invalid(key)),
            Some(_) => Err(ApiError::invalid(key)),
        }
    }

    /// A list: a real JSON array, or a string holding a JSON-encoded array (Duo's `*_list`
    /// parameters). Items are returned as JSON values.
    pub fn opt_list(&self, key: &str) -> Result<Option<Vec<Value>>, ApiError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.clone())),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(a)) => Ok(Some(a)),
                _ => Err(ApiError::invalid(key)),
            },
            Some(_) => Err(ApiError::invalid(key)),
        }
    }

    /// A list of strings (see [`Params::opt_list`]).
    pub fn opt_str_list(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        let Some(items) = self.opt_list(key)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::invalid(key)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An object: a real JSON object, or a string of `k=v&k2=v2` pairs (Duo's `aliases`).
    pub fn opt_pairs(&self, key: &str) -> Result<Option<Vec<(String, String)>>, ApiError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => o
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Null => Ok((k.clone(), String::new())),
                    _ => Err(ApiError::invalid(key)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => {
                if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(s) {
                    return o
                        .iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => Ok((k.clone(), s.clone())),
                            Value::Null => Ok((k.clone(), String::new())),
                            _ => Err(ApiError::invalid(key)),
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(Some);
                }
                Ok(Some(decode_form(s.as_bytes())))
            }
            Some(_) => Err(ApiError::invalid(key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_query_and_json_agree() {
        let q = decode_form(b"username=John+Smith%2Bx&limit=5");
        let p = Params::build(&q, BodyKind::Empty, b"", 40002).expect("params");
        assert_eq!(
            p.opt_str("username").ok().flatten().as_deref(),
            Some("John Smith+x")
        );
        assert_eq!(p.opt_usize("limit").ok().flatten(), Some(5));
        let j = Params::build(
            &[],
            BodyKind::Json,
            br#"{"push_enabled":"1","sms_enabled":false,"user_id_list":["a"]}"#,
            40002,
        )
        .expect("json");
        assert_eq!(j.opt_bool("push_enabled").ok().flatten(), Some(true));
        assert_eq!(j.opt_bool("sms_enabled").ok().flatten(), Some(false));
        assert_eq!(
            j.opt_str_list("user_id_list").ok().flatten(),
            Some(vec!["a".to_owned()])
        );
        let s = Params::build(
            &decode_form(b"user_id_list=%5B%22a%22%2C%22b%22%5D"),
            BodyKind::Empty,
            b"",
            40002,
        )
        .expect("string list");
        assert_eq!(
            s.opt_str_list("user_id_list")
                .ok()
                .flatten()
                .map(|v| v.len()),
            Some(2)
        );
    }

    #[test]
    fn bad_bodies_are_40002() {
        assert_eq!(
            Params::build(&[], BodyKind::Json, b"{nope", 40002)
                .map_err(|e| e.code)
                .err(),
            Some(40002)
        );
        assert_eq!(
            Params::build(&[], BodyKind::Json, b"[1]", 40002)
                .map_err(|e| e.code)
                .err(),
            Some(40002)
        );
        assert_eq!(
            Params::build(&[], BodyKind::Other, b"x", 40002)
                .map_err(|e| e.code)
                .err(),
            Some(40002)
        );
    }

    #[test]
    fn aliases_as_pairs() {
        let p = Params::build(
            &decode_form(b"aliases=alias1%3Djoe%26alias2%3D"),
            BodyKind::Empty,
            b"",
            40002,
        )
        .expect("p");
        assert_eq!(
            p.opt_pairs("aliases").ok().flatten(),
            Some(vec![
                ("alias1".into(), "joe".into()),
                ("alias2".into(), String::new())
            ])
        );
    }
}
