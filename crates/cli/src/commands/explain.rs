//! `duoprov explain SUBJECT [--group NAME] [--provisioner P] [--live]`: why a subject is (or is
//! not) in a provisioner's Duo groups. The answer is `duoprov_sync::explain`'s (registry and sync
//! state; Duo only with `--live`); this module picks the provisioner and formats it for a
//! terminal, or prints it as JSON.

use anyhow::{Result, anyhow, bail};
use duoprov_sync::explain::{Explanation, GroupExplanation};
use duoprov_sync::SyncError;

use super::Context;
use crate::args::ExplainArgs;
use crate::{exit, output};

fn plain(e: SyncError) -> anyhow::Error {
    match e {
        SyncError::NotFound(m) | SyncError::Scope(m) => anyhow!(m),
        other => other.into(),
    }
}

pub async fn run(ctx: &Context, args: ExplainArgs) -> Result<u8> {
    let provisioner = match &args.provisioner {
        Some(p) => p.clone(),
        None => {
            let names: Vec<&String> = ctx.settings.provisioners.keys().collect();
            match names.as_slice() {
                [one] => (*one).clone(),
                [] => bail!("no provisioner is configured: explain needs a [provisioner.NAME] section"),
                many => bail!(
                    "several provisioners are configured ({}): choose one with --provisioner",
                    many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    let p = ctx.settings.provisioners.get(&provisioner).ok_or_else(|| anyhow!("no provisioner [provisioner.{provisioner}] in the configuration"))?;
    let settings = super::sync::settings_of(p);
    let store = ctx.store().await?;
    let mut explanation = duoprov_sync::explain::explain(&*store, &settings, &args.subject, args.group.as_deref()).await.map_err(plain)?;
    if args.live {
        let (_, duo) = super::duo::client_for(ctx, &provisioner).await?;
        super::probe::use_recorded(&*store, &duo).await;
        duoprov_sync::explain::next_run(&*store, &duo, &settings, &mut explanation).await.map_err(plain)?;
    }
    if ctx.json {
        output::json(&explanation)?;
    } else {
        print!("{}", text(&explanation, duoprov_sync::now_ms()));
    }
    Ok(exit::OK)
}

fn group_text(out: &mut String, g: &GroupExplanation, subject: &str) {
    use std::fmt::Write as _;
    let decision = match (&g.rule, &g.marker) {
        (Some(rule), _) => rule.clone(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "no marker reaches it".to_owned(),
    };
    let _ = writeln!(out, "  {} — {} ({decision})", g.name, if g.selected { "selected" } else { "not selected" });
    if g.paths.is_empty() {
        let _ = writeln!(out, "    {subject} is not a member, directly or through a nested group");
    }
    for p in &g.paths {
        if p.len() == 1 {
            let _ = writeln!(out, "    direct member");
        } else {
            let _ = writeln!(out, "    member through {} ⊃ {subject}", p.join(" ⊃ "));
        }
    }
    match &g.link {
        Some(l) => {
            let id = l.duo_group_id.as_deref().unwrap_or("(no Duo id yet)");
            let _ = writeln!(out, "    Duo group {id}: {}{}", l.ownership, if l.in_target { "" } else { ", no longer managed" });
        }
        None => {
            let _ = writeln!(out, "    no Duo group linked yet");
        }
    }
    let _ = writeln!(out, "    {subject}'s Duo user belongs in it: {}", if g.desired_member { "yes" } else { "no" });
}

/// The explanation for a terminal.
pub fn text(e: &Explanation, now_ms: i64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let s = &e.subject;
    let who = s.login_id.clone().unwrap_or_else(|| s.id.clone());
    let _ = writeln!(
        out,
        "Subject {} ({}{}) under provisioner {}",
        who,
        s.key(),
        s.name.as_deref().map(|n| format!(", {n}")).unwrap_or_default(),
        e.provisioner
    );
    let _ = writeln!(out);
    match &e.asked_group {
        Some(g) => {
            let _ = writeln!(out, "Group {g}:");
        }
        None if e.groups.is_empty() => {
            let _ = writeln!(out, "Groups: in none of the groups {} selects.", e.provisioner);
        }
        None => {
            let _ = writeln!(out, "Groups {} selects that {who} is in:", e.provisioner);
        }
    }
    for g in &e.groups {
        group_text(&mut out, g, &who);
    }
    let _ = writeln!(out);
    if e.eligibility.eligible {
        let _ = writeln!(out, "Eligible: yes, {who} is one of {}'s Duo users", e.provisioner);
    } else {
        let _ = writeln!(out, "Eligible: no —");
        for r in &e.eligibility.reasons {
            let _ = writeln!(out, "  {r}");
        }
    }
    if let Some(f) = &e.rendered {
        let _ = writeln!(out, "Rendered: username {:?}, realname {:?}, email {:?}, firstname {:?}, lastname {:?}", f.username, f.realname, f.email, f.firstname, f.lastname);
        for (slot, a) in &f.aliases {
            let _ = writeln!(out, "  alias{slot} {a:?}");
        }
    }
    for h in &e.held {
        let _ = writeln!(out, "Held: {} [{}]: {}", h.object, h.code, h.message);
    }
    if !e.clash_with.is_empty() {
        let _ = writeln!(out, "  the username clashes with {} (each is held until the templates or the subjects make them differ)", e.clash_with.join(", "));
    }
    match &e.link {
        Some(l) => {
            let id = l.duo_user_id.as_deref().unwrap_or("(no Duo id yet)");
            let _ = writeln!(out, "Duo user: {id}, {}{}", l.ownership, if l.in_target { "" } else { ", no longer managed" });
        }
        None => {
            let _ = writeln!(out, "Duo user: none linked (duoprov has not created or adopted one for {who})");
        }
    }
    for r in &e.recorded_errors {
        let _ = writeln!(out, "Last error: {} [{}] {}: {}", r.object, r.code, output::when(r.at_ms.0, now_ms), r.message);
    }
    for r in &e.retries {
        let _ = writeln!(out, "Retry: {} after {} failure(s), next {}: {}", r.object, r.attempts, output::when(r.next_at_ms.0, now_ms), r.last_error);
    }
    if let Some(r) = &e.last_run {
        let _ = writeln!(out, "Last run of {}: #{} {}{}, {}, {}", e.provisioner, r.id, r.kind, if r.dry_run { " (dry run)" } else { "" }, r.status, output::when(r.started_at_ms.0, now_ms));
    }
    let _ = writeln!(out);
    match &e.next_run {
        Some(n) => {
            let plan = duoprov_plan::Plan { provisioner: e.provisioner.clone(), ops: n.ops.clone(), ..Default::default() };
            let _ = writeln!(out, "Next run (`duoprov sync {} --subject {}`, Duo read now):", e.provisioner, s.key());
            if n.ops.is_empty() {
                let _ = writeln!(out, "  nothing to do");
            } else {
                for line in duoprov_plan::render::text(&plan).lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
            for h in &n.held {
                let _ = writeln!(out, "  held: {} [{}]: {}", h.object, h.code, h.message);
            }
        }
        None => {
            let _ = writeln!(out, "Next run: pass --live to read Duo and show the exact operations a sync of {who} would apply.");
        }
    }
    out
}
