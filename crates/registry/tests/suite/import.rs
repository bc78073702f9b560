//! Bulk import from JSON and CSV: all or nothing, and every bad row reported with its line.

use crate::registry_test;
use crate::support::*;
use duoprov_registry::{ImportData, RegistryError};

const SEED: &str = r#"{
  "subjects": [
    {"id": "mchyzer", "name": "Chris Hyzer", "login_id": "mchyzer", "email": "mchyzer@example.edu"},
    {"id": "kwilso", "name": "Kate Wilson", "login_id": "kwilso"}
  ],
  "groups": [{"name": "app:duo:testGroup", "description": "Duo test group"}, {"name": "app:duo:outer"}],
  "memberships": [
    {"group": "app:duo:testGroup", "subject": "mchyzer"},
    {"group": "app:duo:testGroup", "subject": "kwilso"},
    {"group": "app:duo:outer", "member_group": "app:duo:testGroup"}
  ],
  "markers": [{"provisioner": "duoTest", "folder": "app:duo", "scope": "sub"}]
}"#;

registry_test!(json_import_writes_everything_once, |store| {
    let mut data = ImportData::default();
    data.add_json("seed.json", SEED).unwrap();
    let summary = store.import(&data).await.unwrap();
    assert_eq!(summary.subjects_created, 2);
    assert_eq!(summary.groups_created, 2);
    assert_eq!(summary.folders_created, 2);
    assert_eq!(summary.memberships_added, 3);
    assert_eq!(summary.markers_set, 1);
    assert_eq!(effective_ids(&*store, "app:duo:outer").await, ["kwilso", "mchyzer"]);
    let sel = store.provisioner_selection("duoTest").await.unwrap();
    assert_eq!(sel.groups.len(), 2);
    // The same import again changes nothing and logs nothing.
    let seq = store.last_change_seq().await.unwrap();
    let again = store.import(&data).await.unwrap();
    assert_eq!(again.subjects_unchanged, 2);
    assert_eq!(again.memberships_added, 0);
    assert_eq!(again.memberships_present, 3);
    assert_eq!(store.last_change_seq().await.unwrap(), seq);
});

registry_test!(csv_import_recognises_each_kind, |store| {
    let mut data = ImportData::default();
    data.add_csv("subjects.csv", "id,name,login_id\nmchyzer,Chris Hyzer,mchyzer\nkwilso,Kate Wilson,kwilso\n").unwrap();
    data.add_csv("groups.csv", "name,description\napp:duo:testGroup,\"Duo, test\"\n").unwrap();
    data.add_csv("members.csv", "group,subject\napp:duo:testGroup,mchyzer\napp:duo:testGroup,kwilso\n").unwrap();
    data.add_csv("markers.csv", "provisioner,folder,scope,provision\nduoTest,app:duo,sub,true\n").unwrap();
    store.import(&data).await.unwrap();
    let group = store.group(&g("app:duo:testGroup")).await.unwrap().unwrap();
    assert_eq!(group.description.as_deref(), Some("Duo, test"));
    assert_eq!(effective_ids(&*store, "app:duo:testGroup").await, ["kwilso", "mchyzer"]);
    assert_eq!(store.markers(None).await.unwrap().len(), 1);
});

