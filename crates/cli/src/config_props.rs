//! Generated configurations (proptest) for the configuration parser (`config::parse`): arbitrary
//! text and TOML-ish lines never panic and every error starts with the file's name; generated valid
//! configurations parse to the settings they describe; one wrong value (wrong type or refused
//! value) or one unknown key gives an error naming that key; a secret written inline is refused
//! and never echoed, whatever else is wrong with the file.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::config::{LogHttp, parse};

const ORIGIN: &str = "duoprov.toml";
/// A value no error message may ever show.
const SECRET: &str = "S3cr3tValue-1234567890-abcdefghij";

fn parse_str(text: &str) -> anyhow::Result<crate::config::Settings> {
    parse(text, ORIGIN, Path::new("/etc/duoprov"))
}

/// A TOML string literal.
fn lit(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A configuration, one key per line, rendered section by section.
#[derive(Debug, Clone)]
struct Doc {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Doc {
    fn render(&self) -> String {
        let mut out = String::new();
        for (header, keys) in &self.sections {
            if !header.is_empty() {
                out.push_str(&format!("[{header}]\n"));
            }
            for (k, v) in keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
            out.push('\n');
        }
        out
    }
}

/// What a generated valid configuration says, to compare with the parsed settings.
#[derive(Debug, Clone)]
struct Expect {
    duo: Vec<String>,
    provisioners: Vec<(String, String, bool, LogHttp, usize)>,
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-zA-Z0-9_]{0,8}"
}

fn registry() -> impl Strategy<Value = Vec<(String, String)>> {
    let url = prop_oneof![
        "[a-z]{1,8}\\.db".prop_map(|f| format!("sqlite://{f}")),
        Just("sqlite::memory:".to_owned()),
        Just("sqlite:///var/lib/duoprov/registry.db".to_owned()),
        "[a-z]{1,8}".prop_map(|h| format!("postgres://duoprov@{h}.example.edu/duoprov")),
    ];
    let password = prop_oneof![
        Just(None),
        Just(Some(("password_env".to_owned(), lit("DUOPROV_DB_PASSWORD")))),
        Just(Some(("password_file".to_owned(), lit("/etc/duoprov/db.password")))),
    ];
    (url, password).prop_map(|(url, pw)| {
        let mut keys = vec![("url".to_owned(), lit(&url))];
        keys.extend(pw);
        keys
    })
}

fn duo_keys() -> impl Strategy<Value = Vec<(String, String)>> {
    (
        "api-[a-z0-9]{8}\\.duosecurity\\.com",
        "DI[A-Z0-9]{18}",
        any::<bool>(),
        prop::option::of(prop_oneof![
            (1024u16..65535).prop_map(|p| format!("http://127.0.0.1:{p}")),
            Just("https://duo.example.edu".to_owned()),
        ]),
        prop::option::of(prop::sample::select(vec![2u8, 5])),
        prop::option::of(1u64..600),
        prop::option::of(1u32..1000),
        prop::option::of(1usize..32),
    )
        .prop_map(|(host, ikey, env, url, sig, timeout, wpm, conc)| {
            let mut k = vec![("api_host".to_owned(), lit(&host)), ("integration_key".to_owned(), lit(&ikey))];
            if env {
                k.push(("secret_key_env".into(), lit("DUO_SKEY")));
            } else {
                k.push(("secret_key_file".into(), lit("duo.skey")));
            }
            if let Some(u) = url {
                k.push(("url".into(), lit(&u)));
            }
            if let Some(s) = sig {
                k.push(("signature_version".into(), s.to_string()));
            }
            if let Some(t) = timeout {
                k.push(("timeout_secs".into(), t.to_string()));
            }
            if let Some(w) = wpm {
                k.push(("writes_per_minute".into(), w.to_string()));
                k.push(("page_reads_per_minute".into(), w.to_string()));
            }
            if let Some(c) = conc {
                k.push(("max_concurrency".into(), c.to_string()));
            }
            k
        })
}

fn policy() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["never", "created_by_us", "not_in_source"]).prop_map(lit)
}

