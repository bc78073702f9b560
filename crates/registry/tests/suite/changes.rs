//! The change log: one entry per mutation, strictly increasing sequence numbers, and enough named
//! objects (ancestors through nesting included) for an incremental sync.

use crate::registry_test;
use crate::support::*;
use duoprov_model::{ChangeKind, SubjectKey};

registry_test!(every_mutation_appends_one_entry_in_order, |store| {
    add_subject(&*store, "mchyzer").await;
    add_group(&*store, "app:duo:inner").await;
    add_group(&*store, "app:duo:middle").await;
    add_group(&*store, "app:duo:outer").await;
    store.add_member(&g("app:duo:outer"), &nested("app:duo:middle")).await.unwrap();
    store.add_member(&g("app:duo:middle"), &nested("app:duo:inner")).await.unwrap();
    let before = store.last_change_seq().await.unwrap();
    store.add_member(&g("app:duo:inner"), &subject("mchyzer")).await.unwrap();
    let entries = store.changes_after(before, 100).await.unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.kind, ChangeKind::MemberAdded);
    assert_eq!(e.subjects, vec![SubjectKey::local("mchyzer")]);
    let mut expected = Vec::new();
    for name in ["app:duo:inner", "app:duo:middle", "app:duo:outer"] {
        expected.push(store.group(&g(name)).await.unwrap().unwrap().uuid);
    }
    expected.sort();
    assert_eq!(e.groups, expected, "the group and every group above it");

    let all = store.changes_after(0, 1000).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "strictly increasing");
    let kinds: Vec<ChangeKind> = all.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == ChangeKind::GroupAdded).count(), 3);
    assert_eq!(kinds[0], ChangeKind::SubjectAdded);
    assert_eq!(store.changes_after(0, 2).await.unwrap().len(), 2);
    // No-op writes log nothing.
    let seq = store.last_change_seq().await.unwrap();
    store.add_member(&g("app:duo:inner"), &subject("mchyzer")).await.unwrap();
    add_subject(&*store, "mchyzer").await;
    assert_eq!(store.last_change_seq().await.unwrap(), seq);
});

mod newer_kinds {
    use super::*;
    use crate::duo_users::raw;

    crate::raw_test!(a_newer_versions_change_kind_reads_as_unknown, |raw| {
        let store = raw.store();
        add_group(store, "app:duo:before").await;
        let before = store.last_change_seq().await.unwrap();
        // What a newer duoprov might append: a kind this version has no name for.
        raw.execute(
            "INSERT INTO change_log (at_ms, kind, groups, subjects, provisioners, detail) \
             VALUES (1, 'group_archived', '[\"uuid-x\"]', '[]', '[]', '{}')",
        )
        .await;
        add_group(store, "app:duo:after").await;
        let entries = store.changes_after(before, 100).await.expect("the log stays readable past an unknown kind");
        let kinds: Vec<ChangeKind> = entries.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [ChangeKind::Unknown, ChangeKind::GroupAdded], "{entries:#?}");
        assert_eq!(entries[0].groups, ["uuid-x"], "its named objects are kept");
        assert_eq!(store.last_change_seq().await.unwrap(), entries[1].seq);
    });
}
