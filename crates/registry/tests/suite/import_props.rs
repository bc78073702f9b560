//! Generated malformed import documents (proptest) against an in-memory SQLite registry: JSON and
//! CSV documents of valid rows with one known-bad row injected are refused with an error naming
//! the file and that row's line, and nothing is written (subjects, folders, groups, memberships,
//! markers and the change log stay as they were); arbitrary and mangled text is parsed or refused
//! with every error naming the file and a line, never a panic, and a refused import writes nothing.

use duoprov_registry::{ImportData, RegistryError, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::support::*;

/// Everything the registry holds that an import could change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    subjects: usize,
    folders: usize,
    groups: usize,
    members: usize,
    markers: usize,
    change_seq: i64,
}

async fn counts(store: &dyn Store) -> Counts {
    let groups = store.groups(None).await.expect("groups");
    let mut members = 0;
    for g in &groups {
        members += store.members(&g.name).await.expect("members").len();
    }
    Counts {
        subjects: store.subjects(None).await.expect("subjects").len(),
        folders: store.folders(None).await.expect("folders").len(),
        groups: groups.len(),
        members,
        markers: store.markers(None).await.expect("markers").len(),
        change_seq: store.last_change_seq().await.expect("change seq"),
    }
}

/// A store with a little in it, so rows can refer to existing objects.
async fn seeded() -> Box<dyn Store> {
    let store = sqlite().await;
    add_subject(&*store, "s1").await;
    add_group(&*store, "org:a").await;
    add_group(&*store, "org:b").await;
    store.add_member(&g("org:a"), &subject("s1")).await.expect("member");
    store.add_member(&g("org:b"), &nested("org:a")).await.expect("nesting");
    store
}

/// Every message names the file and a line (`FILE line N`).
fn all_name_file_and_line(errors: &duoprov_model::ValidationErrors, file: &str) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty());
    for e in &errors.0 {
        prop_assert!(e.object.starts_with(&format!("{file} line ")), "no file and line in {:?}: {}", e.object, e);
    }
    Ok(())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.-]{0,10}",
        Just(String::new()),
        Just(" padded ".to_owned()),
        Just("tab\there".to_owned()),
        Just("bell\u{7}".to_owned()),
        Just("line\nbreak".to_owned()),
        "\\PC{0,12}",
        (1020usize..1100).prop_map(|n| "x".repeat(n)),
    ]
}

/// A JSON value of any type, for fields that expect something else.
fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        Just(json!(1e300)),
        text().prop_map(Value::String),
        Just(json!([1, "a"])),
        Just(json!({"x": 1})),
    ]
}

// Fields a generated edit may touch; each list leaves out the field that makes its base record
// bad, so an edited record stays bad (a repair could make a "bad" row valid).
const SUBJECT_FIELDS: &[&str] = &["source", "name", "login_id", "email", "first_name", "last_name", "description", "nmae"];
const GROUP_FIELDS: &[&str] = &["display_name", "description", "extension"];
const MEMBER_FIELDS: &[&str] = &["subject", "source", "member_group", "members"];
const MARKER_FIELDS: &[&str] = &["folder", "group", "provision", "exclude"];

fn record(fields: &'static [&'static str], base: Value) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(fields.to_vec()), prop::option::weighted(0.8, any_json())), 0..3).prop_map(
        move |edits| {
            let mut v = base.clone();
            if let Some(obj) = v.as_object_mut() {
                for (f, x) in edits {
                    match x {
                        Some(x) => obj.insert(f.to_owned(), x),
                        None => obj.remove(f),
                    };
                }
            }
            v
        },
    )
}

/// Rows that are valid on their own against the seeded registry.
fn good_rows() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
    prop::collection::vec(
        prop_oneof![
            "[a-z]{1,8}".prop_map(|id| ("subjects", json!({"id": format!("n{id}"), "name": "N"}))),
            "[a-z]{1,8}".prop_map(|n| ("groups", json!({"name": format!("new:g{n}"), "description": "d"}))),
            Just(("memberships", json!({"group": "org:b", "subject": "s1"}))),
            Just(("folders", json!({"path": "org:sub", "display_name": "Sub"}))),
            Just(("markers", json!({"provisioner": "duoTest", "group": "org:a"}))),
        ],
        0..6,
    )
    .prop_map(|mut rows| {
        // Generated names may repeat; a repeat is itself an error, so keep the first of each.
        let mut seen = std::collections::HashSet::new();
        rows.retain(|(kind, v)| seen.insert(format!("{kind}{v}")));
        rows
    })
}

