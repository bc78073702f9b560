//! Generated malformed requests (proptest), sent over raw TCP to a running emulator: random
//! methods, paths, query strings, bodies, content types, `Date` / `X-Duo-Date` / `Host` headers
//! and `Authorization` values, some validly signed and most not. Every request must get an answer
//! (no hang, no dropped connection, no 5xx — nothing is injected here), every error must be a Duo
//! envelope whose code matches its status, only a validly signed request may succeed, and only a
//! successful write may change the state. A second property throws byte-level junk (truncated,
//! bit-flipped and random requests) at the server and checks it keeps serving with its state
//! intact. Run counts and the share of each status are checked at the end, so a generator that
//! stopped reaching the handlers would fail the test instead of passing vacuously.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use duoprov_duo_wire::SignatureVariant;
use duoprov_duo_wire::sign::{Request, authorization_header, canon_params, sign_request};
use duoprov_emulator::RunningEmulator;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{self, IKEY, NG_IKEY, NG_SKEY, RO_IKEY, RO_SKEY, SKEY};

/// Cases per property: thousands, yet each suite stays well under a minute in a debug build.
const CASES: u32 = 10_000;
/// How long one request may take before it counts as a hang.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Panics anywhere in the process while these properties run (a handler that panics would only
/// kill its connection task, so the hook is what notices it).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Which integration signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Full,
    ReadOnly,
    NoGrants,
}

impl Key {
    fn pair(self) -> (&'static str, &'static str) {
        match self {
            Key::Full => (IKEY, SKEY),
            Key::ReadOnly => (RO_IKEY, RO_SKEY),
            Key::NoGrants => (NG_IKEY, NG_SKEY),
        }
    }
}

/// The `Authorization` header.
#[derive(Debug, Clone)]
enum Auth {
    /// A correct signature over exactly what is sent.
    Signed(Key, SignatureVariant),
    /// Signed with a wrong secret key.
    WrongSecret(SignatureVariant),
    /// Signed correctly, then one hex digit changed.
    Tampered(SignatureVariant, usize),
    /// A well-formed header naming an integration that does not exist.
    UnknownIkey,
    /// No header.
    Missing,
    /// Any printable text.
    Raw(String),
    /// `Basic ` and the base64 of arbitrary bytes.
    Basic(Vec<u8>),
}

/// The date headers.
#[derive(Debug, Clone)]
enum Dates {
    /// `Date: now`.
    Now,
    /// `X-Duo-Date: now` (signed in the v5 header hash).
    XDuoNow,
    /// A garbage `Date` and `X-Duo-Date: now` (which wins).
    BothGarbageDate(String),
    /// `Date` this many seconds away from now.
    Skewed(i64),
    /// No date at all.
    Missing,
    /// Any printable text as `Date` (signed as sent).
    Raw(String),
}

/// The `Host` header.
#[derive(Debug, Clone)]
enum Host {
    WithPort,
    WithoutPort,
    Raw(String),
}

#[derive(Debug, Clone)]
struct Case {
    method: String,
    path: String,
    query: String,
    dates: Dates,
    host: Host,
    auth: Auth,
    content_type: Option<String>,
    body: Vec<u8>,
    /// Extra `X-Duo-*` headers (signed by v5), and headers with bytes that are not UTF-8.
    x_duo: Vec<(String, String)>,
    opaque_header: Option<Vec<u8>>,
}

impl Case {
    /// Whether the signature, date and host are all right, so the server may accept it.
    fn may_authenticate(&self) -> Option<Key> {
        let Auth::Signed(key, _) = self.auth else {
            return None;
        };
        let date_ok = match &self.dates {
            Dates::Now | Dates::XDuoNow | Dates::BothGarbageDate(_) => true,
            Dates::Skewed(s) => s.abs() <= 310,
            // A random string may parse as a date near now only by a miracle; allow it anyway.
            Dates::Raw(_) => true,
            Dates::Missing => false,
        };
        let host_ok = match &self.host {
            Host::WithPort | Host::WithoutPort => true,
            Host::Raw(h) => {
                let h = h.trim().to_ascii_lowercase();
                h == "127.0.0.1" || h.starts_with("127.0.0.1:")
            }
        };
        (date_ok && host_ok).then_some(key)
    }
}

