//! Server-side signature verification (used by the emulator): parses the `Authorization`
//! header, picks the request date, and accepts a request signed with any variant Duo's official
//! clients use.
//!
//! The rule:
//! - a 40-hex signature is checked as v2 with HMAC-SHA1;
//! - a 128-hex signature is checked as v5, then v4, then v2, all with HMAC-SHA512; for v5 the
//!   header hash covers **all** received `X-Duo-*` headers, names lowercased and sorted;
//! - the date line is `X-Duo-Date` if present, else `Date`;
//! - every candidate host (e.g. the `Host` header with and without its port, a configured
//!   canonical host) is tried, lowercased;
//! - the comparison is constant-time; the first match wins and is reported.
//!
//! What the server has to hand in ([`ReceivedRequest`]):
//! - `path`: the raw request path as received, still percent-encoded, without `?` and query;
//! - `params`: the **decoded** query string parameters, plus the decoded form body when the
//!   content type is `application/x-www-form-urlencoded` (decode `+` as space; never sign raw
//!   query text);
//! - `body`: the raw body bytes exactly as received (a JSON body is hashed, never re-serialised);
//! - `headers`: every received header (names in any case).
//!
//! A typical emulator handler:
//!
//! ```
//! use duoprov_duo_wire::sign::{canon_params, sign_request, Request, SignatureVariant};
//! use duoprov_duo_wire::verify::{host_candidates, parse_authorization, verify_signature, ReceivedRequest};
//!
//! // What a client sent (here produced with the signing half of this crate).
//! let date = "Tue, 21 Aug 2012 17:29:18 -0000";
//! let params = vec![("limit".to_string(), "100".to_string()), ("offset".to_string(), "0".to_string())];
//! let canon = canon_params(&params);
//! let signed = sign_request("DIWJ8X6AEYOR5OMC6TQ1", "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep", SignatureVariant::V5,
//!     &Request { date, method: "GET", host: "127.0.0.1", path: "/admin/v1/users", canon_params: &canon, body: b"", x_duo_headers: &[] })?;
//! let headers = [("Host", "127.0.0.1:8443"), ("Date", date), ("Authorization", signed.authorization.as_str())];
//!
//! // Server side.
//! let creds = parse_authorization(headers[2].1)?;
//! assert_eq!(creds.ikey, "DIWJ8X6AEYOR5OMC6TQ1");
//! // ... look up the secret key for creds.ikey (unknown ikey: 401 / 40102) ...
//! let hosts = host_candidates(Some("127.0.0.1:8443"), None);
//! let ok = verify_signature(
//!     &ReceivedRequest { method: "GET", path: "/admin/v1/users", host_candidates: &hosts, params: &params, body: b"", headers: &headers },
//!     &creds,
//!     "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep",
//! )?;
//! assert_eq!(ok.variant, SignatureVariant::V5);
//! assert_eq!(ok.date, date);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use base64::Engine as _;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::date::{DateError, parse_date};
use crate::sign::{KeyedMac, Request, SignatureVariant, canon_params, canonical_from_parts, sha512_hex, x_duo_hash_sorted};

/// Why a request was not authenticated. Each maps to Duo's 401 codes via [`VerifyError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `Authorization` header.
    #[error("missing Authorization header")]
    MissingAuthorization,
    /// The `Authorization` header is not `Basic base64(ikey:hexsig)`.
    #[error("malformed Authorization header: {reason}")]
    MalformedAuthorization {
        /// What was wrong (never contains the header value).
        reason: &'static str,
    },
    /// Neither `X-Duo-Date` nor `Date` is present.
    #[error("missing Date and X-Duo-Date headers")]
    MissingDate,
    /// The date cannot be parsed (for the skew check).
    #[error(transparent)]
    BadDate(#[from] DateError),
    /// The date is further from the server's clock than allowed.
    #[error("request date is {skew_secs} s away from the server clock (allowed {allowed_secs} s)")]
    DateSkew {
        /// Absolute difference in seconds.
        skew_secs: i64,
        /// The configured maximum.
        allowed_secs: i64,
    },
    /// No variant / host combination reproduces the signature.
    #[error("invalid signature in request credentials")]
    BadSignature,
}

impl VerifyError {
    /// HTTP status Duo answers with (always 401).
    pub fn http_status(&self) -> u16 {
        401
    }

    /// Duo's error code: 40101 for missing/unparsable credentials, 40103 for a bad signature or date.
    pub fn code(&self) -> u32 {
        match self {
            VerifyError::MissingAuthorization | VerifyError::MalformedAuthorization { .. } => 40101,
            VerifyError::MissingDate
            | VerifyError::BadDate(_)
            | VerifyError::DateSkew { .. }
            | VerifyError::BadSignature => 40103,
        }
    }

