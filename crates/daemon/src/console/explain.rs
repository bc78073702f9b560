//! The console's explain page, `/explain?provisioner=P&subject=S[&group=G][&live=1]`: why a
//! subject is (or is not) in a provisioner's Duo groups, as `duoprov explain` tells it — every
//! membership path (direct, or through which nested groups), the marker that decides each group,
//! eligibility, the rendered username and fields, the links and their ownership, recorded errors
//! and retries, the last run, and (with `live=1`, reading Duo) the exact operations a sync of the
//! subject would apply now; and a button syncing the subject alone now (the console's retry). An
//! unknown or ambiguous subject or group is a page saying so (404),
//! never a server error; nothing secret is rendered (the settings and Duo's keys are not read
//! here).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use duoprov_sync::SyncError;
use duoprov_sync::explain::Explanation;
use serde::Deserialize;

use super::Console;
use super::auth::Caller;
use super::html::{esc, href, page, seg, table, time};

#[derive(Deserialize, Default)]
pub struct ExplainQuery {
    #[serde(default)]
    provisioner: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    live: Option<String>,
}

fn form(c: &Console, q: &ExplainQuery) -> String {
    let mut out = String::from("<form method=\"get\" action=\"/explain\"><label>Provisioner <select name=\"provisioner\">");
    for name in c.provisioners.keys() {
        let _ = write!(out, "<option value=\"{}\"{}>{}</option>", esc(name), if *name == q.provisioner { " selected" } else { "" }, esc(name));
    }
    let _ = write!(
        out,
        "</select></label> <label>Subject <input type=\"text\" name=\"subject\" size=\"24\" value=\"{}\" placeholder=\"SOURCE:ID, id or login\" required></label> \
         <label>Group <input type=\"text\" name=\"group\" size=\"32\" value=\"{}\" placeholder=\"optional: a registry group\"></label> \
         <label><input type=\"checkbox\" name=\"live\" value=\"1\"{}> read Duo for the next run</label> <button type=\"submit\">Explain</button></form>",
        esc(q.subject.trim()),
        esc(q.group.trim()),
        if q.live.is_some() { " checked" } else { "" }
    );
    out
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The explanation as HTML (every value escaped).
pub fn render(e: &Explanation, now: i64) -> String {
    let s = &e.subject;
    let who = s.login_id.clone().unwrap_or_else(|| s.id.clone());
    let mut out = format!(
        "<p>Subject <strong>{}</strong> ({}{}) under provisioner <a href=\"/provisioners/{}\">{}</a></p>",
        esc(&who),
        esc(&s.key().to_string()),
        s.name.as_deref().map(|n| format!(", {}", esc(n))).unwrap_or_default(),
        seg(&e.provisioner),
        esc(&e.provisioner)
    );
    out.push_str("<h2>Groups</h2>");
    if e.groups.is_empty() {
        let _ = write!(out, "<p class=\"empty\">{} is in none of the groups {} selects.</p>", esc(&who), esc(&e.provisioner));
    }
    let rows: Vec<Vec<String>> = e
        .groups
        .iter()
        .map(|g| {
            let marker = match &g.marker {
                Some(m) => esc(&m.to_string()),
                None => "no marker reaches it".into(),
            };
            let membership = if g.paths.is_empty() {
                "<span class=\"bad\">not a member, directly or through a nested group</span>".to_owned()
            } else {
                let lines: Vec<String> = g
                    .paths
                    .iter()
                    .map(|p| if p.len() == 1 { "direct member".to_owned() } else { format!("through {} ⊃ {}", esc(&p.join(" ⊃ ")), esc(&who)) })
                    .collect();
                lines.join("<br>")
            };
            let link = match &g.link {
                Some(l) => format!(
                    "{} {}{}",
                    l.duo_group_id.as_deref().map(esc).unwrap_or_else(|| "(no Duo id yet)".into()),
                    esc(&l.ownership),
                    if l.in_target { "" } else { ", no longer managed" }
                ),
                None => "<span class=\"empty\">no Duo group linked yet</span>".into(),
            };
            vec![esc(&g.name), format!("{} ({marker})", if g.selected { "selected" } else { "not selected" }), membership, link, yes(g.desired_member).into()]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&table(&["Group", "Selected by", "Membership", "Duo group", "Belongs in it"], &rows, ""));
    }

    out.push_str("<h2>Eligibility and fields</h2>");
    if e.eligibility.eligible {
        let _ = write!(out, "<p class=\"ok\">Eligible: {} is one of {}'s Duo users.</p>", esc(&who), esc(&e.provisioner));
    } else {
        out.push_str("<p class=\"bad\">Not eligible:</p><ul>");
        for r in &e.eligibility.reasons {
            let _ = write!(out, "<li>{}</li>", esc(r));
        }
        out.push_str("</ul>");
    }
    if let Some(f) = &e.rendered {
        let mut facts = vec![
            vec!["username".into(), esc(&f.username)],
            vec!["realname".into(), esc(&f.realname)],
            vec!["email".into(), esc(&f.email)],
            vec!["firstname".into(), esc(&f.firstname)],
            vec!["lastname".into(), esc(&f.lastname)],
        ];
        for (slot, a) in &f.aliases {
            facts.push(vec![format!("alias{slot}"), esc(a)]);
        }
        out.push_str(&table(&["Field", "Rendered"], &facts, ""));
    }
    for h in &e.held {
        let _ = write!(out, "<p class=\"bad\">Held: {} [{}]: {}</p>", esc(&h.object), esc(&h.code), esc(&h.message));
    }
    if !e.clash_with.is_empty() {
        let _ = write!(out, "<p class=\"bad\">The username clashes with {} (each is held until the templates or the subjects make them differ).</p>", esc(&e.clash_with.join(", ")));
    }

    out.push_str("<h2>Duo user</h2>");
    match &e.link {
        Some(l) => {
            let _ = write!(
                out,
                "<p>{} — {}{}</p>",
                l.duo_user_id.as_deref().map(esc).unwrap_or_else(|| "(no Duo id yet)".into()),
                esc(&l.ownership),
                if l.in_target { "" } else { ", no longer managed" }
            );
        }
        None => {
            let _ = write!(out, "<p class=\"empty\">None linked: duoprov has not created or adopted one for {}.</p>", esc(&who));
        }
    }
    let errors: Vec<Vec<String>> = e.recorded_errors.iter().map(|r| vec![esc(&r.object), esc(&r.code), esc(&r.message), time(now, r.at_ms.0)]).collect();
    if !errors.is_empty() {
        out.push_str("<h2>Recorded errors</h2>");
        out.push_str(&table(&["Object", "Code", "Message", "Since"], &errors, ""));
    }
    let retries: Vec<Vec<String>> = e.retries.iter().map(|r| vec![esc(&r.object), r.attempts.to_string(), time(now, r.next_at_ms.0), esc(&r.last_error)]).collect();
    if !retries.is_empty() {
        out.push_str("<h2>Retries</h2>");
        out.push_str(&table(&["Object", "Failures", "Next", "Last error"], &retries, ""));
    }
    out.push_str("<h2>Last run and next run</h2>");
    match &e.last_run {
        Some(r) => {
            let _ = write!(
                out,
                "<p>Last run of {}: <a href=\"/runs/{}\">#{}</a> {}{}, {}, {}</p>",
                esc(&e.provisioner),
                r.id,
                r.id,
                esc(r.kind.as_str()),
                if r.dry_run { " (dry run)" } else { "" },
                esc(r.status.as_str()),
                time(now, r.started_at_ms.0)
            );
        }
        None => out.push_str("<p class=\"empty\">No run yet.</p>"),
    }
    match &e.next_run {
        Some(n) => {
            let _ = write!(out, "<p>Next run (<code>duoprov sync {} --subject {}</code>, Duo read now):</p>", esc(&e.provisioner), esc(&s.key().to_string()));
            if n.ops.is_empty() {
                out.push_str("<p class=\"ok\">Nothing to do.</p>");
            } else {
                let plan = duoprov_plan::Plan { provisioner: e.provisioner.clone(), ops: n.ops.clone(), ..Default::default() };
                let _ = write!(out, "<pre>{}</pre>", esc(&duoprov_plan::render::text(&plan)));
            }
            for h in &n.held {
                let _ = write!(out, "<p class=\"bad\">Held: {} [{}]: {}</p>", esc(&h.object), esc(&h.code), esc(&h.message));
            }
        }
        None => {
            let mut pairs = vec![("provisioner", e.provisioner.clone()), ("subject", s.key().to_string())];
            if let Some(g) = &e.asked_group {
                pairs.push(("group", g.clone()));
            }
            pairs.push(("live", "1".into()));
            let _ = write!(out, "<p class=\"note\"><a href=\"{}\">Read Duo</a> for the exact operations a sync of {} would apply now.</p>", esc(&href("/explain", &pairs)), esc(&who));
        }
    }
    out
}

/// `/explain`.
pub async fn explain(State(c): State<Arc<Console>>, Query(mut q): Query<ExplainQuery>, Extension(caller): Extension<Caller>) -> Response {
    if q.provisioner.is_empty()
        && let Some(first) = c.provisioners.keys().next()
    {
        q.provisioner = first.clone();
    }
    let mut body = form(&c, &q);
    let subject = q.subject.trim().to_owned();
    if subject.is_empty() {
        body.push_str("<p class=\"empty\">Name a subject (SOURCE:ID, its id or its login) to see why it is, or is not, in the provisioner's Duo groups.</p>");
        return Html(page("Explain", &body)).into_response();
    }
    let Some(info) = c.provisioners.get(&q.provisioner) else {
        body.push_str(&format!("<p class=\"bad\">This daemon runs no provisioner named {}.</p>", esc(&q.provisioner)));
        return (StatusCode::NOT_FOUND, Html(page("Explain", &body))).into_response();
    };
    let Some((settings, duo)) = &info.sync else {
        body.push_str(&format!("<p class=\"bad\">This console has no sync settings for {}; run <code>duoprov explain</code>.</p>", esc(&q.provisioner)));
        return (StatusCode::NOT_FOUND, Html(page("Explain", &body))).into_response();
    };
    let group = Some(q.group.trim()).filter(|g| !g.is_empty());
    let unknown = |m: String, body: &mut String| {
        let _ = write!(body, "<p class=\"bad\">{}</p>", esc(&m));
        (StatusCode::NOT_FOUND, Html(page("Explain", body))).into_response()
    };
    let mut e = match duoprov_sync::explain::explain(&*c.store, settings, &subject, group).await {
        Ok(e) => e,
        Err(SyncError::NotFound(m) | SyncError::Scope(m)) => return unknown(m, &mut body),
        Err(e) => return super::pages::failed(&format!("explaining {subject}"), e),
    };
    if q.live.is_some() {
        match duoprov_sync::explain::next_run(&*c.store, duo, settings, &mut e).await {
            Ok(()) => {}
            Err(SyncError::NotFound(m) | SyncError::Scope(m)) => return unknown(m, &mut body),
            Err(err) => {
                let _ = write!(body, "<p class=\"bad\">Reading Duo for the next run failed: {}</p>", esc(&err.to_string()));
            }
        }
    }
    body.push_str(&render(&e, duoprov_sync::now_ms()));
    // Fixed what held it back? Sync it alone now, as `duoprov sync P --subject S`.
    let _ = write!(
        body,
        "<h2>Retry</h2><p>{} <span class=\"note\">(as <code>duoprov sync {} --subject {}</code>, by the daemon leading {}, never beside another run)</span></p>",
        super::pages::retry_form(&e.provisioner, "user", &e.subject.key().to_string(), &caller).trim_start(),
        esc(&e.provisioner),
        esc(&e.subject.key().to_string()),
        esc(&e.provisioner)
    );
    Html(page(&format!("Explain {subject}"), &body)).into_response()
}
