//! Scale benchmark: seeds an emulator with 100k users, 10k groups and 1M memberships (ten
//! groups per user), then times signed `GET /admin/v1/users?limit=300` pages over HTTP at offsets
//! across the whole list, reporting the server-side time (from the call log), the time to build
//! the page body alone, and the round trip,
//! plus the process's resident memory before and after seeding. Plain `main` timed with
//! `std::time::Instant`.
//!
//! Run: `cargo bench -p duoprov-emulator --bench scale` (sizes can be changed with
//! `DUOPROV_BENCH_USERS`, `DUOPROV_BENCH_GROUPS`, `DUOPROV_BENCH_GROUPS_PER_USER`).

use std::time::{Duration, Instant};

use duoprov_duo_wire::SignatureVariant;
use duoprov_duo_wire::params::prepare;
use duoprov_duo_wire::sign::{Request, sign_request};
use duoprov_emulator::state::{GroupFields, UserFields};
use duoprov_emulator::{Emulator, GroupLimitError, Integration, Settings};

const IKEY: &str = "DIBENCHBENCHBENCH001";
const SKEY: &str = "benchbenchbenchbenchbenchbenchbenchbench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n_users = env_usize("DUOPROV_BENCH_USERS", 100_000);
    let n_groups = env_usize("DUOPROV_BENCH_GROUPS", 10_000);
    let per_user = env_usize("DUOPROV_BENCH_GROUPS_PER_USER", 10).min(100);
    let rss_start = rss_mib();

    let mut settings = Settings::default();
    settings.rate_limits.enabled = false;
    settings.id_seed = Some(1);
    settings.call_log_capacity = 10_000;
    let emu = match Emulator::builder()
        .settings(settings)
        .integration(Integration::new(IKEY, SKEY))
        .spawn_on("127.0.0.1:0")
        .await
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot start the emulator: {e}");
            std::process::exit(1);
        }
    };

    let seed_start = Instant::now();
    let seeded = emu
        .handle()
        .with_tenant_mut(|t, ids| -> Result<usize, String> {
            let mut groups = Vec::with_capacity(n_groups);
            for g in 0..n_groups {
                let f = GroupFields {
                    name: Some(format!("group-{g:05}")),
                    desc: Some(format!("Group number {g}")),
                    ..GroupFields::default()
                };
                groups.push(t.create_group(f, &Settings::default(), ids).map_err(|e| e.to_string())?);
            }
            let mut memberships = 0;
            for u in 0..n_users {
                let f = UserFields {
                    username: Some(format!("user{u:06}")),
                    realname: Some(format!("User Number {u}")),
                    email: Some(format!("user{u:06}@example.edu")),
                    firstname: Some("User".into()),
                    lastname: Some(format!("Number{u}")),
                    aliases: vec![(1, Some(format!("u{u:06}@alias.example.edu")))],
                    ..UserFields::default()
                };
                let id = t
                    .create_user(f, 1_700_000_000, ids)
                    .map_err(|e| e.to_string())?;
                if !groups.is_empty() {
                    for k in 0..per_user {
                        let g = groups[(u * 7 + k * 1009) % groups.len()];
                        if t.add_membership(&id, &g, 100, GroupLimitError::Internal500, true).is_ok() {
                            memberships += 1;
                        }
                    }
                }
            }
            Ok(memberships)
        });
    let memberships = match seeded {
        Ok(m) => m,
        Err(e) => {
            eprintln!("seeding failed: {e}");
            std::process::exit(1);
        }
    };
    let seed_time = seed_start.elapsed();
    let (users, groups, members) = emu
        .handle()
        .with_tenant(|t| (t.user_count(), t.group_count(), t.membership_count()));
    let rss_seeded = rss_mib();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("http client: {e}");
            std::process::exit(1);
        }
    };
    let base = emu.base_url();
    let pages = 200usize;
    let step = (n_users / pages).max(1);
    let mut round_trips = Vec::with_capacity(pages);
    let mut bytes = 0usize;
    emu.handle().clear_calls();
    for i in 0..pages + 10 {
        let offset = ((i * step) % n_users.max(1)).to_string();
        let params = [("limit", "300"), ("offset", offset.as_str())];
        let prepared = prepare(SignatureVariant::V5, "GET", &params);
        let date = duoprov_duo_wire::date::now();
        let signed = match sign_request(
            IKEY,
            SKEY,
            SignatureVariant::V5,
            &Request {
                date: &date,
                method: "GET",
                host: "127.0.0.1",
                path: "/admin/v1/users",
                canon_params: &prepared.canon_params,
                body: b"",
                x_duo_headers: &[],
            },
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sign: {e}");
                std::process::exit(1);
            }
        };
        let url = format!("{base}/admin/v1/users?{}", prepared.query);
        let t0 = Instant::now();
        let resp = http
            .get(url)
            .header("Date", &date)
            .header("Authorization", &signed.authorization)
            .send()
            .await;
        let body = match resp {
            Ok(r) if r.status().is_success() => r.bytes().await.map(|b| b.len()).unwrap_or(0),
            Ok(r) => {
                eprintln!("unexpected status {}", r.status());
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("request failed: {e}");
                std::process::exit(1);
            }
        };
        let took = t0.elapsed();
        if i >= 10 {
            // the first ten are warm-up
            round_trips.push(took);
            bytes += body;
        }
    }
    let mut server: Vec<Duration> = emu
        .handle()
        .calls()
        .iter()
        .skip(10)
        .map(|c| Duration::from_micros(c.micros))
        .collect();
    server.sort();
    round_trips.sort();
    // The page body alone (tenant read lock + JSON), without HTTP, signing or the client.
    let mut render = Vec::with_capacity(pages);
    for i in 0..pages {
        let offset = (i * step) % n_users.max(1);
        let t0 = Instant::now();
        let len = emu.handle().with_tenant(|t| {
            let end = (offset + 300).min(t.user_order().len());
            let ids = &t.user_order()[offset.min(end)..end];
            duoprov_emulator::views::user_list_body(
                t,
                ids,
                duoprov_emulator::StatusCase::Title,
                None,
            )
            .len()
        });
        render.push(t0.elapsed());
        std::hint::black_box(len);
    }
    render.sort();
    let rss_end = rss_mib();

    println!("duoprov-emulator scale benchmark");
    println!(
        "  tenant: {users} users, {groups} groups, {members} memberships ({memberships} added) seeded in {:.2} s",
        seed_time.as_secs_f64()
    );
    println!(
        "  RSS: {rss_start:.1} MiB at start, {rss_seeded:.1} MiB after seeding (+{:.1} MiB), {rss_end:.1} MiB at end",
        rss_seeded - rss_start
    );
    println!(
        "  GET /admin/v1/users limit=300 ({} pages, {:.0} KiB each, {} groups embedded per user):",
        round_trips.len(),
        bytes as f64 / round_trips.len().max(1) as f64 / 1024.0,
        per_user
    );
    println!(
        "    server-side: median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        ms(percentile(&server, 0.5)),
        ms(percentile(&server, 0.95)),
        ms(percentile(&server, 1.0))
    );
    println!(
        "    body only  : median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        ms(percentile(&render, 0.5)),
        ms(percentile(&render, 0.95)),
        ms(percentile(&render, 1.0))
    );
    println!(
        "    round trip : median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        ms(percentile(&round_trips, 0.5)),
        ms(percentile(&round_trips, 0.95)),
        ms(percentile(&round_trips, 1.0))
    );
    let target = Duration::from_millis(5);
    println!(
        "  target: a 300-user page in <= 5 ms: {}",
        if percentile(&round_trips, 0.5) <= target {
            "met (median round trip)"
        } else {
            "NOT met"
        }
    );
    let _ = emu.shutdown().await;
}
