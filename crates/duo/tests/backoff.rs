//! Retry schedule, deadlines, re-signing and pacing on tokio's paused clock with the in-memory
//! transport: nothing sleeps for real, and the waits are read off the (virtual) request times.

use std::time::Duration;

use duoprov_duo::{ErrorKind, PacingConfig, SignatureVariant};
use serde_json::json;

use crate::support::*;

fn gaps(seen: &[Seen]) -> Vec<Duration> {
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(start_paused = true)]
async fn official_429_schedule_then_success() {
    let mut replies: Vec<Reply> = (0..6).map(|_| fail(429, 42901, "Too Many Requests", None)).collect();
    replies.push(ok(user("DU00000000000000001", "a")));
    let script = Script::queue(replies);
    let duo = mem_client(&script, |_| {});
    let u = duo.get_user("DU00000000000000001").await;
    assert!(matches!(u, Ok(Some(_))), "{u:?}");
    let seen = script.seen();
    assert_eq!(seen.len(), 7);
    // Waits 1, 2, 4, 8, 16, 32 s, each plus jitter in [0, 1) s — as tokio's timers see it: a
    // sleep ends on the next whole millisecond, so a jitter of 999.6 ms makes a gap of base + 1 s.
    for (g, base) in gaps(&seen).iter().zip([1u64, 2, 4, 8, 16, 32]) {
        let most = Duration::from_secs(base + 1);
        assert!(*g >= Duration::from_secs(base) && *g <= most, "gap {g:?} for base {base}");
    }
    // Every attempt is signed afresh: valid, with its own date and signature.
    let dates: Vec<&str> = seen.iter().filter_map(|s| s.header("date")).collect();
    let mut uniq = dates.clone();
    uniq.dedup();
    assert_eq!(uniq.len(), 7, "{dates:?}");
    let mut sigs: Vec<String> = seen.iter().map(Seen::signature).collect();
    sigs.dedup();
    assert_eq!(sigs.len(), 7);
    assert!(seen.iter().all(|s| s.verify() == Ok(SignatureVariant::V5)));
}