/// Rows each of which an import must refuse, whatever else the document holds.
fn bad_row() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        Just(("subjects", json!({"id": ""}))),
        Just(("subjects", json!({"id": " s2"}))),
        Just(("subjects", json!({"id": "s3", "name": "bell\u{7}"}))),
        Just(("subjects", json!({"id": "s4", "nmae": "typo"}))),
        Just(("subjects", json!({"id": "s5", "description": "x".repeat(5000)}))),
        Just(("subjects", json!({"id": 5}))),
        Just(("subjects", json!(["not", "an", "object"]))),
        Just(("groups", json!({"name": "a::b"}))),
        Just(("groups", json!({"name": ""}))),
        Just(("groups", json!({"name": "org:a:x", "display_name": "line\nbreak"}))),
        Just(("groups", json!({"name": "org:a:child"}))), // org:a is a group, not a folder
        Just(("folders", json!({"path": "org:a"}))),      // a group of this name exists
        Just(("folders", json!({"path": ":x"}))),
        Just(("memberships", json!({"group": "zz:none", "subject": "s1"}))),
        Just(("memberships", json!({"group": "org:a", "subject": "ghost"}))),
        Just(("memberships", json!({"group": "org:a", "subject": "s1", "member_group": "org:b"}))),
        Just(("memberships", json!({"group": "org:a", "member_group": "org:b"}))), // a cycle
        Just(("memberships", json!({"group": "org:a", "member_group": "org:a"}))),
        Just(("markers", json!({"provisioner": "p", "folder": "org", "scope": "deep"}))),
        Just(("markers", json!({"provisioner": "p"}))),
        Just(("markers", json!({"provisioner": "", "group": "org:a"}))),
        Just(("markers", json!({"provisioner": "p", "group": "org:a", "provision": "yes"}))),
        Just(("markers", json!({"provisioner": "p", "folder": "nowhere:x"}))),
        record(SUBJECT_FIELDS, json!({"id": ""})).prop_map(|v| ("subjects", v)),
        record(GROUP_FIELDS, json!({"name": "a::b"})).prop_map(|v| ("groups", v)),
        record(MEMBER_FIELDS, json!({"group": "zz:none", "subject": "s1"})).prop_map(|v| ("memberships", v)),
        record(MARKER_FIELDS, json!({"provisioner": "p", "scope": "deep"})).prop_map(|v| ("markers", v)),
    ]
}

/// A JSON document with one row per line; returns it and the line of row `mark`.
fn json_doc(rows: &[(&str, Value)], mark: usize) -> (String, usize) {
    let mut out = String::from("{\n");
    let mut line = 2;
    let mut marked = 0;
    let kinds = ["subjects", "folders", "groups", "memberships", "markers"];
    let mut first_kind = true;
    for kind in kinds {
        let of_kind: Vec<(usize, &Value)> = rows.iter().enumerate().filter(|(_, (k, _))| *k == kind).map(|(i, (_, v))| (i, v)).collect();
        if of_kind.is_empty() {
            continue;
        }
        if !first_kind {
            out.push_str(",\n");
            line += 1;
        }
        first_kind = false;
        out.push_str(&format!("\"{kind}\": [\n"));
        line += 1;
        for (n, (i, v)) in of_kind.iter().enumerate() {
            if *i == mark {
                marked = line;
            }
            out.push_str(&v.to_string());
            out.push_str(if n + 1 < of_kind.len() { ",\n" } else { "\n" });
            line += 1;
        }
        out.push(']');
    }
    out.push_str("\n}\n");
    (out, marked)
}

