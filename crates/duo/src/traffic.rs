//! The HTTP traffic log (Grouper's command log): per attempt, the method, URL, request headers
//! with `Authorization: *******`, status, elapsed milliseconds, the request body (at most 20 000
//! characters, values of parameters named like `pass`/`secret` masked) and the response body (at
//! most 3 000 characters). Bodies are shown per [`BodyLog`] (the connection's
//! `log_http_bodies`): e-mail addresses and phone numbers masked (the default), in full, or not at
//! all; secrets are masked in every mode. Entries are tracing events with
//! target [`TRAFFIC_TARGET`] at INFO level (mode `always`) or WARN level (mode `on_error`, for
//! failed attempts only), so they go wherever the application's subscriber sends logs.
//!
//! Entries come in two [`TrafficFormat`]s: `full` (every field above on one event) and `compact`
//! (one short line per attempt, `POST /admin/v1/users  200  12 ms`: method, path without its
//! query, status, time taken; the masked query and bodies ride along as fields only when the body
//! mode shows bodies). [`TRAFFIC_LINE_FIELDS`] names the fields a log formatter that prints
//! compact entries as bare lines needs to know.
//!
//! The `Authorization` value is replaced before anything is formatted, so neither the signature
//! nor anything derived from the secret key can reach the log; the compact format shows no
//! headers at all.

use std::fmt::Write as _;

use crate::config::TrafficLogMode;

/// Tracing target of traffic-log events.
pub const TRAFFIC_TARGET: &str = "duoprov_duo::traffic";
/// Longest request body logged, in characters.
pub const MAX_REQUEST_BODY_CHARS: usize = 20_000;
/// Longest response body logged, in characters.
pub const MAX_RESPONSE_BODY_CHARS: usize = 3_000;
/// What replaces the `Authorization` value.
pub const MASK: &str = "*******";

/// How a traffic-log entry is written (the provisioner's `log_http_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrafficFormat {
    /// Method, URL, masked headers, status, time and bodies on one event (the default).
    #[default]
    Full,
    /// One short line per attempt: method, path (no query), status, time taken; the masked query
    /// and bodies as extra fields, only when [`BodyLog`] shows bodies.
    Compact,
}

impl std::str::FromStr for TrafficFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(TrafficFormat::Full),
            "compact" => Ok(TrafficFormat::Compact),
            other => Err(format!("{other:?} is not one of full, compact")),
        }
    }
}

/// The fields of a compact entry besides its message, in the order a line formatter shows them
/// under the line: the query (masked like a form body), the request body and the response body.
/// Each is present only when it is non-empty and bodies are shown.
pub const TRAFFIC_LINE_FIELDS: [&str; 3] = ["query", "request_body", "response_body"];

/// One logged attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficEntry {
    /// Call label, e.g. `GET /admin/v1/users`.
    pub call: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// HTTP method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Request headers, `Authorization` masked.
    pub request_headers: Vec<(String, String)>,
    /// Status, when a response arrived.
    pub status: Option<u16>,
    /// Milliseconds from send to fully read response (or failure).
    pub elapsed_ms: u128,
    /// Request body, truncated.
    pub request_body: String,
    /// Response body or transport error, truncated.
    pub response_body: String,
    /// The query string as the compact format shows it (personal data masked per the body
    /// mode; empty when bodies are not shown or there is no query).
    pub query: String,
}

/// Masks the `Authorization` header (any case).
pub fn mask_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("proxy-authorization") {
                (k.clone(), MASK.to_owned())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

fn sensitive_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("pass") || n.contains("secret")
}

fn mask_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if sensitive_name(k) {
                    *x = serde_json::Value::String(MASK.to_owned());
                } else {
                    mask_json(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(mask_json),
        serde_json::Value::String(s) => {
            // JSON-encoded strings inside parameters (bulk `operations`, `users`).
            if let Ok(mut inner @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) = serde_json::from_str(s) {
                mask_json(&mut inner);
                *s = inner.to_string();
            }
        }
        _ => {}
    }
}

