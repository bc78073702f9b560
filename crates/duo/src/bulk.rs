//! User and membership writes: the `/admin/v1/bulk` call (up to [`MAX_BULK_OPS`] operations per
//! request, executed by Duo in order, each result mapped back to its operation), and
//! [`DuoClient::run_ops`], which treats bulk as an optimisation over the single calls.
//!
//! Request (as Duo's official Ruby client sends it, signed v5): parameter `operations` = a
//! JSON-encoded array of `{"method", "path", "body"}` objects, where `body` holds the operation's
//! usual parameters. Supported operations and their method/path are those the Ruby client lists:
//! create user `POST /admin/v1/users`, modify user `POST /admin/v1/users/{id}`, delete user
//! `DELETE /admin/v1/users/{id}`, add user group `POST /admin/v1/users/{id}/groups`, remove user
//! group `POST /admin/v1/users/{id}/groups/{group_id}` (the single call is `DELETE`; the `POST`
//! spelling has no other source and is **unverified**).
//!
//! Response (**unverified**: only a mock in the Ruby client's tests): `response` is taken to be an
//! array with one per-operation envelope per operation, in order. It is read strictly:
//! - `{"stat":"OK","response":…}` is that operation's success;
//! - `{"stat":"FAIL","code":…}` is its failure, classified by the code's first three digits:
//!   400/401/403, 404 on a modify or an add, and 500/50001 on an add (Duo's answer to a user's
//!   101st group) are Duo refusing the operation; "already a member"
//!   on an add and 404 on a user delete are success; 404 on a remove (whose `POST` spelling is
//!   unverified: Duo may be saying it does not know the route), a missing code, 405, 429 and 5xx
//!   leave the operation **unconfirmed**;
//! - anything else — an element without `stat`, a response that is not an array, or one of the
//!   wrong length — makes the whole reply unrecognised: a malformed-response error of the call
//!   (naming `response[i]` or `response`), never a success. One element that is not an envelope
//!   casts doubt on how the others line up with their operations, so none is trusted.
//!
//! [`DuoClient::run_ops`] follows the connection's [`BulkMode`]: `never` (and `auto` unless
//! signing with v5, since no official client sends bulk form-encoded) makes single calls; `always`
//! reports anything unclear as the operation's failure; `auto` sends the ops of a chunk as single
//! calls when the bulk call answers 404/405 or a reply it does not recognise (and stops using
//! bulk for the rest of the client's life) or refuses the call as a whole with a 400 (the request
//! format is not verified either; bulk is tried again for the next chunk), and redoes each
//! unconfirmed op as a single call — a remove as `DELETE /admin/v1/users/{id}/groups/{gid}`, whose
//! 404 does mean "not a member". A recorded probe ([`DuoClient::apply_probe`]) can settle `auto`
//! before the first call: bulk found not to add makes every chunk single calls, bulk found not to
//! remove makes chunks holding a remove single calls.

use duoprov_duo_wire::SignatureVariant;
use duoprov_duo_wire::envelope::Failure;
use duoprov_duo_wire::types::IdKind;
use serde_json::{Map, Value};

use crate::client::{CallSpec, DuoClient, Params, classify};
use crate::config::BulkMode;
use crate::error::{DuoError, ErrorClass, ErrorKind, Result};
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
    /// Method, path and body of this operation; validates ids.
    fn parts(&self) -> Result<(&'static str, String, Value)> {
        let call = "POST /admin/v1/bulk";
        let cfg_err = |d: String| DuoError::new(call, ErrorKind::Config { detail: d });
        Ok(match self {
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
        })
    }

    /// `{"method", "path", "body"}` of this operation; validates ids.
    pub fn to_operation(&self) -> Result<Value> {
        let (method, path, body) = self.parts()?;
        Ok(serde_json::json!({"method": method, "path": path, "body": body}))
    }

    fn repeatable(&self) -> bool {
        !matches!(self, BulkOp::CreateUser(_))
    }

    /// How Duo's per-operation failure `f` reads for this operation (see the module doc).
    fn classify_failure(&self, f: Failure) -> Element {
        let already = |s: &str| s.to_ascii_lowercase().contains("already a member");
        if matches!(self, BulkOp::AddUserToGroup { .. }) && (already(&f.message) || f.message_detail.as_deref().is_some_and(already)) {
            return Element::Done(Value::Null);
        }
        let Some(status) = f.code.map(|c| c / 100) else {
            return Element::Unconfirmed(f);
        };
        match (self, status) {
            // Duo's answer to a user's 101st group: redoing it cannot help.
            (BulkOp::AddUserToGroup { .. }, 500) if f.code == Some(crate::users::GROUP_LIMIT_CODE) => Element::Failed(f),
            (BulkOp::DeleteUser { .. }, 404) => Element::Done(Value::Null),
            (BulkOp::RemoveUserFromGroup { .. }, 404) => Element::Unconfirmed(f),
            (_, 400 | 401 | 403 | 404) => Element::Failed(f),
            _ => Element::Unconfirmed(f),
        }
    }
}

