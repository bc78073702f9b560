//! Registry scale benchmark: imports 100k subjects, 10k groups (1 000 of them heading chains
//! nested three deep) and 1M memberships, then runs the per-provisioner selection query (every
//! group selected, the worst case). Runs on SQLite (a file in a temporary folder) and, when
//! `DUOPROV_TEST_POSTGRES_URL` is set, on PostgreSQL. The query is measured in a fresh child
//! process so its peak memory is its own.
//!
//! `cargo bench -p duoprov-registry --bench scale` (release build). Results go to
//! docs/performance.md by hand, with the machine and date.

use std::time::Instant;

use duoprov_registry::{ImportData, OpenOptions};

#[path = "data/scale.rs"]
mod scale_data;
use scale_data::{document, group_name, CHAINS, GROUPS, MEMBERS_PER_GROUP, SUBJECTS};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

async fn query_only(url: &str, schema: Option<String>) {
    let store = duoprov_registry::open(url, &OpenOptions { schema, ..Default::default() }).await.expect("open");
    let start = Instant::now();
    let sel = store.provisioner_selection("bench").await.expect("selection");
    let secs = start.elapsed().as_secs_f64();
    let pairs: usize = sel.groups.iter().map(|g| g.members.len()).sum();
    assert_eq!(sel.groups.len(), GROUPS);
    assert_eq!(sel.subjects.len(), SUBJECTS);
    let top = sel.groups.iter().find(|g| g.group.name.as_str() == group_name(0)).expect("chain head");
    let expected: std::collections::HashSet<usize> = (0..4)
        .flat_map(|depth| {
            let g = depth * CHAINS;
            (0..MEMBERS_PER_GROUP).map(move |k| (g * MEMBERS_PER_GROUP + k) % SUBJECTS)
        })
        .collect();
    assert_eq!(top.members.len(), expected.len(), "a chain head reaches the members of its whole chain");
    println!("RESULT query_seconds={secs:.3} groups={} subjects={} member_pairs={pairs} peak_rss_mib={:.0}", sel.groups.len(), sel.subjects.len(), peak_rss_mib());
}

async fn import_then_query(label: &str, url: &str, schema: Option<String>, text: &str) {
    let start = Instant::now();
    let mut data = ImportData::default();
    data.add_json("bench.json", text).expect("parse");
    let parse = start.elapsed().as_secs_f64();
    let store = duoprov_registry::open(url, &OpenOptions { schema: schema.clone(), ..Default::default() }).await.expect("open");
    let start = Instant::now();
    let summary = store.import(&data).await.expect("import");
    let import = start.elapsed().as_secs_f64();
    assert_eq!(summary.memberships_added, GROUPS * MEMBERS_PER_GROUP + 3 * CHAINS);
    drop(store);
    drop(data);
    println!("{label}: parse {parse:.2} s, import {import:.2} s ({} subjects, {} groups, {} memberships)", summary.subjects_created, summary.groups_created, summary.memberships_added);
    let mut child = std::process::Command::new(std::env::current_exe().expect("own path"));
    child.env("DUOPROV_BENCH_QUERY_URL", url);
    if let Some(s) = schema {
        child.env("DUOPROV_BENCH_QUERY_SCHEMA", s);
    }
    let out = child.output().expect("query child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "query child failed: {}", String::from_utf8_lossy(&out.stderr));
    for line in stdout.lines().filter(|l| l.starts_with("RESULT")) {
        println!("{label}: {}", line.trim_start_matches("RESULT "));
    }
}

#[tokio::main]
async fn main() {
    if let Ok(url) = std::env::var("DUOPROV_BENCH_QUERY_URL") {
        query_only(&url, std::env::var("DUOPROV_BENCH_QUERY_SCHEMA").ok()).await;
        return;
    }
    let text = document();
    println!("generated {:.0} MiB of import JSON", text.len() as f64 / 1048576.0);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    import_then_query("sqlite", &url, None, &text).await;
    match std::env::var("DUOPROV_TEST_POSTGRES_URL") {
        Ok(pg) if !pg.is_empty() => {
            let schema = format!("bench_scale_{}", std::process::id());
            import_then_query("postgres", &pg, Some(schema), &text).await;
        }
        _ => println!("postgres: skipped (DUOPROV_TEST_POSTGRES_URL not set)"),
    }
}
