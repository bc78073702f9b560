//! `duoprov audit verify|list|export`: walk the audit log's hash chain and name the first broken
//! entry, show entries with readable times, and write them as JSON lines for a SIEM.

use anyhow::{bail, Result};
use duoprov_model::EpochMillis;
use duoprov_registry::{AuditEntry, AuditFilter, ChainCheck, Store};
use serde_json::{json, Value};

use super::Context;
use crate::args::{AuditCommand, AuditListArgs};
use crate::exit;
use crate::output;

/// Entries read per page while verifying or exporting.
const PAGE: u32 = 1000;

pub async fn run(ctx: &Context, command: AuditCommand) -> Result<u8> {
    let store = ctx.store().await?;
    match command {
        AuditCommand::Verify => verify(ctx, &*store).await,
        AuditCommand::List(args) => list(ctx, &*store, args).await,
        AuditCommand::Export { since } => export(&*store, since.as_deref()).await,
    }
}

async fn verify(ctx: &Context, store: &dyn Store) -> Result<u8> {
    let head = store.audit_head().await?;
    let mut check = ChainCheck::new(head);
    let mut after = 0;
    loop {
        let page = store.audit_chain(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            if let Err(broken) = check.feed(e) {
                if ctx.json {
                    output::json(&json!({"intact": false, "seq": broken.seq(), "problem": broken.kind(), "message": broken.to_string(), "checked": check.checked()}))?;
                } else {
                    output::line(&format!(
                        "audit log BROKEN at entry {}: {}. The {} entries before it are intact; compare with an exported copy to see what changed.",
                        broken.seq(),
                        broken,
                        check.checked()
                    ));
                }
                return Ok(exit::ERROR);
            }
        }
    }
    let checked = check.checked();
    if ctx.json {
        output::json(&json!({"intact": true, "entries": checked, "head_hash": check.head_hash()}))?;
    } else if checked == 0 {
        output::line("audit log intact: no entries yet");
    } else {
        output::line(&format!("audit log intact: {checked} entries, 1 to {checked}, head hash {}", check.head_hash()));
    }
    Ok(exit::OK)
}

/// `--since`: a duration ago (`30m`, `6h`, `7d`) or a UTC time (`2026-11-30T09:00:00Z`,
/// `2026-11-30`).
fn since(text: &str) -> Result<EpochMillis> {
    let t = text.trim();
    if let Ok(at) = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        return Ok(EpochMillis((at.unix_timestamp_nanos() / 1_000_000) as i64));
    }
    if let Ok(day) = time::Date::parse(t, time::macros::format_description!("[year]-[month]-[day]")) {
        return Ok(EpochMillis((day.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64));
    }
    if t.starts_with(|c: char| c.is_ascii_digit()) && !t.contains('-') {
        let ago = crate::config::parse_duration("--since", t)?;
        return Ok(EpochMillis::now().plus_ms(-(ago.as_millis() as i64)));
    }
    bail!("--since: expected a duration ago (30m, 6h, 7d) or a UTC time (2026-11-30T09:00:00Z or 2026-11-30), not {text:?}")
}

/// An entry as JSON: its fields, before and after as the JSON they hold, the time also readable.
fn entry_json(e: &AuditEntry) -> Value {
    let parsed = |t: &Option<String>| t.as_deref().map(|t| serde_json::from_str::<Value>(t).unwrap_or_else(|_| Value::String(t.to_owned())));
    json!({
        "seq": e.seq,
        "at_ms": e.at.as_millis(),
        "time": rfc3339(e.at),
        "actor": e.actor,
        "run_id": e.run_id,
        "approval": e.approval,
        "source": e.source,
        "provisioner": e.provisioner,
        "object_kind": e.object_kind,
        "object_name": e.object_name,
        "object_uuid": e.object_uuid,
        "action": e.action,
        "before": parsed(&e.before),
        "after": parsed(&e.after),
        "duo": e.duo_status.as_ref().map(|s| json!({"status": s, "code": e.duo_code, "message": e.duo_message})),
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

fn rfc3339(at: EpochMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.as_millis()) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

async fn list(ctx: &Context, store: &dyn Store, args: AuditListArgs) -> Result<u8> {
    let filter = AuditFilter { since: args.since.as_deref().map(since).transpose()?, object: args.object, provisioner: args.provisioner, limit: args.limit };
    let entries = store.audit_entries(&filter).await?;
    if ctx.json {
        output::json(&entries.iter().map(entry_json).collect::<Vec<_>>())?;
        return Ok(exit::OK);
    }
    if entries.is_empty() {
        output::line("no audit entries match");
        return Ok(exit::OK);
    }
    let now = duoprov_sync::now_ms();
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let by = match (&e.provisioner, &e.source, e.run_id) {
                (Some(p), _, Some(run)) => format!("{} (provisioner {p}, run {run})", e.actor),
                (Some(p), _, None) => format!("{} (provisioner {p})", e.actor),
                (None, Some(s), _) => format!("{} (source {s})", e.actor),
                _ => e.actor.clone(),
            };
            let answer = match (&e.duo_status, e.duo_code, &e.duo_message) {
                (None, _, _) => "registry".to_owned(),
                (Some(s), None, None) => s.clone(),
                (Some(s), code, message) => format!("{s}{} {}", code.map(|c| format!(" {c}")).unwrap_or_default(), message.clone().unwrap_or_default()),
            };
            let change = format!("{} → {}", e.before.as_deref().unwrap_or("-"), e.after.as_deref().unwrap_or("-"));
            vec![e.seq.to_string(), output::when(e.at.as_millis(), now), by, format!("{} {} {}", e.action, e.object_kind, e.object_name), change, answer]
        })
        .collect();
    output::table(&["SEQ", "TIME", "BY", "CHANGE", "BEFORE → AFTER", "ANSWER"], &rows);
    Ok(exit::OK)
}

async fn export(store: &dyn Store, since_text: Option<&str>) -> Result<u8> {
    use std::io::Write as _;
    let since = since_text.map(since).transpose()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut after = 0;
    loop {
        let page = store.audit_chain(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page.iter().filter(|e| since.is_none_or(|s| e.at >= s)) {
            writeln!(out, "{}", entry_json(e))?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
