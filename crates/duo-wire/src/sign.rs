//! Request signing for the Duo Admin API: the RFC 3986 percent-encoding Duo canonicalises with,
//! canonical parameters, the canonical request of signature versions 2, 4 and 5, the HMAC-SHA1 /
//! HMAC-SHA512 signature and the `Authorization` header value.
//!
//! The rules (and the vectors the tests pin them with) are those of Duo's official clients.
//! Nothing here does I/O, and nothing here logs: the secret key only ever
//! flows into the HMAC.
//!
//! ```
//! use duoprov_duo_wire::sign::{canon_params, sign_request, Request, SignatureVariant};
//!
//! let params = [("username", "root"), ("realname", "First Last")];
//! let canon = canon_params(&params);
//! assert_eq!(canon, "realname=First%20Last&username=root");
//! let req = Request {
//!     date: "Tue, 21 Aug 2012 17:29:18 -0000",
//!     method: "POST",
//!     host: "api-XXXXXXXX.duosecurity.com",
//!     path: "/accounts/v1/account/list",
//!     canon_params: &canon,
//!     body: b"",
//!     x_duo_headers: &[],
//! };
//! let signed = sign_request(
//!     "DIWJ8X6AEYOR5OMC6TQ1",
//!     "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep",
//!     SignatureVariant::V2Sha1,
//!     &req,
//! )?;
//! assert_eq!(
//!     signed.authorization,
//!     "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6MmQ5N2Q2MTY2MzE5NzgxYjVhM2EwN2FmMzlkMzY2ZjQ5MTIzNGVkYw=="
//! );
//! # Ok::<(), duoprov_duo_wire::sign::SignError>(())
//! ```

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;
use sha2::{Digest as _, Sha512};

/// Every byte except the RFC 3986 unreserved characters `A-Z a-z 0-9 - . _ ~` is encoded.
pub const DUO_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// SHA-512 hex of the empty string: line 6 of a v4/v5 canonical request with no body, and line 7
/// of a v5 canonical request with no `X-Duo-*` headers.
pub const EMPTY_SHA512_HEX: &str = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

/// Errors while building a canonical request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A signed extra header's name does not start with `x-duo-` (any case).
    #[error("signed header {name:?} does not start with X-Duo-")]
    HeaderNotXDuo {
        /// The offending header name.
        name: String,
    },
    /// A signed extra header's name or value contains a NUL character.
    #[error("signed header {name:?} contains a NUL character")]
    HeaderNul {
        /// The offending header name (with any NUL shown escaped by `Debug`).
        name: String,
    },
    /// The same `X-Duo-*` header name (compared case-insensitively) was given twice.
    #[error("signed header {name:?} given twice")]
    HeaderDuplicate {
        /// The duplicated, lowercased header name.
        name: String,
    },
}

/// Signature version: which lines the canonical request has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigVersion {
    /// date, method, host, path, params.
    V2,
    /// v2 plus the SHA-512 hex of the body.
    V4,
    /// v4 plus the SHA-512 hex of the canonical `X-Duo-*` headers.
    V5,
}

/// The HMAC digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    /// HMAC-SHA1, 40 hex characters (v2 only).
    Sha1,
    /// HMAC-SHA512, 128 hex characters.
    Sha512,
}

impl Digest {
    /// Length of the lowercase hex signature this digest produces.
    pub fn hex_len(self) -> usize {
        match self {
            Digest::Sha1 => 40,
            Digest::Sha512 => 128,
        }
    }
}

/// A combination of signature version and digest that Duo accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureVariant {
    /// v2 canonical request, HMAC-SHA1 (the historically documented scheme).
    V2Sha1,
    /// v2 canonical request, HMAC-SHA512 (the official clients' v2 default).
    V2Sha512,
    /// v4 canonical request (JSON body hash), HMAC-SHA512.
    V4,
    /// v5 canonical request (body hash + `X-Duo-*` header hash), HMAC-SHA512. duoprov's default.
    V5,
}

impl SignatureVariant {
    /// All variants, in the order the verifier tries them for a 128-hex signature (v5, v4, v2)
    /// followed by v2-SHA1.
    pub const ALL: [SignatureVariant; 4] =
        [SignatureVariant::V5, SignatureVariant::V4, SignatureVariant::V2Sha512, SignatureVariant::V2Sha1];

