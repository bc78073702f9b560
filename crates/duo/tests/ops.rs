//! Typed operations against the in-memory transport: what each sends (method, path, parameters)
//! and how each maps Duo's replies (404 on delete and "already a member" are success, bulk
//! results map back per operation, lists are chunked).

use duoprov_duo::{BulkOp, ErrorClass, GroupFields, NewUser, UserFields};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn gets_and_idempotent_deletes() {
    let script = Script::new(|_, _| fail(404, 40401, "Resource not found", None));
    let duo = mem_client(&script, |_| {});
    assert_eq!(duo.get_user("DU00000000000000001").await, Ok(None));
    assert_eq!(duo.get_group("DG00000000000000001").await, Ok(None));
    assert_eq!(duo.delete_user("DU00000000000000001").await, Ok(()));
    assert_eq!(duo.delete_group("DG00000000000000001").await, Ok(()));
    assert_eq!(duo.remove_user_from_group("DU00000000000000001", "DG00000000000000001").await, Ok(()));
    // 404 is not success for a modify.
    let e = duo.modify_user("DU00000000000000001", &UserFields::default()).await.err();
    assert_eq!(e.map(|e| e.class()), Some(ErrorClass::NotFound));
    let paths: Vec<String> = script.seen().iter().map(|s| format!("{} {}", s.method, s.path)).collect();
    assert_eq!(
        paths,
        vec![
            "GET /admin/v1/users/DU00000000000000001",
            "GET /admin/v2/groups/DG00000000000000001",
            "DELETE /admin/v1/users/DU00000000000000001",
            "DELETE /admin/v1/groups/DG00000000000000001",
            "DELETE /admin/v1/users/DU00000000000000001/groups/DG00000000000000001",
            "POST /admin/v1/users/DU00000000000000001",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn already_a_member_is_success() {
    let script = Script::queue(vec![
        fail(400, 40004, "Operation failed", Some("User is already a member of the specified group")),
        fail(400, 40002, "Invalid request parameters", Some("group_id")),
    ]);
    let duo = mem_client(&script, |_| {});
    assert_eq!(duo.add_user_to_group("DU00000000000000001", "DG00000000000000001").await, Ok(()));
    let e = duo.add_user_to_group("DU00000000000000001", "DG00000000000000002").await.err();
    assert_eq!(e.map(|e| e.class()), Some(ErrorClass::InvalidParameter));
    let seen = script.seen();
    assert_eq!(seen[0].json(), json!({"group_id": "DG00000000000000001"}));
}

#[tokio::test(start_paused = true)]
async fn username_lookup_matches_one_or_none() {
    let script = Script::queue(vec![
        page(json!([]), None),
        page(json!([user("DU00000000000000001", "a"), user("DU00000000000000002", "b")]), None),
    ]);
    let duo = mem_client(&script, |_| {});
    assert_eq!(duo.get_user_by_username("nobody").await, Ok(None));
    let e = duo.get_user_by_username("a").await.err();
    assert_eq!(e.map(|e| e.class()), Some(ErrorClass::MalformedResponse));
}

#[tokio::test(start_paused = true)]
async fn modify_sends_only_set_fields() {
    let script = Script::queue(vec![ok(user("DU00000000000000001", "new")), ok(group("DG00000000000000001", "g2"))]);
    let duo = mem_client(&script, |_| {});
    let f = UserFields { username: Some("new".into()), email: Some(String::new()), ..Default::default() };
    assert!(duo.modify_user("DU00000000000000001", &f).await.is_ok());
    assert!(duo.modify_group("DG00000000000000001", &GroupFields::named("g2")).await.is_ok());
    let seen = script.seen();
    assert_eq!(seen[0].json(), json!({"username": "new", "email": ""}));
    assert_eq!(seen[1].json(), json!({"name": "g2"}));
}

#[tokio::test(start_paused = true)]
async fn trash_and_restore_chunk_user_id_lists() {
    let script = Script::new(|_, _| ok(json!("")));
    let duo = mem_client(&script, |_| {});
    let ids: Vec<String> = (0..250).map(|i| format!("DU{i:018}")).collect();
    assert_eq!(duo.send_users_to_trash(&ids).await, Ok(()));
    assert_eq!(duo.restore_users(&ids[..3]).await, Ok(()));
    let seen = script.seen();
    assert_eq!(seen.len(), 4);
    let mut all: Vec<String> = Vec::new();
    for s in &seen[..3] {
        assert_eq!(s.path, "/admin/v1/users/bulk_send_to_trash");
        let list = s.json()["user_id_list"].as_str().map(str::to_owned).unwrap_or_default();
        let v: Vec<String> = serde_json::from_str(&list).unwrap_or_default();
        assert!(v.len() <= 100);
        all.extend(v);
    }
    assert_eq!(all, ids);
    assert_eq!(seen[3].path, "/admin/v1/users/bulk_restore");
    // A bad id stops the call before anything is sent.
    let script = Script::new(|_, _| ok(json!("")));
    let duo = mem_client(&script, |_| {});
    assert_eq!(duo.restore_users(&["DU1".into(), "bad id".into()]).await.err().map(|e| e.class()), Some(ErrorClass::Config));
    assert!(script.seen().is_empty());
}

#[tokio::test(start_paused = true)]
async fn bulk_create_users_sends_json_string() {
    let script = Script::new(|s, _| {
        let users: Vec<Value> = serde_json::from_str(s.json()["users"].as_str().unwrap_or("[]")).unwrap_or_default();
        let created: Vec<Value> = users
            .iter()
            .enumerate()
            .map(|(i, u)| user(&format!("DU{i:018}"), u["username"].as_str().unwrap_or_default()))
            .collect();
        ok(json!(created))
    });
    let duo = mem_client(&script, |_| {});
    let users: Vec<NewUser> = (0..150).map(|i| NewUser::new(format!("u{i}")).email(format!("u{i}@x"))).collect();
    let created = duo.bulk_create_users(&users).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.len(), 150);
    assert_eq!(created[149].username, "u149");
    let seen = script.seen();
    assert_eq!(seen.len(), 2);
    let first: Vec<Value> = serde_json::from_str(seen[0].json()["users"].as_str().unwrap_or("[]")).unwrap_or_default();
    assert_eq!(first.len(), 100);
    assert_eq!(first[0], json!({"username": "u0", "email": "u0@x"}));
}

#[tokio::test(start_paused = true)]
async fn bulk_maps_results_back_and_chunks_at_50() {
    let script = Script::new(|s, _| {
        let ops: Vec<Value> = serde_json::from_str(s.json()["operations"].as_str().unwrap_or("[]")).unwrap_or_default();
        let results: Vec<Value> = ops
            .iter()
            .map(|op| {
                let path = op["path"].as_str().unwrap_or_default();
                if path.ends_with("/groups") && op["body"]["group_id"] == "DG00000000000000002" {
                    json!({"stat": "FAIL", "code": 40004, "message": "Operation failed", "message_detail": "User is already a member of the specified group"})
                } else if op["method"] == "DELETE" {
                    json!({"stat": "FAIL", "code": 40401, "message": "Resource not found"})
                } else if op["body"]["username"] == "dup" {
                    json!({"stat": "FAIL", "code": 40002, "message": "Invalid request parameters", "message_detail": "username"})
                } else {
                    json!({"stat": "OK", "response": {"path": path}})
                }
            })
            .collect();
        ok(json!(results))
    });
    let duo = mem_client(&script, |_| {});
    let mut ops = vec![
        BulkOp::CreateUser(NewUser::new("dup")),
        BulkOp::AddUserToGroup { user_id: "DU00000000000000001".into(), group_id: "DG00000000000000002".into() },
        BulkOp::DeleteUser { user_id: "DU00000000000000001".into() },
        BulkOp::RemoveUserFromGroup { user_id: "DU00000000000000001".into(), group_id: "DG00000000000000003".into() },
    ];
    for i in 0..60 {
        ops.push(BulkOp::ModifyUser { user_id: format!("DU{i:018}"), fields: UserFields { notes: Some("n".into()), ..Default::default() } });
    }
    let results = duo.bulk(&ops).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(results.len(), 64);
    assert_eq!(results[0].as_ref().err().and_then(|f| f.message_detail.clone()).as_deref(), Some("username"));
    assert_eq!(results[1], Ok(Value::Null));
    assert_eq!(results[2], Ok(Value::Null));
    assert_eq!(results[3], Ok(json!({"path": "/admin/v1/users/DU00000000000000001/groups/DG00000000000000003"})));
    assert_eq!(results[63], Ok(json!({"path": format!("/admin/v1/users/DU{:018}", 59)})));
    let seen = script.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/admin/v1/bulk");
    let first: Vec<Value> = serde_json::from_str(seen[0].json()["operations"].as_str().unwrap_or("[]")).unwrap_or_default();
    assert_eq!(first.len(), 50);
    assert_eq!(first[0], json!({"method": "POST", "path": "/admin/v1/users", "body": {"username": "dup"}}));

    // A response of the wrong length is malformed.
    let script = Script::new(|_, _| ok(json!([])));
    let duo = mem_client(&script, |_| {});
    let e = duo.bulk(&[BulkOp::DeleteUser { user_id: "DU00000000000000001".into() }]).await.err();
    assert_eq!(e.map(|e| e.class()), Some(ErrorClass::MalformedResponse));
}

#[tokio::test(start_paused = true)]
async fn list_user_groups_pages_at_500() {
    let script = Script::queue(vec![page(json!([group("DG00000000000000001", "a")]), None)]);
    let duo = mem_client(&script, |_| {});
    assert_eq!(duo.list_user_groups("DU00000000000000001").await.map(|g| g.len()), Ok(1));
    let s = &script.seen()[0];
    assert_eq!(s.path, "/admin/v1/users/DU00000000000000001/groups");
    assert_eq!(s.param("limit").as_deref(), Some("500"));
    assert_eq!(s.param("offset").as_deref(), Some("0"));
}

#[tokio::test(start_paused = true)]
async fn lookups_by_lists_are_chunked_json_arrays() {
    let script = Script::new(|s, _| {
        let (param, kind) = if s.path == "/admin/v1/groups" { ("group_id_list", 'g') } else if s.param("user_id_list").is_some() { ("user_id_list", 'i') } else { ("username_list", 'u') };
        let list: Vec<String> = serde_json::from_str(&s.param(param).unwrap_or_default()).unwrap_or_default();
        let items: Vec<Value> = list
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 10 != 0) // some are unknown to Duo
            .map(|(i, v)| match kind {
                'g' => group(v, &format!("g{i}")),
                'i' => user(v, &format!("u{i}")),
                _ => user(&format!("DU{i:018}"), v),
            })
            .collect();
        page(json!(items), None)
    });
    let duo = mem_client(&script, |_| {});
    let names: Vec<String> = (0..120).map(|i| format!("user {i}")).collect();
    let found = duo.get_users_by_usernames(&names).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.len(), 90 + 18);
    assert_eq!(found[0].username, "user 1");
    let ids: Vec<String> = (0..30).map(|i| format!("DU{i:018}")).collect();
    assert_eq!(duo.get_users_by_ids(&ids).await.map(|u| u.len()), Ok(27));
    let gids: Vec<String> = (0..5).map(|i| format!("DG{i:018}")).collect();
    assert_eq!(duo.get_groups_by_ids(&gids).await.map(|g| g.len()), Ok(4));
    let seen = script.seen();
    assert_eq!(seen.len(), 4);
    let first: Vec<String> = serde_json::from_str(&seen[0].param("username_list").unwrap_or_default()).unwrap_or_default();
    assert_eq!(first.len(), 100);
    assert_eq!(seen[0].query.split('&').count(), 1, "no limit/offset with a list lookup");
    assert_eq!(duo.get_users_by_ids(&["bad id".into()]).await.err().map(|e| e.class()), Some(ErrorClass::Config));
}

