//! Benchmarks of the Duo client (run with `cargo bench -p duoprov-duo`; plain `main`, timed with
//! `std::time::Instant`, results printed):
//! 1. signing cost per request: parameter layout + canonical request + HMAC + `Authorization`,
//!    for a v5 GET, a v5 JSON POST and a v2-SHA1 GET;
//! 2. paging 100 000 users from a local HTTP server (axum on 127.0.0.1, keep-alive, pages of 300
//!    pre-rendered), through the full client path (sign, send, parse, validate), pacing off;
//!    plus what Duo's per-minute page-read rate would make of the same listing.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use duoprov_duo::{DuoClient, DuoConfig, PacingConfig, SignatureVariant};
use duoprov_duo_wire::params::prepare;
use duoprov_duo_wire::sign::{Request, sign_request};

const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
const USERS: usize = 100_000;
const PAGE: usize = 300;

fn bench_sign(name: &str, variant: SignatureVariant, method: &str, params: &[(&str, &str)]) {
    let iters = 100_000u32;
    let date = "Tue, 21 Aug 2012 17:29:18 -0000";
    // Warm-up.
    for _ in 0..1000 {
        let p = prepare(variant, method, params);
        let r = Request { date, method, host: "api-xxxxxxxx.duosecurity.com", path: "/admin/v1/users", canon_params: &p.canon_params, body: &p.body, x_duo_headers: &[] };
        black_box(sign_request(IKEY, SKEY, variant, &r).ok());
    }
    let start = Instant::now();
    for _ in 0..iters {
        let p = prepare(variant, method, black_box(params));
        let r = Request { date, method, host: "api-xxxxxxxx.duosecurity.com", path: "/admin/v1/users", canon_params: &p.canon_params, body: &p.body, x_duo_headers: &[] };
        black_box(sign_request(IKEY, SKEY, variant, &r).ok());
    }
    let per = start.elapsed() / iters;
    println!("sign {name:<44} {:>8.2} µs/request  ({:>9.0} requests/s)", per.as_secs_f64() * 1e6, 1.0 / per.as_secs_f64());
}

/// Server-side cost (what the emulator pays per request): parse the header, then try variants
/// and host candidates until one matches.
fn bench_verify(name: &str, variant: SignatureVariant) {
    use duoprov_duo_wire::verify::{ReceivedRequest, host_candidates, parse_authorization, verify_signature};
    let date = "Tue, 21 Aug 2012 17:29:18 -0000";
    let params = vec![("limit".to_owned(), "300".to_owned()), ("offset".to_owned(), "0".to_owned())];
    let p = prepare(variant, "GET", &params);
    let r = Request { date, method: "GET", host: "127.0.0.1", path: "/admin/v1/users", canon_params: &p.canon_params, body: &p.body, x_duo_headers: &[] };
    let Ok(signed) = sign_request(IKEY, SKEY, variant, &r) else { return };
    let headers = [("Host", "127.0.0.1:8443"), ("Date", date), ("Authorization", signed.authorization.as_str())];
    let iters = 50_000u32;
    let start = Instant::now();
    for _ in 0..iters {
        let hosts = host_candidates(Some("127.0.0.1:8443"), None);
        let Ok(creds) = parse_authorization(black_box(headers[2].1)) else { return };
        let rr = ReceivedRequest { method: "GET", path: "/admin/v1/users", host_candidates: &hosts, params: &params, body: b"", headers: &headers };
        black_box(verify_signature(&rr, &creds, SKEY).ok());
    }
    let per = start.elapsed() / iters;
    println!("verify {name:<42} {:>8.2} µs/request", per.as_secs_f64() * 1e6);
}

struct Pages(Vec<String>);

#[derive(serde::Deserialize)]
struct PageQuery {
    offset: Option<usize>,
}