// ---------------------------------------------------------------------------------------------
// Generators.

/// Any path made of characters a request target may hold without the HTTP parser refusing it.
const ANY_PATH: &str = "/[A-Za-z0-9/%._~!$&'()*+,;=:@-]{0,40}";
/// Any query text of such characters.
const ANY_QUERY: &str = "[A-Za-z0-9/?%._~!$&'()*+,;=:@-]{0,40}";

fn id_like() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "D[UGE][A-Z0-9]{18}",
        1 => Just("DUAAAAAAAAAAAAAAAAAA".to_owned()),
        1 => "[a-z0-9_]{0,12}",
        1 => "(%[0-9A-Fa-f]{2}){1,6}",
        1 => "%[g-z%]{0,3}",
        1 => "[A-Za-z0-9._~-]{20,60}",
    ]
}

fn path(known: Arc<Known>) -> impl Strategy<Value = String> {
    let id = {
        let known = known.clone();
        prop_oneof![
            2 => id_like(),
            2 => (0..known.users.len().max(1)).prop_map(move |i| known.users.get(i).cloned().unwrap_or_default()),
        ]
    };
    let gid = prop_oneof![
        2 => id_like(),
        2 => (0..known.groups.len().max(1)).prop_map(move |i| known.groups.get(i).cloned().unwrap_or_default()),
    ];
    prop_oneof![
        3 => Just("/admin/v1/users".to_owned()),
        2 => id.clone().prop_map(|i| format!("/admin/v1/users/{i}")),
        2 => id.clone().prop_map(|i| format!("/admin/v1/users/{i}/groups")),
        2 => (id.clone(), gid.clone()).prop_map(|(i, g)| format!("/admin/v1/users/{i}/groups/{g}")),
        1 => prop_oneof![Just("bulk_create"), Just("bulk_send_to_trash"), Just("bulk_restore")]
            .prop_map(|e| format!("/admin/v1/users/{e}")),
        3 => Just("/admin/v1/groups".to_owned()),
        2 => gid.clone().prop_map(|g| format!("/admin/v1/groups/{g}")),
        2 => gid.clone().prop_map(|g| format!("/admin/v2/groups/{g}")),
        1 => gid.prop_map(|g| format!("/admin/v2/groups/{g}/users")),
        2 => Just("/admin/v1/bulk".to_owned()),
        1 => Just("/admin/v1/admins".to_owned()),
        1 => id.prop_map(|i| format!("/admin/v1/admins/{i}")),
        2 => ANY_PATH,
        1 => Just("/".to_owned()),
        1 => "/admin/v[0-9]/(users|groups)/?/?".prop_map(|s| s.to_owned()),
    ]
}

