//! Snapshots of every endpoint's response body (committed under `tests/snapshots/`). Ids come
//! from a fixed seed and timestamps from a fixed clock, so the bodies are stable byte for byte.

use duoprov_duo_wire::SignatureVariant;
use serde_json::Value;

use crate::support::{self, Client, NG_IKEY, NG_SKEY};

#[tokio::test]
async fn every_endpoint_body() {
    let emu = support::spawn(|s| {
        s.id_seed = Some(7);
        s.fixed_time = Some(1_700_000_000);
        s.max_body_bytes = 4096;
    })
    .await;
    let c = Client::new(&emu);
    let mut bodies: Vec<(&str, Value)> = Vec::new();
    let mut put = |name, r: support::Reply| {
        bodies.push((
            name,
            serde_json::json!({"status": r.status, "body": r.json}),
        ))
    };

    let r = c
        .call(
            "POST",
            "/admin/v1/users",
            &[
                ("username", "jdoe"),
                ("realname", "Jane Doe"),
                ("email", "jdoe@example.com"),
                ("alias1", "jane"),
            ],
        )
        .await;
    let user = r.response()["user_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    put("users.create", r);
    let r = c
        .call(
            "POST",
            "/admin/v1/groups",
            &[("name", "Staff"), ("desc", "All staff")],
        )
        .await;
    let group = r.response()["group_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    put("groups.create", r);
    put(
        "users.groups.add",
        c.call(
            "POST",
            &format!("/admin/v1/users/{user}/groups"),
            &[("group_id", &group)],
        )
        .await,
    );
    put(
        "users.get",
        c.call("GET", &format!("/admin/v1/users/{user}"), &[]).await,
    );
    put(
        "users.list",
        c.call("GET", "/admin/v1/users", &[("limit", "1"), ("offset", "0")])
            .await,
    );
    put(
        "users.modify",
        c.call(
            "POST",
            &format!("/admin/v1/users/{user}"),
            &[("status", "bypass"), ("notes", "n")],
        )
        .await,
    );
    put(
        "users.groups.list",
        c.call("GET", &format!("/admin/v1/users/{user}/groups"), &[])
            .await,
    );
    put("groups.list", c.call("GET", "/admin/v1/groups", &[]).await);
    put(
        "groups.get_v1",
        c.call("GET", &format!("/admin/v1/groups/{group}"), &[])
            .await,
    );
    put(
        "groups.get",
        c.call("GET", &format!("/admin/v2/groups/{group}"), &[])
            .await,
    );
    put(
        "groups.users",
        c.call("GET", &format!("/admin/v2/groups/{group}/users"), &[])
            .await,
    );
    put(
        "groups.modify",
        c.call(
            "POST",
            &format!("/admin/v1/groups/{group}"),
            &[("status", "disabled")],
        )
        .await,
    );
    let users = r#"[{"username":"b1","email":"b1@example.com"},{"username":"b2"}]"#;
    let r = c
        .call("POST", "/admin/v1/users/bulk_create", &[("users", users)])
        .await;
    let b1 = r.response()[0]["user_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    put("users.bulk_create", r);
    let list = format!("[\"{b1}\"]");
    put(
        "users.bulk_send_to_trash",
        c.call(
            "POST",
            "/admin/v1/users/bulk_send_to_trash",
            &[("user_id_list", &list)],
        )
        .await,
    );
    put(
        "users.get_trashed",
        c.call("GET", &format!("/admin/v1/users/{b1}"), &[]).await,
    );
    put(
        "users.bulk_restore",
        c.call(
            "POST",
            "/admin/v1/users/bulk_restore",
            &[("user_id_list", &list)],
        )
        .await,
    );
    let ops = format!(
        r#"[{{"method":"POST","path":"/admin/v1/users/{b1}","body":{{"realname":"B One"}}}},{{"method":"DELETE","path":"/admin/v1/users/{b1}/groups/{group}","body":{{}}}},{{"method":"POST","path":"/admin/v1/users","body":{{}}}}]"#
    );
    put(
        "bulk",
        c.call("POST", "/admin/v1/bulk", &[("operations", &ops)])
            .await,
    );
    let r = c
        .call(
            "POST",
            "/admin/v1/admins",
            &[
                ("name", "Ann Admin"),
                ("email", "ann@example.com"),
                ("role", "Help Desk"),
            ],
        )
        .await;
    let admin = r.response()["admin_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    put("admins.create", r);
    put(
        "admins.get",
        c.call("GET", &format!("/admin/v1/admins/{admin}"), &[])
            .await,
    );
    put(
        "admins.modify",
        c.call(
            "POST",
            &format!("/admin/v1/admins/{admin}"),
            &[("status", "Disabled")],
        )
        .await,
    );
    put("admins.list", c.call("GET", "/admin/v1/admins", &[]).await);
    put(
        "admins.delete",
        c.call("DELETE", &format!("/admin/v1/admins/{admin}"), &[])
            .await,
    );
    put(
        "users.groups.remove",
        c.call(
            "DELETE",
            &format!("/admin/v1/users/{user}/groups/{group}"),
            &[],
        )
        .await,
    );
    put(
        "groups.delete",
        c.call("DELETE", &format!("/admin/v1/groups/{group}"), &[])
            .await,
    );
    put(
        "users.delete",
        c.call("DELETE", &format!("/admin/v1/users/{user}"), &[])
            .await,
    );

    // Errors.
    put(
        "error_400_missing",
        c.call("POST", "/admin/v1/groups", &[]).await,
    );
    put(
        "error_400_duplicate",
        c.call("POST", "/admin/v1/users", &[("username", "b2")])
            .await,
    );
    put(
        "error_404",
        c.call("GET", &format!("/admin/v1/users/{user}"), &[]).await,
    );
    put("error_405", c.call("PUT", "/admin/v1/users", &[]).await);
    put(
        "error_413",
        c.call(
            "POST",
            "/admin/v1/users",
            &[("username", &"x".repeat(5000))],
        )
        .await,
    );
    put(
        "error_403",
        Client::with(&emu, NG_IKEY, NG_SKEY, SignatureVariant::V5)
            .call("GET", "/admin/v1/users", &[])
            .await,
    );
    put(
        "error_401_signature",
        Client::with(&emu, NG_IKEY, "wrong", SignatureVariant::V5)
            .call("GET", "/admin/v1/users", &[])
            .await,
    );
    put(
        "error_401_ikey",
        Client::with(&emu, "DIUNKNOWN", "wrong", SignatureVariant::V5)
            .call("GET", "/admin/v1/users", &[])
            .await,
    );
    emu.handle()
        .set_faults("429 first=1")
        .unwrap_or_else(|e| panic!("{e}"));
    put("error_429", c.call("GET", "/admin/v1/users", &[]).await);

    for (name, body) in bodies {
        insta::assert_json_snapshot!(name, body);
    }
}
