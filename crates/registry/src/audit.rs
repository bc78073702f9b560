//! The audit trail: every change duoprov makes in Duo, and every source change it applies to the
//! registry, as an append-only, hash-chained log. This module holds the role trait
//! ([`AuditLog`]), the entry types, and the pure parts of the chain: sealing new entries onto the
//! head ([`seal`]) and walking a log to find the first broken entry ([`ChainCheck`]).
//!
//! Each entry's `hash` is the SHA-256 of a canonical serialization of the entry (every field, its
//! sequence number and the previous entry's hash included); the first entry's previous hash is
//! [`GENESIS_HASH`]. So an edited entry no longer matches its hash, a deleted one leaves a gap in
//! the sequence numbers, and two entries whose sequence numbers were swapped hash correctly only
//! under each other's numbers.

use async_trait::async_trait;
use duoprov_model::EpochMillis;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Result;

/// The previous hash of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who made a change: the daemon or the command line, and the operating-system user it ran as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditActor {
    /// `daemon` or `cli`.
    pub kind: &'static str,
    /// The operating-system user name (`unknown` when the environment names none).
    pub user: String,
}

impl AuditActor {
    /// The command line, run by the current operating-system user.
    pub fn cli() -> Self {
        AuditActor { kind: "cli", user: os_user() }
    }

    /// The daemon, running as the current operating-system user.
    pub fn daemon() -> Self {
        AuditActor { kind: "daemon", user: os_user() }
    }
}

impl Default for AuditActor {
    fn default() -> Self {
        AuditActor::cli()
    }
}

impl std::fmt::Display for AuditActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.user)
    }
}

fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Who and what caused a batch of changes: copied into each of its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTrigger {
    /// [`AuditActor`] as text.
    pub actor: String,
    /// The sync run, if any.
    pub run_id: Option<i64>,
    /// The removal digest the operator approved, if any.
    pub approval: Option<String>,
}

impl AuditTrigger {
    pub fn new(actor: &AuditActor) -> Self {
        AuditTrigger { actor: actor.to_string(), run_id: None, approval: None }
    }

    /// A record of `action` on `object_kind` `object_name`, by this trigger; the caller fills in
    /// the provisioner or source, the uuid, before, after and Duo's answer.
    pub fn record(&self, object_kind: &str, object_name: impl Into<String>, action: &str) -> AuditRecord {
        AuditRecord {
            actor: self.actor.clone(),
            run_id: self.run_id,
            approval: self.approval.clone(),
            object_kind: object_kind.to_owned(),
            object_name: object_name.into(),
            action: action.to_owned(),
            ..Default::default()
        }
    }
}

/// Duo's answer to one mutation: `OK`, or `FAIL` with Duo's code and message (never a signature
/// or a key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuoAnswer {
    pub status: String,
    pub code: Option<i64>,
    pub message: Option<String>,
}

impl DuoAnswer {
    pub fn ok() -> Self {
        DuoAnswer { status: "OK".into(), code: None, message: None }
    }

    pub fn fail(code: Option<i64>, message: impl Into<String>) -> Self {
        DuoAnswer { status: "FAIL".into(), code, message: Some(message.into()) }
    }
}

