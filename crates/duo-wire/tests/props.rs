//! Property tests: for arbitrary parameters (any Unicode, repeated keys), methods and variants,
//! what the signing side lays out and signs is accepted by the verifier after the server-side
//! decoding, is rejected when one parameter changes, and canonical parameters do not depend on
//! the order parameters are given in.

use duoprov_duo_wire::params::{CONTENT_TYPE_FORM, prepare};
use duoprov_duo_wire::sign::{Request, SignatureVariant, canon_params, sign_request};
use duoprov_duo_wire::verify::{ReceivedRequest, VerifyError, parse_authorization, verify_signature};
use proptest::prelude::*;

fn decode(s: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(s).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn variant() -> impl Strategy<Value = SignatureVariant> {
    prop_oneof![
        Just(SignatureVariant::V2Sha1),
        Just(SignatureVariant::V2Sha512),
        Just(SignatureVariant::V4),
        Just(SignatureVariant::V5)
    ]
}

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("PUT"), Just("PATCH")]
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("\\PC{0,8}", "\\PC{0,12}"), 0..6)
}

/// What a server reconstructs from the wire, then verifies.
fn server_verify(
    method: &str,
    query: &str,
    body: &[u8],
    content_type: Option<&str>,
    auth: &str,
) -> Result<SignatureVariant, VerifyError> {
    let mut p = decode(query.as_bytes());
    let form = content_type == Some(CONTENT_TYPE_FORM);
    if form {
        p.extend(decode(body));
    }
    let date = "Sun, 29 Nov 2026 08:00:00 -0000";
    let headers = [("Date", date), ("Authorization", auth)];
    let hosts = vec!["api-x.duosecurity.com".to_owned()];
    let creds = parse_authorization(auth)?;
    let rr = ReceivedRequest {
        method,
        path: "/admin/v1/users",
        host_candidates: &hosts,
        params: &p,
        body: if form { b"" } else { body },
        headers: &headers,
    };
    verify_signature(&rr, &creds, "skey-skey-skey").map(|ok| ok.variant)
}

proptest! {
    #[test]
    fn signed_requests_verify_and_tampering_fails(v in variant(), m in method(), p in params()) {
        let prepared = prepare(v, m, &p);
        let date = "Sun, 29 Nov 2026 08:00:00 -0000";
        let req = Request { date, method: m, host: "API-X.duosecurity.com", path: "/admin/v1/users",
            canon_params: &prepared.canon_params, body: &prepared.body, x_duo_headers: &[] };
        let signed = sign_request("DIKEY", "skey-skey-skey", v, &req).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got = server_verify(m, &prepared.query, &prepared.body, prepared.content_type, &signed.authorization);
        prop_assert_eq!(got, Ok(v));
        // Tamper: add one parameter on the wire.
        let (q, b) = if prepared.content_type.is_some() {
            let mut b = prepared.body.clone();
            if prepared.content_type == Some(CONTENT_TYPE_FORM) {
                if !b.is_empty() { b.push(b'&'); }
                b.extend_from_slice(b"extra=1");
            } else {
                b.pop();
                b.extend_from_slice(if p.is_empty() { b"\"extra\":\"1\"}".as_slice() } else { b",\"extra\":\"1\"}".as_slice() });
            }
            (prepared.query.clone(), b)
        } else {
            let q = if prepared.query.is_empty() { "extra=1".to_owned() } else { format!("{}&extra=1", prepared.query) };
            (q, prepared.body.clone())
        };
        let tampered = server_verify(m, &q, &b, prepared.content_type, &signed.authorization);
        prop_assert_eq!(tampered, Err(VerifyError::BadSignature));
    }

    #[test]
    fn canon_params_ignores_order(p in params(), seed in any::<u64>()) {
        let mut shuffled = p.clone();
        // Deterministic rotation + reversal as a cheap permutation.
        if !shuffled.is_empty() {
            let k = (seed as usize) % shuffled.len();
            shuffled.rotate_left(k);
            if seed % 2 == 0 { shuffled.reverse(); }
        }
        prop_assert_eq!(canon_params(&p), canon_params(&shuffled));
    }

    #[test]
    fn canon_params_decodes_back(p in params()) {
        let canon = canon_params(&p);
        let mut back = decode(canon.as_bytes());
        let mut orig = p.clone();
        back.sort();
        orig.sort();
        prop_assert_eq!(back, orig);
        prop_assert!(canon.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%=&".contains(&b)));
    }
}
