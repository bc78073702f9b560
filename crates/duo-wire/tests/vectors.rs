//! Duo's published signing vectors (A–H), each checked on the signing side
//! and, where a full request is known, on the verifying side too (the emulator's acceptance rule).

use duoprov_duo_wire::params::canon_json;
use duoprov_duo_wire::sign::{
    EMPTY_SHA512_HEX, Request, SigVersion, SignatureVariant, authorization_header, canon_params, canonical_request,
    sha512_hex, sign, sign_request, x_duo_headers_hash,
};
use duoprov_duo_wire::verify::{ReceivedRequest, VerifyError, parse_authorization, verify_signature};
use duoprov_duo_wire::Digest;

const A_IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
const A_SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
const A_DATE: &str = "Tue, 21 Aug 2012 17:29:18 -0000";
const A_HOST: &str = "api-XXXXXXXX.duosecurity.com";
const A_PATH: &str = "/accounts/v1/account/list";

const D_SKEY: &str = "gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT";
const D_DATE: &str = "Fri, 07 Dec 2012 17:18:00 -0000";

fn req<'a>(date: &'a str, method: &'a str, host: &'a str, path: &'a str, canon: &'a str, body: &'a [u8]) -> Request<'a> {
    Request { date, method, host, path, canon_params: canon, body, x_duo_headers: &[] }
}

fn owned(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Runs the verifier on a request as a server would see it and returns the matched variant.
fn verify(
    method: &str,
    host: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &[u8],
    headers: &[(&str, &str)],
    skey: &str,
) -> Result<SignatureVariant, VerifyError> {
    let auth = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| *v)
        .ok_or(VerifyError::MissingAuthorization)?;
    let creds = parse_authorization(auth)?;
    let hosts = vec![host.to_owned()];
    let params = owned(params);
    let r = ReceivedRequest { method, path, host_candidates: &hosts, params: &params, body, headers };
    verify_signature(&r, &creds, skey).map(|v| v.variant)
}

// ---------- A ----------