/// One change to append: everything but the sequence number, time and hashes, which the store
/// assigns under its lock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditRecord {
    /// [`AuditActor`] as text (`cli:alice`, `daemon:duoprov`).
    pub actor: String,
    /// The sync run that made the change, if any.
    pub run_id: Option<i64>,
    /// The removal digest the operator approved (`--approve`), if any.
    pub approval: Option<String>,
    /// The source whose run made the change (registry changes).
    pub source: Option<String>,
    /// The provisioner whose sync made the change (Duo changes).
    pub provisioner: Option<String>,
    /// `group`, `user`, `membership`, `subject`.
    pub object_kind: String,
    /// The object's name (a group name, a username, a subject key, `user in group`).
    pub object_name: String,
    /// The object's stable id when it has one (a group's registry uuid), kept apart from its name.
    pub object_uuid: Option<String>,
    /// `create`, `update`, `delete`, `add`, `remove`, `restore`, `disable`, `trash`.
    pub action: String,
    /// The object before and after the change, as JSON (`None`: it did not exist).
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// Duo's answer (Duo changes only).
    pub duo: Option<DuoAnswer>,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: EpochMillis,
    pub actor: String,
    pub run_id: Option<i64>,
    pub approval: Option<String>,
    pub source: Option<String>,
    pub provisioner: Option<String>,
    pub object_kind: String,
    pub object_name: String,
    pub object_uuid: Option<String>,
    pub action: String,
    /// The JSON text as stored (hashed as is).
    pub before: Option<String>,
    pub after: Option<String>,
    pub duo_status: Option<String>,
    pub duo_code: Option<i64>,
    pub duo_message: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// The entry's hash, computed from its fields as if its sequence number were `seq`.
    pub fn hash_as(&self, seq: i64) -> String {
        let canonical = serde_json::json!([
            "duoprov-audit-1",
            seq,
            self.at.as_millis(),
            self.actor,
            self.run_id,
            self.approval,
            self.source,
            self.provisioner,
            self.object_kind,
            self.object_name,
            self.object_uuid,
            self.action,
            self.before,
            self.after,
            self.duo_status,
            self.duo_code,
            self.duo_message,
            self.prev_hash,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// The hash the entry's fields give under its own sequence number.
    pub fn computed_hash(&self) -> String {
        self.hash_as(self.seq)
    }
}

/// Seals `records` onto a chain whose head is `head` (sequence number and hash; `None` for an
/// empty log): consecutive sequence numbers, each entry's `prev_hash` the hash before it.
pub fn seal(head: Option<(i64, String)>, at: EpochMillis, records: &[AuditRecord]) -> Vec<AuditEntry> {
    let (mut seq, mut prev) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
    records
        .iter()
        .map(|r| {
            seq += 1;
            let mut e = AuditEntry {
                seq,
                at,
                actor: r.actor.clone(),
                run_id: r.run_id,
                approval: r.approval.clone(),
                source: r.source.clone(),
                provisioner: r.provisioner.clone(),
                object_kind: r.object_kind.clone(),
                object_name: r.object_name.clone(),
                object_uuid: r.object_uuid.clone(),
                action: r.action.clone(),
                before: r.before.as_ref().map(|v| v.to_string()),
                after: r.after.as_ref().map(|v| v.to_string()),
                duo_status: r.duo.as_ref().map(|d| d.status.clone()),
                duo_code: r.duo.as_ref().and_then(|d| d.code),
                duo_message: r.duo.as_ref().and_then(|d| d.message.clone()),
                prev_hash: std::mem::take(&mut prev),
                hash: String::new(),
            };
            e.hash = e.computed_hash();
            prev = e.hash.clone();
            e
        })
        .collect()
}

/// What is wrong at the first broken entry of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// Entry `seq` is not in the log (deleted): the entry after the previous one has `found`.
    Missing { seq: i64, found: i64 },
    /// Entry `seq`'s fields no longer give its hash: it was edited.
    Edited { seq: i64 },
    /// Entry `seq` hashes correctly only as entry `written_as`: entries were reordered.
    Reordered { seq: i64, written_as: i64 },
    /// Entry `seq` is intact but does not follow the entry before it (its `prev_hash` is not that
    /// entry's hash): entries before it were removed, inserted or rewritten.
    Unlinked { seq: i64 },
}

impl ChainBreak {
    /// The sequence number of the first broken entry.
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::Missing { seq, .. } | ChainBreak::Edited { seq } | ChainBreak::Reordered { seq, .. } | ChainBreak::Unlinked { seq } => *seq,
        }
    }

    /// `missing`, `edited`, `reordered` or `unlinked`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChainBreak::Missing { .. } => "missing",
            ChainBreak::Edited { .. } => "edited",
            ChainBreak::Reordered { .. } => "reordered",
            ChainBreak::Unlinked { .. } => "unlinked",
        }
    }
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Missing { seq, found } => write!(f, "entry {seq} is missing (deleted): the next entry in the log is {found}"),
            ChainBreak::Edited { seq } => write!(f, "entry {seq} was edited: its contents no longer match its hash"),
            ChainBreak::Reordered { seq, written_as } => {
                write!(f, "entry {seq} was reordered: it was written as entry {written_as} (sequence numbers were changed)")
            }
            ChainBreak::Unlinked { seq } => {
                write!(f, "entry {seq} does not follow entry {}: its previous hash is not that entry's hash (entries before it were removed, inserted or rewritten)", seq - 1)
            }
        }
    }
}

/// Walks a log in sequence order, one page after another, and stops at the first broken entry.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    next_seq: i64,
    prev_hash: String,
    /// The highest sequence number that may exist, for finding the position a reordered entry
    /// was written at.
    max_seq: i64,
}

impl ChainCheck {
    /// A check of a log whose highest sequence number is `max_seq`.
    pub fn new(max_seq: i64) -> Self {
        ChainCheck { next_seq: 1, prev_hash: GENESIS_HASH.to_owned(), max_seq }
    }

