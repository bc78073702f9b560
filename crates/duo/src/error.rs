//! The client's error type: every failure names the call (`GET /admin/v1/users`) and is
//! classified ([`ErrorKind`]) so callers can decide what to do — retry later, fix a parameter,
//! fix credentials or permissions, or report malformed data. No error ever contains the secret
//! key, the signature or the `Authorization` header.

use std::fmt;
use std::time::Duration;

pub use crate::transport::FailureCause;

/// Which class an error belongs to (for retry decisions, exit codes and reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 401: bad integration key, signature or date.
    Auth,
    /// 403: the Admin API application lacks a permission.
    Forbidden,
    /// 404.
    NotFound,
    /// 400: a parameter was rejected.
    InvalidParameter,
    /// 429 after all retries.
    RateLimited,
    /// 5xx.
    Server,
    /// Connection, TLS, timeout or I/O failure, or the call's overall deadline passed.
    Transport,
    /// The response could not be understood (bad JSON, missing field, wrong id shape, …).
    MalformedResponse,
    /// Any other HTTP status.
    UnexpectedStatus,
    /// The client was configured wrongly (bad URL, unreadable CA file, …) or was asked for
    /// something invalid before any request was sent.
    Config,
    /// A create's outcome could not be determined (it timed out and a read-back could not settle it).
    Unresolved,
    /// The account changed while a listing was read (the items listed disagree with the count Duo
    /// reported, twice); running again usually succeeds.
    Changed,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// 401 from Duo.
    #[error("authentication failed (HTTP 401{}): {message}{}", code_text(*code), hint_text(hint))]
    Auth {
        /// Duo's code (40101, 40102, 40103, …).
        code: Option<u32>,
        /// Duo's message.
        message: String,
        /// The likely causes, from what the client knows (key, signed host, clock skew); empty
        /// when nothing is known.
        hint: String,
    },
    /// 403 from Duo.
    #[error("forbidden (HTTP 403{}): {message}", code_text(*code))]
    Forbidden {
        /// Duo's code (40301).
        code: Option<u32>,
        /// Duo's message.
        message: String,
    },
    /// 404 from Duo.
    #[error("not found (HTTP 404{}): {message}", code_text(*code))]
    NotFound {
        /// Duo's code (40401).
        code: Option<u32>,
        /// Duo's message.
        message: String,
    },
    /// 400 from Duo; `field` is Duo's `message_detail` (usually the parameter name).
    #[error("invalid parameter{} (HTTP 400{}): {message}", field.as_deref().map(|f| format!(" `{f}`")).unwrap_or_default(), code_text(*code))]
    InvalidParameter {
        /// The parameter Duo named, if any.
        field: Option<String>,
        /// Duo's code (40002, 40004, …).
        code: Option<u32>,
        /// Duo's message.
        message: String,
    },
    /// Still 429 after the retry schedule.
    #[error("rate limited (HTTP 429) after {attempts} attempts")]
    RateLimited {
        /// Attempts made.
        attempts: u32,
    },
    /// 5xx from Duo.
    #[error("server error (HTTP {status}{}){}", code.map(|c| format!(", code {c}")).unwrap_or_default(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Server {
        /// HTTP status.
        status: u16,
        /// Duo's code (50001, …), when the body was an envelope carrying one.
        code: Option<u32>,
        /// Duo's message, when the body was an envelope.
        message: Option<String>,
    },
    /// Any other status.
    #[error("unexpected HTTP status {status}")]
    UnexpectedStatus {
        /// HTTP status.
        status: u16,
    },
    /// Network-level failure.
    #[error("{}", transport_text(detail, *cause))]
    Transport {
        /// What failed (connect, TLS, timeout, body read, …); for a cause other than
        /// [`FailureCause::Other`], the whole message: what, where, and the fix.
        detail: String,
        /// Whether the request may have reached the server (false only for connect failures).
        maybe_sent: bool,
        /// What a person can act on; causes other than [`FailureCause::Other`] are not retried.
        cause: FailureCause,
    },
    /// The overall deadline for the call passed.
    #[error("no result within the call deadline of {deadline:?}")]
    Deadline {
        /// The configured deadline.
        deadline: Duration,
    },
    /// The response was not what the endpoint returns.
    #[error("malformed response: field `{field}`: {detail}")]
    Malformed {
        /// The field (`body`, `stat`, `response`, `response[3].user_id`, `metadata.next_offset`, …).
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// Bad configuration or invalid arguments.
    #[error("configuration error: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// A create timed out and reading back could not tell whether it happened.
    #[error("outcome unknown: {detail}")]
    Unresolved {
        /// What is known.
        detail: String,
    },
    /// A listing disagreed with the count Duo reported for it, on two reads.
    #[error("{detail}")]
    Changed {
        /// The endpoint's items listed and reported, and what to do.
        detail: String,
    },
}

