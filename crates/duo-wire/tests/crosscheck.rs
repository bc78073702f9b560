//! Cross-check against Duo's official Python client (duo-client): generates a seeded set of
//! requests (every method, every signature variant, unicode and reserved characters in keys and
//! values, repeated keys, empty parameters, JSON bodies, `X-Duo-*` headers), has
//! `tests/py/duo_crosscheck.py` compute each with duo-client, and requires:
//! - the canonical string and `Authorization` header to equal duoprov's;
//! - the JSON body duo-client sends to equal duoprov's byte for byte;
//! - the request duo-client puts on the wire (decoded as a server would) to pass duoprov's
//!   verifier as the variant it was signed with, and duoprov's own request too.
//!
//! The Python interpreter comes from `DUOPROV_PYTHON`; without it the test is skipped with a
//! notice, unless `DUOPROV_REQUIRE_EXTERNAL=1`, in which case it fails.

use std::io::Write as _;
use std::process::{Command, Stdio};

use duoprov_duo_wire::params::{CONTENT_TYPE_FORM, prepare, prepare_json};
use duoprov_duo_wire::sign::{Request, SignatureVariant, method_has_body, sign_request};
use duoprov_duo_wire::verify::{ReceivedRequest, header, parse_authorization, verify_signature};
use serde_json::{Value, json};

const CASES: usize = 240;
/// Extra v4/v5 POST/PUT/PATCH cases whose body is an arbitrary JSON object (nested objects and
/// arrays, numbers, booleans, null, escapes, non-BMP characters).
const JSON_CASES: usize = 40;
const SEED: u64 = 0x5eed_d00d_2026_1129;

/// splitmix64: tiny, deterministic, good enough to spread cases.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const RESERVED: &[char] = &[
    ' ', '!', '"', '#', '$', '%', '&', '\'', '(', ')', '*', '+', ',', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\',
    ']', '^', '`', '{', '|', '}', '-', '.', '_', '~', '\t', '\n',
];
const UNICODE: &[char] = &['é', 'ß', 'Ω', '中', '文', 'ж', '\u{0810}', '\u{fe5f}', '\u{d56b}', '😀', '🦀', '\u{00a0}', '\u{2028}'];

fn gen_text(rng: &mut Rng, max: usize) -> String {
    let len = rng.below(max + 1);
    (0..len)
        .map(|_| match rng.below(10) {
            0..=4 => *rng.pick(ALNUM) as char,
            5..=7 => *rng.pick(RESERVED),
            _ => *rng.pick(UNICODE),
        })
        .collect()
}

fn gen_key(rng: &mut Rng) -> String {
    if rng.chance(3) {
        return String::new();
    }
    let mut k = gen_text(rng, 10);
    if k.is_empty() {
        k.push(*rng.pick(ALNUM) as char);
    }
    k
}

fn gen_case(rng: &mut Rng, i: usize) -> Value {
    let variant = ["v2-sha1", "v2-sha512", "v4", "v5", "v5"][i % 5];
    let method = *rng.pick(&["GET", "POST", "DELETE", "PUT", "PATCH", "GET", "POST"]);
    let host = *rng.pick(&["api-xxxxxxxx.duosecurity.com", "API-1A2B3C4D.DuoSecurity.com", "127.0.0.1", "Foo.Example.CoM"]);
    let path = *rng.pick(&[
        "/admin/v1/users",
        "/admin/v1/users/DUJZ2U4L80HT45MQ4EOQ/groups",
        "/admin/v2/groups/DGXXXXXXXXXXXXXXXXXX/users",
        "/admin/v1/users/john%2Bsmith",
        "/admin/v1/bulk",
        "/Foo/BaR2/qux",
    ]);
    let date = *rng.pick(&[
        "Tue, 21 Aug 2012 17:29:18 -0000",
        "Fri, 07 Dec 2012 17:18:00 -0000",
        "Sun, 29 Nov 2026 07:04:54 +0000",
        "Mon, 01 Jan 2024 00:00:00 GMT",
    ]);
    let ikey: String = (0..20).map(|_| (b'A' + rng.below(26) as u8) as char).collect();
    let skey: String = (0..40).map(|_| *rng.pick(ALNUM) as char).collect();

    let mut params: Vec<(String, String)> = Vec::new();
    let n = if rng.chance(15) { 0 } else { 1 + rng.below(6) };
    for _ in 0..n {
        let k = if !params.is_empty() && rng.chance(25) {
            params[rng.below(params.len())].0.clone()
        } else {
            gen_key(rng)
        };
        params.push((k, gen_text(rng, 14)));
    }
    // Unique keys among distinct raw keys are fine; repeated keys are intended.

    let mut headers: Vec<(String, String)> = Vec::new();
    if rng.chance(50) {
        let names = ["X-Duo-Date", "x-duo-foo", "X-DUO-Bar", "x-Duo-Header-1", "X-Duo-Z"];
        for name in names {
            if rng.chance(35) {
                let value: String = (0..rng.below(12))
                    .map(|_| (b' ' + rng.below(95) as u8) as char)
                    .collect();
                let value = if name.eq_ignore_ascii_case("x-duo-date") { date.to_owned() } else { value };
                headers.push((name.to_owned(), value));
            }
        }
    }
    json!({
        "variant": variant, "ikey": ikey, "skey": skey, "host": host, "method": method, "path": path,
        "date": date, "params": params, "headers": headers,
    })
}