/// A valid configuration and what it says.
fn valid() -> impl Strategy<Value = (Doc, Expect)> {
    let duos = prop::collection::btree_map(name(), duo_keys(), 1..3);
    let provs = prop::collection::btree_map(
        name(),
        (
            any::<prop::sample::Index>(),
            any::<bool>(),
            prop::sample::select(vec![LogHttp::Off, LogHttp::OnError, LogHttp::Always]),
            1usize..16,
            prop::option::of(policy()),
            prop::option::of(prop::sample::select(vec!["trash", "disable_then_trash", "delete"])),
            prop::option::of("[a-z]{1,6}(:[a-z]{1,6}){1,2}"),
            prop::option::of(1usize..1000),
            prop::option::of(prop::sample::select(vec![
                "{{ subject.login_id | lower }}",
                "{{ subject.login_id }}@example.edu",
                "{{ subject.id }}",
            ])),
            prop::option::of(prop::sample::select(vec!["{{ group.extension | upper }}", "{{ group.name }}", "duo-{{ group.uuid }}"])),
        ),
        0..3,
    );
    (registry(), duos, provs).prop_map(|(reg, duos, provs)| {
        let duo_names: Vec<String> = duos.keys().cloned().collect();
        let mut sections = vec![("registry".to_owned(), reg)];
        for (n, keys) in &duos {
            sections.push((format!("duo.{n}"), keys.clone()));
        }
        let mut expect = Expect { duo: duo_names.clone(), provisioners: Vec::new() };
        for (p, (duo, create, log, conc, del, mode, eligible, max_deletes, username, group_name)) in provs {
            let duo = duo.get(&duo_names).clone();
            let log_text = match log {
                LogHttp::Off => "off",
                LogHttp::OnError => "on_error",
                LogHttp::Always => "always",
            };
            let mut keys = vec![
                ("duo".to_owned(), lit(&duo)),
                ("create_users".to_owned(), create.to_string()),
                ("log_http".to_owned(), lit(log_text)),
                ("concurrency".to_owned(), conc.to_string()),
            ];
            if let Some(d) = del {
                keys.push(("delete_users".into(), d));
            }
            if let Some(m) = mode {
                keys.push(("user_delete_mode".into(), lit(m)));
            }
            if let Some(g) = eligible {
                keys.push(("eligible_group".into(), lit(&g)));
            }
            sections.push((format!("provisioner.{p}"), keys));
            let mut templates = Vec::new();
            if let Some(t) = username {
                templates.push(("username".to_owned(), lit(t)));
            }
            if let Some(t) = group_name {
                templates.push(("group_name".to_owned(), lit(t)));
            }
            if !templates.is_empty() {
                sections.push((format!("provisioner.{p}.templates"), templates));
            }
            if let Some(m) = max_deletes {
                sections.push((format!("provisioner.{p}.thresholds"), vec![("max_group_deletes".into(), m.to_string())]));
            }
            expect.provisioners.push((p, duo, create, log, conc));
        }
        (Doc { sections }, expect)
    })
}

/// Values of the wrong type for any key.
fn wrong_type(is_string: bool) -> impl Strategy<Value = String> {
    let common = prop::sample::select(vec!["[1, 2]", "{ a = 1 }", "1979-05-27T07:32:00Z", "[]"]).prop_map(str::to_owned);
    if is_string {
        prop_oneof![common, Just("5".to_owned()), Just("true".to_owned()), Just("1.5".to_owned())].boxed()
    } else {
        prop_oneof![
            common,
            Just(lit("x")),
            Just("-1".to_owned()),
            Just("1.5".to_owned()),
            Just("99999999999999999999".to_owned()),
            Just(lit("")),
        ]
        .boxed()
    }
}