    /// Entries checked so far.
    pub fn checked(&self) -> i64 {
        self.next_seq - 1
    }

    /// The hash of the last entry checked (the genesis hash before any).
    pub fn head_hash(&self) -> &str {
        &self.prev_hash
    }

    /// Checks the next entry.
    pub fn feed(&mut self, e: &AuditEntry) -> std::result::Result<(), ChainBreak> {
        if e.seq != self.next_seq {
            // A sequence number below the expected one cannot come from an ordered read; either
            // way the expected entry is not there.
            return Err(ChainBreak::Missing { seq: self.next_seq, found: e.seq });
        }
        if e.computed_hash() != e.hash {
            let limit = self.max_seq.max(e.seq);
            return Err(match (1..=limit).find(|s| *s != e.seq && e.hash_as(*s) == e.hash) {
                Some(written_as) => ChainBreak::Reordered { seq: e.seq, written_as },
                None => ChainBreak::Edited { seq: e.seq },
            });
        }
        if e.prev_hash != self.prev_hash {
            return Err(ChainBreak::Unlinked { seq: e.seq });
        }
        self.prev_hash = e.hash.clone();
        self.next_seq += 1;
        Ok(())
    }
}

/// Which entries `duoprov audit list` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries at or after this time.
    pub since: Option<EpochMillis>,
    /// Entries about this object: its name or its uuid.
    pub object: Option<String>,
    /// Entries of this provisioner's syncs or this source's runs.
    pub provisioner: Option<String>,
    /// The newest `limit` entries (still listed oldest first).
    pub limit: Option<u32>,
}

/// The audit log: appended by the sync (each Duo mutation with Duo's answer) and by source runs
/// (each registry mutation, in the mirror's transaction), never pruned.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends `records`, in order, in one transaction that takes the chain head under the audit
    /// lock, so concurrent appenders (a daemon and the CLI, two daemons) never fork the chain.
    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()>;
    /// The entries `filter` selects, oldest first.
    async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
    /// Entries with `seq > after`, in sequence order, at most `limit` (for verifying the chain).
    async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>>;
    /// The highest sequence number, 0 for an empty log.
    async fn audit_head(&self) -> Result<i64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> AuditRecord {
        AuditRecord {
            actor: "cli:alice".into(),
            object_kind: "group".into(),
            object_name: name.into(),
            action: "create".into(),
            after: Some(serde_json::json!({"name": name})),
            duo: Some(DuoAnswer::ok()),
            ..Default::default()
        }
    }

    fn chain(n: usize) -> Vec<AuditEntry> {
        let records: Vec<AuditRecord> = (0..n).map(|i| record(&format!("g{i}"))).collect();
        seal(None, EpochMillis(1_700_000_000_000), &records)
    }

    fn check(entries: &[AuditEntry]) -> std::result::Result<i64, ChainBreak> {
        let mut c = ChainCheck::new(entries.iter().map(|e| e.seq).max().unwrap_or(0));
        for e in entries {
            c.feed(e)?;
        }
        Ok(c.checked())
    }

    #[test]
    fn an_untouched_chain_verifies_and_sealing_onto_its_head_continues_it() {
        let mut entries = chain(3);
        assert_eq!(entries[0].prev_hash, GENESIS_HASH);
        let head = entries.last().map(|e| (e.seq, e.hash.clone()));
        entries.extend(seal(head, EpochMillis(1_700_000_000_001), &[record("g3")]));
        assert_eq!(check(&entries), Ok(4));
    }

    #[test]
    fn an_edited_a_deleted_and_a_reordered_entry_are_each_named() {
        let mut edited = chain(4);
        edited[2].after = Some(r#"{"name":"other"}"#.into());
        assert_eq!(check(&edited), Err(ChainBreak::Edited { seq: 3 }));

        let mut deleted = chain(4);
        deleted.remove(1);
        assert_eq!(check(&deleted), Err(ChainBreak::Missing { seq: 2, found: 3 }));

        let mut reordered = chain(4);
        reordered.swap(1, 2);
        reordered[1].seq = 2;
        reordered[2].seq = 3;
        assert_eq!(check(&reordered), Err(ChainBreak::Reordered { seq: 2, written_as: 3 }));
    }

    #[test]
    fn an_entry_rehashed_after_an_edit_still_breaks_the_link_to_the_next() {
        let mut entries = chain(3);
        entries[1].after = Some(r#"{"name":"other"}"#.into());
        entries[1].hash = entries[1].computed_hash();
        assert_eq!(check(&entries), Err(ChainBreak::Unlinked { seq: 3 }));
    }
}
