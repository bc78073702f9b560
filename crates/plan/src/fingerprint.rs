//! Fingerprints of the states a plan came from, so a saved plan is applied only to the exact
//! registry selection and Duo state it was made from. The JSON form streams into the hash: a
//! state of 100 000 users is never held as one buffer.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Feeds what serde_json writes straight into the hash.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A stable SHA-256 over the value's JSON form (hex).
pub fn fingerprint<T: Serialize>(value: &T) -> String {
    // serde_json writes struct fields in declaration order and our maps are ordered, so the
    // bytes are stable for equal values. A value that cannot be written as JSON hashes what was
    // written before the error, as the buffered form hashed an empty buffer: both are stable.
    let mut w = HashWriter(Sha256::new());
    let _ = serde_json::to_writer(std::io::BufWriter::with_capacity(64 * 1024, &mut w), value);
    hex::encode(w.0.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_streamed_fingerprint_is_the_hash_of_the_whole_json_so_saved_plans_still_match() {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for i in 0..20_000 {
            users.insert(format!("user{i:06}"), (0..(i % 7)).map(|g| format!("g{g}")).collect());
        }
        let value = (&users, Some(vec!["a", "b"]));
        let whole = hex::encode(Sha256::digest(serde_json::to_vec(&value).unwrap()));
        assert_eq!(fingerprint(&value), whole);
        assert_ne!(fingerprint(&(&users, None::<Vec<&str>>)), whole, "a different value, a different fingerprint");
    }
}
