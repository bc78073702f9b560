//! `duo_users::load`: Duo's user objects mapped to rows and the provisioner's part of the
//! registry's Duo users table replaced with them, in one call (what a full sync makes with the
//! users it read). The replace itself is tested on both databases in the registry's suite.

use duoprov_registry::{DuoUserFilter, DuoUserRow, OpenOptions, ReplaceCounts, Store};

fn counts(inserted: u64, updated: u64, deleted: u64, unchanged: u64) -> ReplaceCounts {
    ReplaceCounts { inserted, updated, deleted, unchanged }
}

async fn all(store: &dyn Store, config: &str) -> Vec<DuoUserRow> {
    store.duo_users(config, &DuoUserFilter::default()).await.expect("read duo users")
}

#[tokio::test]
async fn load_maps_and_replaces_in_one_call() {
    let store = duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.unwrap();
    // What a full sync calls with the users it read (duoprov_duo::User is this type).
    let users: Vec<duoprov_duo::User> = serde_json::from_value(serde_json::json!([
        {"user_id": "DUAAAAAAAAAAAAAAAAA1", "username": "alice", "aliases": {"alias1": "a,l"}, "created": 1,
         "phones": [{"number": "+15555550100", "activated": true}], "is_enrolled": true, "status": "active"},
        {"user_id": "DUAAAAAAAAAAAAAAAAA2", "username": "bob", "realname": null},
        {"user_id": "DUAAAAAAAAAAAAAAAAA1", "username": "alice", "aliases": {"alias1": "a,l"}, "created": 1,
         "phones": [{"number": "+15555550100", "activated": true}], "is_enrolled": true, "status": "active"},
    ]))
    .expect("Duo users");
    let outcome = duoprov_sync::duo_users::load(&*store, "duoTest", &users).await.unwrap();
    assert_eq!((outcome.users, outcome.counts), (2, counts(2, 0, 0, 0)));
    let named: Vec<(&str, bool)> = outcome.problems.iter().map(|p| (p.user_id.as_str(), p.message.contains("created"))).collect();
    assert_eq!(named, [("DUAAAAAAAAAAAAAAAAA2", true), ("DUAAAAAAAAAAAAAAAAA1", false)], "{:?}", outcome.problems);
    let rows = all(&*store, "duoTest").await;
    assert_eq!(
        rows.iter().map(|r| (r.user_id.as_str(), r.aliases.as_deref(), r.phones.as_deref(), r.is_push_enabled.as_deref(), r.created_at)).collect::<Vec<_>>(),
        [
            ("DUAAAAAAAAAAAAAAAAA1", Some("a&#x2c;l"), Some("+15555550100"), Some("T"), Some(1)),
            ("DUAAAAAAAAAAAAAAAAA2", None, None, Some("F"), None),
        ]
    );
    let outcome = duoprov_sync::duo_users::load(&*store, "duoTest", &users[..1]).await.unwrap();
    assert_eq!((outcome.users, outcome.counts), (1, counts(0, 0, 1, 1)));
}