/// The request body as it may be logged: values of parameters whose name contains `pass` or
/// `secret` (any case) are replaced by [`MASK`], in form bodies and (nested) JSON bodies, as
/// Grouper's command log does. Other bodies are returned unchanged.
pub fn mask_body(body: &[u8], content_type: Option<&str>) -> Vec<u8> {
    match content_type {
        Some(ct) if ct.starts_with("application/json") => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(mut v) => {
                let before = v.clone();
                mask_json(&mut v);
                if v == before { body.to_vec() } else { duoprov_duo_wire::params::canon_json(&v).into_bytes() }
            }
            Err(_) => body.to_vec(),
        },
        Some(ct) if ct.starts_with("application/x-www-form-urlencoded") => {
            let pairs: Vec<(String, String)> =
                form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            if !pairs.iter().any(|(k, _)| sensitive_name(k)) {
                return body.to_vec();
            }
            let masked: Vec<(String, String)> = pairs
                .into_iter()
                .map(|(k, v)| if sensitive_name(&k) { (k, MASK.to_owned()) } else { (k, v) })
                .collect();
            duoprov_duo_wire::sign::canon_params(&masked).into_bytes()
        }
        _ => body.to_vec(),
    }
}

/// How much of request and response bodies the traffic log shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyLog {
    /// Bodies with e-mail addresses and phone numbers masked (the default): user objects carry
    /// both, and a traffic log is often shared with support.
    #[default]
    Masked,
    /// Bodies as sent and received (secrets still masked).
    Full,
    /// No bodies.
    None,
}

impl std::str::FromStr for BodyLog {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "masked" => Ok(BodyLog::Masked),
            "full" => Ok(BodyLog::Full),
            "none" => Ok(BodyLog::None),
            other => Err(format!("{other:?} is not one of masked, full, none")),
        }
    }
}

/// `jdoe@example.edu` → `***@example.edu`: the domain stays (it helps to tell accounts apart).
fn looks_like_email(s: &str) -> Option<&str> {
    let (local, domain) = s.rsplit_once('@')?;
    (!local.is_empty() && !local.contains(char::is_whitespace) && domain.contains('.') && !domain.contains(char::is_whitespace)).then_some(domain)
}

/// A phone number: digits with the usual separators, at least seven digits, nothing else.
fn looks_like_phone(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    digits >= 7 && s.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.' | ','))
}

/// Every digit but the last two replaced by `*` (also the support bundle's phone mask).
pub fn mask_phone(s: &str) -> String {
    let total = s.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + 2 <= total { '*' } else { c }
            } else {
                c
            }
        })
        .collect()
}

/// The personal-data mask of one string value, when it is an e-mail address or phone number
/// (or sits under a key that holds one).
fn mask_personal(key: Option<&str>, value: &str) -> Option<String> {
    let key = key.map(str::to_ascii_lowercase);
    if let Some(domain) = looks_like_email(value) {
        return Some(format!("***@{domain}"));
    }
    let phone_key = key.as_deref().is_some_and(|k| matches!(k, "number" | "phone" | "phone_number" | "phonenumber" | "mobile"));
    if looks_like_phone(value) || (phone_key && value.chars().any(|c| c.is_ascii_digit())) {
        return Some(mask_phone(value));
    }
    None
}

fn mask_personal_json(key: Option<&str>, v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                mask_personal_json(Some(k), x);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| mask_personal_json(key, x)),
        serde_json::Value::String(s) => {
            // JSON-encoded strings inside parameters (bulk `operations`, `users`).
            if let Ok(mut inner @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) = serde_json::from_str(s) {
                mask_personal_json(None, &mut inner);
                *s = inner.to_string();
            } else if let Some(masked) = mask_personal(key, s) {
                *s = masked;
            }
        }
        _ => {}
    }
}