/// How one element of a bulk reply reads for its operation.
#[derive(Debug, Clone, PartialEq)]
enum Element {
    /// Done: an OK envelope (its `response`), or a failure that means done (already a member,
    /// user already gone).
    Done(Value),
    /// Duo refused the operation.
    Failed(Failure),
    /// Not confirmed either way: a 404 on a remove, or a failure that cannot be classified.
    Unconfirmed(Failure),
}

/// Reads one element of the bulk response; `None` when it is not a per-operation envelope.
fn read_element(op: &BulkOp, v: Value) -> Option<Element> {
    match v.get("stat").and_then(Value::as_str) {
        Some("OK") => Some(Element::Done(v.get("response").cloned().unwrap_or(Value::Null))),
        Some("FAIL") => match duoprov_duo_wire::envelope::parse(v.to_string().as_bytes()) {
            Ok(duoprov_duo_wire::envelope::Outcome::Fail(f)) => Some(op.classify_failure(f)),
            _ => None,
        },
        _ => None,
    }
}

/// The result of [`DuoClient::run_ops`]: one result per operation, in order (the operation's
/// `response` — the user for a create or modify — or why it failed), and the write calls made.
#[derive(Debug, Clone, PartialEq)]
pub struct OpsOutcome {
    /// One result per operation.
    pub results: Vec<std::result::Result<Value, DuoError>>,
    /// Write calls sent (bulk calls plus single calls).
    pub calls: usize,
}

/// Whether a failed bulk call means the endpoint cannot be used: it does not exist (404), does
/// not take `POST` (405), or answered something not understood.
fn bulk_unusable(e: &DuoError) -> bool {
    matches!(e.kind, ErrorKind::NotFound { .. } | ErrorKind::UnexpectedStatus { status: 405 }) || e.class() == ErrorClass::MalformedResponse
}