/// Values each key refuses although their type is right.
fn refused_value(key: &str) -> Option<&'static [&'static str]> {
    Some(match key {
        "url" => &["\"mysql://db/x\"", "\"http://10.0.0.1:80\"", "\"postgres://u:pw@db/x\""],
        "api_host" => &["\"\"", "\"api/x\"", "\"   \""],
        "integration_key" => &["\"DISHORT\"", "\"DI-XXXXXXXXXXXXXXXXX\"", "\"\""],
        "signature_version" => &["1", "3", "4", "0"],
        "writes_per_minute" | "page_reads_per_minute" | "max_concurrency" | "concurrency" => &["0"],
        "log_http" => &["\"sometimes\"", "\"ALWAYS\"", "\"\""],
        "delete_users" => &["\"always\"", "\"\""],
        "user_delete_mode" => &["\"shred\"", "\"\""],
        "eligible_group" => &["\"a::b\"", "\"\"", "\":a\""],
        "duo" => &["\"no-such-connection\""],
        "username" => &["\"{{ subject.login_id \"", "\"{{ subject.nope }}\"", "\"{% if %}\""],
        "group_name" => &["\"{{ group.extension \"", "\"{{ group.nope }}\"", "\"{{ subject.id }}\""],
        _ => return None,
    })
}

fn is_string_key(key: &str) -> bool {
    !matches!(
        key,
        "create_users"
            | "signature_version"
            | "timeout_secs"
            | "writes_per_minute"
            | "page_reads_per_minute"
            | "max_concurrency"
            | "concurrency"
            | "max_group_deletes"
    )
}

