//! Errors. [`ApiError`] is a failure the emulator reports to a client in Duo's envelope
//! (`{"stat":"FAIL","code":…,"message":…,"message_detail":…}`, the first three digits of `code`
//! being the HTTP status); [`Error`] is a failure of the emulator itself (binding, the state file,
//! a bad fault spec or setting) reported to whoever started it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A Duo-style API failure: HTTP status, numeric code, message and optional detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Duo's five-digit code (`40002`, `40401`, …).
    pub code: u32,
    /// Duo's message text.
    pub message: String,
    /// The offending parameter or a short explanation, when there is one.
    pub detail: Option<String>,
}

impl ApiError {
    fn new(status: u16, code: u32, message: &str, detail: Option<String>) -> Self {
        Self {
            status,
            code,
            message: message.to_owned(),
            detail,
        }
    }

    /// 400/40002 `Invalid request parameters`, naming the parameter.
    pub fn invalid(param: impl Into<String>) -> Self {
        Self::new(400, 40002, "Invalid request parameters", Some(param.into()))
    }

    /// 400/40004 `Operation failed`, "User is already a member of the specified group" (real
    /// Duo's answer to adding an existing membership, as captured in Grouper's Duo provisioner).
    pub fn already_a_member() -> Self {
        Self::new(
            400,
            40004,
            "Operation failed",
            Some("User is already a member of the specified group".to_owned()),
        )
    }

    /// 400/40003 `Duplicate resource`: real Duo's answer to a group name another group has (as
    /// Grouper's legacy connector reads it, `GrouperDuoCommands.alreadyExisted`).
    pub fn duplicate_resource() -> Self {
        Self::new(400, 40003, "Duplicate resource", None)
    }

    /// 500/50001 `Unknown internal server error`: what Duo's rate-limits page says the Admin API
    /// answers to a change that would break an object limit (such as 100 groups per user).
    pub fn object_limit() -> Self {
        Self::new(500, 50001, "Unknown internal server error", None)
    }

    /// 400/40001 `Missing required request parameters` (only used when the missing-parameter
    /// code is configured as 40001).
    pub fn missing_40001(param: impl Into<String>) -> Self {
        Self::new(
            400,
            40001,
            "Missing required request parameters",
            Some(param.into()),
        )
    }

    /// 401/40101 `Missing request credentials`.
    pub fn missing_credentials() -> Self {
        Self::new(401, 40101, "Missing request credentials", None)
    }

    /// 401/40102 `Invalid integration key in request credentials`.
    pub fn invalid_ikey() -> Self {
        Self::new(
            401,
            40102,
            "Invalid integration key in request credentials",
            None,
        )
    }

    /// 401/40103 `Invalid signature in request credentials`, with an optional reason.
    pub fn invalid_signature(detail: Option<String>) -> Self {
        Self::new(
            401,
            40103,
            "Invalid signature in request credentials",
            detail,
        )
    }

    /// 403/40301 `Access forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, 40301, "Access forbidden", Some(detail.into()))
    }

    /// 404/40401 `Resource not found`.
    pub fn not_found() -> Self {
        Self::new(404, 40401, "Resource not found", None)
    }

    /// 405/40501 `Method not allowed` (a known path with a method it does not serve).
    pub fn method_not_allowed() -> Self {
        Self::new(405, 40501, "Method not allowed", None)
    }

    /// 413/41301 `Request entity too large` (the body exceeded the configured cap).
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            41301,
            "Request entity too large",
            Some(format!("body exceeds {limit} bytes")),
        )
    }

    /// 429/42901 `Too Many Requests` (no `Retry-After`, as Duo).
    pub fn rate_limited() -> Self {
        Self::new(429, 42901, "Too Many Requests", None)
    }

    /// 500/50001 `Internal server error` (injected fault).
    pub fn internal() -> Self {
        Self::new(500, 50001, "Internal server error", None)
    }

    /// 503/50301 `Service unavailable` (injected fault).
    pub fn unavailable() -> Self {
        Self::new(503, 50301, "Service unavailable", None)
    }

    /// The envelope body as JSON bytes.
    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Fail<'a> {
            stat: &'static str,
            code: u32,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            message_detail: Option<&'a str>,
        }
        let fail = Fail {
            stat: "FAIL",
            code: self.code,
            message: &self.message,
            message_detail: self.detail.as_deref(),
        };
        serde_json::to_vec(&fail).unwrap_or_else(|_| {
            br#"{"stat":"FAIL","code":50001,"message":"Internal server error"}"#.to_vec()
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.status, self.code, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, self.body()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// Why an address could not be bound, and what to do about it.
fn bind_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "the address is already in use (another emulator, or another program, listens there); stop it, or pick a free port with --listen 127.0.0.1:PORT and put the same port in the url of the [duo.*] section that uses the emulator".to_owned()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges); pick a port above 1024 with --listen 127.0.0.1:PORT".to_owned()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "no network interface of this machine has that address; use 127.0.0.1:PORT".to_owned()
        }
        _ => format!("{e} (expected an address such as 127.0.0.1:8443)"),
    }
}

/// A failure of the emulator itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound or parsed. The cause is part of the message (not
    /// a separate source, which `{:#}` would print a second time), with the fix.
    #[error("cannot listen on {addr}: {}", bind_reason(cause))]
    Bind {
        /// The address as given.
        addr: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// Serving failed.
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The state file could not be read or written.
    #[error("state file {path}: {source}")]
    StateIo {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The state file holds something that is not a valid tenant.
    #[error("state file {path}: {message}")]
    StateFormat {
        /// The file (or `<inline>` for state given in memory).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A `--faults` specification could not be parsed.
    #[error("fault spec: {0}")]
    FaultSpec(String),
    /// A setting or command-line option is invalid.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// The secret key could not be read from its source (the key itself is never shown).
    #[error("secret key: {0}")]
    Secret(String),
}
