//! The `source_feed` table: each source's change-feed state as the daemon records it, a state
//! replacing the previous one while the last reported change is kept, on both backends.

use duoprov_registry::SourceFeedState;

use crate::registry_test;

registry_test!(a_source_feeds_state_replaces_the_last_one_and_keeps_its_last_change, |store| {
    assert!(store.source_feeds().await.unwrap().is_empty());
    // A change before any state is recorded has no row to go to.
    store.record_source_feed_change("ldap", 5).await.unwrap();
    assert!(store.source_feeds().await.unwrap().is_empty());
    let connected = SourceFeedState {
        source: "ldap".into(),
        mode: "syncrepl".into(),
        connected: Some(true),
        since_ms: 1_000,
        last_change_ms: None,
        error: None,
        updated_at_ms: 1_000,
    };
    store.record_source_feed(&connected).await.unwrap();
    store.record_source_feed_change("ldap", 2_000).await.unwrap();
    let down = SourceFeedState { connected: Some(false), since_ms: 3_000, error: Some("connection to ldap://dir:389 dropped".into()), updated_at_ms: 3_000, ..connected.clone() };
    store.record_source_feed(&down).await.unwrap();
    let polling = SourceFeedState { source: "other".into(), mode: "polling".into(), connected: None, since_ms: 4_000, last_change_ms: None, error: None, updated_at_ms: 4_000 };
    store.record_source_feed(&polling).await.unwrap();
    let feeds = store.source_feeds().await.unwrap();
    assert_eq!(feeds, [SourceFeedState { last_change_ms: Some(2_000), ..down }, polling]);
});
