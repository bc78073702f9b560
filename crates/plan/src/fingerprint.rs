//! Fingerprints of the states a plan came from, so a saved plan is applied only to the exact
//! registry selection and Duo state it was made from.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A stable SHA-256 over the value's JSON form (hex).
pub fn fingerprint<T: Serialize>(value: &T) -> String {
    let mut hasher = Sha256::new();
    // serde_json writes struct fields in declaration order and our maps are ordered, so the
    // bytes are stable for equal values.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hasher.update(&bytes);
    hex::encode(hasher.finalize())
}
