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
//!
//! `BENCH_SIZE=full`: the registry scale data set instead (100 000 subjects, 10 000 groups, 1 000
//! chains nested three deep, 1 000 000 memberships: `crates/registry/benches/data/scale.rs`), on
//! SQLite, or on PostgreSQL with `DUOPROV_BENCH_POSTGRES_URL` (a database of the bench's own; it
//! works in a fresh schema). A full sync at that size takes long, so the state one leaves is
//! seeded directly: the desired state is built from the registry with the provisioner's
//! (default) templates, every desired group, user and effective membership is created in the
//! emulator's tenant, and the registry records the links, the rendered usernames and the
//! checkpoint as a full run records them (not the per-membership bookkeeping, which incremental
//! runs do not read). The single change's Duo calls check the seeding: a user or group seeded
//! unlike a full sync's would draw updates. The same 1 000 changes at 20 a second are then
//! committed to subjects and groups spread over the data set.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duoprov_emulator::{Emulator, EmulatorHandle, Integration};
use duoprov_model::{FolderPath, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_registry::{NodeAttrs, OpenOptions, Store};

#[path = "../../registry/benches/data/scale.rs"]
mod scale;

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

/// A change as committed and watched: the registry group and subject, the Duo group's id and
/// the Duo username, and whether it adds (else removes) the membership.
#[derive(Clone)]
struct Target {
    group: GroupName,
    subject: SubjectKey,
    group_id: String,
    username: String,
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

/// The changes of the full-size run: subject `k·97 mod 100 000` (each once); three in four join a
/// group in 5000–5999 they are not in, one in four leaves its group in 9000–9999 (an immediate
/// membership no nesting repeats).
fn full_changes() -> Vec<Change> {
    (0..CHANGES)
        .map(|k| {
            let subject = (k * 97) % scale::SUBJECTS;
            let home = subject / scale::MEMBERS_PER_GROUP;
            if k % 4 == 3 { Change { subject, group: home + 9_000, add: false } } else { Change { subject, group: (home + 500) % 1_000 + 5_000, add: true } }
        })
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if std::env::var("BENCH_SIZE").is_ok_and(|v| v == "full") {
        runtime.block_on(bench_full());
    } else {
        runtime.block_on(bench());
    }
}

/// A working folder with the Duo secret and a configuration naming `registry_url` and the emulator.
fn workspace(registry_url: &str, emulator: &duoprov_emulator::RunningEmulator) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("duo.skey"), SKEY).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("duo.skey"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A database password goes to a file of its own (the configuration refuses one in the URL).
    let (registry_url, password_line) = match registry_url.split_once("://").and_then(|(scheme, rest)| {
        let (auth, host) = rest.split_once('@')?;
        let (user, password) = auth.split_once(':')?;
        Some((format!("{scheme}://{user}@{host}"), password.to_owned()))
    }) {
        Some((url, password)) => {
            std::fs::write(dir.path().join("registry.pass"), password).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir.path().join("registry.pass"), std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            (url, "password_file = \"registry.pass\"\n".to_owned())
        }
        None => (registry_url.to_owned(), String::new()),
    };
    let config = format!(
        "[registry]\nurl = \"{registry_url}\"\n{password_line}\n[duo.bench]\napi_host = \"127.0.0.1\"\nintegration_key = \"{IKEY}\"\nsecret_key_file = \"duo.skey\"\nurl = \"{}\"\n\n[provisioner.bench]\nduo = \"bench\"\n",
        emulator.base_url()
    );
    std::fs::write(dir.path().join("duoprov.toml"), config).unwrap();
    dir
}

async fn bench() {
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).spawn_on("127.0.0.1:0").await.expect("emulator");
    let dir = workspace("sqlite://registry.db", &emulator);

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

    let targets: Vec<Target> = changes()
        .into_iter()
        .map(|c| Target {
            group: group_names[c.group].clone(),
            subject: SubjectKey::local(format!("s{:05}", c.subject)),
            group_id: group_ids[c.group].clone(),
            username: format!("user{:05}", c.subject),
            add: c.add,
        })
        .collect();
    let single = (group_names[7].clone(), SubjectKey::local("s00000"));
    measure(dir.path(), &*store, &handle, single, targets).await;
}

