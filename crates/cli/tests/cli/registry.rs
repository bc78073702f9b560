//! The registry commands through the binary: the README walkthrough, nesting, cycles, imports.

use serde_json::Value;

use crate::{duoprov, run};

fn walkthrough(dir: &std::path::Path) {
    run(dir, &["subject", "add", "mchyzer", "--name", "Chris Hyzer", "--login-id", "mchyzer", "--description", "Chris Hyzer"], 0);
    run(dir, &["subject", "add", "kwilso", "--name", "Kate Wilson", "--login-id", "kwilso"], 0);
    run(dir, &["folder", "add", "app:duo", "--create-parents"], 0);
    run(dir, &["group", "add", "app:duo:testGroup"], 0);
    run(dir, &["member", "add", "app:duo:testGroup", "mchyzer", "kwilso"], 0);
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"], 0);
    let (out, _) = run(dir, &["member", "list", "app:duo:testGroup", "--effective", "--json"], 0);
    let members: Value = serde_json::from_str(&out).expect("JSON output");
    let names: Vec<&str> = members.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Kate Wilson", "Chris Hyzer"]);
    let (out, _) = run(dir, &["provision", "list", "duoTest", "--groups", "--json"], 0);
    let groups: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(groups[0]["name"], "app:duo:testGroup");
    assert_eq!(groups[0]["effective_members"], 2);
}

#[test]
fn readme_walkthrough_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(dir.path(), &["init"], 0);
    assert!(out.contains("registry ready"), "{out}");
    assert!(dir.path().join("duoprov.db").exists());
    walkthrough(dir.path());
    // Adding again is add-or-update: no error, no change.
    let (out, _) = run(dir.path(), &["subject", "add", "mchyzer", "--name", "Chris Hyzer"], 0);
    assert_eq!(out.trim(), "unchanged subject local:mchyzer");
    let (out, _) = run(dir.path(), &["subject", "show", "mchyzer", "--json"], 0);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["description"], "Chris Hyzer");
    // init refuses to overwrite.
    let (_, err) = run(dir.path(), &["init"], 1);
    assert!(err.contains("--force"), "{err}");
}

#[test]
fn readme_walkthrough_on_postgres() {
    let Some(url) = crate::postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = duoprov(dir.path()).env("DUOPROV_REGISTRY_URL", &url).args(["subject", "list"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The URL (and its password) is taken from the environment and never echoed.
    for args in [
        vec!["subject", "add", "mchyzer", "--name", "Chris Hyzer", "--login-id", "mchyzer"],
        vec!["subject", "add", "kwilso", "--name", "Kate Wilson", "--login-id", "kwilso"],
        vec!["group", "add", "app:duo:testGroup", "--create-parents"],
        vec!["member", "add", "app:duo:testGroup", "mchyzer", "kwilso"],
        vec!["provision", "assign", "duoTest", "--folder", "app:duo"],
    ] {
        let out = duoprov(dir.path()).env("DUOPROV_REGISTRY_URL", &url).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = duoprov(dir.path())
        .env("DUOPROV_REGISTRY_URL", &url)
        .args(["member", "list", "app:duo:testGroup", "--effective", "--json"])
        .output()
        .unwrap();
    let members: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = members.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["kwilso", "mchyzer"]);
}

#[test]
fn nesting_three_deep_and_cycles() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &["init"], 0);
    for s in ["a", "b", "c"] {
        run(dir.path(), &["subject", "add", s, "--name", s], 0);
    }
    for g in ["org:l1", "org:l2", "org:l3"] {
        run(dir.path(), &["group", "add", g, "--create-parents"], 0);
    }
    run(dir.path(), &["member", "add", "org:l1", "a", "--group", "org:l2"], 0);
    run(dir.path(), &["member", "add", "org:l2", "b", "--group", "org:l3"], 0);
    run(dir.path(), &["member", "add", "org:l3", "c"], 0);
    let (out, _) = run(dir.path(), &["member", "list", "org:l1", "--effective", "--json"], 0);
    let ids: Vec<String> = serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let (_, err) = run(dir.path(), &["member", "add", "org:l3", "--group", "org:l1"], 1);
    assert!(err.contains("would make a cycle") && err.contains("org:l1") && err.contains("org:l3"), "{err}");
    let (_, err) = run(dir.path(), &["group", "add", "bad::name"], 1);
    assert!(err.contains("segment 2 is empty"), "{err}");
    let (_, err) = run(dir.path(), &["member", "add", "org:l1", "ghost"], 1);
    assert!(err.contains("subject local:ghost does not exist"), "{err}");
}