/// A page of group members with the given metadata.
fn members_page(ids: &[&str], next: Option<u64>, total: Option<u64>) -> Reply {
    let items: Vec<Value> = ids.iter().map(|id| json!({"user_id": id, "username": "m"})).collect();
    Reply::Json(200, json!({"stat": "OK", "response": items, "metadata": {"next_offset": next, "prev_offset": null, "total_objects": total}}).to_string())
}

#[tokio::test(start_paused = true)]
async fn a_group_member_count_is_duos_total_objects_or_else_counted_never_assumed() {
    let script = Script::queue(vec![
        // Duo sends the total: one call of one item.
        members_page(&["DU00000000000000001"], Some(1), Some(1000)),
        // No total: the members are read (500 a page) and counted.
        members_page(&["DU00000000000000001"], Some(1), None),
        members_page(&["DU00000000000000001", "DU00000000000000002", "DU00000000000000003"], None, None),
        // A total below what the page holds is malformed, not a count.
        members_page(&["DU00000000000000001"], None, Some(0)),
    ]);
    let duo = mem_client(&script, |_| {});
    assert_eq!(duo.count_group_members("DG00000000000000001").await, Ok(1000));
    assert_eq!(duo.count_group_members("DG00000000000000001").await, Ok(3));
    let e = duo.count_group_members("DG00000000000000001").await.err();
    assert_eq!(e.map(|e| e.class()), Some(ErrorClass::MalformedResponse));
    let seen: Vec<String> = script.seen().iter().map(|s| format!("{} {} limit={}", s.method, s.path, s.param("limit").unwrap_or_default())).collect();
    assert_eq!(
        seen,
        vec![
            "GET /admin/v2/groups/DG00000000000000001/users limit=1",
            "GET /admin/v2/groups/DG00000000000000001/users limit=1",
            "GET /admin/v2/groups/DG00000000000000001/users limit=500",
            "GET /admin/v2/groups/DG00000000000000001/users limit=1",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_membership_add_answered_500_50001_is_not_retried_and_names_duo_s_group_limit() {
    let script = Script::new(|_, _| fail(500, 50001, "Unknown internal server error", None));
    let duo = mem_client(&script, |_| {});
    let e = duo.add_user_to_group("DU00000000000000001", "DG00000000000000001").await.err();
    let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
    assert_eq!(e.map(|e| e.class()), Some(ErrorClass::Server));
    assert!(text.contains("limit of 100 groups per user") && text.contains("code 50001"), "{text}");
    assert_eq!(script.seen().len(), 1, "one attempt: repeating cannot lift Duo's limit");
    // Another 5xx on an add is still retried.
    let script = Script::queue(vec![fail(503, 50301, "Service unavailable", None), ok(json!(""))]);
    let duo = mem_client(&script, |_| {});
    assert_eq!(duo.add_user_to_group("DU00000000000000001", "DG00000000000000001").await, Ok(()));
    assert_eq!(script.seen().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_bulk_add_answered_50001_fails_that_operation_without_a_single_call_redo() {
    let script = Script::queue(vec![ok(json!([
        {"stat": "FAIL", "code": 50001, "message": "Unknown internal server error"},
        {"stat": "OK", "response": ""}
    ]))]);
    let duo = mem_client(&script, |_| {});
    let ops = vec![
        BulkOp::AddUserToGroup { user_id: "DU00000000000000001".into(), group_id: "DG00000000000000001".into() },
        BulkOp::AddUserToGroup { user_id: "DU00000000000000002".into(), group_id: "DG00000000000000001".into() },
    ];
    let outcome = duo.run_ops(&ops).await;
    let first = outcome.results[0].as_ref().err().map(ToString::to_string).unwrap_or_default();
    assert!(first.contains("limit of 100 groups per user"), "{first}");
    assert!(outcome.results[1].is_ok());
    assert_eq!((outcome.calls, script.seen().len()), (1, 1), "the failed add is not redone");
}