    /// The canonical-request version.
    pub fn version(self) -> SigVersion {
        match self {
            SignatureVariant::V2Sha1 | SignatureVariant::V2Sha512 => SigVersion::V2,
            SignatureVariant::V4 => SigVersion::V4,
            SignatureVariant::V5 => SigVersion::V5,
        }
    }

    /// The HMAC digest.
    pub fn digest(self) -> Digest {
        match self {
            SignatureVariant::V2Sha1 => Digest::Sha1,
            _ => Digest::Sha512,
        }
    }

    /// Short stable name: `v2-sha1`, `v2-sha512`, `v4`, `v5` (for logs and emulator records).
    pub fn name(self) -> &'static str {
        match self {
            SignatureVariant::V2Sha1 => "v2-sha1",
            SignatureVariant::V2Sha512 => "v2-sha512",
            SignatureVariant::V4 => "v4",
            SignatureVariant::V5 => "v5",
        }
    }

    /// Whether request parameters travel as a JSON body for this method (v4/v5 with POST, PUT or
    /// PATCH) rather than in the query string or a form body.
    pub fn params_in_json_body(self, method: &str) -> bool {
        matches!(self.version(), SigVersion::V4 | SigVersion::V5) && method_has_body(method)
    }
}

impl fmt::Display for SignatureVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the official clients put parameters in the body for this method (POST, PUT, PATCH,
/// compared case-insensitively) rather than in the query string (GET, DELETE, everything else).
pub fn method_has_body(method: &str) -> bool {
    ["POST", "PUT", "PATCH"].iter().any(|m| m.eq_ignore_ascii_case(method))
}

/// Percent-encodes bytes the way Duo canonicalises: UTF-8 bytes, only `A-Za-z0-9-._~` left bare,
/// uppercase hex, space as `%20`.
///
/// ```
/// assert_eq!(duoprov_duo_wire::sign::percent_encode("a b+c~é"), "a%20b%2Bc~%C3%A9");
/// ```
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, DUO_ENCODE_SET).to_string()
}

/// Percent-encodes raw bytes (not necessarily UTF-8) with [`DUO_ENCODE_SET`].
pub fn percent_encode_bytes(b: &[u8]) -> String {
    percent_encoding::percent_encode(b, DUO_ENCODE_SET).to_string()
}

/// Canonical parameter string: each key and value percent-encoded with [`percent_encode`],
/// sorted by encoded key and then encoded value (byte order), `k=v` pairs joined with `&`.
/// Repeated keys give one pair per value. No parameters give the empty string.
///
/// ```
/// use duoprov_duo_wire::sign::canon_params;
/// let p = [("username", "H ell?o"), ("password", "H-._~i"), ("password", "A(!'*)")];
/// assert_eq!(canon_params(&p), "password=A%28%21%27%2A%29&password=H-._~i&username=H%20ell%3Fo");
/// assert_eq!(canon_params::<&str, &str>(&[]), "");
/// ```
pub fn canon_params<K: AsRef<[u8]>, V: AsRef<[u8]>>(params: &[(K, V)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode_bytes(k.as_ref()), percent_encode_bytes(v.as_ref())))
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Lowercase hex SHA-512 of `data`.
pub fn sha512_hex(data: &[u8]) -> String {
    if data.is_empty() {
        return EMPTY_SHA512_HEX.to_owned();
    }
    hex::encode(Sha512::digest(data))
}

/// SHA-512 hex of the canonical `X-Duo-*` headers (v5 line 7): names lowercased and sorted,
/// then `name\0value\0name\0value…`. Rejects, as the official clients do, names not starting with
/// `x-duo-`, NUL characters and duplicate names. No headers give [`EMPTY_SHA512_HEX`].
pub fn x_duo_headers_hash(headers: &[(&str, &str)]) -> Result<String, SignError> {
    let mut lowered: Vec<(String, &str)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if name.contains('\0') {
            return Err(SignError::HeaderNul { name: (*name).to_owned() });
        }
        if value.contains('\0') {
            return Err(SignError::HeaderNul { name: (*name).to_owned() });
        }
        let lc = name.to_ascii_lowercase();
        if !lc.starts_with("x-duo-") {
            return Err(SignError::HeaderNotXDuo { name: (*name).to_owned() });
        }
        if lowered.iter().any(|(n, _)| *n == lc) {
            return Err(SignError::HeaderDuplicate { name: lc });
        }
        lowered.push((lc, value));
    }
    lowered.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(x_duo_hash_sorted(&lowered))
}