/// A method and path: mostly a method the path serves (so requests reach the handlers), else any
/// method on any path.
fn route(known: Arc<Known>) -> impl Strategy<Value = (String, String)> {
    let user = {
        let known = known.clone();
        prop_oneof![
            3 => (0..known.users.len().max(1)).prop_map(move |i| known.users.get(i).cloned().unwrap_or_default()),
            1 => id_like(),
        ]
    };
    let group = {
        let known = known.clone();
        prop_oneof![
            3 => (0..known.groups.len().max(1)).prop_map(move |i| known.groups.get(i).cloned().unwrap_or_default()),
            1 => id_like(),
        ]
    };
    let m = |m: &str| m.to_owned();
    let fitting = prop_oneof![
        3 => Just((m("GET"), m("/admin/v1/users"))),
        3 => Just((m("POST"), m("/admin/v1/users"))),
        2 => user.clone().prop_map(move |u| (m("GET"), format!("/admin/v1/users/{u}"))),
        2 => user.clone().prop_map(move |u| (m("POST"), format!("/admin/v1/users/{u}"))),
        1 => user.clone().prop_map(move |u| (m("DELETE"), format!("/admin/v1/users/{u}"))),
        2 => user.clone().prop_map(move |u| (m("GET"), format!("/admin/v1/users/{u}/groups"))),
        2 => user.clone().prop_map(move |u| (m("POST"), format!("/admin/v1/users/{u}/groups"))),
        1 => (user, group.clone()).prop_map(move |(u, g)| (m("DELETE"), format!("/admin/v1/users/{u}/groups/{g}"))),
        1 => prop::sample::select(vec!["bulk_create", "bulk_send_to_trash", "bulk_restore"])
            .prop_map(move |e| (m("POST"), format!("/admin/v1/users/{e}"))),
        3 => Just((m("GET"), m("/admin/v1/groups"))),
        2 => Just((m("POST"), m("/admin/v1/groups"))),
        1 => group.clone().prop_map(move |g| (m("GET"), format!("/admin/v1/groups/{g}"))),
        2 => group.clone().prop_map(move |g| (m("GET"), format!("/admin/v2/groups/{g}"))),
        2 => group.clone().prop_map(move |g| (m("GET"), format!("/admin/v2/groups/{g}/users"))),
        2 => group.clone().prop_map(move |g| (m("POST"), format!("/admin/v1/groups/{g}"))),
        1 => group.prop_map(move |g| (m("DELETE"), format!("/admin/v1/groups/{g}"))),
        2 => Just((m("POST"), m("/admin/v1/bulk"))),
        1 => Just((m("GET"), m("/admin/v1/admins"))),
    ];
    prop_oneof![
        7 => fitting,
        3 => (method(), path(known)),
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("GET".to_owned()),
        4 => Just("POST".to_owned()),
        2 => Just("DELETE".to_owned()),
        1 => Just("PUT".to_owned()),
        1 => Just("PATCH".to_owned()),
        1 => Just("OPTIONS".to_owned()),
        1 => Just("get".to_owned()),
        1 => Just("Post".to_owned()),
        // CONNECT takes an authority, not a path: hyper refuses it before the emulator sees it.
        1 => "[A-Z]{1,10}".prop_filter("not CONNECT", |m| m != "CONNECT"),
    ]
}

/// Parameter names the endpoints read, and a few they do not.
fn param_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "username", "realname", "email", "status", "notes", "firstname", "lastname", "alias1",
            "alias5", "aliases", "name", "desc", "group_id", "user_id", "limit", "offset",
            "user_id_list", "username_list", "group_id_list", "users", "operations",
            "push_enabled", "account_id", "custom_attributes.x", "role", "phone",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

/// Parameter values: text, numbers in odd spellings, JSON fragments, lists.
fn param_value() -> impl Strategy<Value = String> {
    prop_oneof![
        7 => scalar_text(),
        1 => prop::collection::vec("D[UG][A-Z0-9]{18}", 0..4)
            .prop_map(|ids| serde_json::to_string(&ids).unwrap_or_default()),
        1 => prop::collection::vec(json_value(), 0..3)
            .prop_map(|v| Value::Array(v).to_string()),
    ]
}

/// Parameter values that are plain text or odd spellings of numbers, flags and lists.
fn scalar_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9._-]{0,12}",
        2 => "\\PC{0,20}",
        1 => prop::sample::select(vec![
            "", "0", "-1", "1", "300", "301", "99999999999999999999999", "1e9", "NaN", "true",
            "false", "active", "ACTIVE", "bypass", "disabled", "locked out", "[]", "{}", "[\"x\"]",
            "null", "alias1=a&alias2=b", "alias9=x", "=&=",
        ])
        .prop_map(str::to_owned),
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((param_name(), param_value()), 0..5)
}

