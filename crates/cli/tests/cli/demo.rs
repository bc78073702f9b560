//! `duoprov demo`, as a newcomer runs it: one traffic line per Duo call (method, path, status,
//! time) and as many lines as the emulator answered calls; no bodies unless `-v`, and then with
//! e-mail addresses masked and no `Authorization`; Duo's users and groups after the sync as tables
//! by name; an empty second plan; exit code 0; no colour codes when standard output is not a
//! terminal or `NO_COLOR` is set; nothing left behind in the working folder.

use std::path::Path;

use crate::duoprov;

/// `duoprov ARGS` in `dir` with the colour variables as given (all others removed); returns
/// the exit code, standard output and standard error.
fn demo(dir: &Path, args: &[&str], colour_env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = duoprov(dir);
    for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "TERM"] {
        cmd.env_remove(var);
    }
    cmd.envs(colour_env.iter().copied()).args(args);
    let out = cmd.output().expect("run duoprov demo");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The text under the heading that starts with `prefix`, up to the next heading (a line that
/// does not start with a space and is not empty).
fn section<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut lines = out.lines().skip_while(|l| !l.starts_with(prefix));
    assert!(lines.next().is_some(), "no heading {prefix:?} in:\n{out}");
    lines.take_while(|l| l.is_empty() || l.starts_with(' ')).collect()
}

/// A traffic line: `  METHOD /admin/...  STATUS  N ms`, as (method, path, status).
fn traffic_line(line: &str) -> Option<(&str, &str, u16)> {
    let rest = line.strip_prefix("  ")?;
    let (call, rest) = rest.split_once("  ")?;
    let (status, time) = rest.split_once("  ")?;
    let (method, path) = call.split_once(' ')?;
    let ms = time.strip_suffix(" ms")?;
    let ok = ["GET", "POST", "DELETE", "PUT"].contains(&method) && path.starts_with("/admin/") && !path.contains('?') && ms.parse::<u64>().is_ok();
    ok.then_some((method, path, status.parse().ok()?))
}

/// The number in `... made N calls to Duo` / `Whole demo: N calls to Duo` of the summary.
fn calls_in(line: &str, before: &str) -> usize {
    let rest = line.split_once(before).map(|(_, r)| r).unwrap_or_else(|| panic!("{before:?} not in {line:?}"));
    rest.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no count after {before:?} in {line:?}"))
}