/// `, code 40103`, or nothing when Duo gave no code.
fn code_text(code: Option<u32>) -> String {
    code.map(|c| format!(", code {c}")).unwrap_or_default()
}

fn hint_text(hint: &str) -> String {
    if hint.is_empty() { String::new() } else { format!(". {hint}") }
}

fn transport_text(detail: &str, cause: FailureCause) -> String {
    match cause {
        FailureCause::Other => format!("transport error: {detail}"),
        _ => detail.to_owned(),
    }
}

impl ErrorKind {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ErrorKind::Auth { .. } => ErrorClass::Auth,
            ErrorKind::Forbidden { .. } => ErrorClass::Forbidden,
            ErrorKind::NotFound { .. } => ErrorClass::NotFound,
            ErrorKind::InvalidParameter { .. } => ErrorClass::InvalidParameter,
            ErrorKind::RateLimited { .. } => ErrorClass::RateLimited,
            ErrorKind::Server { .. } => ErrorClass::Server,
            ErrorKind::UnexpectedStatus { .. } => ErrorClass::UnexpectedStatus,
            ErrorKind::Transport { .. } | ErrorKind::Deadline { .. } => ErrorClass::Transport,
            ErrorKind::Malformed { .. } => ErrorClass::MalformedResponse,
            ErrorKind::Config { .. } => ErrorClass::Config,
            ErrorKind::Unresolved { .. } => ErrorClass::Unresolved,
            ErrorKind::Changed { .. } => ErrorClass::Changed,
        }
    }
}

/// An error of one Duo call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuoError {
    /// The call, e.g. `GET /admin/v1/users` or `create user "jdoe"`.
    pub call: String,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl DuoError {
    /// Builds an error.
    pub fn new(call: impl Into<String>, kind: ErrorKind) -> Self {
        DuoError { call: call.into(), kind }
    }

    /// Shorthand for [`ErrorKind::class`].
    pub fn class(&self) -> ErrorClass {
        self.kind.class()
    }

    /// Malformed-response error for `field`.
    pub fn malformed(call: impl Into<String>, field: impl Into<String>, detail: impl fmt::Display) -> Self {
        DuoError::new(call, ErrorKind::Malformed { field: field.into(), detail: detail.to_string() })
    }

    /// Configuration error.
    pub fn config(detail: impl fmt::Display) -> Self {
        DuoError::new("configure Duo client", ErrorKind::Config { detail: detail.to_string() })
    }

    /// Whether Duo said 404.
    pub fn is_not_found(&self) -> bool {
        self.class() == ErrorClass::NotFound
    }
}

impl fmt::Display for DuoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.call, self.kind)
    }
}

impl std::error::Error for DuoError {}

/// Result alias.
pub type Result<T, E = DuoError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_call_and_field() {
        let e = DuoError::new(
            "POST /admin/v1/users",
            ErrorKind::InvalidParameter { field: Some("username".into()), code: Some(40002), message: "Invalid request parameters".into() },
        );
        assert_eq!(e.to_string(), "POST /admin/v1/users: invalid parameter `username` (HTTP 400, code 40002): Invalid request parameters");
        assert_eq!(e.class(), ErrorClass::InvalidParameter);
        let m = DuoError::malformed("GET /admin/v1/users", "response[0].user_id", "missing");
        assert_eq!(m.to_string(), "GET /admin/v1/users: malformed response: field `response[0].user_id`: missing");
    }
}