/// Hash of already lowercased, sorted, validated headers.
pub(crate) fn x_duo_hash_sorted(headers: &[(String, &str)]) -> String {
    if headers.is_empty() {
        return EMPTY_SHA512_HEX.to_owned();
    }
    let mut h = Sha512::new();
    for (i, (name, value)) in headers.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update(value.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The inputs of a canonical request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The exact `Date` / `X-Duo-Date` string sent.
    pub date: &'a str,
    /// HTTP method, any case (uppercased in the canonical string).
    pub method: &'a str,
    /// API host, any case (lowercased in the canonical string), normally without a port.
    pub host: &'a str,
    /// Request path as sent (percent-encoded), without the query string.
    pub path: &'a str,
    /// Canonical parameters from [`canon_params`] (empty for a v4/v5 JSON body).
    pub canon_params: &'a str,
    /// The exact body bytes sent (empty for GET/DELETE). Ignored by v2.
    pub body: &'a [u8],
    /// Signed `X-Duo-*` headers (name, value). Used by v5 only.
    pub x_duo_headers: &'a [(&'a str, &'a str)],
}

/// Builds the canonical request string: lines joined with `\n`, no trailing newline.
///
/// Fails only for v5 with invalid `X-Duo-*` headers (see [`x_duo_headers_hash`]).
pub fn canonical_request(version: SigVersion, req: &Request<'_>) -> Result<String, SignError> {
    let headers_hash = match version {
        SigVersion::V5 => Some(x_duo_headers_hash(req.x_duo_headers)?),
        _ => None,
    };
    let body_hash = match version {
        SigVersion::V2 => None,
        _ => Some(sha512_hex(req.body)),
    };
    Ok(canonical_from_parts(req, &req.host.to_lowercase(), body_hash.as_deref(), headers_hash.as_deref()))
}

/// Joins the canonical lines; `host_lc` is already lowercased.
pub(crate) fn canonical_from_parts(
    req: &Request<'_>,
    host_lc: &str,
    body_hash: Option<&str>,
    headers_hash: Option<&str>,
) -> String {
    let mut s = String::with_capacity(
        req.date.len() + req.method.len() + host_lc.len() + req.path.len() + req.canon_params.len() + 270,
    );
    s.push_str(req.date);
    s.push('\n');
    s.push_str(&req.method.to_uppercase());
    s.push('\n');
    s.push_str(host_lc);
    s.push('\n');
    s.push_str(req.path);
    s.push('\n');
    s.push_str(req.canon_params);
    if let Some(b) = body_hash {
        s.push('\n');
        s.push_str(b);
        if let Some(h) = headers_hash {
            s.push('\n');
            s.push_str(h);
        }
    }
    s
}

/// HMAC of `canonical` keyed with the secret key's UTF-8 bytes, as lowercase hex.
///
/// ```
/// use duoprov_duo_wire::sign::{sign, Digest};
/// let sig = sign("secret", Digest::Sha1, "message");
/// assert_eq!(sig.len(), 40);
/// ```
pub fn sign(skey: &str, digest: Digest, canonical: &str) -> String {
    hex::encode(hmac_raw(skey.as_bytes(), digest, canonical.as_bytes()))
}

/// Raw HMAC bytes.
pub(crate) fn hmac_raw(key: &[u8], digest: Digest, msg: &[u8]) -> Vec<u8> {
    match digest {
        Digest::Sha1 => {
            // HMAC accepts keys of any length; the Err arm cannot happen, but is handled without panicking.
            match <Hmac<Sha1> as KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        Digest::Sha512 => match <Hmac<Sha512> as KeyInit>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        },
    }
}

/// HMAC keyed once, applied to many messages (the verifier tries several candidates with the
/// same key; cloning the keyed state skips re-hashing the key pads each time).
pub(crate) struct KeyedMac {
    sha1: Option<Hmac<Sha1>>,
    sha512: Option<Hmac<Sha512>>,
}

impl KeyedMac {
    pub(crate) fn new(key: &[u8]) -> Self {
        KeyedMac {
            sha1: <Hmac<Sha1> as KeyInit>::new_from_slice(key).ok(),
            sha512: <Hmac<Sha512> as KeyInit>::new_from_slice(key).ok(),
        }
    }

    pub(crate) fn mac(&self, digest: Digest, msg: &[u8]) -> Vec<u8> {
        match digest {
            Digest::Sha1 => self.sha1.clone().map(|mut m| {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }),
            Digest::Sha512 => self.sha512.clone().map(|mut m| {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }),
        }
        .unwrap_or_default()
    }
}

/// The `Authorization` header value: `Basic base64("<ikey>:<hexsig>")`.
pub fn authorization_header(ikey: &str, hexsig: &str) -> String {
    let raw = format!("{ikey}:{hexsig}");
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()))
}

