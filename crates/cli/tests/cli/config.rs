//! Configuration and usage errors: exit 1, a message naming the key or argument, no secrets.

use crate::run;

#[test]
fn missing_config_points_to_init() {
    let dir = tempfile::tempdir().unwrap();
    let (_, err) = run(dir.path(), &["subject", "list"], 1);
    assert!(err.contains("duoprov init"), "{err}");
}

#[test]
fn unknown_keys_and_inline_secrets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("duoprov.toml"), "[registry]\nurl = \"sqlite://r.db\"\nbogus_key = 1\n").unwrap();
    let (_, err) = run(dir.path(), &["subject", "list"], 1);
    assert!(err.contains("bogus_key"), "{err}");
    std::fs::write(
        dir.path().join("duoprov.toml"),
        "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key = \"Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep\"\n",
    )
    .unwrap();
    let (out, err) = run(dir.path(), &["subject", "list"], 1);
    assert!(err.contains("duo.prod.secret_key"), "{err}");
    assert!(!err.contains("Zh5eGmUq9") && !out.contains("Zh5eGmUq9"), "the secret is never echoed");
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &["no-such-command"], 1);
    run(dir.path(), &["provision", "assign", "duoTest"], 1);
    let (out, _) = run(dir.path(), &["--help"], 0);
    assert!(out.contains("subject") && out.contains("import"), "{out}");
}

#[test]
fn config_shows_secret_sources_not_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("duoprov.toml"),
        "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"DUO_SKEY\"\n[provisioner.duoTest]\nduo = \"prod\"\n",
    )
    .unwrap();
    let out = crate::duoprov(dir.path()).env("DUO_SKEY", "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep").args(["config", "--json"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("environment variable DUO_SKEY"), "{text}");
    assert!(!text.contains("Zh5eGmUq9"), "{text}");
}

/// The keys docs/configuration.md's example writes (or shows commented out), by section
/// (`duo.prod`, `provisioner.duoTest.thresholds`, …).
fn documented_keys() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md")).unwrap();
    let block = doc.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).expect("the example");
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in block.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            section = rest.split(']').next().unwrap_or_default().to_owned();
            continue;
        }
        let line = line.trim_start_matches('#').trim_start();
        if let Some((key, _)) = line.split_once(" = ")
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            keys.push((section.clone(), key.to_owned()));
        }
    }
    keys
}

#[test]
fn config_shows_every_documented_setting_with_defaults_resolved_as_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("duoprov.toml"),
        "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"DUO_SKEY\"\n\
         [provisioner.duoTest]\nduo = \"prod\"\n[provisioner.duoTest.templates]\nemail = false\n[provisioner.duoTest.thresholds]\nmax_group_deletes = 3\n",
    )
    .unwrap();
    let (out, _) = run(dir.path(), &["config", "--json"], 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys = documented_keys();
    assert!(keys.len() > 40, "{keys:?}");
    for (section, key) in &keys {
        let mut table = &json;
        for part in section.split('.') {
            table = &table[part];
        }
        assert!(table.is_object(), "[{section}] missing from:\n{json:#}");
        // A secret's two sources (`*_env`, `*_file`) are shown as one setting: where it comes from.
        let shown = [key.as_str(), key.trim_end_matches("_env"), key.trim_end_matches("_file")].iter().any(|k| table.get(*k).is_some());
        assert!(shown, "[{section}] {key} is not shown:\n{json:#}");
    }
    let p = &json["provisioner"]["duoTest"];
    assert_eq!(p["thresholds"]["max_group_deletes"], 3, "as configured");
    assert_eq!(p["thresholds"]["max_user_deletes"], 10, "default resolved");
    assert_eq!(p["templates"]["username"], "{{ subject.login_id }}", "default template resolved");
    assert_eq!(p["templates"]["email"], false, "unmanaged");
    assert_eq!(p["delete_users"], "never");
    assert_eq!(json["duo"]["prod"]["writes_per_minute"], 240, "the client's default pacing");
    // The text shows the same, in the file's own sections.
    let (text, _) = run(dir.path(), &["config"], 0);
    for line in ["[provisioner.duoTest.thresholds]", "max_group_deletes = 3", "max_user_deletes = 10", "username = \"{{ subject.login_id }}\"", "email = false", "[duo.prod]", "secret_key = \"environment variable DUO_SKEY\"", "poll_interval = \"2s\""] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }
    assert!(!text.trim_start().starts_with('{'), "text, not JSON:\n{text}");
}