/// Measures a single change's Duo calls (`duoprov sync --incremental`, then undone), then runs
/// the daemon with the default poll interval while `targets` are committed at `PER_SECOND` and
/// prints the commit → Duo latency. Exits non-zero when a change never reaches Duo.
async fn measure(dir: &std::path::Path, store: &dyn Store, handle: &EmulatorHandle, single: (GroupName, SubjectKey), targets: Vec<Target>) {
    // A single change, synced by hand: its Duo calls.
    let single_member = GroupMember::Subject(single.1);
    match store.add_member(&single.0, &single_member).await {
        Ok(true) => {}
        other => fail(format!("the single change changed nothing: {other:?}")),
    }
    let before = handle.calls().last().map(|c| c.seq).unwrap_or(0);
    let t = Instant::now();
    let out = duoprov(dir).args(["sync", "bench", "--incremental"]).output().expect("incremental sync");
    if !out.status.success() {
        fail(format!("incremental sync: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let single_secs = t.elapsed().as_secs_f64();
    let single_calls = handle.calls_since(before);
    store.remove_member(&single.0, &single_member).await.expect("undo");
    let out = duoprov(dir).args(["sync", "bench", "--incremental"]).output().expect("incremental sync");
    if !out.status.success() {
        fail(format!("incremental sync: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let paths: Vec<String> = single_calls.iter().map(|c| format!("{} {}", c.method, c.path)).collect();
    println!("single membership change: {} Duo calls (target ≤ 3), `sync --incremental` {single_secs:.2} s: {paths:?}", single_calls.len());

    // The daemon, default poll interval.
    // Run summaries go to daemon.log for a look at run times.
    let log = std::fs::File::create(dir.join("daemon.log")).expect("daemon log");
    let mut daemon = duoprov(dir).args(["-v", "run", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(log).spawn().expect("daemon");
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap()).read_line(&mut line).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let plan = Arc::new(targets);
    let pending: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (pending, latencies, done, handle, plan) = (pending.clone(), latencies.clone(), done.clone(), handle.clone(), plan.clone());
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
                            let c = &plan[*i];
                            let member = t.user_by_name(&c.username).is_some_and(|u| u.groups.iter().any(|g| g.as_str() == c.group_id));
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
        let member = GroupMember::Subject(c.subject.clone());
        let changed = if c.add { store.add_member(&c.group, &member).await } else { store.remove_member(&c.group, &member).await };
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

    // `BENCH_DAEMON_LOG=FILE` keeps the daemon's log for a look at its runs.
    if let Ok(keep) = std::env::var("BENCH_DAEMON_LOG") {
        let _ = std::fs::copy(dir.join("daemon.log"), keep);
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("daemon.log")) {
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

/// The full-size run: the registry scale data set, its synced state seeded (see the top of this
/// file), then [`measure`].
async fn bench_full() {
    use duoprov_emulator::state::{GroupFields, UserFields};
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).spawn_on("127.0.0.1:0").await.expect("emulator");
    let (label, store_url, daemon_url, schema) = match std::env::var("DUOPROV_BENCH_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let schema = format!("bench_latency_{}", std::process::id());
            let sep = if url.contains('?') { '&' } else { '?' };
            let daemon_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
            ("postgres", url, daemon_url, Some(schema))
        }
        _ => ("sqlite", String::new(), "sqlite://registry.db".to_owned(), None),
    };
    let dir = workspace(&daemon_url, &emulator);
    let store_url = if schema.is_some() { store_url } else { format!("sqlite://{}", dir.path().join("registry.db").display()) };
    let store = duoprov_registry::open(&store_url, &OpenOptions { schema, ..Default::default() }).await.expect("registry");
    println!("{label}: registry at full size, {} load average at the start", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());

    let t = Instant::now();
    let mut data = duoprov_registry::ImportData::default();
    data.add_json("bench.json", &scale::document()).expect("parse");
    store.import(&data).await.expect("import");
    drop(data);
    println!("registry: {} subjects, {} groups, {} memberships imported in {:.1} s", scale::SUBJECTS, scale::GROUPS, scale::GROUPS * scale::MEMBERS_PER_GROUP, t.elapsed().as_secs_f64());

    // The state a full sync leaves: built as a full sync builds it, seeded into Duo and the registry.
    let t = Instant::now();
    let selection = store.provisioner_selection("bench").await.expect("selection");
    let mapping = duoprov_plan::Mapping::compile(&duoprov_plan::MappingConfig::default(), "bench").expect("mapping");
    let desired = duoprov_plan::DesiredState::build(&selection, &mapping, None);
    drop(selection);
    if !desired.errors.is_empty() {
        fail(format!("the data set renders with errors: {:?}", &desired.errors[..desired.errors.len().min(3)]));
    }
    let handle = emulator.handle().clone();
    let (group_ids, user_ids, memberships) = handle.with_tenant_mut(|t, ids| {
        let mut user_ids = Vec::with_capacity(desired.users.len());
        for u in &desired.users {
            let f = &u.fields;
            let fields = UserFields {
                username: Some(f.username.clone()),
                realname: Some(f.realname.clone()),
                email: Some(f.email.clone()),
                firstname: Some(f.firstname.clone()),
                lastname: Some(f.lastname.clone()),
                aliases: f.aliases.iter().map(|(slot, a)| (*slot, Some(a.clone()))).collect(),
                ..UserFields::default()
            };
            user_ids.push(t.create_user(fields, 1_700_000_000, ids).unwrap_or_else(|e| fail(format!("seeding user {}: {e:?}", f.username))));
        }
        let mut group_ids = Vec::with_capacity(desired.groups.len());
        let mut memberships = 0usize;
        for g in &desired.groups {
            let fields = GroupFields { name: Some(g.fields.name.clone()), desc: Some(g.fields.desc.clone()), ..GroupFields::default() };
            let id = t.create_group(fields, &Default::default(), ids).unwrap_or_else(|e| fail(format!("seeding group {}: {e:?}", g.fields.name)));
            for m in &g.members {
                t.add_membership(&user_ids[*m as usize], &id, usize::MAX, duoprov_emulator::GroupLimitError::Internal500, false)
                    .unwrap_or_else(|e| fail(format!("seeding a member of {}: {e:?}", g.fields.name)));
                memberships += 1;
            }
            group_ids.push(id);
        }
        (group_ids, user_ids, memberships)
    });
    let groups: Vec<duoprov_registry::GroupState> = desired
        .groups
        .iter()
        .zip(&group_ids)
        .map(|(g, id)| duoprov_registry::GroupState {
            pending_name: None,
            pending_at: None,
            group_uuid: g.uuid.clone(),
            duo_group_id: Some(id.as_str().to_owned()),
            in_target: true,
            created_by_us: true,
            provisioned_at: Some(duoprov_model::EpochMillis::now()),
            error: None,
        })
        .collect();
    let users: Vec<duoprov_registry::UserState> = desired
        .users
        .iter()
        .zip(&user_ids)
        .map(|(u, id)| duoprov_registry::UserState {
            pending_name: None,
            pending_at: None,
            subject: u.key.clone(),
            duo_user_id: Some(id.as_str().to_owned()),
            in_target: true,
            created_by_us: true,
            provisioned_at: Some(duoprov_model::EpochMillis::now()),
            error: None,
        })
        .collect();
    store.record("bench", &groups, &users, &[]).await.expect("links");
    let rows: Vec<duoprov_registry::RenderedName> =
        desired.rendered.iter().map(|(s, k)| duoprov_registry::RenderedName { subject: s.clone(), username_key: k.clone() }).collect();
    let fingerprint = {
        // The provisioner's settings as the CLI builds them from this configuration.
        let settings = duoprov_sync::SyncSettings {
            provisioner: "bench".into(),
            policy: Default::default(),
            mapping: Arc::new(mapping),
            eligible_group: None,
            subject_sources: None,
            concurrency: 4,
            load_duo_users: false,
            incremental: Default::default(),
            shares_duo_with: Vec::new(),
            sync_back: None,
            selection_rules: Default::default(),
        };
        duoprov_sync::rendering_fingerprint(&settings)
    };
    store.replace_rendered("bench", &fingerprint, &rows).await.expect("rendered usernames");
    let seq = store.last_change_seq().await.expect("seq");
    let settle = duoprov_registry::Settlement {
        kind: duoprov_registry::RunKind::Full,
        checkpoint: Some(seq),
        clear_all: true,
        attempted: &[],
        failed: &[],
        now_ms: duoprov_model::EpochMillis::now(),
        backoff: Default::default(),
    };
    store.settle("bench", &settle).await.expect("checkpoint");
    println!(
        "seeded: {} Duo users, {} Duo groups, {memberships} Duo memberships, links, usernames and checkpoint in {:.1} s",
        user_ids.len(),
        group_ids.len(),
        t.elapsed().as_secs_f64()
    );

    let by_name: HashMap<&str, usize> = desired.groups.iter().enumerate().map(|(i, g)| (g.registry_name.as_str(), i)).collect();
    let index_of = |g: usize| *by_name.get(scale::group_name(g).as_str()).unwrap_or_else(|| fail(format!("group {} is not selected", scale::group_name(g))));
    let username_of: HashMap<&SubjectKey, &str> = desired.users.iter().map(|u| (&u.key, u.fields.username.as_str())).collect();
    let targets: Vec<Target> = full_changes()
        .into_iter()
        .map(|c| {
            let subject = SubjectKey::local(format!("u{:06}", c.subject));
            let username = username_of.get(&subject).map(|u| (*u).to_owned()).unwrap_or_else(|| fail(format!("{subject} is not selected")));
            Target { group: GroupName::parse(&scale::group_name(c.group)).unwrap(), group_id: group_ids[index_of(c.group)].as_str().to_owned(), subject, username, add: c.add }
        })
        .collect();
    let single = (GroupName::parse(&scale::group_name(7_500)).unwrap(), SubjectKey::local("u000050"));
    drop(desired);
    measure(dir.path(), &*store, &handle, single, targets).await;
    println!("{label}: load average at the end {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
}
