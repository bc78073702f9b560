//! What clients did, recorded by the server so tests need not trust the client: a bounded log of
//! calls (method, path, endpoint, status, Duo code, ikey, matched signature variant, injected
//! fault, the objects the call created, duration) and counters per endpoint and status and per
//! signature variant.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// One recorded call.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallRecord {
    /// Sequence number from 1.
    pub seq: u64,
    /// Unix milliseconds when the call arrived.
    pub at_ms: i64,
    /// HTTP method.
    pub method: String,
    /// Raw path (no query).
    pub path: String,
    /// Endpoint name, or `null` for an unknown path or method.
    pub endpoint: Option<&'static str>,
    /// HTTP status answered (0 for a connection reset).
    pub status: u16,
    /// Duo error code on failure.
    pub code: Option<u32>,
    /// Integration key, when one was presented and parsed.
    pub ikey: Option<String>,
    /// Signature variant that matched (`v2-sha1`, `v2-sha512`, `v4`, `v5`).
    pub variant: Option<&'static str>,
    /// Injected fault (`429`, `500`, `503`, `reset`), if any.
    pub fault: Option<&'static str>,
    /// Names of the request parameters (values are not kept).
    pub params: Vec<String>,
    /// What the call created, in order: the group name (`groups.create`), the username
    /// (`users.create`, and each create operation of `bulk` that succeeded) or the usernames
    /// (`users.bulk_create`). Tests count creates per object with it.
    pub created: Vec<String>,
    /// Time spent in the emulator, microseconds.
    pub micros: u64,
}

/// Counters.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// All recorded calls.
    pub total: u64,
    /// Per endpoint name (`unknown` for unmatched paths), per HTTP status.
    pub by_endpoint: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Per signature variant that matched.
    pub by_variant: BTreeMap<String, u64>,
    /// Per HTTP status.
    pub by_status: BTreeMap<u16, u64>,
}

impl Counts {
    /// Calls to `endpoint` answered with `status`.
    pub fn get(&self, endpoint: &str, status: u16) -> u64 {
        self.by_endpoint
            .get(endpoint)
            .and_then(|m| m.get(&status))
            .copied()
            .unwrap_or(0)
    }
}

/// The recorder.
#[derive(Debug)]
pub struct Recorder {
    capacity: usize,
    next_seq: u64,
    log: VecDeque<CallRecord>,
    counts: Counts,
}

impl Recorder {
    /// A recorder keeping at most `capacity` calls in its log.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            next_seq: 1,
            log: VecDeque::new(),
            counts: Counts::default(),
        }
    }

    /// Records a call; `seq` is assigned here.
    pub fn record(&mut self, mut rec: CallRecord) -> u64 {
        rec.seq = self.next_seq;
        self.next_seq += 1;
        self.counts.total += 1;
        *self
            .counts
            .by_endpoint
            .entry(rec.endpoint.unwrap_or("unknown").to_owned())
            .or_default()
            .entry(rec.status)
            .or_default() += 1;
        *self.counts.by_status.entry(rec.status).or_default() += 1;
        if let Some(v) = rec.variant {
            *self.counts.by_variant.entry(v.to_owned()).or_default() += 1;
        }
        if self.capacity > 0 {
            if self.log.len() >= self.capacity {
                self.log.pop_front();
            }
            self.log.push_back(rec);
        }
        self.next_seq - 1
    }

    /// Calls with `seq > since`.
    pub fn since(&self, since: u64) -> Vec<CallRecord> {
        self.log.iter().filter(|r| r.seq > since).cloned().collect()
    }

    /// Counters.
    pub fn counts(&self) -> Counts {
        self.counts.clone()
    }

    /// Forgets calls and counters (sequence numbers keep growing).
    pub fn clear(&mut self) {
        self.log.clear();
        self.counts = Counts::default();
    }
}
