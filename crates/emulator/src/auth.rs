//! Request authentication, the way Duo does it: the `Authorization` header names an
//! integration (unknown → 401/40102), the signature is checked with that integration's secret
//! key by `duoprov-duo-wire`'s verifier (v2 with HMAC-SHA1 or -SHA512, v4, v5; `X-Duo-Date` or
//! `Date`; decoded and re-canonicalised parameters; the body hashed exactly as received), the
//! date must be inside the clock-skew window, and the endpoint's grant must be held (403/40301).
//! Also the in-memory [`SignatureLog`] of the signatures clients presented, for secret-leak tests.

use std::collections::{HashMap, VecDeque};

use duoprov_duo_wire::SignatureVariant;
use duoprov_duo_wire::verify::{self, Credentials, ReceivedRequest, VerifyError};

use crate::config::{Grants, Integration};
use crate::error::ApiError;
use crate::routes::Permission;

/// The integrations the emulator accepts, by ikey.
#[derive(Debug, Clone, Default)]
pub struct Integrations {
    by_ikey: HashMap<String, Integration>,
}

impl Integrations {
    /// Builds the table; a later integration with the same ikey replaces an earlier one.
    pub fn new(list: impl IntoIterator<Item = Integration>) -> Self {
        Self {
            by_ikey: list.into_iter().map(|i| (i.ikey.clone(), i)).collect(),
        }
    }

    /// Number of integrations.
    pub fn len(&self) -> usize {
        self.by_ikey.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_ikey.is_empty()
    }

    /// The integration keys (never the secrets).
    pub fn ikeys(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_ikey.keys().cloned().collect();
        v.sort();
        v
    }

    fn get(&self, ikey: &str) -> Option<&Integration> {
        self.by_ikey.get(ikey)
    }
}

/// The hex signatures of the `Authorization` headers the emulator received (each header that
/// parsed as `Basic base64(ikey:hexsig)`, whether or not the signature then verified), oldest
/// first, at most `capacity` of them. Kept in memory only, for tests that scan a client's output
/// for leaked signatures (`EmulatorHandle::received_signatures`): never logged, never serialised,
/// never served over HTTP, and `Debug` shows only how many there are.
pub struct SignatureLog {
    capacity: usize,
    seen: VecDeque<String>,
}

impl SignatureLog {
    /// A log keeping the last `capacity` signatures (0 keeps none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: VecDeque::new(),
        }
    }

    /// Records the signature of `authorization` (the header value), if it parses.
    pub fn record(&mut self, authorization: &str) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(creds) = verify::parse_authorization(authorization) {
            if self.seen.len() >= self.capacity {
                self.seen.pop_front();
            }
            self.seen.push_back(creds.signature);
        }
    }

    /// The recorded signatures, oldest first.
    pub fn all(&self) -> Vec<String> {
        self.seen.iter().cloned().collect()
    }

    /// Forgets them.
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

impl std::fmt::Debug for SignatureLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureLog")
            .field("capacity", &self.capacity)
            .field("recorded", &self.seen.len())
            .finish()
    }
}

/// A request that passed authentication.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The integration key.
    pub ikey: String,
    /// The signature variant that matched.
    pub variant: SignatureVariant,
    /// The integration's grants.
    pub grants: Grants,
}

/// Why authentication failed, with the ikey when one was parsed (for the call log).
#[derive(Debug, Clone)]
pub struct AuthFailure {
    /// The ikey from the header, if it parsed.
    pub ikey: Option<String>,
    /// The error to answer with.
    pub error: ApiError,
}

fn map_verify(e: &VerifyError) -> ApiError {
    match e.code() {
        40101 => ApiError::missing_credentials(),
        _ => {
            let detail = match e {
                VerifyError::MissingDate => Some("missing Date and X-Duo-Date".to_owned()),
                VerifyError::BadDate(_) => Some("unparsable Date".to_owned()),
                VerifyError::DateSkew { .. } => {
                    Some("request date outside the allowed clock skew".to_owned())
                }
                _ => None,
            };
            ApiError::invalid_signature(detail)
        }
    }
}

/// Authenticates `req`. `now` is the verifier's clock; `skew_secs` the allowed difference.
pub fn authenticate(
    integrations: &Integrations,
    req: &ReceivedRequest<'_>,
    now: time::OffsetDateTime,
    skew_secs: u64,
) -> Result<Authenticated, AuthFailure> {
    let fail = |ikey: Option<String>, error| AuthFailure { ikey, error };
    let header = verify::header(req.headers, "authorization")
        .ok_or_else(|| fail(None, ApiError::missing_credentials()))?;
    let creds: Credentials =
        verify::parse_authorization(header).map_err(|e| fail(None, map_verify(&e)))?;
    let integration = integrations
        .get(&creds.ikey)
        .ok_or_else(|| fail(Some(creds.ikey.clone()), ApiError::invalid_ikey()))?;
    let verified = verify::verify_signature(req, &creds, integration.skey.expose())
        .map_err(|e| fail(Some(creds.ikey.clone()), map_verify(&e)))?;
    let skew = time::Duration::seconds(i64::try_from(skew_secs).unwrap_or(i64::MAX));
    verify::check_skew(&verified.date, now, skew)
        .map_err(|e| fail(Some(creds.ikey.clone()), map_verify(&e)))?;
    Ok(Authenticated {
        ikey: creds.ikey,
        variant: verified.variant,
        grants: integration.grants,
    })
}

/// 403/40301 unless `grants` include `needed`.
pub fn check_grant(grants: &Grants, needed: Permission) -> Result<(), ApiError> {
    let ok = match needed {
        Permission::ReadResource => grants.read_resource,
        Permission::WriteResource => grants.write_resource,
        Permission::Administrators => grants.administrators,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::forbidden(match needed {
            Permission::ReadResource => "integration lacks Grant read resource",
            Permission::WriteResource => "integration lacks Grant write resource",
            Permission::Administrators => "integration lacks Grant administrators",
        }))
    }
}