fn gen_json_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => json!(rng.next() % 100_000),
        3 => json!(-((rng.next() % 1000) as i64)),
        4 => {
            let tail = ["\u{7f}", "\u{1}", "\"", "\\", "/", "\u{1F600}", ""][rng.below(7)];
            Value::String(gen_text(rng, 10) + tail)
        }
        5 => Value::Array((0..rng.below(4)).map(|_| gen_json_value(rng, depth + 1)).collect()),
        _ => Value::Object((0..rng.below(4)).map(|_| (gen_key(rng), gen_json_value(rng, depth + 1))).collect()),
    }
}

fn gen_json_case(rng: &mut Rng, i: usize) -> Value {
    let mut c = gen_case(rng, 3);
    c["variant"] = json!(if i.is_multiple_of(2) { "v5" } else { "v4" });
    c["method"] = json!(["POST", "PUT", "PATCH"][i % 3]);
    let obj: serde_json::Map<String, Value> = (0..1 + rng.below(5)).map(|_| (gen_key(rng), gen_json_value(rng, 0))).collect();
    c["json"] = Value::Object(obj);
    c["params"] = json!([]);
    c
}

fn variant_of(name: &str) -> SignatureVariant {
    match name {
        "v2-sha1" => SignatureVariant::V2Sha1,
        "v2-sha512" => SignatureVariant::V2Sha512,
        "v4" => SignatureVariant::V4,
        _ => SignatureVariant::V5,
    }
}

fn python() -> Option<String> {
    match std::env::var("DUOPROV_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            if std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                panic!("DUOPROV_REQUIRE_EXTERNAL=1 but DUOPROV_PYTHON is not set");
            }
            skipped("the duo-client cross-check needs Duo's Python client: DUOPROV_PYTHON is not set");
            None
        }
    }
}