#[test]
fn vector_a_v2_sha1_and_sha512() {
    let params = [("realname", "First Last"), ("username", "root")];
    let canon = canon_params(&params);
    let r = req(A_DATE, "POST", A_HOST, A_PATH, &canon, b"");
    let c = canonical_request(SigVersion::V2, &r);
    assert_eq!(
        c.as_deref(),
        Ok("Tue, 21 Aug 2012 17:29:18 -0000\nPOST\napi-xxxxxxxx.duosecurity.com\n/accounts/v1/account/list\nrealname=First%20Last&username=root")
    );
    let c = c.unwrap_or_default();
    let sha1 = sign(A_SKEY, Digest::Sha1, &c);
    assert_eq!(sha1, "2d97d6166319781b5a3a07af39d366f491234edc");
    let h1 = authorization_header(A_IKEY, &sha1);
    assert_eq!(h1, "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6MmQ5N2Q2MTY2MzE5NzgxYjVhM2EwN2FmMzlkMzY2ZjQ5MTIzNGVkYw==");
    let sha512 = sign(A_SKEY, Digest::Sha512, &c);
    assert_eq!(
        sha512,
        "1bffb8924348f7db7da9e7d7d749ded93aafd02d8e904960da7b96c57510220185a64a2827ee8f24ac5d30802a9ee97e59de44b304b18242f0d596d15a8122af"
    );
    let h512 = authorization_header(A_IKEY, &sha512);
    assert_eq!(
        h512,
        "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6MWJmZmI4OTI0MzQ4ZjdkYjdkYTllN2Q3ZDc0OWRlZDkzYWFmZDAyZDhlOTA0OTYwZGE3Yjk2YzU3NTEwMjIwMTg1YTY0YTI4MjdlZThmMjRhYzVkMzA4MDJhOWVlOTdlNTlkZTQ0YjMwNGIxODI0MmYwZDU5NmQxNWE4MTIyYWY="
    );
    // Verifier: v2 form body (params decoded from the form), both digests.
    let form = canon.as_bytes();
    for (h, want) in [(&h1, SignatureVariant::V2Sha1), (&h512, SignatureVariant::V2Sha512)] {
        let headers = [("Date", A_DATE), ("Authorization", h.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        assert_eq!(verify("POST", A_HOST, A_PATH, &params, form, &headers, A_SKEY), Ok(want));
        // Wrong key, tampered param, wrong date: all rejected.
        assert_eq!(verify("POST", A_HOST, A_PATH, &params, form, &headers, D_SKEY), Err(VerifyError::BadSignature));
        let tampered = [("realname", "First Last"), ("username", "root2")];
        assert_eq!(verify("POST", A_HOST, A_PATH, &tampered, form, &headers, A_SKEY), Err(VerifyError::BadSignature));
        let other_date = [("Date", D_DATE), ("Authorization", h.as_str())];
        assert_eq!(verify("POST", A_HOST, A_PATH, &params, form, &other_date, A_SKEY), Err(VerifyError::BadSignature));
    }
}

// ---------- B ----------

#[test]
fn vector_b_v5_go() {
    let body = br#"{"txid":"f22b1678-252a-4070-b176-0ca2be7319fd"}"#;
    assert_eq!(
        sha512_hex(body),
        "09a21b07c82c674c76e4560a5965c9bf02295015adc7317160b906ec0cf8fed95d181fb532cc3bffb9e558f928ed3cd58d49ad6df1af7f3f8edc3b23c37a2085"
    );
    let params = [("realname", "First Last")];
    let canon = canon_params(&params);
    let r = req(A_DATE, "POST", A_HOST, A_PATH, &canon, body);
    let s = sign_request(A_IKEY, A_SKEY, SignatureVariant::V5, &r);
    let s = match s {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert!(s.canonical.ends_with(&format!("\n{EMPTY_SHA512_HEX}")));
    assert_eq!(
        s.signature,
        "78f4327f831173cc78d0907e913e3c5a28fe72dd4545a342586bb67181f2ba393d20911e870362f6faba3dc6f7e9db5e93aed2f3bfc110c6dadaff4dc6179e0b"
    );
    let headers = [("date", A_DATE), ("authorization", s.authorization.as_str()), ("content-type", "application/json")];
    assert_eq!(verify("POST", A_HOST, A_PATH, &params, body, &headers, A_SKEY), Ok(SignatureVariant::V5));
    // A changed body byte fails.
    let body2 = br#"{"txid":"f22b1678-252a-4070-b176-0ca2be7319fe"}"#;
    assert_eq!(verify("POST", A_HOST, A_PATH, &params, body2, &headers, A_SKEY), Err(VerifyError::BadSignature));
}

// ---------- C ----------

#[test]
fn vector_c_canonicalize_v5_and_params() {
    let params = [("username", "H ell?o")];
    let canon = canon_params(&params);
    let body = br#"{"activation_code":"duo://x1bTAIQGWXppdi2ctPVn-YXBpLWR1bzEuZHVvLnRlc3Q","user_id":"DU439XKOX2W6LMYHWLEV"}"#;
    let r = req(D_DATE, "post", "FOO.example.CoM", "/Foo/BaR2/qux", &canon, body);
    let c = canonical_request(SigVersion::V5, &r);
    assert_eq!(
        c.as_deref(),
        Ok("Fri, 07 Dec 2012 17:18:00 -0000\nPOST\nfoo.example.com\n/Foo/BaR2/qux\nusername=H%20ell%3Fo\n9ddab7d898836a76fafbb0dcef7bc83f14036b39bbb1ebbe43044f7c76338fa699eba8f0d3ecb329a084f32ef23c8a1609efad25032923b651e6f3f6d2f7b773\ncf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")
    );
    let p = [("username", "H ell?o"), ("password", "H-._~i"), ("password", "A(!'*)")];
    assert_eq!(canon_params(&p), "password=A%28%21%27%2A%29&password=H-._~i&username=H%20ell%3Fo");
}

// ---------- D ----------

const UNI: [(&str, &str); 4] = [
    (
        "\u{469a}\u{287b}\u{35d0}\u{8ef3}\u{6727}\u{502a}\u{0810}\u{d091}\u{00c8}\u{c170}",
        "\u{0f45}\u{1a76}\u{341a}\u{654c}\u{c23f}\u{9b09}\u{abe2}\u{8343}\u{1b27}\u{60d0}",
    ),
    (
        "\u{7449}\u{7e4b}\u{ccfb}\u{59ff}\u{fe5f}\u{83b7}\u{adcc}\u{900c}\u{cfd1}\u{7813}",
        "\u{8db7}\u{5022}\u{92d3}\u{42ef}\u{207d}\u{8730}\u{acfe}\u{5617}\u{0946}\u{4e30}",
    ),
    (
        "\u{7470}\u{9314}\u{901c}\u{9eae}\u{40d8}\u{4201}\u{82d8}\u{8c70}\u{1d31}\u{a042}",
        "\u{17d9}\u{0ba8}\u{9358}\u{aadf}\u{a42a}\u{48be}\u{fb96}\u{6fe9}\u{b7ff}\u{32f3}",
    ),
    (
        "\u{c2c5}\u{2c1d}\u{2620}\u{3617}\u{96b3}F\u{8605}\u{20e8}\u{ac21}\u{5934}",
        "\u{fba9}\u{41aa}\u{bd83}\u{840b}\u{2615}\u{3e6e}\u{652d}\u{a8b5}\u{d56b}U",
    ),
];

const UNI_CANON: &str = "%E4%9A%9A%E2%A1%BB%E3%97%90%E8%BB%B3%E6%9C%A7%E5%80%AA%E0%A0%90%ED%82%91%C3%88%EC%85%B0=%E0%BD%85%E1%A9%B6%E3%90%9A%E6%95%8C%EC%88%BF%E9%AC%89%EA%AF%A2%E8%8D%83%E1%AC%A7%E6%83%90&%E7%91%89%E7%B9%8B%EC%B3%BB%E5%A7%BF%EF%B9%9F%E8%8E%B7%EA%B7%8C%E9%80%8C%EC%BF%91%E7%A0%93=%E8%B6%B7%E5%80%A2%E9%8B%93%E4%8B%AF%E2%81%BD%E8%9C%B0%EA%B3%BE%E5%98%97%E0%A5%86%E4%B8%B0&%E7%91%B0%E9%8C%94%E9%80%9C%E9%BA%AE%E4%83%98%E4%88%81%E8%8B%98%E8%B1%B0%E1%B4%B1%EA%81%82=%E1%9F%99%E0%AE%A8%E9%8D%98%EA%AB%9F%EA%90%AA%E4%A2%BE%EF%AE%96%E6%BF%A9%EB%9F%BF%E3%8B%B3&%EC%8B%85%E2%B0%9D%E2%98%A0%E3%98%97%E9%9A%B3F%E8%98%85%E2%83%A8%EA%B0%A1%E5%A4%B4=%EF%AE%A9%E4%86%AA%EB%B6%83%E8%90%8B%E2%98%95%E3%B9%AE%E6%94%AD%EA%A2%B5%ED%95%ABU";

#[test]
fn vector_d_unicode() {
    assert_eq!(canon_params(&UNI), UNI_CANON);
    let r = req(D_DATE, "PoSt", "foO.BAr52.cOm", "/Foo/BaR2/qux", UNI_CANON, b"");
    let c = canonical_request(SigVersion::V2, &r).unwrap_or_default();
    assert_eq!(c, format!("Fri, 07 Dec 2012 17:18:00 -0000\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n{UNI_CANON}"));
    assert_eq!(sign(D_SKEY, Digest::Sha1, &c), "f01811cbbf9561623ab45b893096267fd46a5178");
    assert_eq!(
        sign(D_SKEY, Digest::Sha512, &c),
        "0508065035a03b2a1de2f453e629e791d180329e157f65df6b3e0f08299d4321e1c5c7a7c7ee6b9e5fc80d1fb6fbf3ad5eb7c44dd3b3985a02c37aca53ec3698"
    );
    let c5 = canonical_request(SigVersion::V5, &r).unwrap_or_default();
    let v5 = sign(D_SKEY, Digest::Sha512, &c5);
    assert_eq!(
        v5,
        "de886475f5ee8cf32872a7c10869e4dce7a0038f8b0da01d903469c6240473dfd1abf98b40b34b9ad7fbc99d5df3f2279e7105fd9101c428b94faaeec5e179cf"
    );
    // Verifier over each of the three signatures, with a mixed-case host as received.
    for (sig, want) in [
        ("f01811cbbf9561623ab45b893096267fd46a5178".to_owned(), SignatureVariant::V2Sha1),
        (sign(D_SKEY, Digest::Sha512, &c), SignatureVariant::V2Sha512),
        (v5, SignatureVariant::V5),
    ] {
        let auth = authorization_header("test_ikey", &sig);
        let headers = [("Date", D_DATE), ("Authorization", auth.as_str())];
        assert_eq!(verify("PoSt", "foO.BAr52.cOm", "/Foo/BaR2/qux", &UNI, b"", &headers, D_SKEY), Ok(want));
    }
    // RB's raw-UTF-8 JSON body of UNI (top-level keys sorted) hashes to the published value,
    // and PY's ASCII-escaped form differs: the server must hash raw bytes.
    let mut sorted = UNI.to_vec();
    sorted.sort();
    let rb_body = format!(
        "{{{}}}",
        sorted.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect::<Vec<_>>().join(",")
    );
    assert_eq!(
        sha512_hex(rb_body.as_bytes()),
        "069842dc1b1158ce098fb8cbabf4695fe5b6dbbe0189293c45253b80522d6c56aaed43cfeeb541222d5a34d56f57e2b420b70856d1f09ba346418e7a5bca6397"
    );
    let obj: serde_json::Map<String, serde_json::Value> =
        UNI.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned()))).collect();
    let py_body = canon_json(&serde_json::Value::Object(obj));
    assert!(sha512_hex(py_body.as_bytes()).starts_with("124464f8"));
}

