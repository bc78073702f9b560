//! Strict reading of Duo's least-certain answers, over real HTTP to a scripted server: a bulk
//! element that is not a per-operation envelope is never a success, a user read without `groups`
//! is an error naming the field, listings are de-duplicated by id and checked against
//! `metadata.total_objects`, and [`DuoClient::run_ops`] treats `/admin/v1/bulk` as an
//! optimisation over the single calls (`bulk = auto | always | never`).

use duoprov_duo::{BulkMode, BulkOp, ErrorClass, ErrorKind, SignatureVariant, UserFields};
use serde_json::{Value, json};

use crate::support::*;

const U1: &str = "DU00000000000000001";
const G1: &str = "DG00000000000000001";
const G2: &str = "DG00000000000000002";

fn operations(s: &Seen) -> Vec<Value> {
    serde_json::from_str(s.json()["operations"].as_str().unwrap_or("[]")).unwrap_or_default()
}

fn calls(script: &Script) -> Vec<String> {
    script.seen().iter().map(|s| format!("{} {}", s.method, s.path)).collect()
}

fn page_with_total(items: Value, next: Option<u64>, total: u64) -> Reply {
    Reply::Json(
        200,
        json!({"stat": "OK", "response": items, "metadata": {"next_offset": next, "total_objects": total}}).to_string(),
    )
}

/// A scripted Duo whose single calls succeed and whose bulk call answers each operation with
/// `bulk_element(op)`, or the whole call with `bulk_call` when that is set.
fn duo_with_bulk(bulk_call: Option<Reply>, bulk_element: fn(&Value) -> Value) -> std::sync::Arc<Script> {
    Script::new(move |s, _| {
        if s.path == "/admin/v1/bulk" {
            if let Some(r) = &bulk_call {
                return r.clone();
            }
            return ok(Value::Array(operations(s).iter().map(bulk_element).collect()));
        }
        match s.method.as_str() {
            "POST" if s.path.ends_with("/groups") => ok(json!("")),
            "POST" => ok(user(U1, "jdoe")),
            _ => ok(json!("")),
        }
    })
}

fn ok_element(_: &Value) -> Value {
    json!({"stat": "OK", "response": ""})
}

fn bare_element(_: &Value) -> Value {
    json!({"user_id": U1})
}

/// A 404 for the POST spelling of a remove, OK otherwise.
fn remove_404_element(op: &Value) -> Value {
    let path = op["path"].as_str().unwrap_or_default();
    if op["method"] == "POST" && path.contains("/groups/") {
        json!({"stat": "FAIL", "code": 40401, "message": "Resource not found"})
    } else {
        json!({"stat": "OK", "response": ""})
    }
}

fn membership_ops() -> Vec<BulkOp> {
    vec![
        BulkOp::RemoveUserFromGroup { user_id: U1.into(), group_id: G1.into() },
        BulkOp::AddUserToGroup { user_id: U1.into(), group_id: G2.into() },
    ]
}

#[tokio::test]
async fn a_bulk_element_without_stat_is_a_failure_not_a_success() {
    let script = duo_with_bulk(None, bare_element);
    let duo = http_client(&script, |c| c.bulk = BulkMode::Always).await;
    let e = duo.bulk(&membership_ops()).await.err();
    match e.as_ref().map(|e| &e.kind) {
        Some(ErrorKind::Malformed { field, .. }) => assert_eq!(field, "response[0]"),
        other => panic!("{other:?}"),
    }
    // Through run_ops with bulk = always: every op of the chunk fails, none is done by another path.
    let outcome = duo.run_ops(&membership_ops()).await;
    assert!(outcome.results.iter().all(|r| r.as_ref().is_err_and(|e| e.class() == ErrorClass::MalformedResponse)), "{outcome:?}");
    assert_eq!(calls(&script), vec!["POST /admin/v1/bulk", "POST /admin/v1/bulk"]);
}