fn form(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        4 => pairs().prop_map(|p| form(&p)),
        1 => ANY_QUERY,
        1 => "(%[0-9A-Fa-f]{2}|[a-z=&+]){0,20}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "\\PC{0,16}".prop_map(Value::String),
        scalar_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(param_name(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(Vec::new()),
        3 => prop::collection::btree_map(param_name(), json_value(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect()).to_string().into_bytes()),
        2 => pairs().prop_map(|p| form(&p).into_bytes()),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        2 => prop::collection::vec(any::<u8>(), 0..200),
        1 => (1usize..4000).prop_map(|n| "[".repeat(n).into_bytes()),
        1 => (1usize..2000).prop_map(|n| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)).into_bytes()),
        1 => prop::sample::select(vec![
            "{\"username\": 1e999999}", "{\"limit\": 123456789012345678901234567890}",
            "{\"username\": \"\\ud800\"}", "{\"username\": \"a\"} trailing", "{\"username\":\"x\",\"username\":\"y\"}",
            "null", "\"string\"", "{", "}", "\u{feff}{\"username\":\"bom\"}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        3 => Just(Some("application/json".to_owned())),
        3 => Just(Some("application/x-www-form-urlencoded".to_owned())),
        1 => prop::sample::select(vec![
            "application/json; charset=utf-8", "APPLICATION/JSON", "application/x-www-form-urlencoded; charset=latin1",
            "text/plain", "application/xml", "multipart/form-data; boundary=x", ";", "application/json;;;",
        ])
        .prop_map(|s| Some(s.to_owned())),
        1 => "[!-~]{1,30}".prop_map(Some),
    ]
}

fn variant() -> impl Strategy<Value = SignatureVariant> {
    prop_oneof![
        Just(SignatureVariant::V2Sha1),
        Just(SignatureVariant::V2Sha512),
        Just(SignatureVariant::V4),
        Just(SignatureVariant::V5),
    ]
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        16 => variant().prop_map(|v| Auth::Signed(Key::Full, v)),
        1 => variant().prop_map(|v| Auth::Signed(Key::ReadOnly, v)),
        1 => variant().prop_map(|v| Auth::Signed(Key::NoGrants, v)),
        2 => variant().prop_map(Auth::WrongSecret),
        2 => (variant(), any::<usize>()).prop_map(|(v, i)| Auth::Tampered(v, i)),
        1 => Just(Auth::UnknownIkey),
        1 => Just(Auth::Missing),
        1 => "[ -~]{0,60}".prop_map(Auth::Raw),
        1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(Auth::Basic),
    ]
}

fn dates() -> impl Strategy<Value = Dates> {
    prop_oneof![
        8 => Just(Dates::Now),
        3 => Just(Dates::XDuoNow),
        1 => "[ -~]{0,30}".prop_map(Dates::BothGarbageDate),
        2 => (-1000i64..1000).prop_map(Dates::Skewed),
        1 => Just(Dates::Missing),
        1 => "[ -~]{0,40}".prop_map(Dates::Raw),
    ]
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        8 => Just(Host::WithPort),
        2 => Just(Host::WithoutPort),
        1 => "[!-~]{1,30}".prop_map(Host::Raw),
    ]
}

fn x_duo() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map("[a-z]{1,8}", "[!-~]([ -~]{0,20}[!-~])?", 0..3).prop_map(|m| {
        m.into_iter()
            .filter(|(k, _)| k != "date")
            .map(|(k, v)| (format!("X-Duo-{k}"), v))
            .collect()
    })
}