async fn users(State(pages): State<Arc<Pages>>, Query(q): Query<PageQuery>) -> impl IntoResponse {
    let i = q.offset.unwrap_or(0) / PAGE;
    let body = pages.0.get(i).cloned().unwrap_or_else(|| r#"{"stat":"OK","response":[]}"#.to_owned());
    ([("content-type", "application/json")], body)
}

fn render_pages() -> Pages {
    let mut pages = Vec::new();
    let mut offset = 0;
    while offset < USERS {
        let end = (offset + PAGE).min(USERS);
        let items: Vec<serde_json::Value> = (offset..end)
            .map(|i| {
                serde_json::json!({
                    "user_id": format!("DU{i:018}"), "username": format!("user{i}"), "realname": format!("User Number {i}"),
                    "firstname": "User", "lastname": format!("Number {i}"), "email": format!("user{i}@example.edu"),
                    "notes": "", "status": "active", "aliases": {}, "created": 1_700_000_000, "last_login": null,
                    "last_directory_sync": null, "is_enrolled": true, "phones": [],
                    "groups": [{"group_id": "DG000000000000000001", "name": "staff", "desc": "", "status": "active"}],
                })
            })
            .collect();
        let next = if end < USERS { serde_json::json!(end) } else { serde_json::Value::Null };
        let prev = if offset > 0 { serde_json::json!(offset - PAGE) } else { serde_json::Value::Null };
        pages.push(
            serde_json::json!({"stat": "OK", "response": items, "metadata": {"total_objects": USERS, "next_offset": next, "prev_offset": prev}})
                .to_string(),
        );
        offset = end;
    }
    Pages(pages)
}

async fn bench_paging() -> Result<(), Box<dyn std::error::Error>> {
    let pages = Arc::new(render_pages());
    let bytes: usize = pages.0.iter().map(String::len).sum();
    let app = axum::Router::new().route("/admin/v1/users", axum::routing::get(users)).with_state(pages.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut cfg = DuoConfig::new("127.0.0.1", IKEY, SKEY.into());
    cfg.url = Some(format!("http://{addr}"));
    cfg.pacing = PacingConfig::unlimited();
    let duo = DuoClient::new(cfg)?;
    // Warm-up (connection, allocator).
    let _ = duo.list_users().await?;
    let runs = 3;
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let all = duo.list_users().await?;
        let t = start.elapsed();
        assert_eq!(all.len(), USERS);
        best = best.min(t);
    }
    let n_pages = pages.0.len();
    println!(
        "page {USERS} users ({n_pages} pages of {PAGE}, {:.1} MB JSON), best of {runs}: {:.3} s = {:.0} users/s, {:.2} ms/page",
        bytes as f64 / 1e6,
        best.as_secs_f64(),
        USERS as f64 / best.as_secs_f64(),
        best.as_secs_f64() * 1e3 / n_pages as f64
    );
    let default_rate = PacingConfig::default().page_reads_per_minute;
    println!(
        "      at the default pacing of {default_rate} page reads/min the same listing takes ≥ {:.0} s (Duo's 200/min: ≥ {:.0} s): the network budget, not CPU, bounds it",
        (n_pages as f64 - f64::from(PacingConfig::default().burst)) * 60.0 / f64::from(default_rate),
        n_pages as f64 * 60.0 / 200.0
    );
    Ok(())
}

fn main() {
    println!("duoprov-duo benchmarks ({} build)", if cfg!(debug_assertions) { "debug" } else { "release" });
    bench_sign("v5 GET /admin/v1/users limit=300&offset=0", SignatureVariant::V5, "GET", &[("limit", "300"), ("offset", "0")]);
    bench_sign(
        "v5 POST /admin/v1/users JSON (5 fields)",
        SignatureVariant::V5,
        "POST",
        &[("username", "jdoe"), ("realname", "Jane Doé"), ("email", "jdoe@example.edu"), ("firstname", "Jane"), ("lastname", "Doé")],
    );
    bench_sign("v2-SHA1 GET /admin/v1/users limit=300&offset=0", SignatureVariant::V2Sha1, "GET", &[("limit", "300"), ("offset", "0")]);
    bench_verify("v5 (first candidate variant)", SignatureVariant::V5);
    bench_verify("v2-SHA512 (third variant, second host)", SignatureVariant::V2Sha512);
    bench_verify("v2-SHA1", SignatureVariant::V2Sha1);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return;
        }
    };
    if let Err(e) = rt.block_on(bench_paging()) {
        eprintln!("paging bench failed: {e}");
    }
}
