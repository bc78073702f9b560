//! Duo object ids: 20 uppercase alphanumerics with a type prefix (`DU` user, `DG` group, `DE`
//! administrator). Stored inline as 20 bytes so a million memberships cost no heap allocations,
//! and generated from a seedable random source so test runs can be made deterministic.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const ID_LEN: usize = 20;
const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A Duo object id (`DU…`, `DG…`, `DE…`): exactly 20 ASCII uppercase letters and digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DuoId([u8; ID_LEN]);

impl DuoId {
    /// Parses an id; `None` unless it is 20 uppercase alphanumerics.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != ID_LEN
            || !bytes
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return None;
        }
        let mut out = [0u8; ID_LEN];
        out.copy_from_slice(bytes);
        Some(Self(out))
    }

    /// Parses an id that must carry `prefix` (e.g. `"DU"`).
    pub fn parse_with_prefix(s: &str, prefix: &str) -> Option<Self> {
        Self::parse(s).filter(|id| id.as_str().starts_with(prefix))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `parse`, produced by `IdGen`).
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Display for DuoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for DuoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DuoId({})", self.as_str())
    }
}

impl Serialize for DuoId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DuoId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid Duo id {s:?}")))
    }
}

/// Generates fresh ids from a random source that may be seeded.
#[derive(Debug)]
pub struct IdGen {
    rng: StdRng,
}

impl IdGen {
    /// A generator seeded from `seed`, or from the operating system when `None`.
    pub fn new(seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        Self { rng }
    }

    /// A new id with the two-letter `prefix`; the caller checks it is unused.
    pub fn next(&mut self, prefix: [u8; 2]) -> DuoId {
        let mut out = [0u8; ID_LEN];
        out[0] = prefix[0];
        out[1] = prefix[1];
        for b in out.iter_mut().skip(2) {
            *b = ALPHABET[self.rng.random_range(0..ALPHABET.len())];
        }
        DuoId(out)
    }
}

/// Prefix of user ids.
pub const USER: [u8; 2] = *b"DU";
/// Prefix of group ids.
pub const GROUP: [u8; 2] = *b"DG";
/// Prefix of administrator ids.
pub const ADMIN: [u8; 2] = *b"DE";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_duo_shaped_ids() {
        assert!(DuoId::parse("DU3RP9I2WOC59VZX672N").is_some());
        assert!(DuoId::parse("DU3RP9I2WOC59VZX672").is_none());
        assert!(DuoId::parse("du3rp9i2woc59vzx672n").is_none());
        assert!(DuoId::parse("DU3RP9I2WOC59VZX672-").is_none());
        assert!(DuoId::parse_with_prefix("DG3RP9I2WOC59VZX672N", "DU").is_none());
    }

    #[test]
    fn seeded_generators_repeat() {
        let mut a = IdGen::new(Some(7));
        let mut b = IdGen::new(Some(7));
        let x = a.next(USER);
        assert_eq!(x, b.next(USER));
        assert!(x.as_str().starts_with("DU"));
        assert!(DuoId::parse(x.as_str()).is_some());
    }
}