/// A body with e-mail addresses and phone numbers masked: JSON (Duo's replies, v5 request
/// bodies) value by value, form bodies parameter by parameter. A body that is neither is
/// withheld whole rather than shown unmasked.
pub fn mask_personal_data(body: &[u8]) -> Vec<u8> {
    if body.is_empty() {
        return Vec::new();
    }
    if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) {
        mask_personal_json(None, &mut v);
        return v.to_string().into_bytes();
    }
    let text = String::from_utf8_lossy(body);
    if !text.contains(char::is_whitespace) && text.contains('=') {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
            .map(|(k, v)| {
                let masked = mask_personal(Some(&k), &v).unwrap_or_else(|| v.into_owned());
                (k.into_owned(), masked)
            })
            .collect();
        return duoprov_duo_wire::sign::canon_params(&pairs).into_bytes();
    }
    format!("[{} bytes withheld: not JSON, so e-mail addresses and phone numbers could not be masked]", body.len()).into_bytes()
}

/// A body as the traffic log shows it under `mode`, at most `max` characters.
pub fn loggable_body(body: &[u8], mode: BodyLog, max: usize) -> String {
    match mode {
        BodyLog::None => String::new(),
        BodyLog::Full => truncate_chars(body, max),
        BodyLog::Masked => truncate_chars(&mask_personal_data(body), max),
    }
}

/// The query of `url` as the compact format shows it: parameters named like `pass`/`secret`
/// masked, then personal data per `mode`; empty when there is no query or `mode` shows no bodies.
pub fn loggable_query(url: &str, mode: BodyLog) -> String {
    match url.split_once('?') {
        Some((_, q)) if !q.is_empty() => {
            loggable_body(&mask_body(q.as_bytes(), Some("application/x-www-form-urlencoded")), mode, MAX_REQUEST_BODY_CHARS)
        }
        _ => String::new(),
    }
}

/// The first `max` characters of `bytes` read as UTF-8 (lossily), with a marker when cut.
pub fn truncate_chars(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out: String = s.chars().take(max).collect();
    if s.chars().nth(max).is_some() {
        let total = s.chars().count();
        let _ = write!(out, "…[{} more characters]", total - max);
    }
    out
}

impl TrafficEntry {
    /// Headers as `Name: value` lines joined with `; `.
    pub fn headers_line(&self) -> String {
        self.request_headers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; ")
    }

