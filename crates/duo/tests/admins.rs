//! The administrator calls (`/admin/v1/admins`): listing follows `next_offset` in the page-read
//! class and writes are in the write class; an administrator without a field the admin-role sync
//! depends on is a malformed reply, never a default; `send_email=1` is sent only when asked; a
//! create whose outcome is unknown is settled by reading back by e-mail, never sent twice blindly;
//! a delete answers an empty string, and 404 is success.

use duoprov_duo::{AdminUpdate, CallClass, ErrorClass, NewAdmin};
use serde_json::{Value, json};

use crate::support::*;

fn admin(id: &str, email: &str, role: &str) -> Value {
    json!({"admin_id": id, "email": email, "name": "N", "role": role, "status": "Active", "phone": "", "admin_units": [], "restricted_by_admin_units": false})
}

/// A parameter as sent: in the query, a form body or a JSON body (signature v5).
fn arg(s: &Seen, k: &str) -> Option<String> {
    s.param(k).or_else(|| s.json()[k].as_str().map(str::to_owned))
}

fn calls(script: &Script) -> Vec<String> {
    script.seen().iter().map(|s| format!("{} {}", s.method, s.path)).collect()
}

#[tokio::test(start_paused = true)]
async fn administrators_are_listed_page_by_page_in_the_page_read_class() {
    let script = Script::queue(vec![page(json!([admin("DE1", "a@example.com", "Owner")]), Some(1)), page(json!([admin("DE2", "b@example.com", "Help Desk")]), None)]);
    let duo = mem_client(&script, |_| {});
    let list = duo.list_admins().await.unwrap();
    assert_eq!(list.iter().map(|a| (a.admin_id.as_str(), a.role.as_str())).collect::<Vec<_>>(), [("DE1", "Owner"), ("DE2", "Help Desk")]);
    let seen = script.seen();
    assert_eq!((arg(&seen[0], "limit").as_deref(), arg(&seen[1], "offset").as_deref()), (Some("100"), Some("1")));
    let page_reads = duo.pacing_stats().into_iter().find(|c| c.class == CallClass::PageRead).map(|c| c.calls);
    assert_eq!(page_reads, Some(2));
}

#[tokio::test(start_paused = true)]
async fn an_administrator_missing_a_field_or_with_a_bad_id_is_a_malformed_reply() {
    for bad in [json!({"admin_id": "DE1", "email": "a@example.com", "name": "N", "status": "Active"}), json!({"admin_id": "de/1", "email": "a@example.com", "name": "N", "role": "Owner", "status": "Active"}), json!({"admin_id": "DE1", "email": null, "name": "N", "role": "Owner", "status": "Active"}), json!("DE1")] {
        let script = Script::queue(vec![page(json!([bad.clone()]), None)]);
        let e = mem_client(&script, |_| {}).list_admins().await.err();
        assert_eq!(e.map(|e| e.class()), Some(ErrorClass::MalformedResponse), "{bad}");
        let script = Script::queue(vec![ok(bad.clone())]);
        let e = mem_client(&script, |_| {}).update_admin("DE1", &AdminUpdate { role: Some("Owner".into()), status: None }).await.err();
        assert_eq!(e.map(|e| e.class()), Some(ErrorClass::MalformedResponse), "{bad}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_create_sends_role_and_send_email_only_when_asked_and_writes_are_in_the_write_class() {
    let script = Script::new(|s, _| ok(admin("DE1", &arg(s, "email").unwrap_or_default(), &arg(s, "role").unwrap_or_default())));
    let duo = mem_client(&script, |_| {});
    for send_email in [true, false] {
        let a = duo.create_admin(&NewAdmin { name: "A".into(), email: "a@example.com".into(), role: "Help Desk".into(), send_email }).await.unwrap();
        assert_eq!(a.role, "Help Desk");
    }
    let seen = script.seen();
    assert_eq!(arg(&seen[0], "send_email").as_deref(), Some("1"));
    assert_eq!(arg(&seen[1], "send_email"), None);
    assert_eq!(arg(&seen[0], "role").as_deref(), Some("Help Desk"));
    let writes = duo.pacing_stats().into_iter().find(|c| c.class == CallClass::Write).map(|c| c.calls);
    assert_eq!(writes, Some(2));
}

#[tokio::test(start_paused = true)]
async fn a_create_of_unknown_outcome_is_settled_by_reading_back_by_email() {
    let script = Script::new(|s, _| match s.method.as_str() {
        "POST" => Reply::Fail { detail: "connection reset".into(), maybe_sent: true },
        _ => page(json!([admin("DE7", "A@Example.com", "Help Desk")]), None),
    });
    let duo = mem_client(&script, |_| {});
    let a = duo.create_admin(&NewAdmin { name: "A".into(), email: "a@example.com".into(), role: "Help Desk".into(), send_email: false }).await.unwrap();
    assert_eq!(a.admin_id, "DE7");
    assert_eq!(calls(&script), ["POST /admin/v1/admins", "GET /admin/v1/admins"], "read back, not sent twice");
}

#[tokio::test(start_paused = true)]
async fn a_delete_answers_an_empty_string_a_404_is_success_and_anything_else_is_malformed() {
    for (reply, class) in [(ok(json!("")), None), (fail(404, 40401, "Resource not found", None), None), (ok(json!({"admin_id": "DE1"})), Some(ErrorClass::MalformedResponse))] {
        let script = Script::queue(vec![reply]);
        let r = mem_client(&script, |_| {}).delete_admin("DE1").await;
        assert_eq!(r.err().map(|e| e.class()), class);
    }
    let script = Script::queue(vec![]);
    assert_eq!(mem_client(&script, |_| {}).delete_admin("DE1/../x").await.err().map(|e| e.class()), Some(ErrorClass::Config));
    assert!(script.seen().is_empty(), "a bad id never reaches a path");
}