    /// Duo's message for [`VerifyError::code`].
    pub fn duo_message(&self) -> &'static str {
        match self.code() {
            40101 => "Missing request credentials",
            _ => "Invalid signature in request credentials",
        }
    }
}

/// Credentials parsed from an `Authorization` header. `Debug` hides the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The integration key.
    pub ikey: String,
    /// The hex signature as sent.
    pub signature: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("ikey", &self.ikey).field("signature", &"*******").finish()
    }
}

/// Parses `Basic base64("<ikey>:<hexsig>")` (scheme compared case-insensitively). The signature
/// must be 40 or 128 hex characters.
pub fn parse_authorization(value: &str) -> Result<Credentials, VerifyError> {
    let bad = |reason| VerifyError::MalformedAuthorization { reason };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(bad("no scheme"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad("scheme is not Basic"));
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).map_err(|_| bad("not base64"))?;
    let text = String::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
    let (ikey, sig) = text.split_once(':').ok_or(bad("no ':' between key and signature"))?;
    if ikey.is_empty() {
        return Err(bad("empty integration key"));
    }
    if !(sig.len() == 40 || sig.len() == 128) || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("signature is not 40 or 128 hex characters"));
    }
    Ok(Credentials { ikey: ikey.to_owned(), signature: sig.to_owned() })
}

/// Case-insensitive header lookup (first occurrence).
pub fn header<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
}

/// The string the client signed as its date: `X-Duo-Date` if present, else `Date`.
pub fn request_date<'a>(headers: &[(&str, &'a str)]) -> Result<&'a str, VerifyError> {
    header(headers, "x-duo-date").or_else(|| header(headers, "date")).ok_or(VerifyError::MissingDate)
}

/// Checks that `date` parses and is within `max_skew` of `now` (either direction).
pub fn check_skew(date: &str, now: OffsetDateTime, max_skew: Duration) -> Result<(), VerifyError> {
    let t = parse_date(date)?;
    let skew = (now - t).abs();
    if skew > max_skew {
        return Err(VerifyError::DateSkew { skew_secs: skew.whole_seconds(), allowed_secs: max_skew.whole_seconds() });
    }
    Ok(())
}