#[tokio::test]
async fn a_user_read_without_groups_is_an_error_naming_the_field() {
    let no_groups = json!({"user_id": "DU00000000000000002", "username": "b"});
    let null_groups = json!({"user_id": "DU00000000000000002", "username": "b", "groups": null});
    for (bad, detail) in [(no_groups.clone(), "missing"), (null_groups, "null")] {
        let listed = json!([user(U1, "a"), bad.clone()]);
        let script = Script::new(move |s, _| {
            if s.path == "/admin/v1/users/DU00000000000000002" { ok(bad.clone()) } else { page(listed.clone(), None) }
        });
        let duo = http_client(&script, |_| {}).await;
        for (what, e) in [
            ("list", duo.list_users().await.err()),
            ("by ids", duo.get_users_by_ids(&[U1.into(), "DU00000000000000002".into()]).await.err()),
            ("by usernames", duo.get_users_by_usernames(&["a".into(), "b".into()]).await.err()),
        ] {
            match e.as_ref().map(|e| &e.kind) {
                Some(ErrorKind::Malformed { field, detail: d }) => {
                    assert_eq!(field, "response[1].groups", "{what}");
                    assert!(d.starts_with(detail), "{what}: {d}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        let e = duo.get_user("DU00000000000000002").await.err();
        assert!(matches!(e.as_ref().map(|e| &e.kind), Some(ErrorKind::Malformed { field, .. }) if field == "response.groups"), "{e:?}");
    }
    // Replies the membership diff is not built from need no `groups`: modify, create.
    let script = Script::new(|_, _| ok(json!({"user_id": U1, "username": "a"})));
    let duo = http_client(&script, |_| {}).await;
    assert!(duo.modify_user(U1, &UserFields { notes: Some("n".into()), ..Default::default() }).await.is_ok());
    assert!(duo.create_user(&duoprov_duo::NewUser::new("a")).await.is_ok());
}

#[tokio::test]
async fn a_user_repeated_across_pages_is_listed_once() {
    // Offsets shifted between the pages: b is on both, total_objects agrees with the distinct count.
    let script = Script::queue(vec![
        page_with_total(json!([user(U1, "a"), user("DU00000000000000002", "b")]), Some(2), 3),
        page_with_total(json!([user("DU00000000000000002", "b"), user("DU00000000000000003", "c")]), None, 3),
    ]);
    let duo = http_client(&script, |_| {}).await;
    let users = duo.list_users().await.unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c"]);
    assert_eq!(script.seen().len(), 2, "no second read when the count agrees");
}

#[tokio::test]
async fn a_listing_that_disagrees_with_total_objects_is_read_again_then_refused() {
    let short = || page_with_total(json!([user(U1, "a"), user("DU00000000000000002", "b")]), None, 3);
    let full = page_with_total(
        json!([user(U1, "a"), user("DU00000000000000002", "b"), user("DU00000000000000003", "c")]),
        None,
        3,
    );
    // Settled by the second read.
    let script = Script::queue(vec![short(), full]);
    let duo = http_client(&script, |_| {}).await;
    assert_eq!(duo.list_users().await.map(|u| u.len()), Ok(3));
    assert_eq!(script.seen().len(), 2);
    // Still different on the second read: an error naming the endpoint and both counts.
    let script = Script::queue(vec![short(), short()]);
    let duo = http_client(&script, |_| {}).await;
    let e = duo.list_users().await.err().unwrap_or_else(|| panic!("a short listing was accepted"));
    assert_eq!(e.class(), ErrorClass::Changed);
    let text = e.to_string();
    assert!(text.starts_with("GET /admin/v1/users: Duo listed 2 users but reported 3"), "{text}");
    assert!(text.contains("run again"), "{text}");
    assert_eq!(script.seen().len(), 2, "read once more, not forever");
    // Groups too, named as groups.
    let script = Script::new(|_, _| page_with_total(json!([group(G1, "g")]), None, 2));
    let duo = http_client(&script, |_| {}).await;
    let e = duo.list_groups().await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("Duo listed 1 groups but reported 2"), "{e}");
}

#[tokio::test]
async fn bulk_never_sends_the_single_calls() {
    let script = duo_with_bulk(None, ok_element);
    let duo = http_client(&script, |c| c.bulk = BulkMode::Never).await;
    let mut ops = membership_ops();
    ops.push(BulkOp::ModifyUser { user_id: U1.into(), fields: UserFields { notes: Some("n".into()), ..Default::default() } });
    ops.push(BulkOp::DeleteUser { user_id: U1.into() });
    let outcome = duo.run_ops(&ops).await;
    assert!(outcome.results.iter().all(Result::is_ok), "{outcome:?}");
    assert_eq!(outcome.calls, 4);
    assert_eq!(
        calls(&script),
        vec![
            format!("DELETE /admin/v1/users/{U1}/groups/{G1}"),
            format!("POST /admin/v1/users/{U1}/groups"),
            format!("POST /admin/v1/users/{U1}"),
            format!("DELETE /admin/v1/users/{U1}"),
        ]
    );
    assert_eq!(script.seen()[1].json(), json!({"group_id": G2}));
}

#[tokio::test]
async fn a_per_op_404_on_a_bulk_remove_is_confirmed_by_a_single_delete() {
    // auto: the remove is redone as DELETE (whose 404 means "not a member": success); the add
    // the bulk call confirmed is not repeated.
    let script = duo_with_bulk(None, remove_404_element);
    let duo = http_client(&script, |_| {}).await;
    let outcome = duo.run_ops(&membership_ops()).await;
    assert!(outcome.results.iter().all(Result::is_ok), "{outcome:?}");
    assert_eq!(outcome.calls, 2);
    assert_eq!(calls(&script), vec!["POST /admin/v1/bulk".to_owned(), format!("DELETE /admin/v1/users/{U1}/groups/{G1}")]);
    assert!(!duo.bulk_found_unusable(), "a per-op answer does not condemn the endpoint");
    // When the DELETE fails, so does the op: it is never counted as removed.
    let script = Script::new(|s, _| {
        if s.path == "/admin/v1/bulk" {
            ok(Value::Array(operations(s).iter().map(remove_404_element).collect()))
        } else {
            fail(400, 40002, "Invalid request parameters", Some("group_id"))
        }
    });
    let duo = http_client(&script, |_| {}).await;
    let outcome = duo.run_ops(&membership_ops()).await;
    assert_eq!(outcome.results[0].as_ref().err().map(|e| e.class()), Some(ErrorClass::InvalidParameter));
    assert!(outcome.results[1].is_ok());
    // always: the 404 cannot be confirmed, so it is the op's failure.
    let script = duo_with_bulk(None, remove_404_element);
    let duo = http_client(&script, |c| c.bulk = BulkMode::Always).await;
    let outcome = duo.run_ops(&membership_ops()).await;
    let e = outcome.results[0].as_ref().err().unwrap_or_else(|| panic!("an unconfirmed remove counted as done"));
    assert_eq!(e.class(), ErrorClass::Unresolved);
    assert!(e.to_string().starts_with(&format!("POST /admin/v1/users/{U1}/groups/{G1} in POST /admin/v1/bulk")), "{e}");
    assert_eq!(calls(&script), vec!["POST /admin/v1/bulk"]);
}

#[tokio::test]
async fn an_unusable_bulk_endpoint_falls_back_to_single_calls_for_the_rest_of_the_process() {
    for (what, call, element) in [
        ("404", Some(fail(404, 40401, "Resource not found", None)), ok_element as fn(&Value) -> Value),
        ("405", Some(fail(405, 40501, "Method not allowed", None)), ok_element),
        ("bare elements", None, bare_element),
        ("not a list", Some(ok(json!({"done": true}))), ok_element),
    ] {
        let script = duo_with_bulk(call, element);
        let duo = http_client(&script, |_| {}).await;
        let outcome = duo.run_ops(&membership_ops()).await;
        assert!(outcome.results.iter().all(Result::is_ok), "{what}: {outcome:?}");
        assert_eq!(outcome.calls, 3, "{what}: one bulk call, then one single call per op of the chunk");
        assert!(duo.bulk_found_unusable(), "{what}");
        // The next ops go straight to single calls.
        let again = duo.run_ops(&membership_ops()).await;
        assert_eq!(again.calls, 2, "{what}");
        let c = calls(&script);
        assert_eq!(c.iter().filter(|c| c.as_str() == "POST /admin/v1/bulk").count(), 1, "{what}: {c:?}");
        assert_eq!(c.len(), 5, "{what}: {c:?}");
    }
}

#[tokio::test]
async fn a_bulk_call_refused_as_a_whole_sends_its_ops_as_single_calls() {
    let script = duo_with_bulk(Some(fail(400, 40002, "Invalid request parameters", Some("operations"))), ok_element);
    let duo = http_client(&script, |_| {}).await;
    let outcome = duo.run_ops(&membership_ops()).await;
    assert!(outcome.results.iter().all(Result::is_ok), "{outcome:?}");
    assert_eq!(outcome.calls, 3);
    assert!(!duo.bulk_found_unusable(), "a 400 may be this request's fault: bulk is tried again");
    assert_eq!(duo.run_ops(&membership_ops()).await.calls, 3);
    // With bulk = always the refusal is every op's failure.
    let duo = http_client(&script, |c| c.bulk = BulkMode::Always).await;
    let outcome = duo.run_ops(&membership_ops()).await;
    assert!(outcome.results.iter().all(|r| r.as_ref().is_err_and(|e| e.class() == ErrorClass::InvalidParameter)), "{outcome:?}");
}

#[tokio::test]
async fn fallback_costs_single_calls_only_for_the_affected_chunk() {
    // 120 adds = chunks of 50, 50, 20; only the second chunk's reply carries an unclassifiable
    // failure, for one op: one single call is added, nothing else.
    let script = Script::new(|s, n| {
        if s.path == "/admin/v1/bulk" {
            let ops = operations(s);
            let els: Vec<Value> = ops
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    if n == 1 && i == 7 {
                        // (Not 50001: on an add that is Duo's group-limit refusal.)
                        json!({"stat": "FAIL", "code": 50301, "message": "Service unavailable"})
                    } else {
                        json!({"stat": "OK", "response": ""})
                    }
                })
                .collect();
            ok(Value::Array(els))
        } else {
            ok(json!(""))
        }
    });
    let duo = http_client(&script, |_| {}).await;
    let ops: Vec<BulkOp> =
        (0..120).map(|i| BulkOp::AddUserToGroup { user_id: format!("DU{i:018}"), group_id: G1.into() }).collect();
    let outcome = duo.run_ops(&ops).await;
    assert!(outcome.results.iter().all(Result::is_ok));
    assert_eq!(outcome.calls, 4);
    let c = calls(&script);
    assert_eq!(c[2], format!("POST /admin/v1/users/DU{:018}/groups", 57));
    assert_eq!(c.len(), 4);
    assert!(!duo.bulk_found_unusable());
}

#[tokio::test]
async fn bulk_is_only_sent_with_signature_v5() {
    let script = duo_with_bulk(None, ok_element);
    let duo = http_client(&script, |c| c.signature = SignatureVariant::V2Sha1).await;
    let outcome = duo.run_ops(&membership_ops()).await;
    assert!(outcome.results.iter().all(Result::is_ok));
    assert!(calls(&script).iter().all(|c| c != "POST /admin/v1/bulk"), "{:?}", calls(&script));
    // With v5, auto sends bulk.
    let script = duo_with_bulk(None, ok_element);
    let duo = http_client(&script, |_| {}).await;
    assert_eq!(duo.run_ops(&membership_ops()).await.calls, 1);
    assert_eq!(calls(&script), vec!["POST /admin/v1/bulk"]);
}

#[tokio::test]
async fn already_a_member_is_success_in_bulk_and_single_calls() {
    let already = || fail(400, 40004, "Operation failed", Some("User is already a member of the specified group"));
    let script = Script::new(move |s, _| {
        if s.path == "/admin/v1/bulk" {
            ok(json!([{"stat": "FAIL", "code": 40004, "message": "Operation failed", "message_detail": "User is already a member of the specified group"}]))
        } else {
            already()
        }
    });
    let add = [BulkOp::AddUserToGroup { user_id: U1.into(), group_id: G1.into() }];
    for mode in [BulkMode::Auto, BulkMode::Never, BulkMode::Always] {
        let duo = http_client(&script, |c| c.bulk = mode).await;
        let outcome = duo.run_ops(&add).await;
        assert!(outcome.results[0].is_ok(), "{mode:?}: {outcome:?}");
        assert_eq!(outcome.calls, 1, "{mode:?}");
    }
}
