//! The `/admin/v1/bulk` call: up to [`MAX_BULK_OPS`] user and membership operations per request,
//! executed by Duo in order, with each operation's result mapped back to it.
//!
//! Request (as Duo's official Ruby client sends it): parameter `operations` = a JSON-encoded
//! array of `{"method", "path", "body"}` objects, where `body` holds the operation's usual
//! parameters. Supported operations and their method/path are those the Ruby client lists:
//! create user `POST /admin/v1/users`, modify user `POST /admin/v1/users/{id}`, delete user
//! `DELETE /admin/v1/users/{id}`, add user group `POST /admin/v1/users/{id}/groups`, remove user
//! group `POST /admin/v1/users/{id}/groups/{group_id}`.
//!
//! Response (**unverified**: Duo's docs were not reachable): `response` is taken to be an array
//! with one element per operation, in order; an element that is a FAIL envelope
//! (`{"stat":"FAIL","code":…,"message":…}`) is that operation's failure, an OK envelope gives its
//! `response`, anything else is taken as the operation's result itself. A response of another
//! shape (not an array, wrong length) is a malformed-response error for the whole call.
//! Per-operation "already a member" and 404-on-delete count as success, as in the single calls.

use duoprov_duo_wire::envelope::Failure;
use duoprov_duo_wire::types::IdKind;
use serde_json::{Map, Value};

use crate::client::{CallSpec, DuoClient, Params};
use crate::error::{DuoError, ErrorKind, Result};
use crate::pace::CallClass;
use crate::retry::Safety;
use crate::users::{NewUser, UserFields, arg_id};

/// Most operations per `/admin/v1/bulk` request; longer lists are sent in chunks.
pub const MAX_BULK_OPS: usize = 50;

/// One bulk operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkOp {
    /// Create a user.
    CreateUser(NewUser),
    /// Modify a user.
    ModifyUser {
        /// `DU…` id.
        user_id: String,
        /// Fields to set.
        fields: UserFields,
    },
    /// Delete a user.
    DeleteUser {
        /// `DU…` id.
        user_id: String,
    },
    /// Add a user to a group.
    AddUserToGroup {
        /// `DU…` id.
        user_id: String,
        /// `DG…` id.
        group_id: String,
    },
    /// Remove a user from a group.
    RemoveUserFromGroup {
        /// `DU…` id.
        user_id: String,
        /// `DG…` id.
        group_id: String,
    },
}

/// The result of one operation: its `response` on success, Duo's failure otherwise.
pub type BulkOpResult = std::result::Result<Value, Failure>;