/// Host names to try, in order, without duplicates (compared case-insensitively): the configured
/// canonical host, the `Host` header as received, and the `Host` header without its port
/// (what Duo's Python client signs when it talks to `127.0.0.1:PORT`).
pub fn host_candidates(host_header: Option<&str>, configured: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(3);
    let mut push = |h: &str| {
        let h = h.trim();
        if !h.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(h)) {
            out.push(h.to_owned());
        }
    };
    if let Some(c) = configured {
        push(c);
    }
    if let Some(h) = host_header {
        push(h);
        push(strip_port(h));
    }
    out
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`; anything else unchanged.
fn strip_port(h: &str) -> &str {
    if let Some(end) = h.find(']') {
        return &h[..=end];
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.contains(':') => {
            host
        }
        _ => h,
    }
}

/// What a server received, in the form the verifier needs (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct ReceivedRequest<'a> {
    /// HTTP method as received.
    pub method: &'a str,
    /// Raw request path, still percent-encoded, without `?` or the query string.
    pub path: &'a str,
    /// Host names to try (see [`host_candidates`]).
    pub host_candidates: &'a [String],
    /// Decoded query parameters plus decoded form-body parameters, in any order.
    pub params: &'a [(String, String)],
    /// Raw body bytes as received.
    pub body: &'a [u8],
    /// All received headers, names in any case.
    pub headers: &'a [(&'a str, &'a str)],
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The variant that matched.
    pub variant: SignatureVariant,
    /// The host candidate that matched (as given).
    pub host: String,
    /// The signed date string (from `X-Duo-Date` or `Date`).
    pub date: String,
}

/// Verifies `creds.signature` against every applicable variant and host candidate using
/// `skey`. Does not check the clock skew (call [`check_skew`] with [`Verified::date`]) and does not
/// look up the integration key (the caller did, to find `skey`).
pub fn verify_signature(req: &ReceivedRequest<'_>, creds: &Credentials, skey: &str) -> Result<Verified, VerifyError> {
    let date = request_date(req.headers)?;
    let sig = creds.signature.to_ascii_lowercase();
    let variants: &[SignatureVariant] = match sig.len() {
        40 => &[SignatureVariant::V2Sha1],
        128 => &[SignatureVariant::V5, SignatureVariant::V4, SignatureVariant::V2Sha512],
        _ => return Err(VerifyError::MalformedAuthorization { reason: "signature is not 40 or 128 hex characters" }),
    };
    let expected = hex::decode(&sig).map_err(|_| VerifyError::MalformedAuthorization { reason: "signature is not hex" })?;

    let canon = canon_params(req.params);
    let body_hash = sha512_hex(req.body);
    let mut xduo: Vec<(String, &str)> = req
        .headers
        .iter()
        .filter_map(|(n, v)| {
            let lc = n.to_ascii_lowercase();
            lc.starts_with("x-duo-").then_some((lc, *v))
        })
        .collect();
    xduo.sort_by(|a, b| a.0.cmp(&b.0));
    let headers_hash = x_duo_hash_sorted(&xduo);

    let keyed = KeyedMac::new(skey.as_bytes());
    let mut matched: Option<(SignatureVariant, String)> = None;
    for host in req.host_candidates {
        let host_lc = host.to_lowercase();
        let base = Request {
            date,
            method: req.method,
            host,
            path: req.path,
            canon_params: &canon,
            body: req.body,
            x_duo_headers: &[],
        };
        for &variant in variants {
            let canonical = match variant {
                SignatureVariant::V5 => canonical_from_parts(&base, &host_lc, Some(&body_hash), Some(&headers_hash)),
                SignatureVariant::V4 => canonical_from_parts(&base, &host_lc, Some(&body_hash), None),
                SignatureVariant::V2Sha1 | SignatureVariant::V2Sha512 => {
                    canonical_from_parts(&base, &host_lc, None, None)
                }
            };
            let digest = variant.digest();
            let mac = keyed.mac(digest, canonical.as_bytes());
            // Constant-time comparison; keep looping regardless so timing does not reveal which
            // candidate matched.
            if bool::from(mac.ct_eq(&expected)) && matched.is_none() {
                matched = Some((variant, host.clone()));
            }
        }
    }
    match matched {
        Some((variant, host)) => Ok(Verified { variant, host, date: date.to_owned() }),
        None => Err(VerifyError::BadSignature),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_parsing() {
        let ok = crate::sign::authorization_header("DIABC", &"a".repeat(40));
        let c = parse_authorization(&ok).map_err(|e| e.to_string());
        assert_eq!(c.as_ref().map(|c| c.ikey.as_str()), Ok("DIABC"));
        assert!(matches!(parse_authorization("Bearer x"), Err(VerifyError::MalformedAuthorization { .. })));
        assert!(matches!(parse_authorization("Basic !!!"), Err(VerifyError::MalformedAuthorization { .. })));
        let short = crate::sign::authorization_header("DIABC", "abc");
        assert!(matches!(parse_authorization(&short), Err(VerifyError::MalformedAuthorization { .. })));
        let nohex = crate::sign::authorization_header("DIABC", &"g".repeat(40));
        assert!(matches!(parse_authorization(&nohex), Err(VerifyError::MalformedAuthorization { .. })));
        let nocolon = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("DIABC"));
        assert!(matches!(parse_authorization(&nocolon), Err(VerifyError::MalformedAuthorization { .. })));
        assert_eq!(VerifyError::MissingAuthorization.code(), 40101);
        assert_eq!(VerifyError::BadSignature.code(), 40103);
    }

    #[test]
    fn credentials_debug_hides_signature() {
        let c = Credentials { ikey: "DIABC".into(), signature: "deadbeef".into() };
        assert!(!format!("{c:?}").contains("deadbeef"));
    }

    #[test]
    fn hosts() {
        assert_eq!(host_candidates(Some("127.0.0.1:8443"), None), vec!["127.0.0.1:8443", "127.0.0.1"]);
        assert_eq!(
            host_candidates(Some("API-x.duosecurity.com"), Some("api-x.duosecurity.com")),
            vec!["api-x.duosecurity.com"]
        );
        assert_eq!(host_candidates(Some("[::1]:80"), None), vec!["[::1]:80", "[::1]"]);
        assert!(host_candidates(None, None).is_empty());
    }

    #[test]
    fn date_selection_and_skew() {
        let h = [("Date", "Fri, 24 May 2024 12:00:00 -0000"), ("X-Duo-Date", "Fri, 24 May 2024 12:00:01 -0000")];
        assert_eq!(request_date(&h), Ok("Fri, 24 May 2024 12:00:01 -0000"));
        assert_eq!(request_date(&h[..1]), Ok("Fri, 24 May 2024 12:00:00 -0000"));
        assert_eq!(request_date(&[]), Err(VerifyError::MissingDate));
        let now = time::macros::datetime!(2024-05-24 12:02:00 UTC);
        assert!(check_skew(h[0].1, now, Duration::seconds(120)).is_ok());
        assert!(matches!(check_skew(h[0].1, now, Duration::seconds(119)), Err(VerifyError::DateSkew { skew_secs: 120, .. })));
        assert!(matches!(check_skew("nonsense", now, Duration::seconds(119)), Err(VerifyError::BadDate(_))));
    }
}
