//! Per-object errors, with Grouper's error codes, so one bad object never stops the others and
//! the sync state can record what went wrong where.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Grouper's per-object error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Any other error (a failed Duo call).
    #[serde(rename = "ERR")]
    Err,
    /// An invalid value (a template that fails, a rule Duo enforces).
    #[serde(rename = "INV")]
    Inv,
    /// A value too long for Duo.
    #[serde(rename = "LEN")]
    Len,
    /// A required value is empty.
    #[serde(rename = "REQ")]
    Req,
    /// The object does not exist in Duo and may not be created.
    #[serde(rename = "DNE")]
    Dne,
    /// More than one candidate matches: nothing is guessed.
    #[serde(rename = "MAT")]
    Mat,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Err => "ERR",
            ErrorCode::Inv => "INV",
            ErrorCode::Len => "LEN",
            ErrorCode::Req => "REQ",
            ErrorCode::Dne => "DNE",
            ErrorCode::Mat => "MAT",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ErrorCode::Err, ErrorCode::Inv, ErrorCode::Len, ErrorCode::Req, ErrorCode::Dne, ErrorCode::Mat]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which registry object an error is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ErrorObject {
    Group { uuid: String, name: String },
    User { source: String, id: String },
    Membership {
        group_uuid: String,
        source: String,
        id: String,
        /// The group's registry name, for messages (empty in errors saved before it was kept).
        #[serde(default)]
        group_name: String,
    },
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorObject::Group { name, .. } => write!(f, "group {name}"),
            ErrorObject::User { source, id } => write!(f, "subject {source}:{id}"),
            ErrorObject::Membership { group_name, source, id, .. } if !group_name.is_empty() => {
                write!(f, "membership of {source}:{id} in group {group_name}")
            }
            ErrorObject::Membership { group_uuid, source, id, .. } => write!(f, "membership of {source}:{id} in group {group_uuid}"),
        }
    }
}

/// One object's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectError {
    pub object: ErrorObject,
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]: {}", self.object, self.code, self.message)
    }
}