/// The registry is shared by the cases, so a failing case may have written to it: no shrinking,
/// the first failing input is the one reported.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, max_shrink_iters: 0, ..Config::default() })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn a_json_document_with_one_bad_row_names_it_and_writes_nothing() {
    let rt = runtime();
    let store = rt.block_on(seeded());
    let before = rt.block_on(counts(&*store));
    let strategy = (good_rows(), bad_row(), any::<prop::sample::Index>());
    let started = std::time::Instant::now();
    let result = runner(2500).run(&strategy, |(mut rows, bad, at)| {
        let i = at.index(rows.len() + 1);
        rows.insert(i, bad);
        let (doc, line) = json_doc(&rows, i);
        let mut data = ImportData::default();
        let errors = match data.add_json("people.json", &doc) {
            Err(errors) => errors,
            Ok(()) => match rt.block_on(store.import(&data)) {
                Err(RegistryError::Invalid(errors)) => errors,
                Err(other) => return Err(TestCaseError::fail(format!("not a validation error: {other}\n{doc}"))),
                Ok(_) => return Err(TestCaseError::fail(format!("accepted a bad row on line {line}:\n{doc}"))),
            },
        };
        all_name_file_and_line(&errors, "people.json")?;
        let want = format!("people.json line {line}:");
        prop_assert!(errors.0.iter().any(|e| e.object.starts_with(&want)), "no error names line {}: {}\n{}", line, errors, doc);
        prop_assert_eq!(rt.block_on(counts(&*store)), before);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("JSON documents with a bad row: 2500 cases in {:?}", started.elapsed());
}

/// CSV rows of one kind, with one bad row (bad value, wrong field count, bad quoting).
fn csv_case() -> impl Strategy<Value = (String, String, usize)> {
    let kind = prop::sample::select(vec![
        ("subjects.csv", "id,name,login_id", "n{x},Name,n{x}", vec!["\"\",No id,x", " lead,Lead,x", "bell,Bad\u{7}name,x", "a,b", "a,b,c,d", "\"unclosed,x,y"]),
        ("groups.csv", "name,description", "new:g{x},D", vec!["a::b,x", ",x", "x", "org:a:sub,ok,extra", "\"new:q,x"]),
        ("members.csv", "group,subject", "org:b,s1", vec!["zz:none,s1", "org:a,ghost", "org:a", ",s1"]),
        ("markers.csv", "provisioner,folder,scope,provision", "duoTest,org,sub,true", vec!["p,org,deep,true", "p,org,sub,yes", ",org,sub,true", "p,nowhere,sub,true", "p,org"]),
        ("folders.csv", "path,display_name", "org:f{x},F", vec![":x,y", "org:a,y", "a:,y", "x,y,z"]),
    ]);
    (kind, prop::collection::vec("[a-z]{1,6}", 0..5), any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(
        |((file, header, good, bads), xs, pick, at)| {
            let mut xs = xs;
            xs.sort();
            xs.dedup();
            let mut rows: Vec<String> = xs.iter().map(|x| good.replace("{x}", x)).collect();
            if !good.contains("{x}") {
                rows.truncate(1);
            }
            let i = at.index(rows.len() + 1);
            rows.insert(i, (*pick.get(&bads)).to_owned());
            let text = format!("{header}\n{}\n", rows.join("\n"));
            (file.to_owned(), text, i + 2)
        },
    )
}

#[test]
fn a_csv_file_with_one_bad_row_names_it_and_writes_nothing() {
    let rt = runtime();
    let store = rt.block_on(seeded());
    let before = rt.block_on(counts(&*store));
    let started = std::time::Instant::now();
    let result = runner(2500).run(&csv_case(), |(file, text, line)| {
        let mut data = ImportData::default();
        let errors = match data.add_csv(&file, &text) {
            Err(errors) => errors,
            Ok(()) => match rt.block_on(store.import(&data)) {
                Err(RegistryError::Invalid(errors)) => errors,
                Err(other) => return Err(TestCaseError::fail(format!("not a validation error: {other}\n{text}"))),
                Ok(_) => return Err(TestCaseError::fail(format!("accepted a bad row on line {line}:\n{text}"))),
            },
        };
        // An unclosed quote swallows the rest of the file: the csv reader reports the line where
        // the field began, or the end.
        all_name_file_and_line(&errors, &file)?;
        let want = format!("{file} line {line}");
        let unclosed = text.lines().nth(line - 1).is_some_and(|l| l.starts_with('"') && l.matches('"').count() == 1);
        prop_assert!(unclosed || errors.0.iter().any(|e| e.object.starts_with(&want)), "no error names line {}: {}\n{}", line, errors, text);
        prop_assert_eq!(rt.block_on(counts(&*store)), before);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("CSV files with a bad row: 2500 cases in {:?}", started.elapsed());
}

/// Byte-level damage to a valid document, or text of any kind.
fn mangled() -> impl Strategy<Value = (bool, String)> {
    let json_base = "{\n\"subjects\": [\n{\"id\": \"m1\", \"name\": \"M\"}\n],\n\"groups\": [\n{\"name\": \"mg:one\"}\n],\n\"memberships\": [\n{\"group\": \"mg:one\", \"subject\": \"m1\"}\n]\n}\n";
    let csv_base = "id,name,login_id\nm1,M,m1\nm2,N,m2\n";
    prop_oneof![
        (any::<bool>(), any::<usize>()).prop_map(move |(csv, cut)| {
            let base = if csv { csv_base } else { json_base };
            let cut = base.char_indices().map(|(i, _)| i).nth(cut % base.len()).unwrap_or(0);
            (csv, base[..cut].to_owned())
        }),
        (any::<bool>(), prop::collection::vec((any::<usize>(), "\\PC"), 1..4)).prop_map(move |(csv, edits)| {
            let mut s: Vec<char> = (if csv { csv_base } else { json_base }).chars().collect();
            for (at, c) in edits {
                let i = at % s.len();
                s[i] = c.chars().next().unwrap_or('x');
            }
            (csv, s.into_iter().collect())
        }),
        (any::<bool>(), "\\PC{0,120}"),
        (any::<bool>(), "[a-z,\"\n :{}\\[\\]]{0,80}"),
    ]
}

#[test]
fn mangled_text_is_parsed_or_refused_naming_file_and_line() {
    let rt = runtime();
    let store = rt.block_on(seeded());
    let started = std::time::Instant::now();
    let result = runner(3000).run(&mangled(), |(csv, text)| {
        let before = rt.block_on(counts(&*store));
        let file = if csv { "mangled.csv" } else { "mangled.json" };
        let mut data = ImportData::default();
        let parsed = if csv { data.add_csv(file, &text) } else { data.add_json(file, &text) };
        if let Err(errors) = parsed {
            all_name_file_and_line(&errors, file)?;
            return Ok(());
        }
        match rt.block_on(store.import(&data)) {
            Ok(_) => {}
            Err(RegistryError::Invalid(errors)) => {
                all_name_file_and_line(&errors, file)?;
                prop_assert_eq!(rt.block_on(counts(&*store)), before, "a refused import wrote something");
            }
            Err(other) => return Err(TestCaseError::fail(format!("not a validation error: {other}"))),
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("mangled import text: 3000 cases in {:?}", started.elapsed());
}

/// Found by the JSON property: a group whose parent "folder" is an existing group was refused
/// without a file or line (`folder "org:a": path: …`); a folder clashing with a group named the
/// first folder file instead of its own.
#[test]
fn a_needed_folder_that_is_a_group_names_the_row_that_needs_it() {
    let rt = runtime();
    let store = rt.block_on(seeded());
    let mut data = ImportData::default();
    data.add_csv("other.csv", "path\nelsewhere:x\n").expect("csv");
    data.add_json("groups.json", "{\"groups\": [\n{\"name\": \"new:g\"},\n{\"name\": \"org:a:child\"}\n],\n\"folders\": [\n{\"path\": \"org:b\"}\n]}").expect("json");
    let err = rt.block_on(store.import(&data)).expect_err("refused").to_string();
    assert!(err.contains("groups.json line 3: folder \"org:a\": path: is needed as a folder"), "{err}");
    assert!(err.contains("groups.json line 6: folder \"org:b\": path: a group of this name exists"), "{err}");
}