// ---------- E ----------

#[test]
fn vector_e_canon_params_edges() {
    assert_eq!(canon_params::<&str, &str>(&[]), "");
    assert_eq!(canon_params(&[("realname", "First Last")]), "realname=First%20Last");
    assert_eq!(
        canon_params(&[("words", "First Last"), ("success", "true"), ("digit", "5")]),
        "digit=5&success=true&words=First%20Last"
    );
    assert_eq!(canon_params(&[("foo_bar", "2"), ("foo", "1")]), "foo=1&foo_bar=2");
    assert_eq!(
        canon_params(&[("realname", "First"), ("realname", "Last"), ("something", "test")]),
        "realname=First&realname=Last&something=test"
    );
    let printable = [
        ("digits", "0123456789"),
        ("letters", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        ("punctuation", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
        ("whitespace", "\t\n\x0b\x0c\r "),
    ];
    assert_eq!(
        canon_params(&printable),
        "digits=0123456789&letters=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ&punctuation=%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E_%60%7B%7C%7D~&whitespace=%09%0A%0B%0C%0D%20"
    );
}

// ---------- F ----------

#[test]
fn vector_f_x_duo_header_hashes() {
    assert_eq!(
        x_duo_headers_hash(&[("X-Duo-Header-1", "header_value_1")]).as_deref(),
        Ok("630b4bfe7e9abd03da2eee8f0a5d4e60a254ec880a839bcc2223bb5b9443e8ef24d58f0254f1f5934bf8c017ebd0fd5b1acf86766bdbe74185e712a4092df3ed")
    );
    assert_eq!(
        x_duo_headers_hash(&[("x-duo-A", "header_value_1"), ("X-Duo-B", "header_value_2")]).as_deref(),
        Ok("60be11a30e0756f2ee2afdce1db849b987dcf86c1133394bd7bbbc9877920330c4d78aceacbb377ab8cbd9a8efe6a410fed4047376635ac71226ab46ca10d2b1")
    );
    // Order given does not matter.
    assert_eq!(
        x_duo_headers_hash(&[("X-Duo-B", "header_value_2"), ("x-duo-A", "header_value_1")]),
        x_duo_headers_hash(&[("x-duo-A", "header_value_1"), ("X-Duo-B", "header_value_2")])
    );
    let body = br#"{"alpha":["a","b","c","d"],"data":"abc123","info":{"another":2,"test":1}}"#;
    assert_eq!(
        sha512_hex(body),
        "c30ca4ffc7fe4272aa6ae7a3c94cf71c11ed8ae7aaa32e81a401a59f1cef0866ccb02304380cdc48a813b1566c457653fa62736022f0cfeadcec8cd7c6233480"
    );
    // The same body from a JSON value via the Python-compatible serialiser.
    let v = serde_json::json!({"info": {"test": 1, "another": 2}, "data": "abc123", "alpha": ["a", "b", "c", "d"]});
    assert_eq!(canon_json(&v).as_bytes(), body);
    // A signed request carrying F's headers verifies as v5, and a changed header value does not.
    let r = Request {
        date: "Tue, 17 Nov 2020 14:12:00",
        method: "POST",
        host: "foo.bar52.com",
        path: "/foo/bar",
        canon_params: "",
        body,
        x_duo_headers: &[("x-duo-A", "header_value_1"), ("X-Duo-B", "header_value_2")],
    };
    let s = sign_request("test_ikey", D_SKEY, SignatureVariant::V5, &r).map(|s| s.authorization).unwrap_or_default();
    let mut headers = vec![
        ("Date", "Tue, 17 Nov 2020 14:12:00"),
        ("Authorization", s.as_str()),
        ("x-duo-A", "header_value_1"),
        ("X-Duo-B", "header_value_2"),
        ("Content-Type", "application/json"),
    ];
    assert_eq!(verify("POST", "foo.bar52.com", "/foo/bar", &[], body, &headers, D_SKEY), Ok(SignatureVariant::V5));
    headers[3] = ("x-duo-A", "header_value_X");
    assert_eq!(verify("POST", "foo.bar52.com", "/foo/bar", &[], body, &headers, D_SKEY), Err(VerifyError::BadSignature));
}

// ---------- G ----------

const G_IKEY: &str = "DIABCDEFGHIJKLMNOPQR";
const G_SKEY: &str = "testtesttesttesttesttesttesttesttesttest";
const G_HOST: &str = "api-xxxxxxxx.duosecurity.com";
const G_DATE: &str = "Fri, 24 May 2024 12:00:00 -0000";

fn g_case(method: &str, params: &[(&str, &str)], body: &[u8], extra: &[(&str, &str)], want: &str) {
    let mut xh: Vec<(&str, &str)> = vec![("x-duo-date", G_DATE)];
    xh.extend_from_slice(extra);
    let canon = canon_params(params);
    let r = Request {
        date: G_DATE,
        method,
        host: G_HOST,
        path: "/api/path",
        canon_params: &canon,
        body,
        x_duo_headers: &xh,
    };
    let got = sign_request(G_IKEY, G_SKEY, SignatureVariant::V5, &r).map(|s| s.authorization);
    assert_eq!(got.as_deref(), Ok(want), "{method} {params:?}");
    // The server sees only x-duo-date (no Date) plus a non-duo header that is not signed.
    let mut headers: Vec<(&str, &str)> = xh.clone();
    headers.push(("Authorization", want));
    headers.push(("User-Agent", "not signed"));
    assert_eq!(verify(method, G_HOST, "/api/path", params, body, &headers, G_SKEY), Ok(SignatureVariant::V5));
}

#[test]
fn vector_g_x_duo_date() {
    g_case("GET", &[], b"", &[], "Basic RElBQkNERUZHSElKS0xNTk9QUVI6YzQ1NDYzOWQ3NWI0ZTNkOTliOGIxZDVlNDFjZDdiYjJkMmQ4YmE1NWY2ODExZjc4NmRmYjBlZGQ0ZmFjZDJmM2E1ZTZkNmM4MzdmMzFmNjgyNjcwNjMyNWI0ZWQ3ZGNkYzVmMTExNjQ5NDhlNTdhNzAzMmE1MjQ5OTBlMDE1ODM=");
    g_case("POST", &[], b"{}", &[], "Basic RElBQkNERUZHSElKS0xNTk9QUVI6MTJhMDVkNzgzYjJlNThlMzZmMzdkZjhhNjkwNzgzNTQ5NmZiZTIwZmIzZDA0YjE1MDM2YzgyYjE2OTRmYzU4ZDFjMDQ1MWI5MzdmYjliYTZlN2MyYjQ0ZDg5YjQ3M2FmNzA4MTY2MTgzZDIxNmFlYTEzZTUyNzQyYTU3ZjIzOWY=");
    g_case("GET", &[("foo", "bar")], b"", &[], "Basic RElBQkNERUZHSElKS0xNTk9QUVI6ODhmZTgwZjNiMjQyYjk5MmY0YjMwMTQwOGQ1MjRhODg2Mjc0ZDNlZDBjNGM3YmQxODRlMWI0ZmYzNzhlNjhlYTA1ZDk0MzNjMDk5MzgwNzhjNDk1MTdhNmM0MjY0Yzk1MGJlOWZmNWNjMjhhZDJkNDQ4Y2VhMjRiYzkzODg3Y2E=");
    g_case("POST", &[], br#"{"foo":"bar"}"#, &[], "Basic RElBQkNERUZHSElKS0xNTk9QUVI6NjQzNzcwYWYzMTAwNmM1ODRhNzU4ZDkyNjI1MGU0NmE5MGQ3OTEwMGQyMWY3YTAzMTNjM2U3N2Q2NGZhM2M1ZDJjOTRlMmM5MDgxYTJiNjUzNDNjYzNkNWYyZWQyMWY3MzAwZWE1MGIwMDY0MGNiMTc2MGYzMjMxOTIzMDdkMzc=");
    g_case(
        "GET",
        &[("foo", "bar"), ("one", "1"), ("bool", "true")],
        b"",
        &[("x-duo-foo", "bar"), ("x-duo-bar", "foo")],
        "Basic RElBQkNERUZHSElKS0xNTk9QUVI6ZDQ2NTU2NzI2ODAwNDE1ZGM3OGNlZmMzZmI0ZTExZGNmM2VlMTM0MjkwNGYyNzZlZDVjOGUzNDI3ODc4YmQ1Mzc2ZWE2YzU1NTFiOTBiZjcwN2ZhYjUzZjZmMWQyMGExMTQ4OTg4OTg3MDVkMjgyNjg4MjRlZGQwYmU1ZjFkNTM=",
    );
}

// ---------- H ----------

#[test]
fn vector_h_admin_shaped() {
    let host = "api-xxxxxxxx.duosecurity.com";
    let params = [("limit", "100"), ("offset", "0")];
    let canon = canon_params(&params);
    let r = req(A_DATE, "GET", host, "/admin/v1/users", &canon, b"");
    let sig = |v: SignatureVariant| sign_request(A_IKEY, A_SKEY, v, &r).map(|s| s.signature).unwrap_or_default();
    let v5 = sig(SignatureVariant::V5);
    assert_eq!(v5, "f5afcd661b744f2937badaae9df18ea174ba1573f7f03d12d7fd8065a9f766a447198949750cb17004175830b76cd66e90435d813ddd1616687abe8641b35b95");
    let v2_1 = sig(SignatureVariant::V2Sha1);
    assert_eq!(v2_1, "78a72df0eb19f020627e27b2d2d7afa2414615ea");
    let v2_512 = sig(SignatureVariant::V2Sha512);
    assert_eq!(v2_512, "267458248022131e30842fbd3ffaa2e049239da488cba3da6249a9fd0a5b69d8023215e403dd3c8c7d1f000708a94376c72e1ef5783aa5b18f30e58512030746");
    let xh = [("X-Duo-Date", A_DATE)];
    assert_eq!(
        x_duo_headers_hash(&xh).as_deref(),
        Ok("379dbaf99303e804a3d9f0a2e4d8c4c99397911addce373e45e217371ebbda6b283b3d9e81e4938add811b5817928f843c53d07f9d57f190c9795ad259131a41")
    );
    let rx = Request { x_duo_headers: &xh, ..r };
    let v5x = sign_request(A_IKEY, A_SKEY, SignatureVariant::V5, &rx).map(|s| s.signature).unwrap_or_default();
    assert_eq!(v5x, "3fe6657743e2a707d8fd4a387f2ec724c9f71dc616972abf5357736bb904228cc371e3dda4fce4ff16bcb20cb4a92f03c194623aaaf07773f66811dbb1341bf4");

    // Each GET variant verifies as the variant it was signed with.
    for (s, want) in [(&v5, SignatureVariant::V5), (&v2_1, SignatureVariant::V2Sha1), (&v2_512, SignatureVariant::V2Sha512)] {
        let auth = authorization_header(A_IKEY, s);
        let headers = [("Date", A_DATE), ("Authorization", auth.as_str())];
        assert_eq!(verify("GET", host, "/admin/v1/users", &params, b"", &headers, A_SKEY), Ok(want));
    }
    let auth = authorization_header(A_IKEY, &v5x);
    let headers = [("Date", A_DATE), ("X-Duo-Date", A_DATE), ("Authorization", auth.as_str())];
    assert_eq!(verify("GET", host, "/admin/v1/users", &params, b"", &headers, A_SKEY), Ok(SignatureVariant::V5));
    // The same signature without the X-Duo-Date header fails (the header is part of the hash).
    let headers = [("Date", A_DATE), ("Authorization", auth.as_str())];
    assert_eq!(verify("GET", host, "/admin/v1/users", &params, b"", &headers, A_SKEY), Err(VerifyError::BadSignature));

    // v5 POST with a JSON body.
    let body = canon_json(&serde_json::json!({"username": "jdoe", "realname": "Jane Doe"}));
    assert_eq!(body, r#"{"realname":"Jane Doe","username":"jdoe"}"#);
    assert_eq!(
        sha512_hex(body.as_bytes()),
        "476a6177c983fa9eb73e56f7262aeefb1f6347b64aa4536fcad5fe4ef04ce793f3d864eb8eb291c46147b48c6266de1d5d835fd5038b5f39a0e1ee993e8c837c"
    );
    let rp = req(A_DATE, "POST", host, "/admin/v1/users", "", body.as_bytes());
    let sp = sign_request(A_IKEY, A_SKEY, SignatureVariant::V5, &rp).map(|s| s.signature).unwrap_or_default();
    assert_eq!(sp, "6d95747fdeac83370f6870bbe8d703d607f4837bade02e811ee5108ad92be61be3733d085f2a0dddd0e6220b44dcf4f6cec83a60b022bcd53dfbd77c50800d21");
    // v4 differs from v5 and also verifies (as v4).
    let s4 = sign_request(A_IKEY, A_SKEY, SignatureVariant::V4, &rp).map(|s| s.authorization).unwrap_or_default();
    let headers = [("Date", A_DATE), ("Authorization", s4.as_str())];
    assert_eq!(verify("POST", host, "/admin/v1/users", &[], body.as_bytes(), &headers, A_SKEY), Ok(SignatureVariant::V4));
}

#[test]
fn verifier_host_candidates_and_missing_parts() {
    // Python signs the host without the port; the Host header carries it.
    let canon = canon_params(&[("limit", "100")]);
    let r = req(A_DATE, "GET", "127.0.0.1", "/admin/v1/users", &canon, b"");
    let auth = sign_request(A_IKEY, A_SKEY, SignatureVariant::V5, &r).map(|s| s.authorization).unwrap_or_default();
    let hosts = duoprov_duo_wire::verify::host_candidates(Some("127.0.0.1:18443"), None);
    let params = owned(&[("limit", "100")]);
    let headers = [("Date", A_DATE), ("Authorization", auth.as_str())];
    let creds = parse_authorization(&auth).map_err(|e| e.to_string());
    let Ok(creds) = creds else { panic!("parse") };
    let rr = ReceivedRequest { method: "GET", path: "/admin/v1/users", host_candidates: &hosts, params: &params, body: b"", headers: &headers };
    let v = verify_signature(&rr, &creds, A_SKEY);
    assert_eq!(v.map(|v| (v.variant, v.host)), Ok((SignatureVariant::V5, "127.0.0.1".to_owned())));
    // Only the port-carrying host: rejected.
    let only = vec!["127.0.0.1:18443".to_owned()];
    let rr2 = ReceivedRequest { host_candidates: &only, ..rr };
    assert_eq!(verify_signature(&rr2, &creds, A_SKEY), Err(VerifyError::BadSignature));
    // No date header at all.
    let nodate = [("Authorization", auth.as_str())];
    let rr3 = ReceivedRequest { headers: &nodate, ..rr };
    assert_eq!(verify_signature(&rr3, &creds, A_SKEY), Err(VerifyError::MissingDate));
    // Uppercase hex in the Authorization header still verifies.
    let upper = authorization_header(A_IKEY, &creds.signature.to_uppercase());
    let creds_u = parse_authorization(&upper).map_err(|e| e.to_string());
    let Ok(creds_u) = creds_u else { panic!("parse") };
    assert!(verify_signature(&rr, &creds_u, A_SKEY).is_ok());
}