#[tokio::test(start_paused = true)]
async fn rate_limited_after_seven_attempts() {
    let script = Script::new(|_, _| fail(429, 42901, "Too Many Requests", None));
    let duo = mem_client(&script, |_| {});
    let start = tokio::time::Instant::now();
    let e = duo.list_groups().await.err();
    assert_eq!(e.map(|e| e.kind), Some(ErrorKind::RateLimited { attempts: 7 }));
    assert_eq!(script.seen().len(), 7);
    let total = start.elapsed();
    assert!(total >= Duration::from_secs(63) && total < Duration::from_secs(69), "{total:?}");
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_backoff() {
    let script = Script::new(|_, _| fail(429, 42901, "Too Many Requests", None));
    let duo = mem_client(&script, |c| c.call_deadline = Duration::from_secs(10));
    let start = tokio::time::Instant::now();
    let e = duo.list_groups().await.err();
    assert!(matches!(e.map(|e| e.kind), Some(ErrorKind::RateLimited { .. })));
    // 1 + 2 + 4 fit (plus jitter below 3 s), 8 more would not.
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!((3..=4).contains(&script.seen().len()), "{}", script.seen().len());
}

#[tokio::test(start_paused = true)]
async fn slow_server_hits_the_call_deadline() {
    let script = Script::new(|_, _| Reply::After(Duration::from_secs(600), Box::new(ok(json!([])))));
    let duo = mem_client(&script, |c| c.call_deadline = Duration::from_secs(30));
    let start = tokio::time::Instant::now();
    let e = duo.list_users().await.err();
    assert_eq!(e.map(|e| e.kind), Some(ErrorKind::Deadline { deadline: Duration::from_secs(30) }));
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn server_errors_retry_with_backoff_for_repeatable_calls_only() {
    let script = Script::queue(vec![fail(502, 50201, "bad gateway", None), fail(500, 50000, "x", None), ok(json!(""))]);
    let duo = mem_client(&script, |c| c.retry.max_server_retries = 3);
    assert!(duo.remove_user_from_group("DU00000000000000001", "DG00000000000000001").await.is_ok());
    let seen = script.seen();
    assert_eq!(seen.len(), 3);
    let g = gaps(&seen);
    assert!(g[0] >= Duration::from_secs(1) && g[0] < Duration::from_secs(2));
    assert!(g[1] >= Duration::from_secs(2) && g[1] < Duration::from_secs(3));

    let script = Script::queue(vec![fail(500, 50000, "x", None)]);
    let duo = mem_client(&script, |_| {});
    let e = duo.bulk(&[duoprov_duo::BulkOp::CreateUser(duoprov_duo::NewUser::new("a"))]).await.err();
    assert!(matches!(e.map(|e| e.kind), Some(ErrorKind::Server { status: 500, .. })));
    assert_eq!(script.seen().len(), 1, "a bulk call with creates is not repeated");
}

#[tokio::test(start_paused = true)]
async fn transport_errors_repeat_only_when_safe() {
    let script = Script::queue(vec![Reply::Fail { detail: "connection reset".into(), maybe_sent: true }, ok(json!(""))]);
    let duo = mem_client(&script, |_| {});
    assert!(duo.delete_group("DG00000000000000001").await.is_ok());
    assert_eq!(script.seen().len(), 2);
    // A create whose connection broke after sending: not repeated blindly; read back finds it.
    let script = Script::new(|s, _| match s.method.as_str() {
        "POST" => Reply::Fail { detail: "connection reset".into(), maybe_sent: true },
        _ => page(json!([group("DG00000000000000007", "staff")]), None),
    });
    let duo = mem_client(&script, |_| {});
    let g = duo.create_group(&duoprov_duo::GroupFields::named("staff")).await;
    assert_eq!(g.map(|g| g.group_id), Ok("DG00000000000000007".to_owned()));
    let methods: Vec<String> = script.seen().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, vec!["POST", "GET"]);
    // A create that never left (connect failure) is simply retried.
    let script = Script::queue(vec![Reply::Fail { detail: "connection refused".into(), maybe_sent: false }, ok(group("DG00000000000000008", "x"))]);
    let duo = mem_client(&script, |_| {});
    let g = duo.create_group(&duoprov_duo::GroupFields::named("x")).await;
    assert_eq!(g.map(|g| g.group_id), Ok("DG00000000000000008".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn timed_out_create_user_is_resolved_by_reading_back() {
    // The create hangs past the deadline; the user turns out to exist.
    let script = Script::new(|s, _| match s.method.as_str() {
        "POST" => Reply::After(Duration::from_secs(600), Box::new(ok(user("DU00000000000000003", "jdoe")))),
        _ => page(json!([user("DU00000000000000003", "jdoe")]), None),
    });
    let duo = mem_client(&script, |c| c.call_deadline = Duration::from_secs(20));
    let u = duo.create_user(&duoprov_duo::NewUser::new("jdoe")).await;
    assert_eq!(u.map(|u| u.user_id), Ok("DU00000000000000003".to_owned()));
    let seen = script.seen();
    assert_eq!(seen.iter().filter(|s| s.method == "POST").count(), 1);
    assert_eq!(seen[1].param("username").as_deref(), Some("jdoe"));

    // The create hangs; the user is not there; a second create succeeds.
    let script = Script::new(|s, n| match (s.method.as_str(), n) {
        ("POST", 0) => Reply::After(Duration::from_secs(600), Box::new(ok(json!("")))),
        ("POST", _) => ok(user("DU00000000000000004", "jdoe")),
        _ => page(json!([]), None),
    });
    let duo = mem_client(&script, |c| c.call_deadline = Duration::from_secs(20));
    let u = duo.create_user(&duoprov_duo::NewUser::new("jdoe")).await;
    assert_eq!(u.map(|u| u.user_id), Ok("DU00000000000000004".to_owned()));
    let methods: Vec<String> = script.seen().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, vec!["POST", "GET", "POST"]);

    // The second create is refused as a duplicate (the first landed late): read back again.
    let script = Script::new(|s, n| match (s.method.as_str(), n) {
        ("POST", 0) => Reply::After(Duration::from_secs(600), Box::new(ok(json!("")))),
        ("POST", _) => fail(400, 40002, "Invalid request parameters", Some("username")),
        (_, 1) => page(json!([]), None),
        _ => page(json!([user("DU00000000000000005", "jdoe")]), None),
    });
    let duo = mem_client(&script, |c| c.call_deadline = Duration::from_secs(20));
    let u = duo.create_user(&duoprov_duo::NewUser::new("jdoe")).await;
    assert_eq!(u.map(|u| u.user_id), Ok("DU00000000000000005".to_owned()));

    // The username is another user's alias: unresolved, not guessed.
    let script = Script::new(|s, _| match s.method.as_str() {
        "POST" => Reply::Fail { detail: "reset".into(), maybe_sent: true },
        _ => page(json!([user("DU00000000000000006", "someone-else")]), None),
    });
    let duo = mem_client(&script, |_| {});
    let e = duo.create_user(&duoprov_duo::NewUser::new("jdoe")).await.err();
    assert!(matches!(e.map(|e| e.kind), Some(ErrorKind::Unresolved { .. })));
}

#[tokio::test(start_paused = true)]
async fn pacing_spaces_calls_per_class() {
    let script = Script::new(|s, _| match s.method.as_str() {
        "GET" => ok(user("DU00000000000000001", "a")),
        _ => ok(json!("")),
    });
    let duo = mem_client(&script, |c| {
        c.pacing = PacingConfig { writes_per_minute: 60, single_reads_per_minute: 120, page_reads_per_minute: 0, burst: 1, ..PacingConfig::default() };
    });
    let start = tokio::time::Instant::now();
    for _ in 0..5 {
        assert!(duo.delete_user("DU00000000000000001").await.is_ok());
    }
    // One write per second after the first.
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    let start = tokio::time::Instant::now();
    for _ in 0..5 {
        assert!(duo.get_user("DU00000000000000001").await.is_ok());
    }
    // Reads have their own bucket (full at first), two per second.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (i2, p2) = (in_flight.clone(), peak.clone());
    let script = Script::new(move |_, _| {
        let now = i2.fetch_add(1, Ordering::SeqCst) + 1;
        p2.fetch_max(now, Ordering::SeqCst);
        Reply::After(Duration::from_secs(1), Box::new(ok(json!(""))))
    });
    let duo = mem_client(&script, |c| c.max_concurrency = 3);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let duo = duo.clone();
        let inf = in_flight.clone();
        tasks.push(tokio::spawn(async move {
            let r = duo.delete_user("DU00000000000000001").await;
            inf.fetch_sub(1, Ordering::SeqCst);
            r
        }));
    }
    for t in tasks {
        assert!(matches!(t.await, Ok(Ok(()))));
    }
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

fn methods(script: &Script) -> Vec<String> {
    script.seen().iter().map(|s| s.method.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_create_group_with_an_unknown_outcome_is_sent_again_only_after_reading_back_shows_it_absent() {
    // 503, not there; reset, not there; created.
    let script = Script::queue(vec![
        fail(503, 50301, "Service unavailable", None),
        page(json!([group("DG00000000000000001", "other")]), None),
        Reply::Fail { detail: "connection reset".into(), maybe_sent: true },
        page(json!([]), None),
        ok(group("DG00000000000000002", "staff")),
    ]);
    let duo = mem_client(&script, |_| {});
    let g = duo.create_group(&duoprov_duo::GroupFields::named("staff")).await;
    assert_eq!(g.map(|g| g.group_id), Ok("DG00000000000000002".to_owned()));
    assert_eq!(methods(&script), ["POST", "GET", "POST", "GET", "POST"]);
    // Each read-back waits on the server-retry schedule first (1 s, then 2 s, plus jitter).
    let g = gaps(&script.seen());
    assert!(g[0] >= Duration::from_secs(1) && g[2] >= Duration::from_secs(2), "{g:?}");

    // The repeat is refused as a duplicate name: the first create landed late, and is the result.
    let script = Script::queue(vec![
        fail(500, 50001, "Internal server error", None),
        page(json!([]), None),
        fail(400, 40002, "Invalid request parameters", Some("name")),
        page(json!([group("DG00000000000000003", "staff")]), None),
    ]);
    let duo = mem_client(&script, |_| {});
    let g = duo.create_group(&duoprov_duo::GroupFields::named("staff")).await;
    assert_eq!(g.map(|g| g.group_id), Ok("DG00000000000000003".to_owned()));

    // The same with Duo's own answer to a duplicate name, 400/40003 "Duplicate resource" (no
    // `message_detail`), as Grouper's connector reads it.
    let script = Script::queue(vec![
        fail(500, 50001, "Internal server error", None),
        page(json!([]), None),
        fail(400, 40003, "Duplicate resource", None),
        page(json!([group("DG00000000000000006", "staff")]), None),
    ]);
    let duo = mem_client(&script, |_| {});
    let g = duo.create_group(&duoprov_duo::GroupFields::named("staff")).await;
    assert_eq!(g.map(|g| g.group_id), Ok("DG00000000000000006".to_owned()));
    assert_eq!(methods(&script), ["POST", "GET", "POST", "GET"]);

    // Still not there after 1 + max_server_retries sends: unresolved, and never a fourth send.
    let script = Script::new(|s, _| match s.method.as_str() {
        "POST" => fail(500, 50001, "Internal server error", None),
        _ => page(json!([]), None),
    });
    let duo = mem_client(&script, |c| c.retry.max_server_retries = 2);
    let e = duo.create_group(&duoprov_duo::GroupFields::named("staff")).await.err();
    assert!(matches!(e.map(|e| e.kind), Some(ErrorKind::Unresolved { .. })));
    assert_eq!(methods(&script), ["POST", "GET", "POST", "GET", "POST", "GET"]);

    // Two groups of that name after an unknown outcome: nothing is guessed, nothing re-sent.
    let script = Script::queue(vec![
        Reply::Fail { detail: "connection reset".into(), maybe_sent: true },
        page(json!([group("DG00000000000000004", "staff"), group("DG00000000000000005", "staff")]), None),
    ]);
    let duo = mem_client(&script, |_| {});
    let e = duo.create_group(&duoprov_duo::GroupFields::named("staff")).await.err();
    assert!(matches!(e.map(|e| e.kind), Some(ErrorKind::Unresolved { .. })));
    assert_eq!(methods(&script), ["POST", "GET"]);
}

fn usernames_sent(s: &Seen) -> Vec<String> {
    let users: Vec<serde_json::Value> = serde_json::from_str(s.json()["users"].as_str().unwrap_or("[]")).unwrap_or_default();
    users.iter().map(|u| u["username"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_bulk_create_with_an_unknown_outcome_reads_back_and_sends_only_the_missing_users_again() {
    let batch = [duoprov_duo::NewUser::new("ann"), duoprov_duo::NewUser::new("bob")];
    // 500, and both users turn out to exist: no second create.
    let script = Script::queue(vec![
        fail(500, 50001, "Internal server error", None),
        ok(json!([user("DU00000000000000001", "ann"), user("DU00000000000000002", "bob")])),
    ]);
    let duo = mem_client(&script, |_| {});
    let created = duo.bulk_create_users(&batch).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.len(), 2);
    let seen = script.seen();
    assert_eq!(methods(&script), ["POST", "GET"]);
    assert_eq!(seen[1].param("username_list").as_deref(), Some(r#"["ann","bob"]"#));

    // Reset, only ann is there (bob's alias match does not count): bob alone is sent again.
    let script = Script::queue(vec![
        Reply::Fail { detail: "connection reset".into(), maybe_sent: true },
        ok(json!([user("DU00000000000000001", "ann"), user("DU00000000000000009", "robert")])),
        ok(json!([user("DU00000000000000002", "bob")])),
    ]);
    let duo = mem_client(&script, |_| {});
    let created = duo.bulk_create_users(&batch).await.unwrap_or_else(|e| panic!("{e}"));
    let mut names: Vec<String> = created.into_iter().map(|u| u.username).collect();
    names.sort();
    assert_eq!(names, ["ann", "bob"]);
    let seen = script.seen();
    assert_eq!(usernames_sent(&seen[0]), ["ann", "bob"]);
    assert_eq!(usernames_sent(&seen[2]), ["bob"]);

    // A refusal on the first send is a real error: returned at once, nothing read back.
    let script = Script::queue(vec![fail(400, 40002, "Invalid request parameters", Some("users[1].username"))]);
    let duo = mem_client(&script, |_| {});
    let e = duo.bulk_create_users(&batch).await.err();
    assert!(matches!(e.map(|e| e.kind), Some(ErrorKind::InvalidParameter { .. })));
    assert_eq!(script.seen().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_429_slows_only_its_own_class_and_every_attempt_is_counted_by_class() {
    let trash_calls = std::sync::atomic::AtomicUsize::new(0);
    let script = Script::new(move |s, _| {
        if s.path.ends_with("/bulk_send_to_trash") {
            if trash_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                return fail(429, 42901, "Too Many Requests", None);
            }
            return ok(json!(""));
        }
        match s.method.as_str() {
            "GET" if s.path == "/admin/v1/users" => ok(json!([])),
            "GET" => ok(user("DU00000000000000001", "a")),
            _ => ok(json!("")),
        }
    });
    // Bulk and lookups paced at a tenant-specific 40/min and 32/min (the defaults start higher),
    // so the halved bulk rate, not the backoff, sets the retry's wait.
    let pacing = PacingConfig { list_lookups_per_minute: 32, bulk_per_minute: 40, ..PacingConfig::default() };
    let duo = mem_client(&script, |c| c.pacing = pacing.clone());
    assert!(duo.send_users_to_trash(&["DU00000000000000001".to_owned()]).await.is_ok());
    let seen = script.seen();
    assert_eq!(seen.len(), 2);
    // The 429 halved bulk's 40/min and emptied its bucket: the retry waits for a token at
    // 20/min (3 s), longer than the first backoff step (1 s plus jitter below 1 s).
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_secs(3) && gap < Duration::from_millis(3100), "{gap:?}");
    assert!(duo.get_user("DU00000000000000001").await.is_ok());
    assert!(duo.get_users_by_usernames(&["a".to_owned()]).await.is_ok());
    let by_class: Vec<(&str, u64, u64, Option<f64>)> =
        duo.pacing_stats().iter().map(|s| (s.class.name(), s.calls, s.rate_limited, s.rate_per_minute)).collect();
    assert_eq!(
        by_class,
        vec![
            ("write", 0, 0, Some(240.0)),
            ("single_read", 1, 0, Some(240.0)),
            ("page_read", 0, 0, Some(160.0)),
            ("list_lookup", 1, 0, Some(32.0)),
            ("bulk", 2, 1, Some(20.0)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_backing_off_after_a_429_leaves_its_slot_to_another_call() {
    // One slot in flight. The first call is answered 429 and backs off (1 s plus jitter); the
    // second, begun while the first waits, is sent during that backoff, before the retry.
    let script = Script::new(|s, n| match (n, s.method.as_str()) {
        (0, _) => fail(429, 42901, "Too Many Requests", None),
        (_, "GET") => ok(user("DU00000000000000001", "a")),
        _ => ok(json!("")),
    });
    let duo = mem_client(&script, |c| c.max_concurrency = 1);
    let start = tokio::time::Instant::now();
    let first = tokio::spawn({
        let duo = duo.clone();
        async move { duo.delete_user("DU00000000000000001").await }
    });
    // Wait (on the paused clock) until the first call has been answered 429.
    while script.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let second = duo.get_user("DU00000000000000001").await;
    assert!(matches!(second, Ok(Some(_))), "{second:?}");
    assert!(matches!(first.await, Ok(Ok(()))));
    let seen = script.seen();
    let order: Vec<(&str, Duration)> = seen.iter().map(|s| (s.method.as_str(), s.at - start)).collect();
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!((order[0].0, order[1].0, order[2].0), ("DELETE", "GET", "DELETE"), "{order:?}");
    assert!(order[1].1 < Duration::from_millis(10), "the second call went at once, not after the backoff: {order:?}");
    assert!(order[2].1 >= Duration::from_secs(1), "the retry still waited its backoff: {order:?}");
}

#[tokio::test(start_paused = true)]
async fn a_call_backing_off_takes_a_slot_again_before_its_next_attempt() {
    // One slot in flight. The first call is answered 429; during its backoff a slow second call
    // (5 s) takes the slot, so the retry waits for it rather than running beside it.
    let script = Script::new(|s, n| match (n, s.method.as_str()) {
        (0, _) => fail(429, 42901, "Too Many Requests", None),
        (_, "GET") => Reply::After(Duration::from_secs(5), Box::new(ok(user("DU00000000000000001", "a")))),
        _ => ok(json!("")),
    });
    let duo = mem_client(&script, |c| c.max_concurrency = 1);
    let start = tokio::time::Instant::now();
    let first = tokio::spawn({
        let duo = duo.clone();
        async move { duo.delete_user("DU00000000000000001").await }
    });
    while script.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(matches!(duo.get_user("DU00000000000000001").await, Ok(Some(_))));
    assert!(matches!(first.await, Ok(Ok(()))));
    let seen = script.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen[2].at - start >= Duration::from_secs(5), "the retry waited for the slot: {:?}", seen[2].at - start);
}
