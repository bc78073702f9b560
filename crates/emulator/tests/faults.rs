//! Injected faults (429, 500, 503, latency, connection reset) from a spec given at start or
//! through `PUT /_emulator/faults`, and Duo-style rate limiting per integration and call class.

use duoprov_duo_wire::SignatureVariant;
use duoprov_emulator::RateLimits;

use crate::support::{self, Client, RO_IKEY, RO_SKEY};

#[tokio::test]
async fn every_nth_call_of_one_endpoint_fails_as_specified() {
    let emu = support::spawn(|_| {}).await;
    emu.handle()
        .set_faults("429 every=3 on=users.list; 503 first=1 on=groups.*")
        .unwrap_or_else(|e| panic!("{e}"));
    let c = Client::new(&emu);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(c.call("GET", "/admin/v1/users", &[]).await.status);
    }
    assert_eq!(statuses, vec![200, 200, 429, 200, 200, 429]);
    let r = c
        .call("GET", "/admin/v1/users/DUAAAAAAAAAAAAAAAAAA", &[])
        .await;
    assert_eq!(r.status, 404, "other endpoints unaffected");
    let g = c.call("POST", "/admin/v1/groups", &[("name", "g")]).await;
    assert_eq!((g.status, g.code()), (503, Some(50301)));
    assert!(
        emu.handle().state().groups.is_empty(),
        "a faulted call changes nothing"
    );
    assert_eq!(
        c.call("POST", "/admin/v1/groups", &[("name", "g")])
            .await
            .status,
        200
    );
    let faulted: Vec<_> = emu
        .handle()
        .calls()
        .into_iter()
        .filter_map(|c| c.fault)
        .collect();
    assert_eq!(faulted, vec!["429", "429", "503"]);
}

#[tokio::test]
async fn injected_429_has_duo_body_and_no_retry_after() {
    let emu = support::spawn(|_| {}).await;
    emu.handle()
        .set_faults("429 first=1")
        .unwrap_or_else(|e| panic!("{e}"));
    let req = b"GET /admin/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    // Faults come after authentication: an unsigned call is still 401.
    assert!(support::raw(&emu, req).await.starts_with("HTTP/1.1 401"));
    let c = Client::new(&emu);
    let r = c.call("GET", "/admin/v1/users", &[]).await;
    assert_eq!(
        r.json,
        serde_json::json!({"stat": "FAIL", "code": 42901, "message": "Too Many Requests"})
    );
    let emu2 = support::spawn(|_| {}).await;
    emu2.handle()
        .set_faults("500 first=1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        Client::new(&emu2)
            .call("GET", "/admin/v1/users", &[])
            .await
            .code(),
        Some(50001)
    );
}