impl DuoClient {
    /// Runs `ops` through `/admin/v1/bulk` only (whatever the connection's [`BulkMode`]), in chunks
    /// of [`MAX_BULK_OPS`], and returns one result per operation, in order: its `response`, or
    /// Duo's failure — including a failure that does not confirm the operation either way (a 404
    /// on a remove; see the module doc). An error of the whole call (transport, auth, a reply not
    /// understood) is returned as `Err`; results of chunks already done are then lost to the
    /// caller, who should re-read and re-plan. Chunks without creates are retried on
    /// 5xx/transport errors; chunks with creates are not. Syncs use [`DuoClient::run_ops`].
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
            let refs: Vec<&BulkOp> = chunk.iter().collect();
            for el in self.bulk_call(&refs, operations).await? {
                out.push(match el {
                    Element::Done(v) => Ok(v),
                    Element::Failed(f) | Element::Unconfirmed(f) => Err(f),
                });
            }
        }
        Ok(out)
    }

    /// One `/admin/v1/bulk` request for `ops` (already turned into `operations`), read strictly.
    async fn bulk_call(&self, ops: &[&BulkOp], operations: Vec<Value>) -> Result<Vec<Element>> {
        let safety = if ops.iter().all(|o| o.repeatable()) { Safety::Repeatable } else { Safety::NotRepeatable };
        let spec = CallSpec::new(
            "POST",
            "/admin/v1/bulk",
            Params::pairs([("operations", Value::Array(operations).to_string())]),
            CallClass::Bulk,
            safety,
        );
        let label = spec.label();
        let reply = self.call(&spec).await?;
        let Value::Array(items) = reply.response else {
            return Err(DuoError::malformed(label, "response", "not a list of operation results"));
        };
        if items.len() != ops.len() {
            return Err(DuoError::malformed(label, "response", format!("{} results for {} operations", items.len(), ops.len())));
        }
        let mut out = Vec::with_capacity(ops.len());
        for (i, (op, v)) in ops.iter().zip(items).enumerate() {
            match read_element(op, v) {
                Some(el) => out.push(el),
                None => {
                    return Err(DuoError::malformed(
                        label,
                        format!("response[{i}]"),
                        "not a per-operation result ({\"stat\":\"OK\"|\"FAIL\",…}); the reply is not understood",
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Runs user and membership operations the way the connection's [`BulkMode`] says (see the
    /// module doc): one result per operation, in order, and the number of write calls made. A
    /// failure of one operation (or of a whole bulk call, for its operations) never stops the
    /// others.
    ///
    /// ```no_run
    /// # async fn demo(duo: duoprov_duo::DuoClient) {
    /// use duoprov_duo::BulkOp;
    /// let ops = vec![BulkOp::RemoveUserFromGroup { user_id: "DU3RP9I2WOC59VZX672N".into(), group_id: "DGXXXXXXXXXXXXXXXXXX".into() }];
    /// let outcome = duo.run_ops(&ops).await;
    /// for (op, result) in ops.iter().zip(&outcome.results) {
    ///     if let Err(e) = result {
    ///         eprintln!("{op:?} failed: {e}");
    ///     }
    /// }
    /// eprintln!("{} write calls", outcome.calls);
    /// # }
    /// ```
    pub async fn run_ops(&self, ops: &[BulkOp]) -> OpsOutcome {
        let mut results = Vec::with_capacity(ops.len());
        let mut calls = 0usize;
        let mode = self.config().bulk;
        for chunk in ops.chunks(MAX_BULK_OPS) {
            let use_bulk = match mode {
                BulkMode::Never => false,
                BulkMode::Always => true,
                BulkMode::Auto => {
                    self.config().signature == SignatureVariant::V5
                        && !self.bulk_found_unusable()
                        && !(self.bulk_remove_found_unusable() && chunk.iter().any(|op| matches!(op, BulkOp::RemoveUserFromGroup { .. })))
                }
            };
            if !use_bulk {
                for op in chunk {
                    calls += 1;
                    results.push(self.single_op(op).await);
                }
                continue;
            }
            // Ops with invalid arguments fail alone; the others go in one bulk call.
            let mut slots: Vec<Option<std::result::Result<Value, DuoError>>> = vec![None; chunk.len()];
            let mut sent: Vec<(usize, &BulkOp)> = Vec::with_capacity(chunk.len());
            let mut operations = Vec::with_capacity(chunk.len());
            for (i, op) in chunk.iter().enumerate() {
                match op.to_operation() {
                    Ok(o) => {
                        operations.push(o);
                        sent.push((i, op));
                    }
                    Err(e) => slots[i] = Some(Err(e)),
                }
            }
            if !sent.is_empty() {
                let refs: Vec<&BulkOp> = sent.iter().map(|(_, op)| *op).collect();
                calls += 1;
                match self.bulk_call(&refs, operations).await {
                    Ok(elements) => {
                        for ((i, op), el) in sent.iter().zip(elements) {
                            let r = match el {
                                Element::Done(v) => Ok(v),
                                Element::Failed(f) => Err(op_error(op, f)),
                                Element::Unconfirmed(f) if mode == BulkMode::Auto => {
                                    tracing::info!(op = %op_label(op), code = ?f.code, message = %f.message, "bulk result not confirmed; redoing it as a single call");
                                    calls += 1;
                                    self.single_op(op).await
                                }
                                Element::Unconfirmed(f) => Err(unconfirmed_error(op, f)),
                            };
                            slots[*i] = Some(r);
                        }
                    }
                    Err(e) if mode == BulkMode::Auto && (bulk_unusable(&e) || e.class() == ErrorClass::InvalidParameter) => {
                        if bulk_unusable(&e) {
                            tracing::warn!(error = %e, "the bulk endpoint is not usable; sending single calls from now on");
                            self.mark_bulk_unusable();
                        } else {
                            tracing::warn!(error = %e, "Duo refused the bulk call as a whole; sending its operations as single calls");
                        }
                        for (i, op) in &sent {
                            calls += 1;
                            slots[*i] = Some(self.single_op(op).await);
                        }
                    }
                    Err(e) => {
                        for (i, _) in &sent {
                            slots[*i] = Some(Err(e.clone()));
                        }
                    }
                }
            }
            results.extend(slots.into_iter().map(|s| s.unwrap_or_else(|| Err(DuoError::new("POST /admin/v1/bulk", ErrorKind::Unresolved { detail: "no result".into() })))));
        }
        OpsOutcome { results, calls }
    }

    /// One operation as its single call.
    async fn single_op(&self, op: &BulkOp) -> std::result::Result<Value, DuoError> {
        let user_value = |u: crate::User| serde_json::to_value(u).map_err(|e| DuoError::malformed(op_label(op), "response", e));
        match op {
            BulkOp::CreateUser(u) => user_value(self.create_user(u).await?),
            BulkOp::ModifyUser { user_id, fields } => user_value(self.modify_user(user_id, fields).await?),
            BulkOp::DeleteUser { user_id } => self.delete_user(user_id).await.map(|()| Value::Null),
            BulkOp::AddUserToGroup { user_id, group_id } => self.add_user_to_group(user_id, group_id).await.map(|()| Value::Null),
            BulkOp::RemoveUserFromGroup { user_id, group_id } => self.remove_user_from_group(user_id, group_id).await.map(|()| Value::Null),
        }
    }
}

/// `METHOD path in POST /admin/v1/bulk`, the label of one operation's errors.
fn op_label(op: &BulkOp) -> String {
    match op.parts() {
        Ok((method, path, _)) => format!("{method} {path} in POST /admin/v1/bulk"),
        Err(_) => "POST /admin/v1/bulk".to_owned(),
    }
}

/// Duo's refusal of one operation as an error classified like the single call's.
fn op_error(op: &BulkOp, f: Failure) -> DuoError {
    let status = f.code.map(|c| (c / 100) as u16).unwrap_or(200);
    let e = DuoError::new(op_label(op), classify(status, Some(&f)));
    if matches!(op, BulkOp::AddUserToGroup { .. }) { crate::users::name_group_limit(e) } else { e }
}

/// An operation whose result bulk could not confirm (with `bulk = always`).
fn unconfirmed_error(op: &BulkOp, f: Failure) -> DuoError {
    let detail = format!(
        "Duo answered code {} ({}{}) for this operation, which does not confirm it was done; with bulk = \"auto\" it is redone as a single call",
        f.code.map(|c| c.to_string()).unwrap_or_else(|| "none".into()),
        f.message,
        f.message_detail.map(|d| format!(": {d}")).unwrap_or_default()
    );
    DuoError::new(op_label(op), ErrorKind::Unresolved { detail })
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
    fn elements_read_strictly() {
        let add = BulkOp::AddUserToGroup { user_id: "DU1".into(), group_id: "DG1".into() };
        let del = BulkOp::DeleteUser { user_id: "DU1".into() };
        let rm = BulkOp::RemoveUserFromGroup { user_id: "DU1".into(), group_id: "DG1".into() };
        let mk = BulkOp::CreateUser(NewUser::new("a"));
        let not_found = json!({"stat":"FAIL","code":40401,"message":"Resource not found"});
        assert_eq!(read_element(&add, json!({"stat":"FAIL","code":40004,"message":"Operation failed","message_detail":"User is already a member of the specified group"})), Some(Element::Done(Value::Null)));
        assert_eq!(read_element(&del, not_found.clone()), Some(Element::Done(Value::Null)));
        // A 404 on a remove does not confirm it (the POST spelling is unverified).
        assert!(matches!(read_element(&rm, not_found.clone()), Some(Element::Unconfirmed(_))));
        assert!(matches!(read_element(&add, not_found), Some(Element::Failed(_))));
        assert_eq!(
            read_element(&mk, json!({"stat":"FAIL","code":40002,"message":"Invalid request parameters","message_detail":"username"})),
            Some(Element::Failed(Failure { code: Some(40002), message: "Invalid request parameters".into(), message_detail: Some("username".into()) }))
        );
        for unclear in [json!({"stat":"FAIL","message":"x"}), json!({"stat":"FAIL","code":40501,"message":"Method not allowed"}), json!({"stat":"FAIL","code":50301,"message":"x"})] {
            assert!(matches!(read_element(&add, unclear), Some(Element::Unconfirmed(_))));
        }
        // 50001 on an add is Duo's answer to a user's 101st group: a refusal, not redone; on
        // other operations it stays unclear.
        let limit = json!({"stat":"FAIL","code":50001,"message":"Unknown internal server error"});
        assert!(matches!(read_element(&add, limit.clone()), Some(Element::Failed(_))));
        assert!(matches!(read_element(&rm, limit.clone()), Some(Element::Unconfirmed(_))));
        assert!(matches!(read_element(&mk, limit), Some(Element::Unconfirmed(_))));
        assert_eq!(read_element(&mk, json!({"stat":"OK","response":{"user_id":"DU2"}})), Some(Element::Done(json!({"user_id":"DU2"}))));
        // Not an envelope: never a success.
        assert_eq!(read_element(&mk, json!({"user_id":"DU2"})), None);
        assert_eq!(read_element(&rm, json!("")), None);
        assert_eq!(read_element(&rm, json!({"stat":"ok"})), None);
    }
}
