//! The HTTP traffic log (Grouper's command log): per attempt, the method, URL, request headers
//! with `Authorization: *******`, status, elapsed milliseconds, the request body (at most 20 000
//! characters) and the response body (at most 3 000 characters). Entries are tracing events with
//! target [`TRAFFIC_TARGET`] at INFO level (mode `always`) or WARN level (mode `on_error`, for
//! failed attempts only), so they go wherever the application's subscriber sends logs.
//!
//! The `Authorization` value is replaced before anything is formatted, so neither the signature
//! nor anything derived from the secret key can reach the log.

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

    /// Emits the entry as a tracing event if `mode` asks for it (`failed` = this attempt did not
    /// end in HTTP 200).
    pub fn emit(&self, mode: TrafficLogMode, failed: bool) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_truncates() {
        let h = vec![("authorization".to_owned(), "Basic abc".to_owned()), ("Date".to_owned(), "d".to_owned())];
        let m = mask_headers(&h);
        assert_eq!(m[0].1, MASK);
        assert_eq!(m[1].1, "d");
        assert_eq!(truncate_chars("ééé".as_bytes(), 2), "éé…[1 more characters]");
        assert_eq!(truncate_chars(b"abc", 3), "abc");
        let long = "x".repeat(MAX_REQUEST_BODY_CHARS + 5);
        let t = truncate_chars(long.as_bytes(), MAX_REQUEST_BODY_CHARS);
        assert!(t.starts_with(&"x".repeat(MAX_REQUEST_BODY_CHARS)) && t.ends_with("[5 more characters]"));
    }
}