fn strs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p.get(0)?.as_str()?.to_owned(), p.get(1)?.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn decode_form(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

#[test]
fn duo_client_cross_check() {
    let Some(py) = python() else { return };
    let mut rng = Rng(SEED);
    let mut cases: Vec<Value> = (0..CASES).map(|i| gen_case(&mut rng, i)).collect();
    cases.extend((0..JSON_CASES).map(|i| gen_json_case(&mut rng, i)));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/duo_crosscheck.py");
    let mut child = Command::new(&py)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {py}: {e}"));
    let input = serde_json::to_vec(&cases).expect("serialise cases");
    child.stdin.take().expect("stdin").write_all(&input).expect("write cases");
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python helper failed: {}", String::from_utf8_lossy(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("python JSON");
    assert_eq!(parsed["duo_client_version"], "5.7.0", "cross-check expects duo-client 5.7.0");
    let results = parsed["results"].as_array().expect("results");
    assert_eq!(results.len(), CASES + JSON_CASES);

    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (i, (case, py)) in cases.iter().zip(results).enumerate() {
        let ctx = format!("case {i}: {case}");
        let variant = variant_of(case["variant"].as_str().unwrap_or_default());
        let method = case["method"].as_str().unwrap_or_default();
        let host = case["host"].as_str().unwrap_or_default();
        let path = case["path"].as_str().unwrap_or_default();
        let date = case["date"].as_str().unwrap_or_default();
        let ikey = case["ikey"].as_str().unwrap_or_default();
        let skey = case["skey"].as_str().unwrap_or_default();
        let params = strs(&case["params"]);
        let hdrs = strs(&case["headers"]);
        let xh: Vec<(&str, &str)> = if variant == SignatureVariant::V5 {
            hdrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
        } else {
            Vec::new()
        };
        *counts.entry(format!("{variant}/{method}")).or_default() += 1;

        // duoprov's request.
        let prepared = match case["json"].as_object() {
            Some(obj) => prepare_json(variant, method, obj),
            None => prepare(variant, method, &params),
        };
        let req = Request {
            date,
            method,
            host,
            path,
            canon_params: &prepared.canon_params,
            body: &prepared.body,
            x_duo_headers: &xh,
        };
        let signed = sign_request(ikey, skey, variant, &req).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(signed.canonical, py["canonical"].as_str().unwrap_or_default(), "canonical, {ctx}");
        let py_headers = strs(&py["headers"]);
        let py_h: Vec<(&str, &str)> = py_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(Some(signed.authorization.as_str()), header(&py_h, "authorization"), "authorization, {ctx}");
        assert_eq!(Some(date), header(&py_h, "date"), "date, {ctx}");

        // The wire: same body bytes for JSON bodies; same parameters once decoded otherwise.
        let py_uri = py["uri"].as_str().unwrap_or_default();
        let (py_path, py_query) = py_uri.split_once('?').unwrap_or((py_uri, ""));
        assert_eq!(py_path, path, "{ctx}");
        let py_body = py["body"].as_str().unwrap_or_default();
        let mut sorted_params = params.clone();
        sorted_params.sort();
        if variant.params_in_json_body(method) {
            assert_eq!(py_body.as_bytes(), prepared.body.as_slice(), "JSON body, {ctx}");
            assert_eq!(py_query, "", "{ctx}");
        } else {
            let wire = if method_has_body(method) { py_body } else { py_query };
            let mut decoded = decode_form(wire);
            decoded.sort();
            assert_eq!(decoded, sorted_params, "wire params, {ctx}");
            let mut ours = decode_form(if method_has_body(method) {
                std::str::from_utf8(&prepared.body).unwrap_or_default()
            } else {
                &prepared.query
            });
            ours.sort();
            assert_eq!(ours, sorted_params, "our wire params, {ctx}");
        }

        // The verifier accepts duo-client's request, as the variant it was signed with.
        let mut server_params = decode_form(py_query);
        let is_form = header(&py_h, "content-type") == Some(CONTENT_TYPE_FORM);
        if is_form {
            server_params.extend(decode_form(py_body));
        }
        let hosts = vec![host.to_owned()];
        let creds = parse_authorization(header(&py_h, "authorization").unwrap_or_default())
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(creds.ikey, ikey);
        let rr = ReceivedRequest {
            method: py["method"].as_str().unwrap_or_default(),
            path: py_path,
            host_candidates: &hosts,
            params: &server_params,
            body: if is_form { b"" } else { py_body.as_bytes() },
            headers: &py_h,
        };
        let v = verify_signature(&rr, &creds, skey).unwrap_or_else(|e| panic!("verify duo-client request: {e}, {ctx}"));
        assert_eq!(v.variant, variant, "{ctx}");
        // And rejects it under another secret key.
        assert!(verify_signature(&rr, &creds, "wrong-secret-key").is_err(), "{ctx}");

        // The verifier accepts duoprov's own request the same way.
        let mut own_params = decode_form(&prepared.query);
        if prepared.content_type == Some(CONTENT_TYPE_FORM) {
            own_params.extend(decode_form(std::str::from_utf8(&prepared.body).unwrap_or_default()));
        }
        let mut own_headers: Vec<(&str, &str)> = vec![("Date", date), ("Authorization", &signed.authorization)];
        own_headers.extend(xh.iter().copied());
        let own = ReceivedRequest {
            method,
            path,
            host_candidates: &hosts,
            params: &own_params,
            body: if prepared.content_type == Some(CONTENT_TYPE_FORM) { b"" } else { &prepared.body },
            headers: &own_headers,
        };
        let own_creds = parse_authorization(&signed.authorization).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let v = verify_signature(&own, &own_creds, skey).unwrap_or_else(|e| panic!("verify own request: {e}, {ctx}"));
        assert_eq!(v.variant, variant, "{ctx}");
    }
    // Coverage of the generated set: every variant with every method.
    for v in ["v2-sha1", "v2-sha512", "v4", "v5"] {
        for m in ["GET", "POST", "DELETE", "PUT", "PATCH"] {
            assert!(counts.contains_key(&format!("{v}/{m}")), "no {v}/{m} case among {counts:?}");
        }
    }
    let with_headers = cases[..CASES].iter().filter(|c| c["variant"] == "v5" && !strs(&c["headers"]).is_empty()).count();
    let repeated = cases[..CASES]
        .iter()
        .filter(|c| {
            let p = strs(&c["params"]);
            p.iter().enumerate().any(|(i, (k, _))| p[..i].iter().any(|(k2, _)| k2 == k))
        })
        .count();
    let empty = cases[..CASES].iter().filter(|c| strs(&c["params"]).is_empty()).count();
    assert!(with_headers >= 10 && repeated >= 10 && empty >= 10, "headers {with_headers}, repeated {repeated}, empty {empty}");
    eprintln!("duo-client cross-check: {} requests equal", CASES + JSON_CASES);
    eprintln!("  of which {CASES} with string parameters ({with_headers} with X-Duo headers, {repeated} with repeated keys, {empty} without params)");
}

/// Reports that the running test (or a part of it) did not run, as a `SKIPPED: <test> — <reason>`
/// line on standard error. Written to the stream itself, not through `eprintln!`, so the test
/// harness does not capture it: it shows in `cargo test` output although the test passes.
pub fn skipped(reason: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test} — {reason}");
}
