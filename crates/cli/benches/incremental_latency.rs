//! Change-to-Duo latency of the daemon: a registry of 2 000 subjects in 20 provisioned groups is
//! fully synced, then `duoprov run` (default 2 s poll interval, default client pacing) runs while
//! 1 000 membership changes (750 additions, 250 removals) are committed at a steady 20 per second
//! through the registry API. For each change the time from its commit to the moment the emulator
//! holds it (the Duo call that reflects it has been served) is measured by watching the emulator's
//! tenant every 5 ms. Printed: p50, p90, p99 and max latency, the Duo calls the emulator received
//! during the changes (per change), and a single change's incremental cost in Duo calls.
//!
//! `cargo bench -p duoprov --bench incremental_latency` (release build). Exits non-zero if a
//! change never arrives, so a lost change cannot pass as a timing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duoprov_emulator::{Emulator, Integration};
use duoprov_model::{FolderPath, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_registry::{NodeAttrs, OpenOptions};

const IKEY: &str = "DIBENCHLATENCY000001";
const SKEY: &str = "bench-latency-secret-key-0123456789abcd";
const SUBJECTS: usize = 2_000;
const GROUPS: usize = 20;
const CHANGES: usize = 1_000;
const PER_SECOND: u64 = 20;

fn fail(message: String) -> ! {
    eprintln!("FAILED: {message}");
    std::process::exit(1);
}

fn duoprov(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_duoprov"));
    c.current_dir(dir).env_remove("DUOPROV_CONFIG").env_remove("DUOPROV_REGISTRY_URL").env_remove("RUST_LOG");
    c
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One change: subject index, group index, and whether it adds (else removes) the membership.
#[derive(Clone, Copy)]
struct Change {
    subject: usize,
    group: usize,
    add: bool,
}

fn changes() -> Vec<Change> {
    (0..CHANGES)
        .map(|k| {
            if k % 4 == 3 {
                // Remove a subject's initial membership (subjects 1, 5, 9, … of the first 1 000).
                let subject = (k / 4) * 4 + 1;
                Change { subject, group: subject % GROUPS, add: false }
            } else {
                // Add a subject to a group it is not in.
                let subject = (k * 2) % SUBJECTS;
                Change { subject, group: (subject % GROUPS + 1 + k / SUBJECTS) % GROUPS, add: true }
            }
        })
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).spawn_on("127.0.0.1:0").await.expect("emulator");
    std::fs::write(dir.path().join("duo.skey"), SKEY).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("duo.skey"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = format!(
        "[registry]\nurl = \"sqlite://registry.db\"\n\n[duo.bench]\napi_host = \"127.0.0.1\"\nintegration_key = \"{IKEY}\"\nsecret_key_file = \"duo.skey\"\nurl = \"{}\"\n\n[provisioner.bench]\nduo = \"bench\"\n",
        emulator.base_url()
    );
    std::fs::write(dir.path().join("duoprov.toml"), config).unwrap();

    // The registry, through the same API the CLI uses.
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    let store = duoprov_registry::open(&url, &OpenOptions::default()).await.expect("registry");
    let t = Instant::now();
    let group_names: Vec<GroupName> = (0..GROUPS).map(|g| GroupName::parse(&format!("app:bench:g{g:02}")).unwrap()).collect();
    for g in &group_names {
        store.add_group(g, &NodeAttrs::default(), true).await.expect("group");
    }
    for s in 0..SUBJECTS {
        let key = SubjectKey::local(format!("s{s:05}"));
        let patch = SubjectPatch { login_id: Some(Some(format!("user{s:05}"))), name: Some(Some(format!("User {s}"))), ..Default::default() };
        store.upsert_subject(&key, &patch).await.expect("subject");
        store.add_member(&group_names[s % GROUPS], &GroupMember::Subject(key)).await.expect("member");
    }
    let marker = Marker {
        provisioner: "bench".into(),
        target: MarkerTarget::Folder(FolderPath::parse("app:bench").unwrap()),
        scope: MarkerScope::Sub,
        provision: true,
    };
    store.assign_marker(&marker).await.expect("marker");
    println!("registry: {SUBJECTS} subjects, {GROUPS} groups, {SUBJECTS} memberships in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let out = duoprov(dir.path()).args(["sync", "bench"]).output().expect("full sync");
    if !out.status.success() {
        fail(format!("full sync: {}", String::from_utf8_lossy(&out.stderr)));
    }
    println!("full sync: {:.1} s", t.elapsed().as_secs_f64());

    // Group ids and user names for watching the tenant.
    let handle = emulator.handle().clone();
    let group_ids: Vec<String> = handle.with_tenant(|t| {
        let by_name: HashMap<String, String> =
            t.group_order().iter().filter_map(|id| t.group(id)).map(|g| (g.name.clone(), g.group_id.as_str().to_owned())).collect();
        (0..GROUPS).map(|g| by_name.get(&format!("g{g:02}")).cloned().unwrap_or_else(|| fail(format!("group g{g:02} not in Duo")))).collect()
    });

    // A single change, synced by hand: its Duo calls.
    let single = GroupMember::Subject(SubjectKey::local("s00000"));
    store.add_member(&group_names[7], &single).await.expect("single change");
    let before = handle.calls().last().map(|c| c.seq).unwrap_or(0);
    let out = duoprov(dir.path()).args(["sync", "bench", "--incremental"]).output().expect("incremental sync");
    if !out.status.success() {
        fail(format!("incremental sync: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let single_calls = handle.calls_since(before).len();
    store.remove_member(&group_names[7], &single).await.expect("undo");
    let out = duoprov(dir.path()).args(["sync", "bench", "--incremental"]).output().expect("incremental sync");
    if !out.status.success() {
        fail(format!("incremental sync: {}", String::from_utf8_lossy(&out.stderr)));
    }
    println!("single membership change: {single_calls} Duo calls (target ≤ 3)");

    // The daemon, default poll interval.
    // Run summaries go to daemon.log for a look at run times.
    let log = std::fs::File::create(dir.path().join("daemon.log")).expect("daemon log");
    let mut daemon = duoprov(dir.path()).args(["-v", "run", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(log).spawn().expect("daemon");
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap()).read_line(&mut line).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let plan = changes();
    let pending: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (pending, latencies, done, handle, plan, group_ids) = (pending.clone(), latencies.clone(), done.clone(), handle.clone(), plan.clone(), group_ids.clone());
        std::thread::spawn(move || {
            loop {
                let waiting: Vec<(usize, Instant)> = pending.lock().unwrap().clone();
                if waiting.is_empty() && done.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let now = Instant::now();
                let arrived: Vec<usize> = handle.with_tenant(|t| {
                    waiting
                        .iter()
                        .filter(|(i, _)| {
                            let c = plan[*i];
                            let member = t.user_by_name(&format!("user{:05}", c.subject)).is_some_and(|u| u.groups.iter().any(|g| g.as_str() == group_ids[c.group]));
                            member == c.add
                        })
                        .map(|(i, _)| *i)
                        .collect()
                });
                if !arrived.is_empty() {
                    let mut p = pending.lock().unwrap();
                    let mut l = latencies.lock().unwrap();
                    p.retain(|(i, at)| {
                        if arrived.contains(i) {
                            l.push(now.duration_since(*at).as_secs_f64());
                            false
                        } else {
                            true
                        }
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let calls_before = handle.calls().last().map(|c| c.seq).unwrap_or(0);
    let start = Instant::now();
    let interval = Duration::from_millis(1_000 / PER_SECOND);
    for (i, c) in plan.iter().enumerate() {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let member = GroupMember::Subject(SubjectKey::local(format!("s{:05}", c.subject)));
        let changed = if c.add { store.add_member(&group_names[c.group], &member).await } else { store.remove_member(&group_names[c.group], &member).await };
        match changed {
            Ok(true) => pending.lock().unwrap().push((i, Instant::now())),
            Ok(false) => fail(format!("change {i} changed nothing in the registry")),
            Err(e) => fail(format!("change {i}: {e}")),
        }
    }
    let committed_in = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.lock().unwrap().is_empty() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
            fail(format!("{} changes never reached Duo", pending.lock().unwrap().len()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.join().unwrap();
    let calls = handle.calls_since(calls_before);
    let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    let _ = daemon.wait();

    if let Ok(text) = std::fs::read_to_string(dir.path().join("daemon.log")) {
        let runs: Vec<f64> = text
            .lines()
            .filter(|l| l.contains("Run finished") && l.contains("incremental"))
            .filter_map(|l| l.rsplit_once("; ").and_then(|(_, t)| t.split(" s").next()).and_then(|t| t.trim().parse().ok()))
            .collect();
        if !runs.is_empty() {
            let mut r = runs.clone();
            r.sort_by(|a, b| a.total_cmp(b));
            println!("incremental runs: {}, run time p50 {:.2} s, max {:.2} s", r.len(), percentile(&r, 0.5), r[r.len() - 1]);
        }
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(|a, b| a.total_cmp(b));
    let writes = calls.iter().filter(|c| c.method != "GET").count();
    println!(
        "{CHANGES} changes committed in {committed_in:.1} s ({PER_SECOND}/s); commit → Duo latency: p50 {:.2} s, p90 {:.2} s, p99 {:.2} s, max {:.2} s (target p99 ≤ 3 s)",
        percentile(&l, 0.5),
        percentile(&l, 0.9),
        percentile(&l, 0.99),
        l[l.len() - 1]
    );
    let limited = calls.iter().filter(|c| c.status == 429).count();
    let served_ms: u64 = calls.iter().map(|c| c.micros).sum::<u64>() / 1000;
    println!(
        "Duo calls during the changes: {} ({} writes, {} answered 429, {} ms in the emulator), {:.3} per change",
        calls.len(),
        writes,
        limited,
        served_ms,
        calls.len() as f64 / CHANGES as f64
    );
    if l.len() != CHANGES {
        fail(format!("{} latencies for {CHANGES} changes", l.len()));
    }
}