#[test]
fn the_demo_logs_one_line_per_duo_call_shows_duo_by_name_and_ends_with_an_empty_plan() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = demo(dir.path(), &["demo"], &[]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");

    // One line per call, and as many lines as calls the emulator answered (its own count).
    let calls: Vec<(&str, &str, u16)> = out.lines().filter_map(traffic_line).collect();
    let summary = section(&out, "Summary");
    let whole = summary.iter().find(|l| l.contains("Whole demo:")).unwrap_or_else(|| panic!("no call count in:\n{out}"));
    assert_eq!(calls.len(), calls_in(whole, "Whole demo: "), "one traffic line per call the emulator answered:\n{out}");
    let sync: Vec<(&str, &str, u16)> = section(&out, "3. The sync").into_iter().filter_map(traffic_line).collect();
    let made = summary.iter().find(|l| l.contains("The sync made")).unwrap_or_else(|| panic!("no sync call count in:\n{out}"));
    assert_eq!(sync.len(), calls_in(made, "The sync made "), "the sync's calls, one line each:\n{out}");
    assert!(sync.contains(&("POST", "/admin/v1/groups", 200)), "the group create is logged:\n{out}");
    assert!(sync.iter().any(|(m, p, s)| *m == "POST" && p.starts_with("/admin/v1/users") && *s == 200), "the user creates are logged:\n{out}");
    assert!(calls.iter().all(|(_, _, s)| *s == 200), "{out}");

    // No bodies, headers or raw JSON without -v.
    for absent in ["request:", "response:", "query:", "\"stat\"", "{\"", "Authorization", "Basic "] {
        assert!(!out.contains(absent) && !err.contains(absent), "{absent:?} shown without -v:\nstdout:\n{out}\nstderr:\n{err}");
    }

    // Duo's state by name: both people with their details and group, the group with both.
    let state = section(&out, "4. Duo after the sync");
    let row = |words: &[&str]| state.iter().any(|l| words.iter().all(|w| l.contains(w)));
    assert!(row(&["USERNAME", "REAL NAME", "E-MAIL", "STATUS", "GROUPS"]), "{out}");
    assert!(row(&["mchyzer", "Chris Hyzer", "mchyzer@example.edu", "active", "testGroup"]), "{out}");
    assert!(row(&["kwilso", "Kate Wilson", "kwilso@example.edu", "active", "testGroup"]), "{out}");
    assert!(row(&["testGroup", "Duo test group", "kwilso, mchyzer"]), "{out}");

    assert!(section(&out, "2. The plan").iter().any(|l| l.contains("Plan for duoTest: 5 operations.")), "{out}");
    let again = section(&out, "5. Planning again");
    assert!(again.iter().any(|l| l.contains("Plan for duoTest: nothing to do; Duo matches the registry.")), "{out}");
    assert!(summary.iter().any(|l| l.contains("1 group created, 2 users created, 2 people added to groups")), "{out}");
    let next = section(&out, "Next steps").join("\n");
    assert!(next.contains("duoprov init") && next.contains("docs/configuration.md") && next.contains("docs/operations.md"), "{out}");

    assert!(!out.contains('\x1b') && !err.contains('\x1b'), "no escape codes when standard output is not a terminal:\n{out:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the demo leaves nothing behind in the working folder");
}

#[test]
fn with_v_the_demo_shows_each_calls_bodies_with_e_mail_addresses_masked() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = demo(dir.path(), &["-v", "demo"], &[]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let sync = section(&out, "3. The sync");
    let details: Vec<&str> = sync.iter().copied().filter(|l| l.starts_with("      ")).collect();
    let lines = sync.iter().filter(|l| traffic_line(l).is_some()).count();
    assert!(lines > 0, "{out}");
    assert_eq!(details.iter().filter(|l| l.trim_start().starts_with("response: ")).count(), lines, "each call's reply under its line:\n{out}");
    let bodies = details.join("\n");
    assert!(bodies.contains("request: ") && bodies.contains("\"username\":\"mchyzer\"") && bodies.contains("***@example.edu"), "{out}");
    assert!(!bodies.contains("mchyzer@example.edu") && !bodies.contains("kwilso@example.edu"), "e-mail addresses are masked in bodies:\n{bodies}");
    for absent in ["Authorization", "Basic "] {
        assert!(!out.contains(absent) && !err.contains(absent), "{absent:?} shown:\nstdout:\n{out}\nstderr:\n{err}");
    }
}

#[test]
fn the_demo_colours_only_when_asked_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    // Forced colour proves there is colour to strip, so the other two runs are not vacuous.
    let (code, forced, _) = demo(dir.path(), &["demo"], &[("CLICOLOR_FORCE", "1")]);
    assert_eq!(code, Some(0));
    assert!(forced.contains("\x1b["), "colour when forced:\n{forced:?}");
    let (code, no_color, err) = demo(dir.path(), &["demo"], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert_eq!(code, Some(0));
    assert!(!no_color.contains('\x1b') && !err.contains('\x1b'), "NO_COLOR wins:\n{no_color:?}");
    // The same calls either way (reads run side by side, so in either order): colour only wraps words.
    let plain = strip_escapes(&forced);
    let calls = |text: &str| {
        let mut calls = text.lines().filter_map(traffic_line).map(|(m, p, s)| format!("{m} {p} {s}")).collect::<Vec<_>>();
        calls.sort();
        calls
    };
    assert!(!calls(&no_color).is_empty());
    assert_eq!(calls(&plain), calls(&no_color), "{plain}");
}

/// `text` without `ESC [ … m` sequences.
fn strip_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