#[tokio::test]
async fn probability_faults_repeat_with_the_same_seed() {
    async fn run(seed: u64) -> Vec<u16> {
        let emu = support::spawn(|_| {}).await;
        emu.handle()
            .set_faults(&format!("seed={seed}; 500 p=0.5"))
            .unwrap_or_else(|e| panic!("{e}"));
        let c = Client::new(&emu);
        let mut out = Vec::new();
        for _ in 0..24 {
            out.push(c.call("GET", "/admin/v1/groups", &[]).await.status);
        }
        out
    }
    let a = run(11).await;
    assert_eq!(a, run(11).await);
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn connection_reset_sends_no_response() {
    let emu = support::spawn(|_| {}).await;
    emu.handle()
        .set_faults("reset first=1 on=users.list; latency=1ms on=users.list")
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = Client::new(&emu);
    let http = reqwest::Client::new();
    // The client's first call is signed properly; the reset must surface as a transport error.
    let date = duoprov_duo_wire::date::now();
    let signed = duoprov_duo_wire::sign::sign_request(
        support::IKEY,
        support::SKEY,
        SignatureVariant::V5,
        &duoprov_duo_wire::sign::Request {
            date: &date,
            method: "GET",
            host: "127.0.0.1",
            path: "/admin/v1/users",
            canon_params: "",
            body: b"",
            x_duo_headers: &[],
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sent = http
        .get(format!("{}/admin/v1/users", emu.base_url()))
        .header("Date", &date)
        .header("Authorization", &signed.authorization)
        .send()
        .await;
    assert!(sent.is_err(), "expected a transport error, got {sent:?}");
    assert_eq!(
        c.call("GET", "/admin/v1/users", &[]).await.status,
        200,
        "later calls are served"
    );
    let log = emu.handle().calls();
    assert_eq!(log[0].fault, Some("reset"));
    assert_eq!(log[0].status, 0);
}

#[tokio::test]
async fn bad_specs_are_refused_by_the_route_and_the_builder() {
    let emu = support::spawn(|_| {}).await;
    let (status, body) = support::introspect(&emu, "PUT", "/_emulator/faults", "418 every=2").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = support::introspect(
        &emu,
        "PUT",
        "/_emulator/faults",
        "seed=3; 503 every=2 on=users.get",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, faults) = support::introspect(&emu, "GET", "/_emulator/faults", "").await;
    assert_eq!(faults["spec"], "seed=3; 503 every=2 on=users.get");
    assert_eq!(faults["rules"][0]["matched"], 0);
    let built = duoprov_emulator::Emulator::builder()
        .integration(duoprov_emulator::Integration::new("DIX", "s"))
        .faults("latency=fast")
        .build();
    assert!(matches!(built, Err(duoprov_emulator::Error::FaultSpec(_))));
}

#[tokio::test]
async fn rate_limits_are_per_integration_and_class() {
    let emu = support::spawn(|s| {
        s.rate_limits = RateLimits {
            enabled: true,
            read_page_per_min: 2,
            read_one_per_min: 300,
            write_per_min: 300,
            scale: 1.0,
            burst_fraction: Some(1.0),
            ..RateLimits::default()
        };
    })
    .await;
    let c = Client::new(&emu);
    let statuses = [
        c.call("GET", "/admin/v1/users", &[]).await.status,
        c.call("GET", "/admin/v1/groups", &[]).await.status,
        c.call("GET", "/admin/v1/users", &[]).await.status,
    ];
    assert_eq!(statuses, [200, 200, 429]);
    let r = c.call("GET", "/admin/v1/users", &[]).await;
    assert_eq!(
        (r.code(), r.content_type.as_deref()),
        (Some(42901), Some("application/json"))
    );
    assert_eq!(
        c.call("GET", "/admin/v1/users/DUAAAAAAAAAAAAAAAAAA", &[])
            .await
            .status,
        404,
        "other class has its own budget"
    );
    let ro = Client::with(&emu, RO_IKEY, RO_SKEY, SignatureVariant::V5);
    assert_eq!(
        ro.call("GET", "/admin/v1/users", &[]).await.status,
        200,
        "other integration has its own budget"
    );
    // No Retry-After, like Duo.
    let date = duoprov_duo_wire::date::now();
    let signed = duoprov_duo_wire::sign::sign_request(
        support::IKEY,
        support::SKEY,
        SignatureVariant::V5,
        &duoprov_duo_wire::sign::Request {
            date: &date,
            method: "GET",
            host: "127.0.0.1",
            path: "/admin/v1/users",
            canon_params: "",
            body: b"",
            x_duo_headers: &[],
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let req = format!(
        "GET /admin/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nDate: {date}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        signed.authorization
    );
    let resp = support::raw(&emu, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 429"), "{resp}");
    assert!(!resp.to_ascii_lowercase().contains("retry-after"), "{resp}");
}

#[tokio::test]
async fn injected_latency_delays_but_answers() {
    let emu = support::spawn(|s| s.idle_timeout_secs = 1).await;
    emu.handle()
        .set_faults("latency=2s first=1 on=users.list")
        .unwrap_or_else(|e| panic!("{e}"));
    let c = Client::new(&emu);
    let r = c.call("GET", "/admin/v1/users", &[]).await;
    assert_eq!(
        r.status, 200,
        "a slow answer is still an answer, even past the idle timeout"
    );
    assert_eq!(
        emu.handle().calls()[0].fault,
        None,
        "latency is not an answer fault"
    );
}
