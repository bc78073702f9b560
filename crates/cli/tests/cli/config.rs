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