/// The result of [`sign_request`]. Its `Debug` hides the signature and the header value.
#[derive(Clone)]
pub struct Signed {
    /// The canonical request that was signed (contains no secret).
    pub canonical: String,
    /// The lowercase hex signature. Treat as sensitive: never log it.
    pub signature: String,
    /// The `Authorization` header value. Treat as sensitive: never log it.
    pub authorization: String,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("canonical", &self.canonical)
            .field("signature", &"*******")
            .field("authorization", &"*******")
            .finish()
    }
}

/// Canonicalises `req` for `variant`, signs it with `skey` and builds the `Authorization` value.
pub fn sign_request(ikey: &str, skey: &str, variant: SignatureVariant, req: &Request<'_>) -> Result<Signed, SignError> {
    let canonical = canonical_request(variant.version(), req)?;
    let signature = sign(skey, variant.digest(), &canonical);
    let authorization = authorization_header(ikey, &signature);
    Ok(Signed { canonical, signature, authorization })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_set_is_rfc3986_unreserved() {
        for b in 0u8..=127 {
            let s = (b as char).to_string();
            let e = percent_encode(&s);
            let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            if unreserved {
                assert_eq!(e, s);
            } else {
                assert_eq!(e, format!("%{b:02X}"));
            }
        }
    }

    #[test]
    fn canon_params_sorts_by_encoded_key_then_value() {
        // "foo" < "foo_bar" in byte order; values of a repeated key are sorted after encoding.
        let p = [("foo_bar", "1"), ("foo", "b"), ("foo", "a b"), ("foo", "a")];
        assert_eq!(canon_params(&p), "foo=a&foo=a%20b&foo=b&foo_bar=1");
        // Encoding changes the order: "~" (0x7E) sorts after "%" (0x25) once "!" is encoded.
        let p = [("k", "~"), ("k", "!")];
        assert_eq!(canon_params(&p), "k=%21&k=~");
    }

    #[test]
    fn method_body_rule() {
        assert!(method_has_body("post"));
        assert!(method_has_body("PATCH"));
        assert!(!method_has_body("GET"));
        assert!(!method_has_body("DELETE"));
        assert!(SignatureVariant::V5.params_in_json_body("POST"));
        assert!(!SignatureVariant::V2Sha1.params_in_json_body("POST"));
        assert!(!SignatureVariant::V5.params_in_json_body("GET"));
    }

    #[test]
    fn empty_hash_constant_is_sha512_of_nothing() {
        assert_eq!(hex::encode(Sha512::digest(b"")), EMPTY_SHA512_HEX);
        assert_eq!(sha512_hex(b""), EMPTY_SHA512_HEX);
        assert_eq!(sha512_hex(b"{}"), "27c74670adb75075fad058d5ceaf7b20c4e7786c83bae8a32f626f9782af34c9a33c2046ef60fd2a7878d378e29fec851806bbd9a67878f3a9f1cda4830763fd");
    }

    #[test]
    fn header_validation() {
        assert!(matches!(x_duo_headers_hash(&[("X-Other", "a")]), Err(SignError::HeaderNotXDuo { .. })));
        assert!(matches!(x_duo_headers_hash(&[("X-Duo-A", "a\0b")]), Err(SignError::HeaderNul { .. })));
        assert!(matches!(
            x_duo_headers_hash(&[("X-Duo-A", "a"), ("x-duo-a", "b")]),
            Err(SignError::HeaderDuplicate { .. })
        ));
        assert_eq!(x_duo_headers_hash(&[]).as_deref(), Ok(EMPTY_SHA512_HEX));
    }

    #[test]
    fn signed_debug_hides_secrets() {
        let s = Signed { canonical: "c".into(), signature: "abcdef".into(), authorization: "Basic xyz".into() };
        let d = format!("{s:?}");
        assert!(!d.contains("abcdef"));
        assert!(!d.contains("xyz"));
    }
}
