//! The `duoprov emulator` arguments: secret-key sources, grants, settings files and errors that
//! never reveal the secret key.

use clap::Parser;
use duoprov_emulator::cli::{EmulatorArgs, build};

#[derive(Parser)]
struct Top {
    #[command(flatten)]
    args: EmulatorArgs,
}

fn parse(args: &[&str]) -> EmulatorArgs {
    let mut v = vec!["duoprov-emulator"];
    v.extend_from_slice(args);
    match Top::try_parse_from(v) {
        Ok(t) => t.args,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn secret_key_from_flag_env_or_file_exactly_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("skey");
    std::fs::write(&file, "file-secret-value\n").unwrap_or_else(|e| panic!("{e}"));
    let f = file.display().to_string();
    assert!(build(&parse(&["--ikey", "DIX", "--skey", "s3cr3t"])).is_ok());
    assert!(build(&parse(&["--ikey", "DIX", "--skey-file", &f])).is_ok());
    assert!(build(&parse(&["--ikey", "DIX", "--skey-env", "PATH"])).is_ok());
    for bad in [
        vec!["--ikey", "DIX"],
        vec!["--ikey", "DIX", "--skey", "a", "--skey-file", &f],
        vec![
            "--ikey",
            "DIX",
            "--skey-env",
            "DUOPROV_TEST_SURELY_UNSET_VARIABLE",
        ],
        vec!["--ikey", "DIX", "--skey-file", "/nonexistent/skey"],
    ] {
        match build(&parse(&bad)) {
            Err(duoprov_emulator::Error::Secret(m)) => assert!(!m.contains("file-secret-value")),
            other => panic!("{bad:?}: expected a secret error, got {other:?}"),
        }
    }
}

#[test]
fn options_reach_the_settings_and_errors_hide_secrets() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let settings = dir.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"unique_group_names": false, "page_limits": {"users": {"default": 10, "max": 20}}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = settings.display().to_string();
    let emu = build(&parse(&[
        "--ikey",
        "DIX",
        "--skey",
        "k",
        "--settings",
        &s,
        "--clock-skew",
        "600",
        "--no-rate-limits",
        "--seed",
        "3",
        "--grants",
        "read",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    let dbg = format!("{emu:?}");
    assert!(
        dbg.contains("clock_skew_secs: 600") && dbg.contains("unique_group_names: false"),
        "{dbg}"
    );
    assert!(
        !dbg.contains("skey: \"k\"") && dbg.contains("[REDACTED]"),
        "{dbg}"
    );

    let integrations = dir.path().join("more.json");
    std::fs::write(
        &integrations,
        r#"[{"ikey": "DIY", "skey": "very-secret-value", "grants": {"read_resource": "yes"}}]"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let i = integrations.display().to_string();
    let err = build(&parse(&[
        "--ikey",
        "DIX",
        "--skey",
        "k",
        "--integrations",
        &i,
    ]))
    .map(|_| ())
    .err();
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("line 1") && !msg.contains("very-secret-value"),
        "{msg}"
    );
    assert!(
        build(&parse(&[
            "--ikey", "DIX", "--skey", "k", "--grants", "read,fly"
        ]))
        .is_err()
    );
    assert!(
        build(&parse(&[
            "--ikey", "DIX", "--skey", "k", "--faults", "teapot"
        ]))
        .is_err()
    );
}

#[test]
fn the_adverse_profile_comes_from_the_flag_or_the_settings_file_and_file_keys_override_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dbg = |args: &[&str]| format!("{:?}", build(&parse(args)).unwrap_or_else(|e| panic!("{e}")));
    let evidence = dbg(&["--ikey", "DIX", "--skey", "k"]);
    assert!(
        evidence.contains("profile: Evidence")
            && evidence.contains("bulk_remove_post: Ok")
            && evidence.contains("unique_group_names: true")
            && evidence.contains("bulk_per_min: None")
            && evidence.contains("burst: 5, burst_fraction: None"),
        "{evidence}"
    );
    let one = dbg(&["--ikey", "DIX", "--skey", "k", "--rate-burst", "1"]);
    assert!(one.contains("burst: 1, burst_fraction: None"), "--rate-burst sets the burst: {one}");
    let adverse = dbg(&["--ikey", "DIX", "--skey", "k", "--profile", "adverse"]);
    for want in [
        "profile: Adverse",
        "bulk_remove_post: PerOp404",
        "bulk_reply_shape: Bare",
        "unique_group_names: false",
        "bulk_per_min: Some(50)",
        "id_list_per_min: Some(40)",
        "burst: 1,",
        "usernames_case_insensitive: false",
        "lowercase_usernames: false",
    ] {
        assert!(adverse.contains(want), "{want} missing from {adverse}");
    }
    let file = dir.path().join("settings.json");
    std::fs::write(
        &file,
        r#"{"profile": "adverse", "bulk_reply_shape": "envelopes", "rate_limits": {"scale": 60}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let f = file.display().to_string();
    let mixed = dbg(&["--ikey", "DIX", "--skey", "k", "--settings", &f]);
    assert!(
        mixed.contains("profile: Adverse")
            && mixed.contains("bulk_reply_shape: Envelopes")
            && mixed.contains("bulk_per_min: Some(50)")
            && mixed.contains("scale: 60.0"),
        "{mixed}"
    );
    let flag_wins = dbg(&["--ikey", "DIX", "--skey", "k", "--settings", &f, "--profile", "evidence"]);
    assert!(
        flag_wins.contains("profile: Evidence")
            && flag_wins.contains("bulk_per_min: None")
            && flag_wins.contains("bulk_reply_shape: Envelopes"),
        "{flag_wins}"
    );
    let mut v = vec!["duoprov-emulator", "--ikey", "DIX", "--skey", "k", "--profile", "hostile"];
    let err = Top::try_parse_from(std::mem::take(&mut v)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("unknown profile \"hostile\""), "{err}");
}