registry_test!(bad_rows_are_all_reported_and_nothing_is_written, |store| {
    add_group(&*store, "org:a").await;
    add_group(&*store, "org:b").await;
    store.add_member(&g("org:a"), &nested("org:b")).await.unwrap();
    let seq = store.last_change_seq().await.unwrap();
    let mut data = ImportData::default();
    data.add_csv(
        "subjects.csv",
        "id,name\nok1,Fine\nok1,Duplicate\n,No id\nbell,Bad\u{7}name\n",
    )
    .unwrap();
    data.add_csv(
        "members.csv",
        "group,subject,member_group\norg:a,ok1,\norg:missing,ok1,\norg:a,ghost,\norg:b,,org:a\napp::x,ok1,\n",
    )
    .unwrap();
    let err = store.import(&data).await.unwrap_err();
    let RegistryError::Invalid(errors) = &err else { panic!("expected validation errors, got {err}") };
    let text = err.to_string();
    for expected in [
        "subjects.csv line 3: subject local:ok1: id: duplicate of the subject on line 2",
        "subjects.csv line 4: subject local:: id: must not be empty",
        "subjects.csv line 5: subject local:bell: name: contains the control character U+0007",
        "members.csv line 3: membership in \"org:missing\": group: no group \"org:missing\"",
        "members.csv line 4: membership in \"org:a\": subject: no subject local:ghost",
        "members.csv line 5: membership in \"org:b\": member_group: adding group \"org:a\" would make a cycle",
        "members.csv line 6: membership in \"app::x\": group: segment 2 is empty",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(errors.len(), 7, "{text}");
    assert!(store.subjects(None).await.unwrap().is_empty(), "nothing written");
    assert_eq!(store.last_change_seq().await.unwrap(), seq);
});

registry_test!(json_rows_report_their_lines, |store| {
    let text = "{\n  \"subjects\": [\n    {\"id\": \"a\"},\n    {\"id\": \"b\", \"nmae\": \"typo\"}\n  ],\n  \"memberships\": [\n    {\"group\": \"x:y\", \"subject\": \"a\"}\n  ]\n}";
    let mut data = ImportData::default();
    let err = data.add_json("people.json", text).unwrap_err().to_string();
    assert!(err.contains("people.json line 4: subject: record: unknown field `nmae`"), "{err}");
    let mut data = ImportData::default();
    data.add_json("people.json", &text.replace(", \"nmae\": \"typo\"", "")).unwrap();
    let err = store.import(&data).await.unwrap_err().to_string();
    assert!(err.contains("people.json line 7: membership in \"x:y\": group: no group"), "{err}");
    let mut data = ImportData::default();
    let err = data.add_json("broken.json", "{\"subjects\": [\n{\"id\": }]}").unwrap_err().to_string();
    assert!(err.contains("broken.json line 2"), "{err}");
});

registry_test!(a_large_membership_import_keeps_the_tables_constraints_and_cascades, |store| {
    // 50 groups of the same 1 000 subjects: large enough that PostgreSQL loads the memberships
    // with the table's index and foreign keys set aside, which must all be back afterwards.
    let mut subjects = String::from("id,name\n");
    for i in 0..1000 {
        subjects.push_str(&format!("s{i:04},Subject {i}\n"));
    }
    let mut groups = String::from("name\n");
    let mut members = String::from("group,subject\n");
    for gi in 0..50 {
        groups.push_str(&format!("org:g{gi:02}\n"));
        for i in 0..1000 {
            members.push_str(&format!("org:g{gi:02},s{i:04}\n"));
        }
    }
    let mut data = ImportData::default();
    data.add_csv("subjects.csv", &subjects).unwrap();
    data.add_csv("groups.csv", &groups).unwrap();
    data.add_csv("members.csv", &members).unwrap();
    let summary = store.import(&data).await.unwrap();
    assert_eq!(summary.memberships_added, 50_000);
    assert_eq!(effective_ids(&*store, "org:g49").await.len(), 1000);
    // The subject foreign key cascades again: removing a subject removes its 50 memberships.
    store.remove_subject(&duoprov_model::SubjectKey::local("s0007")).await.unwrap();
    for gi in [0, 49] {
        let ids = effective_ids(&*store, &format!("org:g{gi:02}")).await;
        assert_eq!(ids.len(), 999, "org:g{gi:02}");
        assert!(!ids.iter().any(|id| id == "s0007"), "org:g{gi:02} still lists the removed subject");
    }
    // The same import again adds the removed subject's memberships back, and only those.
    let again = store.import(&data).await.unwrap();
    assert_eq!(again.subjects_created, 1);
    assert_eq!(again.memberships_added, 50);
    assert_eq!(effective_ids(&*store, "org:g00").await.len(), 1000);
});