fn case(known: Arc<Known>) -> impl Strategy<Value = Case> {
    (
        (route(known), query(), dates(), host()),
        (auth(), content_type(), body(), x_duo()),
        prop::option::weighted(0.05, prop::collection::vec(0x80u8..=0xff, 1..10)),
    )
        .prop_map(
            |(
                ((method, path), query, dates, host),
                (auth, content_type, body, x_duo),
                opaque_header,
            )| Case {
                method,
                path,
                query,
                dates,
                host,
                auth,
                content_type,
                body,
                x_duo,
                opaque_header,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Turning a case into bytes, and reading the answer.

/// Ids that exist in the seeded tenant, so generated paths reach real objects.
#[derive(Debug, Default)]
struct Known {
    users: Vec<String>,
    groups: Vec<String>,
}

fn date_string(offset_secs: i64) -> String {
    duoprov_duo_wire::date::format_date(
        time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs),
    )
}

/// Standard base64 with padding (the emulator's own dependencies have no encoder).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The request bytes for `case` against the emulator on `port`.
fn request_bytes(case: &Case, port: u16) -> Vec<u8> {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    let host_header = match &case.host {
        Host::WithPort => format!("127.0.0.1:{port}"),
        Host::WithoutPort => "127.0.0.1".to_owned(),
        Host::Raw(h) => h.clone(),
    };
    headers.push(("Host".into(), host_header.into_bytes()));
    // The date the client signs, and the X-Duo headers the server will hash (v5).
    let mut x_duo: Vec<(String, String)> = case.x_duo.clone();
    let signed_date = match &case.dates {
        Dates::Now => {
            let d = date_string(0);
            headers.push(("Date".into(), d.clone().into_bytes()));
            d
        }
        Dates::XDuoNow => {
            let d = date_string(0);
            x_duo.push(("X-Duo-Date".into(), d.clone()));
            d
        }
        Dates::BothGarbageDate(g) => {
            let d = date_string(0);
            headers.push(("Date".into(), g.trim().as_bytes().to_vec()));
            x_duo.push(("X-Duo-Date".into(), d.clone()));
            d
        }
        Dates::Skewed(s) => {
            let d = date_string(*s);
            headers.push(("Date".into(), d.clone().into_bytes()));
            d
        }
        Dates::Missing => date_string(0),
        Dates::Raw(r) => {
            let r = r.trim().to_owned();
            headers.push(("Date".into(), r.clone().into_bytes()));
            r
        }
    };
    for (k, v) in &x_duo {
        headers.push((k.clone(), v.as_bytes().to_vec()));
    }
    if let Some(ct) = &case.content_type {
        headers.push(("Content-Type".into(), ct.trim().as_bytes().to_vec()));
    }
    if let Some(opaque) = &case.opaque_header {
        headers.push(("X-Opaque".into(), opaque.clone()));
    }
    // What the server will verify: decoded query plus a form body, the raw body, the X-Duo headers.
    let mut params: Vec<(String, String)> = form_urlencoded::parse(case.query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let is_form = case
        .content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| {
            c.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if is_form && !case.body.is_empty() {
        params.extend(
            form_urlencoded::parse(&case.body).map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
    }
    let canon = canon_params(&params);
    let x_duo_refs: Vec<(&str, &str)> = x_duo
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let sign = |ikey: &str, skey: &str, variant: SignatureVariant| -> Option<String> {
        sign_request(
            ikey,
            skey,
            variant,
            &Request {
                date: &signed_date,
                method: &case.method,
                host: "127.0.0.1",
                path: &case.path,
                canon_params: &canon,
                body: &case.body,
                x_duo_headers: &x_duo_refs,
            },
        )
        .ok()
        .map(|s| s.signature)
    };
    let authorization: Option<String> = match &case.auth {
        Auth::Signed(key, v) => {
            let (ikey, skey) = key.pair();
            sign(ikey, skey, *v).map(|sig| authorization_header(ikey, &sig))
        }
        Auth::WrongSecret(v) => sign(IKEY, "not-the-secret-key-not-the-secret-key-00", *v)
            .map(|sig| authorization_header(IKEY, &sig)),
        Auth::Tampered(v, i) => sign(IKEY, SKEY, *v).map(|sig| {
            let mut sig = sig.into_bytes();
            let at = i % sig.len().max(1);
            if let Some(c) = sig.get_mut(at) {
                *c = if *c == b'0' { b'1' } else { b'0' };
            }
            authorization_header(IKEY, &String::from_utf8_lossy(&sig))
        }),
        Auth::UnknownIkey => Some(authorization_header(
            "DIUNKNOWN00000000000",
            &"ab".repeat(64),
        )),
        Auth::Missing => None,
        Auth::Raw(r) => Some(r.trim().to_owned()),
        Auth::Basic(b) => Some(format!("Basic {}", base64(b))),
    };
    if let Some(a) = authorization {
        headers.push(("Authorization".into(), a.into_bytes()));
    }
    let target = if case.query.is_empty() {
        case.path.clone()
    } else {
        format!("{}?{}", case.path, case.query)
    };
    let mut out = format!("{} {target} HTTP/1.1\r\n", case.method).into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            case.body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&case.body);
    out
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What became of a request on the wire.
#[derive(Debug)]
enum Wire {
    /// One or more responses (several when requests were pipelined on a kept-alive connection).
    Answered(Vec<Answer>),
    /// The server closed the connection without a byte.
    Closed,
    /// Bytes came back but not HTTP responses.
    Garbled(String),
    /// Nothing within [`ANSWER_WITHIN`].
    Hung,
}

/// Splits what the server sent into responses, by `Content-Length`.
fn parse_answers(mut raw: &[u8]) -> Wire {
    if raw.is_empty() {
        return Wire::Closed;
    }
    let mut answers = Vec::new();
    while !raw.is_empty() {
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Wire::Garbled(String::from_utf8_lossy(raw).into_owned());
        };
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            // A request whose version byte was flipped to HTTP/1.0 is answered in HTTP/1.0.
            .and_then(|l| l.strip_prefix("HTTP/1.1 ").or_else(|| l.strip_prefix("HTTP/1.0 ")))
            .and_then(|l| l.get(..3))
            .and_then(|s| s.parse::<u16>().ok());
        let Some(status) = status else {
            return Wire::Garbled(head);
        };
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
        let rest = &raw[end + 4..];
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(rest.len())
            .min(rest.len());
        answers.push(Answer {
            status,
            headers,
            body: rest[..len].to_vec(),
        });
        raw = &rest[len..];
    }
    Wire::Answered(answers)
}

/// Sends `bytes` on a fresh connection; `half_close` shuts the writing side afterwards.
async fn exchange(emu_addr: std::net::SocketAddr, bytes: &[u8], half_close: bool) -> Wire {
    let work = async {
        let mut s = match tokio::net::TcpStream::connect(emu_addr).await {
            Ok(s) => s,
            Err(e) => return Wire::Garbled(format!("connect failed: {e}")),
        };
        if s.write_all(bytes).await.is_err() {
            // The server may close early (e.g. a refused head) while we still write.
        }
        if half_close {
            let _ = s.shutdown().await;
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        parse_answers(&out)
    };
    tokio::time::timeout(ANSWER_WITHIN, work)
        .await
        .unwrap_or(Wire::Hung)
}

fn state_of(emu: &RunningEmulator) -> String {
    serde_json::to_string(&emu.handle().state()).unwrap_or_default()
}

/// Checks an answer is a Duo envelope matching its status; returns the JSON.
fn check_envelope(a: &Answer, head_only: bool) -> Result<Option<Value>, TestCaseError> {
    prop_assert_eq!(
        a.header("content-type"),
        Some("application/json"),
        "status {}",
        a.status
    );
    if head_only {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&a.body).map_err(|e| {
        TestCaseError::fail(format!(
            "body is not JSON ({e}): {}",
            String::from_utf8_lossy(&a.body)
        ))
    })?;
    if a.status == 200 {
        prop_assert_eq!(&v["stat"], "OK", "{}", v);
    } else {
        prop_assert_eq!(&v["stat"], "FAIL", "{}", v);
        let code = v["code"]
            .as_u64()
            .ok_or_else(|| TestCaseError::fail(format!("no numeric code: {v}")))?;
        prop_assert_eq!(code / 100, u64::from(a.status), "{}", v);
        prop_assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            v
        );
    }
    Ok(Some(v))
}

/// A running emulator on a runtime of its own, seeded with a few users, groups and memberships.
fn seeded() -> (tokio::runtime::Runtime, RunningEmulator, Arc<Known>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let (emu, known) = rt.block_on(async {
        let emu = support::spawn(|s| s.body_timeout_secs = 2).await;
        let c = support::Client::new(&emu);
        let mut known = Known::default();
        for name in ["alice", "bob", "carol"] {
            known.users.push(c.user(name).await);
        }
        for name in ["staff", "faculty"] {
            known.groups.push(c.group(name).await);
        }
        let path = format!("/admin/v1/users/{}/groups", known.users[0]);
        c.ok("POST", &path, &[("group_id", known.groups[0].as_str())])
            .await;
        (emu, known)
    });
    (rt, emu, Arc::new(known))
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    })
}

#[test]
fn generated_requests_get_duo_answers_and_only_valid_writes_change_state() {
    count_panics();
    let panics_before = PANICS.load(Ordering::SeqCst);
    let (rt, emu, known) = seeded();
    let port = emu.port();
    let addr = emu.addr();
    let tally: Arc<std::sync::Mutex<BTreeMap<u16, u32>>> = Arc::default();
    let started = std::time::Instant::now();
    let mut r = runner(CASES);
    let t = tally.clone();
    let result = r.run(&case(known), |case| {
        let before = state_of(&emu);
        let bytes = request_bytes(&case, port);
        let wire = rt.block_on(exchange(addr, &bytes, false));
        let a = match wire {
            Wire::Answered(mut a) if a.len() == 1 => a.remove(0),
            other => {
                return Err(TestCaseError::fail(format!(
                    "not one HTTP answer: {other:?}"
                )));
            }
        };
        *t.lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(a.status)
            .or_default() += 1;
        prop_assert!(
            [200, 400, 401, 403, 404, 405, 413].contains(&a.status),
            "status {} is not a documented answer: {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        );
        let head_only = case.method.eq_ignore_ascii_case("HEAD");
        check_envelope(&a, head_only)?;
        let authenticated = case.may_authenticate();
        if authenticated.is_none() {
            // Unauthenticated: only routing and body-size errors come before the signature check.
            prop_assert!(
                [401, 404, 405, 413].contains(&a.status),
                "status {} without valid credentials",
                a.status
            );
        }
        if a.status == 403 {
            prop_assert!(matches!(authenticated, Some(Key::ReadOnly | Key::NoGrants)));
        }
        let after = state_of(&emu);
        if after != before {
            prop_assert_eq!(a.status, 200, "state changed by a failed request");
            prop_assert_eq!(
                authenticated,
                Some(Key::Full),
                "state changed without write credentials"
            );
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    if let Err(e) = result {
        panic!("{e}");
    }
    let tally = tally.lock().unwrap_or_else(|p| p.into_inner()).clone();
    eprintln!("malformed requests: {CASES} cases in {elapsed:?}, statuses {tally:?}");
    // The generators must reach every layer: routing, authentication, parameters, handlers.
    for (status, at_least) in [
        (200, CASES / 25),
        (400, CASES / 50),
        (401, CASES / 20),
        (404, CASES / 50),
        (405, CASES / 100),
    ] {
        let n = tally.get(&status).copied().unwrap_or(0);
        assert!(
            n >= at_least,
            "only {n} answers with status {status} (want {at_least}): {tally:?}"
        );
    }
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics_before,
        "the emulator panicked"
    );
    // The tenant is still consistent: its dump loads back as a valid tenant.
    let dump = emu.handle().state();
    assert!(
        emu.handle().load_state(dump).is_ok(),
        "the tenant's dump no longer loads"
    );
    rt.block_on(async {
        let c = support::Client::new(&emu);
        c.ok("GET", "/admin/v1/users", &[]).await;
    });
}

/// Byte-level junk: a valid request cut short, with bytes flipped or inserted, or random bytes.
#[derive(Debug, Clone)]
enum Junk {
    Truncated(usize),
    Flipped(Vec<(usize, u8)>),
    Inserted(usize, Vec<u8>),
    Random(Vec<u8>),
}

fn junk() -> impl Strategy<Value = (Junk, bool)> {
    (
        prop_oneof![
            any::<usize>().prop_map(Junk::Truncated),
            prop::collection::vec((any::<usize>(), any::<u8>()), 1..6).prop_map(Junk::Flipped),
            (any::<usize>(), prop::collection::vec(any::<u8>(), 1..40))
                .prop_map(|(i, b)| Junk::Inserted(i, b)),
            prop::collection::vec(any::<u8>(), 0..300).prop_map(Junk::Random),
        ],
        any::<bool>(),
    )
}

/// Found by the junk test below: one flipped bit turns the request line's `HTTP/1.1` into
/// `HTTP/1.0`, and the server rightly answers in HTTP/1.0 — an answer, not garble.
#[test]
fn a_request_in_http_1_0_is_answered_in_http_1_0() {
    let (rt, emu, _) = seeded();
    let base = Case {
        method: "GET".into(),
        path: "/admin/v1/users".into(),
        query: String::new(),
        dates: Dates::Now,
        host: Host::WithPort,
        auth: Auth::Signed(Key::Full, SignatureVariant::V5),
        content_type: None,
        body: Vec::new(),
        x_duo: Vec::new(),
        opaque_header: None,
    };
    let bytes = request_bytes(&base, emu.port());
    let text = String::from_utf8_lossy(&bytes).replacen("HTTP/1.1\r\n", "HTTP/1.0\r\n", 1);
    assert!(text.contains("HTTP/1.0\r\n"), "the request line names its version");
    // No half-close: an HTTP/1.0 server may drop a request whose client stopped sending before it
    // answered; without keep-alive it closes the connection once it has answered.
    match rt.block_on(exchange(emu.addr(), text.as_bytes(), false)) {
        Wire::Answered(answers) => assert!(answers.iter().all(|a| a.status < 500), "{answers:?}"),
        other => panic!("an HTTP/1.0 request was not answered: {other:?}"),
    }
}

#[test]
fn byte_level_junk_never_hangs_crashes_or_changes_state() {
    count_panics();
    let panics_before = PANICS.load(Ordering::SeqCst);
    let (rt, emu, known) = seeded();
    let port = emu.port();
    let addr = emu.addr();
    let base = Case {
        method: "POST".into(),
        path: "/admin/v1/users".into(),
        query: String::new(),
        dates: Dates::Now,
        host: Host::WithPort,
        auth: Auth::Signed(Key::Full, SignatureVariant::V5),
        content_type: Some("application/json".into()),
        body: br#"{"username":"junk-user","realname":"Junk"}"#.to_vec(),
        x_duo: Vec::new(),
        opaque_header: None,
    };
    let _ = known;
    let started = std::time::Instant::now();
    let answered = Arc::new(AtomicUsize::new(0));
    let n = answered.clone();
    let mut r = runner(CASES);
    let result = r.run(&junk(), |(j, pipelined)| {
        let before = state_of(&emu);
        let mut bytes = request_bytes(&base, port);
        match &j {
            Junk::Truncated(at) => bytes.truncate(at % bytes.len()),
            Junk::Flipped(flips) => {
                for (at, b) in flips {
                    let i = at % bytes.len();
                    bytes[i] ^= b | 1;
                }
            }
            Junk::Inserted(at, extra) => {
                let i = at % (bytes.len() + 1);
                bytes.splice(i..i, extra.iter().copied());
            }
            Junk::Random(r) => bytes = r.clone(),
        }
        if pipelined {
            // A second, valid request right behind the junk on the same connection.
            bytes.extend_from_slice(&request_bytes(&base, port));
        }
        // Half-close so a request cut short ends now instead of at the body timeout.
        let wire = rt.block_on(exchange(addr, &bytes, true));
        match &wire {
            Wire::Hung => return Err(TestCaseError::fail("no answer and no close")),
            Wire::Garbled(g) => return Err(TestCaseError::fail(format!("not HTTP: {g}"))),
            Wire::Closed => {}
            Wire::Answered(answers) => {
                n.fetch_add(1, Ordering::SeqCst);
                for a in answers {
                    prop_assert!(
                        a.status < 500,
                        "status {}: {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    );
                    // hyper answers requests it cannot parse with a bare 400; everything the
                    // emulator itself answers is a Duo envelope.
                    if a.header("content-type").is_some() {
                        check_envelope(a, false)?;
                    } else {
                        prop_assert_eq!(a.status, 400, "a non-JSON answer that is not hyper's 400");
                    }
                }
            }
        }
        let after = state_of(&emu);
        if after != before {
            // Only an intact signed create can change anything: the user it names.
            let users = emu.handle().state().users;
            prop_assert!(
                users.iter().any(|u| u.username == "junk-user"),
                "state changed by junk"
            );
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "byte-level junk: {CASES} cases in {elapsed:?}, {} answered",
        answered.load(Ordering::SeqCst)
    );
    assert!(
        answered.load(Ordering::SeqCst) as u32 >= CASES / 4,
        "too few answers to mean anything"
    );
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics_before,
        "the emulator panicked"
    );
    rt.block_on(async {
        let c = support::Client::new(&emu);
        c.ok("GET", "/admin/v1/users", &[]).await;
    });
}

/// Found by the junk property: a body that ends before its `Content-Length` (the client
/// half-closed) was answered 413 "Request entity too large"; it is a 400/40002 `body`.
#[tokio::test]
async fn a_body_cut_short_is_400_not_413() {
    let emu = support::spawn(|_| {}).await;
    let wire = exchange(
        emu.addr(),
        b"POST /admin/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{\"user",
        true,
    )
    .await;
    let Wire::Answered(answers) = wire else {
        panic!("no answer: {wire:?}");
    };
    let v: Value = serde_json::from_slice(&answers[0].body).unwrap_or(Value::Null);
    assert_eq!(
        (answers[0].status, v["code"].as_u64()),
        (400, Some(40002)),
        "{v}"
    );
}