/// TOML-ish lines: headers, keys with any value, and garbage.
fn tomlish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "url", "api_host", "integration_key", "secret_key", "secret_key_env", "secret_key_file", "duo", "log_http",
            "create_users", "signature_version", "concurrency", "max_group_deletes", "username", "password_env",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,10}",
        "\"[ -~]{0,10}\"",
    ];
    let value = prop_oneof![
        "\"[ -~]{0,20}\"".prop_map(|s| s.to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("[\"a\", 1]".to_owned()),
        Just("{ x = 1 }".to_owned()),
        "[ -~]{0,20}",
    ];
    let line = prop_oneof![
        3 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => prop::sample::select(vec!["[registry]", "[duo.x]", "[provisioner.p]", "[provisioner.p.templates]", "[[duo]]", "[duo]", "[", "]"])
            .prop_map(str::to_owned),
        1 => "[ -~]{0,30}",
        1 => "\\PC{0,30}",
    ];
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(Config { cases: 2500, failure_persistence: None, ..Config::default() })]

    #[test]
    fn any_text_is_parsed_or_refused_with_the_file_named(text in prop_oneof![tomlish(), "\\PC{0,200}"]) {
        if let Err(e) = parse_str(&text) {
            let msg = format!("{e:#}");
            prop_assert!(msg.starts_with(ORIGIN), "{}", msg);
        }
    }

    #[test]
    fn valid_configurations_parse_to_what_they_say((doc, expect) in valid()) {
        let text = doc.render();
        let s = parse_str(&text).map_err(|e| TestCaseError::fail(format!("{e:#}\n{text}")))?;
        prop_assert_eq!(s.duo.keys().cloned().collect::<Vec<_>>(), expect.duo);
        prop_assert_eq!(s.provisioners.len(), expect.provisioners.len());
        for (name, duo, create, log, conc) in &expect.provisioners {
            let p = &s.provisioners[name];
            prop_assert_eq!(&p.duo, duo);
            prop_assert_eq!(p.create_users, *create);
            prop_assert_eq!(p.log_http, *log);
            prop_assert_eq!(p.concurrency, *conc);
        }
    }

    #[test]
    fn one_wrong_value_is_named_by_its_key(
        (doc, _) in valid(),
        pick in any::<prop::sample::Index>(),
        choice in any::<prop::sample::Index>(),
        wrong in any::<bool>(),
        bad_type_str in wrong_type(true),
        bad_type_other in wrong_type(false),
    ) {
        let keys: Vec<(usize, usize)> = doc
            .sections
            .iter()
            .enumerate()
            .flat_map(|(s, (_, keys))| (0..keys.len()).map(move |k| (s, k)))
            .collect();
        let (s, k) = *pick.get(&keys);
        let mut doc = doc;
        let key = doc.sections[s].1[k].0.clone();
        let refused = refused_value(&key).filter(|_| !wrong);
        let value = match refused {
            Some(values) => (*choice.get(values)).to_owned(),
            None if is_string_key(&key) => bad_type_str,
            None => bad_type_other,
        };
        doc.sections[s].1[k].1 = value.clone();
        let text = doc.render();
        let e = match parse_str(&text) {
            Ok(_) => return Err(TestCaseError::fail(format!("accepted {key} = {value}:\n{text}"))),
            Err(e) => format!("{e:#}"),
        };
        prop_assert!(e.starts_with(ORIGIN), "{}", e);
        prop_assert!(e.contains(&key), "the error does not name {}: {}\n{}", key, e, text);
        prop_assert!(!e.contains("pw@"), "a password was echoed: {}", e);
    }

    #[test]
    fn an_unknown_key_is_named((doc, _) in valid(), pick in any::<prop::sample::Index>(), unknown in "zz[a-z_]{1,10}") {
        let mut doc = doc;
        let s = pick.index(doc.sections.len());
        doc.sections[s].1.push((unknown.clone(), lit("x")));
        let text = doc.render();
        let e = parse_str(&text).err().map(|e| format!("{e:#}")).unwrap_or_default();
        prop_assert!(e.starts_with(ORIGIN) && e.contains(&unknown), "{}\n{}", e, text);
    }

    #[test]
    fn an_inline_secret_is_refused_and_never_echoed(
        (doc, _) in valid(),
        pick in any::<prop::sample::Index>(),
        form in 0usize..6,
        noise in prop::option::of(tomlish()),
    ) {
        let mut doc = doc;
        let duo_sections: Vec<usize> = (0..doc.sections.len()).filter(|i| doc.sections[*i].0.starts_with("duo.")).collect();
        let s = *pick.get(&duo_sections);
        let line = match form {
            0 => ("secret_key".to_owned(), lit(SECRET)),
            1 => ("secret_key".to_owned(), format!("\"{SECRET}")),            // unterminated
            2 => ("secret_key".to_owned(), format!("'{SECRET}'")),
            3 => ("secret_key".to_owned(), format!("\"{SECRET}\" trailing")),   // junk after the value
            4 => ("secret_key".to_owned(), format!("[\"{SECRET}\"")),          // unclosed array
            _ => ("secret_key".to_owned(), format!("\"\"\"{SECRET}")),         // unterminated multi-line
        };
        doc.sections[s].1.push(line);
        let mut text = doc.render();
        if let Some(n) = noise {
            text.push_str(&n);
        }
        let e = parse_str(&text).err().map(|e| format!("{e:#}"));
        let e = e.ok_or_else(|| TestCaseError::fail(format!("an inline secret was accepted:\n{text}")))?;
        prop_assert!(!e.contains(SECRET) && !e.contains(&SECRET[..12]), "the secret was echoed: {}", e);
    }

    #[test]
    fn a_password_in_the_registry_url_is_never_echoed(form in 0usize..4, noise in prop::option::of(tomlish())) {
        let url = format!("postgres://duoprov:{SECRET}@db.example.edu/duoprov");
        let line = match form {
            0 => format!("url = {}", lit(&url)),
            1 => format!("url = \"{url}"),
            2 => format!("url = \"{url}\" junk"),
            _ => format!("url = [\"{url}\""),
        };
        let mut text = format!("[registry]\n{line}\n");
        if let Some(n) = noise {
            text.push_str(&n);
        }
        let e = parse_str(&text).err().map(|e| format!("{e:#}"));
        let e = e.ok_or_else(|| TestCaseError::fail(format!("a password in the URL was accepted:\n{text}")))?;
        prop_assert!(!e.contains(SECRET) && !e.contains(&SECRET[..12]), "the password was echoed: {}", e);
    }
}

#[test]
fn toml_errors_name_line_column_and_key_without_quoting_the_line() {
    let base = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n[provisioner.p]\nduo = \"prod\"\n";
    let e = parse_str(&format!("{base}concurrency = \"many\"\n")).err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(e.starts_with("duoprov.toml: line 7, column 15: ") && e.contains("provisioner.p.concurrency"), "{e}");
    let e = parse_str(&format!("{base}log_http = \"off\" # fine\ncreate_users = \"{SECRET}\n")).err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(e.starts_with("duoprov.toml: line 8, column ") && !e.contains(SECRET), "{e}");
}