#[test]
fn import_is_all_or_nothing_with_every_bad_row_named() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &["init"], 0);
    std::fs::write(dir.path().join("people.csv"), "id,name,login_id\nmchyzer,Chris Hyzer,mchyzer\nmchyzer,Again,x\n,Nobody,\n").unwrap();
    std::fs::write(dir.path().join("members.csv"), "group,subject\napp:duo:testGroup,mchyzer\n").unwrap();
    let (_, err) = run(dir.path(), &["import", "people.csv", "members.csv"], 1);
    assert!(err.contains("nothing written"), "{err}");
    assert!(err.contains("people.csv line 3: subject local:mchyzer: id: duplicate of the subject on line 2"), "{err}");
    assert!(err.contains("people.csv line 4"), "{err}");
    assert!(err.contains("members.csv line 2") && err.contains("no group \"app:duo:testGroup\""), "{err}");
    let (out, _) = run(dir.path(), &["subject", "list", "--json"], 0);
    assert_eq!(out.trim(), "[]");

    std::fs::write(
        dir.path().join("seed.json"),
        r#"{"subjects":[{"id":"mchyzer","name":"Chris Hyzer"},{"id":"kwilso","name":"Kate Wilson"}],
            "groups":[{"name":"app:duo:testGroup"}],
            "memberships":[{"group":"app:duo:testGroup","subject":"mchyzer"},{"group":"app:duo:testGroup","subject":"kwilso"}],
            "markers":[{"provisioner":"duoTest","folder":"app:duo","scope":"sub"}]}"#,
    )
    .unwrap();
    let (out, _) = run(dir.path(), &["import", "seed.json", "--json"], 0);
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["subjects_created"], 2);
    assert_eq!(summary["memberships_added"], 2);
    let (out, _) = run(dir.path(), &["provision", "list", "duoTest", "--groups"], 0);
    assert!(out.contains("app:duo:testGroup  2"), "{out}");
}

#[test]
fn member_add_with_one_unknown_subject_changes_nothing_and_names_every_unknown() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &["init"], 0);
    run(dir.path(), &["subject", "add", "a"], 0);
    run(dir.path(), &["group", "add", "org:g", "--create-parents"], 0);
    run(dir.path(), &["group", "add", "org:inner"], 0);
    let (_, err) = run(dir.path(), &["member", "add", "org:g", "a", "nobody", "ghost", "--group", "org:inner"], 1);
    assert!(err.contains("nothing changed in group org:g"), "{err}");
    assert!(err.contains("subject local:nobody does not exist") && err.contains("subject local:ghost does not exist"), "{err}");
    let (out, _) = run(dir.path(), &["member", "list", "org:g", "--json"], 0);
    assert_eq!(out.trim(), "[]", "a valid member was added before the refusal");

    run(dir.path(), &["member", "add", "org:g", "a", "--group", "org:inner"], 0);
    let (_, err) = run(dir.path(), &["member", "remove", "org:g", "a", "nobody"], 1);
    assert!(err.contains("nothing changed in group org:g") && err.contains("subject local:nobody does not exist"), "{err}");
    let (out, _) = run(dir.path(), &["member", "list", "org:g"], 0);
    assert!(out.contains("local:a") && out.contains("org:inner"), "a member was removed before the refusal:\n{out}");
    // A cycle among several groups is refused as a whole too.
    let (_, err) = run(dir.path(), &["member", "add", "org:inner", "a", "--group", "org:g"], 1);
    assert!(err.contains("would make a cycle"), "{err}");
    let (out, _) = run(dir.path(), &["member", "list", "org:inner", "--json"], 0);
    assert_eq!(out.trim(), "[]");
    let (out, _) = run(dir.path(), &["member", "remove", "org:g", "a", "--group", "org:inner"], 0);
    assert_eq!(out, "removed subject local:a from group org:g\nremoved group org:inner from group org:g\n");
}

#[test]
fn a_mistyped_sqlite_registry_is_refused_not_created() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &["init"], 0);
    for args in [
        vec!["subject", "list", "--registry", "sqlite://other.db"],
        vec!["group", "add", "org:g", "--registry", "sqlite://other.db"],
        vec!["import", "x.json", "--registry", "sqlite://other.db"],
        vec!["provision", "list", "--registry", "sqlite://other.db"],
    ] {
        std::fs::write(dir.path().join("x.json"), "{}").unwrap();
        let (_, err) = run(dir.path(), &args, 1);
        assert!(err.contains("other.db does not exist") && err.contains("duoprov init"), "{args:?}: {err}");
    }
    assert!(!dir.path().join("other.db").exists(), "the mistyped registry was created");
    // The configured registry, created by init, opens.
    run(dir.path(), &["subject", "list"], 0);
}

#[test]
fn import_shape_errors_say_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &["init"], 0);
    std::fs::write(dir.path().join("people.csv"), "name,login_id,email\nChris Hyzer,mchyzer,mchyzer@example.edu\n").unwrap();
    let (_, err) = run(dir.path(), &["import", "people.csv"], 1);
    assert!(err.contains("people.csv line 1") && err.contains("subject records, whose key column \"id\" is missing"), "{err}");
    std::fs::write(dir.path().join("people.json"), r#"[{"id":"mchyzer","name":"Chris Hyzer"}]"#).unwrap();
    let (_, err) = run(dir.path(), &["import", "people.json"], 1);
    assert!(err.contains("people.json line 1") && err.contains("the top level is an array") && err.contains(r#"{"subjects": [...]"#), "{err}");
    let (out, _) = run(dir.path(), &["group", "list", "--json"], 0);
    assert_eq!(out.trim(), "[]");
}