fn obj(pairs: Vec<(String, String)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

impl BulkOp {
    /// `{"method", "path", "body"}` of this operation; validates ids.
    pub fn to_operation(&self) -> Result<Value> {
        let call = "POST /admin/v1/bulk";
        let cfg_err = |d: String| DuoError::new(call, ErrorKind::Config { detail: d });
        let (method, path, body) = match self {
            BulkOp::CreateUser(u) => ("POST", "/admin/v1/users".to_owned(), obj(u.to_params().map_err(cfg_err)?)),
            BulkOp::ModifyUser { user_id, fields } => {
                arg_id(call, IdKind::User, user_id)?;
                ("POST", format!("/admin/v1/users/{user_id}"), obj(fields.to_params().map_err(cfg_err)?))
            }
            BulkOp::DeleteUser { user_id } => {
                arg_id(call, IdKind::User, user_id)?;
                ("DELETE", format!("/admin/v1/users/{user_id}"), Value::Object(Map::new()))
            }
            BulkOp::AddUserToGroup { user_id, group_id } => {
                arg_id(call, IdKind::User, user_id)?;
                arg_id(call, IdKind::Group, group_id)?;
                ("POST", format!("/admin/v1/users/{user_id}/groups"), obj(vec![("group_id".into(), group_id.clone())]))
            }
            BulkOp::RemoveUserFromGroup { user_id, group_id } => {
                arg_id(call, IdKind::User, user_id)?;
                arg_id(call, IdKind::Group, group_id)?;
                ("POST", format!("/admin/v1/users/{user_id}/groups/{group_id}"), Value::Object(Map::new()))
            }
        };
        Ok(serde_json::json!({"method": method, "path": path, "body": body}))
    }

    fn repeatable(&self) -> bool {
        !matches!(self, BulkOp::CreateUser(_))
    }

    /// Whether a failure of this operation is really success (already a member, already gone).
    fn failure_is_success(&self, f: &Failure) -> bool {
        let code = f.code.unwrap_or(0);
        let already = |s: &str| s.to_ascii_lowercase().contains("already a member");
        match self {
            BulkOp::AddUserToGroup { .. } => already(&f.message) || f.message_detail.as_deref().is_some_and(already),
            BulkOp::DeleteUser { .. } | BulkOp::RemoveUserFromGroup { .. } => code / 100 == 404,
            _ => false,
        }
    }
}

/// Maps one element of the bulk response to its operation's result.
fn op_result(op: &BulkOp, v: Value) -> BulkOpResult {
    let stat = v.get("stat").and_then(Value::as_str).map(str::to_owned);
    match stat.as_deref() {
        Some("FAIL") => {
            let f = match duoprov_duo_wire::envelope::parse(v.to_string().as_bytes()) {
                Ok(duoprov_duo_wire::envelope::Outcome::Fail(f)) => f,
                _ => Failure { code: None, message: v.to_string(), message_detail: None },
            };
            if op.failure_is_success(&f) { Ok(Value::Null) } else { Err(f) }
        }
        Some("OK") => Ok(v.get("response").cloned().unwrap_or(Value::Null)),
        _ => Ok(v),
    }
}

impl DuoClient {
    /// Runs `ops` through `/admin/v1/bulk` in chunks of [`MAX_BULK_OPS`] and returns one result
    /// per operation, in order. An error of the whole call (transport, auth, malformed response)
    /// is returned as `Err`; results of chunks already done are then lost to the caller, who
    /// should re-read and re-plan. Chunks without creates are retried on 5xx/transport errors;
    /// chunks with creates are not.
    ///
    /// ```no_run
    /// # async fn demo(duo: duoprov_duo::DuoClient) -> Result<(), duoprov_duo::DuoError> {
    /// use duoprov_duo::{BulkOp, NewUser};
    /// let ops = vec![
    ///     BulkOp::CreateUser(NewUser::new("jdoe").email("jdoe@example.edu")),
    ///     BulkOp::AddUserToGroup { user_id: "DU3RP9I2WOC59VZX672N".into(), group_id: "DGXXXXXXXXXXXXXXXXXX".into() },
    /// ];
    /// for (op, result) in ops.iter().zip(duo.bulk(&ops).await?) {
    ///     if let Err(failure) = result {
    ///         eprintln!("{op:?} failed: {} ({:?})", failure.message, failure.message_detail);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn bulk(&self, ops: &[BulkOp]) -> Result<Vec<BulkOpResult>> {
        let mut out = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(MAX_BULK_OPS) {
            let operations: Vec<Value> = chunk.iter().map(BulkOp::to_operation).collect::<Result<_>>()?;
            let safety = if chunk.iter().all(BulkOp::repeatable) { Safety::Repeatable } else { Safety::NotRepeatable };
            let spec = CallSpec::new(
                "POST",
                "/admin/v1/bulk",
                Params::pairs([("operations", Value::Array(operations).to_string())]),
                CallClass::Write,
                safety,
            );
            let label = spec.label();
            let reply = self.call(&spec).await?;
            let Value::Array(items) = reply.response else {
                return Err(DuoError::malformed(label, "response", "not a list of operation results"));
            };
            if items.len() != chunk.len() {
                return Err(DuoError::malformed(
                    label,
                    "response",
                    format!("{} results for {} operations", items.len(), chunk.len()),
                ));
            }
            out.extend(chunk.iter().zip(items).map(|(op, v)| op_result(op, v)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_shape() {
        let op = BulkOp::AddUserToGroup { user_id: "DU1".into(), group_id: "DG1".into() };
        assert_eq!(
            op.to_operation().ok(),
            Some(json!({"method":"POST","path":"/admin/v1/users/DU1/groups","body":{"group_id":"DG1"}}))
        );
        let op = BulkOp::DeleteUser { user_id: "du/1".into() };
        assert!(op.to_operation().is_err());
        let op = BulkOp::CreateUser(NewUser::new("a").email("a@x"));
        assert_eq!(
            op.to_operation().ok(),
            Some(json!({"method":"POST","path":"/admin/v1/users","body":{"username":"a","email":"a@x"}}))
        );
    }

    #[test]
    fn results_map_back() {
        let add = BulkOp::AddUserToGroup { user_id: "DU1".into(), group_id: "DG1".into() };
        let del = BulkOp::DeleteUser { user_id: "DU1".into() };
        let mk = BulkOp::CreateUser(NewUser::new("a"));
        assert_eq!(op_result(&add, json!({"stat":"FAIL","code":40004,"message":"Operation failed","message_detail":"User is already a member of the specified group"})), Ok(Value::Null));
        assert_eq!(op_result(&del, json!({"stat":"FAIL","code":40401,"message":"Resource not found"})), Ok(Value::Null));
        assert_eq!(
            op_result(&mk, json!({"stat":"FAIL","code":40002,"message":"Invalid request parameters","message_detail":"username"})),
            Err(Failure { code: Some(40002), message: "Invalid request parameters".into(), message_detail: Some("username".into()) })
        );
        assert_eq!(op_result(&mk, json!({"stat":"OK","response":{"user_id":"DU2"}})), Ok(json!({"user_id":"DU2"})));
        assert_eq!(op_result(&mk, json!({"user_id":"DU2"})), Ok(json!({"user_id":"DU2"})));
    }
}