    /// The URL's path, without scheme, host or query.
    pub fn path(&self) -> &str {
        let rest = match self.url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => &self.url,
        };
        rest.split(['?', '#']).next().unwrap_or(rest)
    }

    /// The compact line: `POST /admin/v1/users  200  12 ms`, or `no response` in place of the
    /// status when none arrived.
    pub fn compact_line(&self) -> String {
        let status = self.status.map_or_else(|| "no response".to_owned(), |s| s.to_string());
        format!("{} {}  {status}  {} ms", self.method, self.path(), self.elapsed_ms)
    }

    /// Emits the entry as a tracing event if `mode` asks for it (`failed` = this attempt did not
    /// end in HTTP 200), in `format`.
    pub fn emit(&self, mode: TrafficLogMode, format: TrafficFormat, failed: bool) {
        if format == TrafficFormat::Compact {
            return self.emit_compact(mode, failed);
        }
        match mode {
            TrafficLogMode::Off => {}
            TrafficLogMode::Always if !failed => {
                tracing::info!(
                    target: TRAFFIC_TARGET,
                    call = %self.call, attempt = self.attempt, method = %self.method, url = %self.url,
                    status = self.status, elapsed_ms = self.elapsed_ms as u64,
                    request_headers = %self.headers_line(), request_body = %self.request_body,
                    response_body = %self.response_body, "Duo HTTP call"
                );
            }
            TrafficLogMode::Always | TrafficLogMode::OnError => {
                if failed {
                    tracing::warn!(
                        target: TRAFFIC_TARGET,
                        call = %self.call, attempt = self.attempt, method = %self.method, url = %self.url,
                        status = self.status, elapsed_ms = self.elapsed_ms as u64,
                        request_headers = %self.headers_line(), request_body = %self.request_body,
                        response_body = %self.response_body, "Duo HTTP call failed"
                    );
                }
            }
        }
    }

    fn emit_compact(&self, mode: TrafficLogMode, failed: bool) {
        fn shown(s: &str) -> Option<&str> {
            (!s.is_empty()).then_some(s)
        }
        let (query, request_body, response_body) = (shown(&self.query), shown(&self.request_body), shown(&self.response_body));
        let line = self.compact_line();
        match (mode, failed) {
            (TrafficLogMode::Off, _) | (TrafficLogMode::OnError, false) => {}
            (TrafficLogMode::Always, false) => {
                tracing::info!(target: TRAFFIC_TARGET, query, request_body, response_body, "{line}");
            }
            (_, true) => {
                tracing::warn!(target: TRAFFIC_TARGET, query, request_body, response_body, "{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_is_masked_in_replies_and_requests() {
        let reply = br#"{"stat":"OK","response":[{"user_id":"DU1","username":"jdoe","email":"jdoe@example.edu","realname":"Jane Doe","phones":[{"number":"+15555550123","extension":"","name":"mobile"}],"notes":"call 555-555-0199 or jane.doe@example.org"}]}"#;
        let m = String::from_utf8(mask_personal_data(reply)).unwrap();
        for gone in ["jdoe@example.edu", "+15555550123", "5550123"] {
            assert!(!m.contains(gone), "{gone} shown: {m}");
        }
        assert!(m.contains("\"email\":\"***@example.edu\"") && m.contains("+*********23") && m.contains("\"username\":\"jdoe\"") && m.contains("Jane Doe"), "{m}");
        // Free text keeps its words; only whole values that are addresses or numbers are masked.
        assert!(m.contains("call 555-555-0199 or jane.doe@example.org"), "{m}");
        let form = mask_personal_data(b"email=jdoe%40example.edu&username=jdoe&phone=%2B15555550123");
        let form = String::from_utf8(form).unwrap();
        assert!(!form.contains("jdoe%40example.edu") && !form.contains("15555550123") && form.contains("username=jdoe"), "{form}");
        let nested = br#"{"users":"[{\"username\":\"a\",\"email\":\"a@b.edu\"}]"}"#;
        let n = String::from_utf8(mask_personal_data(nested)).unwrap();
        assert!(!n.contains("a@b.edu") && n.contains("***@b.edu"), "{n}");
        assert_eq!(loggable_body(reply, BodyLog::None, 100), "");
        assert!(loggable_body(reply, BodyLog::Full, 10_000).contains("jdoe@example.edu"));
        assert!(String::from_utf8(mask_personal_data(b"<html>jdoe@example.edu</html>")).unwrap().contains("withheld"));
        assert_eq!("masked".parse::<BodyLog>(), Ok(BodyLog::Masked));
        assert!("partly".parse::<BodyLog>().unwrap_err().contains("masked, full, none"));
    }

    /// What a subscriber printed for the events `f` emits (no colours, no time).
    fn captured(f: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).without_time().finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn entry(url: &str, status: Option<u16>, mode: BodyLog) -> TrafficEntry {
        TrafficEntry {
            call: "POST /admin/v1/users".into(),
            attempt: 1,
            method: "POST".into(),
            url: url.into(),
            request_headers: mask_headers(&[("Authorization".into(), "Basic c2VjcmV0".into())]),
            status,
            elapsed_ms: 12,
            request_body: loggable_body(b"username=jdoe&email=jdoe%40example.edu", mode, MAX_REQUEST_BODY_CHARS),
            response_body: loggable_body(br#"{"stat":"OK","response":{"email":"jdoe@example.edu"}}"#, mode, MAX_RESPONSE_BODY_CHARS),
            query: loggable_query(url, mode),
        }
    }

    #[test]
    fn a_compact_entry_is_one_line_of_method_path_status_and_time_with_bodies_only_when_shown() {
        let url = "https://api-x.duosecurity.com/admin/v1/users?username=jdoe&email=jdoe%40example.edu&password=p1";
        let quiet = entry(url, Some(200), BodyLog::None);
        assert_eq!(quiet.path(), "/admin/v1/users");
        assert_eq!(quiet.compact_line(), "POST /admin/v1/users  200  12 ms");
        let out = captured(|| quiet.emit(TrafficLogMode::Always, TrafficFormat::Compact, false));
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("POST /admin/v1/users  200  12 ms"), "{out}");
        for absent in ["username", "jdoe", "Authorization", "*******", "?"] {
            assert!(!out.contains(absent), "{absent} in a compact line without bodies: {out}");
        }
        let shown = entry(url, Some(200), BodyLog::Masked);
        let out = captured(|| shown.emit(TrafficLogMode::Always, TrafficFormat::Compact, false));
        assert!(out.contains("query=") && out.contains("request_body=") && out.contains("response_body="), "{out}");
        assert!(out.contains("***@example.edu") && !out.contains("jdoe@example.edu") && !out.contains("jdoe%40example.edu"), "{out}");
        assert!(!out.contains("p1") && !out.contains("c2VjcmV0") && !out.contains("Authorization"), "secrets and headers stay out: {out}");
        // The mode still decides whether an entry is written at all.
        assert_eq!(captured(|| quiet.emit(TrafficLogMode::OnError, TrafficFormat::Compact, false)), "");
        let failed = entry(url, None, BodyLog::None);
        let out = captured(|| failed.emit(TrafficLogMode::OnError, TrafficFormat::Compact, true));
        assert!(out.contains("WARN") && out.contains("POST /admin/v1/users  no response  12 ms"), "{out}");
        assert_eq!(entry("http://127.0.0.1:8/admin/v1/groups#x", None, BodyLog::None).path(), "/admin/v1/groups");
        assert_eq!("compact".parse::<TrafficFormat>(), Ok(TrafficFormat::Compact));
        assert!("short".parse::<TrafficFormat>().unwrap_err().contains("full, compact"));
    }

    #[test]
    fn masks_and_truncates() {
        let h = vec![("authorization".to_owned(), "Basic abc".to_owned()), ("Date".to_owned(), "d".to_owned())];
        let m = mask_headers(&h);
        assert_eq!(m[0].1, MASK);
        assert_eq!(m[1].1, "d");
        assert_eq!(truncate_chars("ééé".as_bytes(), 2), "éé…[1 more characters]");
        assert_eq!(truncate_chars(b"abc", 3), "abc");
        let body = br#"{"password":"p1","username":"u","ops":"[{\"body\":{\"client_secret\":\"s2\"}}]"}"#;
        let m = String::from_utf8(mask_body(body, Some("application/json"))).unwrap_or_default();
        assert!(!m.contains("p1") && !m.contains("s2") && m.contains("\"username\":\"u\""), "{m}");
        let m = String::from_utf8(mask_body(b"a=1&Secret_Key=zz", Some("application/x-www-form-urlencoded"))).unwrap_or_default();
        assert_eq!(m, "Secret_Key=%2A%2A%2A%2A%2A%2A%2A&a=1");
        assert_eq!(mask_body(b"username=u", Some("application/x-www-form-urlencoded")), b"username=u");
        assert_eq!(mask_body(br#"{"username":"u"}"#, Some("application/json")), br#"{"username":"u"}"#);
        let long = "x".repeat(MAX_REQUEST_BODY_CHARS + 5);
        let t = truncate_chars(long.as_bytes(), MAX_REQUEST_BODY_CHARS);
        assert!(t.starts_with(&"x".repeat(MAX_REQUEST_BODY_CHARS)) && t.ends_with("[5 more characters]"));
    }
}
