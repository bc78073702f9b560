//! `POST /admin/v1/bulk`: up to 50 operations (`{method, path, body}`), run serially. Allowed:
//! create user, modify user, delete user, add a user to a group, remove a user from a group
//! (`DELETE` or `POST` on `/admin/v1/users/{id}/groups/{group_id}`; the `POST` spelling answers a
//! per-operation 404 with `bulk_remove_post = per_op_404`). `operations` may be a JSON array or a
//! JSON-encoded string of one; each `body` an object or a JSON-encoded string. The answer lists
//! one result per operation, in order: `{"stat":"OK","response":…}` or Duo's FAIL object (with
//! `bulk_reply_shape = bare`: the `response` value, or the FAIL object without `stat`; with
//! `unavailable` the endpoint answers 404). A failing operation does not stop the ones after it.

use serde_json::Value;

use crate::app::Ctx;
use crate::config::{BulkRemovePost, BulkReplyShape};
use crate::error::ApiError;
use crate::params::Params;
use crate::routes::{Endpoint, Route, handle, ok_body, resolve};

fn op_route(ctx: &Ctx<'_>, method: &str, path: &str) -> Result<Route, ApiError> {
    let m = method.to_ascii_uppercase();
    // Ruby's bulk helper spells "remove user from group" as POST on the membership path.
    let m = if m == "POST"
        && resolve("DELETE", path).is_ok_and(|r| r.endpoint == Endpoint::UserGroupsRemove)
    {
        if ctx.settings().bulk_remove_post == BulkRemovePost::PerOp404 {
            return Err(ApiError::not_found());
        }
        "DELETE".to_owned()
    } else {
        m
    };
    let route = resolve(&m, path)?;
    match route.endpoint {
        Endpoint::UsersCreate
        | Endpoint::UsersModify
        | Endpoint::UsersDelete
        | Endpoint::UserGroupsAdd
        | Endpoint::UserGroupsRemove => Ok(route),
        _ => Err(ApiError::invalid("operations (unsupported operation)")),
    }
}

fn run_one(ctx: &Ctx<'_>, op: &Value) -> Result<Value, ApiError> {
    let Value::Object(o) = op else {
        return Err(ApiError::invalid("operations"));
    };
    let method = o
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("method"))?;
    let path = o
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("path"))?;
    let body = match o.get("body") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(b)) => b.clone(),
        Some(Value::String(s)) if s.trim().is_empty() => serde_json::Map::new(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(b)) => b,
            _ => return Err(ApiError::invalid("body")),
        },
        Some(_) => return Err(ApiError::invalid("body")),
    };
    let route = op_route(ctx, method, path)?;
    let params = Params::from_object(body, ctx.settings().missing_param_code);
    let bytes = handle(ctx, &route, &params)?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::internal())
}

/// Runs the operations.
pub fn run(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<u8>, ApiError> {
    let shape = ctx.settings().bulk_reply_shape;
    if shape == BulkReplyShape::Unavailable {
        return Err(ApiError::not_found());
    }
    let ops = p
        .opt_list("operations")?
        .ok_or_else(|| p.missing("operations"))?;
    if ops.is_empty() || ops.len() > ctx.settings().bulk_max_operations {
        return Err(ApiError::invalid("operations"));
    }
    let mut results = Vec::with_capacity(ops.len());
    for op in &ops {
        let mut r = match run_one(ctx, op) {
            Ok(v) => v,
            Err(e) => serde_json::from_slice(&e.body()).map_err(|_| ApiError::internal())?,
        };
        if shape == BulkReplyShape::Bare {
            r = match r {
                Value::Object(mut o) if o.get("stat").and_then(Value::as_str) == Some("OK") => {
                    o.remove("response").unwrap_or(Value::Null)
                }
                Value::Object(mut o) => {
                    o.remove("stat");
                    Value::Object(o)
                }
                other => other,
            };
        }
        results.push(r);
    }
    ok_body(results, None)
}
