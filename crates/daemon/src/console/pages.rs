//! The console's pages and actions. Every value shown goes through `html::esc`; every list is a
//! page cut in SQL (50 rows) with links to the next and previous pages.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use duoprov_registry::{LinkKind, RetryTarget, RunKind, RunRecord, RunStatus};
use serde::Deserialize;
use serde_json::Value;

use super::Console;
use super::auth::{Caller, csrf_field, csrf_refusal};
use super::html::{duration_ms, esc, href, page, seg, table, time};

/// Rows on one page of a list.
pub const PAGE: u32 = 50;

/// A failure of the registry behind a page, as a page.
pub(crate) fn failed(what: &str, e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "Console: {what} failed.");
    let body = page("Registry error", &format!("<p class=\"bad\">{}: {}</p>", esc(what), esc(&e.to_string())));
    (StatusCode::INTERNAL_SERVER_ERROR, Html(body)).into_response()
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, Html(page("Not found", &format!("<p>{}</p><p><a href=\"/\">Overview</a></p>", esc(what))))).into_response()
}

/// Grouper's code for one of duoprov's object error codes: its plan codes are Grouper's already
/// (INV, LEN, REQ, DNE, MAT); a write Duo refused (`ERR`, `FORBIDDEN`) and anything else is ERR.
pub fn grouper_code(code: &str) -> &'static str {
    match code {
        "INV" => "INV",
        "LEN" => "LEN",
        "REQ" => "REQ",
        "DNE" => "DNE",
        "MAT" => "MAT",
        _ => "ERR",
    }
}

/// What a run's recorded report says, read leniently (older runs lack newer fields).
struct RunView<'a> {
    r: &'a RunRecord,
    /// What triggered the run, as the run log recorded it (older runs have none).
    triggered_by: Option<&'a String>,
}

impl RunView<'_> {
    fn n(&self, path: &[&str]) -> i64 {
        let mut v = &self.r.counts;
        for p in path {
            v = &v[*p];
        }
        v.as_i64().unwrap_or(0)
    }

    fn counts(&self, object: &str) -> String {
        let (c, u, d, f) = (self.n(&[object, "created"]), self.n(&[object, "updated"]), self.n(&[object, "deleted"]), self.n(&[object, "failed"]));
        let mut s = format!("+{c} ~{u} −{d}");
        if f > 0 {
            let _ = write!(s, " <span class=\"bad\">{f} failed</span>");
        }
        s
    }

    fn calls(&self) -> i64 {
        self.n(&["read_calls"]) + self.n(&["write_calls"])
    }

    fn rate_limited(&self) -> i64 {
        self.r.counts["duo_classes"].as_array().map(|a| a.iter().map(|c| c["rate_limited"].as_i64().unwrap_or(0)).sum()).unwrap_or(0)
    }

    /// What started the run: as recorded (an escalation with its reason); else the kind's usual
    /// cause.
    fn trigger(&self) -> String {
        if let Some(reason) = self.r.counts["escalated"].as_str() {
            return format!("{} — escalated: {reason}", self.triggered_by.map(String::as_str).unwrap_or("change log"));
        }
        if let Some(t) = self.triggered_by {
            return t.clone();
        }
        match self.r.kind {
            RunKind::Full => "full sync".into(),
            _ => "registry changes".into(),
        }
    }

    fn duration(&self) -> String {
        self.r.finished_at_ms.map(|f| duration_ms(f.0 - self.r.started_at_ms.0)).unwrap_or_else(|| "running".into())
    }
}

fn status_cell(status: RunStatus) -> String {
    let class = match status {
        RunStatus::Succeeded => "ok",
        RunStatus::Running => "",
        _ => "bad",
    };
    format!("<span class=\"{class}\">{}</span>", esc(status.as_str()))
}

/// A run as a link with its result and time.
fn run_cell(now: i64, r: Option<&RunRecord>) -> String {
    match r {
        None => "<span class=\"empty\">none yet</span>".into(),
        Some(r) => format!("<a href=\"/runs/{}\">{}</a> {}", r.id, status_cell(r.status), time(now, r.finished_at_ms.unwrap_or(r.started_at_ms).0)),
    }
}

pub async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")], super::html::CSS).into_response()
}

/// `/`: every provisioner and source at a glance.
pub async fn overview(State(c): State<Arc<Console>>) -> Response {
    let now = duoprov_sync::now_ms();
    let statuses = c.shared.provisioners.lock().map(|m| m.clone()).unwrap_or_default();
    let last_seq = match c.store.last_change_seq().await {
        Ok(s) => s,
        Err(e) => return failed("reading the change log", e),
    };
    let mut rows = Vec::new();
    for name in c.provisioners.keys() {
        let runs = match c.store.run_page(name, None, 100).await {
            Ok(r) => r,
            Err(e) => return failed(&format!("reading the runs of {name}"), e),
        };
        let last_full = runs.iter().find(|r| r.kind == RunKind::Full && !r.dry_run);
        // A run of one object (a retry) is neither.
        let last_incremental = runs.iter().find(|r| r.kind == RunKind::Incremental && !r.dry_run);
        let lag = match c.store.checkpoint(name).await {
            Ok(Some(cp)) => format!("{} entries", (last_seq - cp.last_seq).max(0)),
            Ok(None) => "no full sync yet".into(),
            Err(e) => return failed(&format!("reading the checkpoint of {name}"), e),
        };
        // Through the partial error indexes: no scan of a million membership links.
        let in_error: i64 = match c.store.links_in_error(name).await {
            Ok(n) => n,
            Err(e) => return failed(&format!("counting the links of {name} in error"), e),
        };
        let status = statuses.get(name).cloned().unwrap_or_default();
        let mut role = esc(&status.role);
        if status.running_since_ms.is_some() {
            role.push_str(" (running)");
        }
        if let Some(e) = &status.last_error {
            let _ = write!(role, " <span class=\"bad\" title=\"{}\">last attempt failed</span>", esc(e));
        }
        let next = match (status.role.as_str(), c.shared.steering.next_full(name)) {
            ("holder", Some(t)) if t == i64::MAX => "never (the cron expression has no next time)".into(),
            ("holder", Some(t)) => time(now, t),
            ("holder", None) => "after the first run".into(),
            _ => "by the leading daemon".into(),
        };
        let errors = if in_error > 0 { format!("<span class=\"bad\">{in_error}</span>") } else { "0".into() };
        rows.push(vec![
            format!("<a href=\"/provisioners/{}\">{}</a>", seg(name), esc(name)),
            role,
            run_cell(now, last_full),
            run_cell(now, last_incremental),
            esc(&lag),
            errors,
            c.shared.metrics.rate_limited_last_hour(name, now).to_string(),
            next,
        ]);
    }
    let mut body = table(
        &["Provisioner", "Role", "Last full sync", "Last incremental sync", "Change-log lag", "Objects in error", "429s (last hour)", "Next full sync"],
        &rows,
        "This daemon runs no provisioner.",
    );
    body.push_str("<h2>Sources</h2>");
    match c.store.source_runs().await {
        Ok(sources) => {
            let rows: Vec<Vec<String>> = sources
                .iter()
                .map(|s| {
                    let class = if matches!(s.result.as_str(), "applied" | "unchanged") { "ok" } else { "bad" };
                    vec![esc(&s.source), format!("<span class=\"{class}\">{}</span>", esc(&s.result)), time(now, s.at_ms)]
                })
                .collect();
            body.push_str(&table(&["Source", "Last result", "When"], &rows, "No source has run (`duoprov source sync`)."));
        }
        Err(e) => return failed("reading the source runs", e),
    }
    Html(page("Overview", &body)).into_response()
}

#[derive(Deserialize, Default)]
pub struct LinkQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    page: u32,
    /// User links: the page after this `SOURCE:ID` (keyset paging).
    #[serde(default)]
    after: String,
    /// User links: the page before this `SOURCE:ID`.
    #[serde(default)]
    before: String,
}

/// `SOURCE:ID` as a key, for a keyset cursor.
fn key_of(text: &str) -> Option<duoprov_model::SubjectKey> {
    text.split_once(':').map(|(source, id)| duoprov_model::SubjectKey::new(source, id))
}

/// The pager of a keyset page: its total, and links to the first, previous and next pages.
fn key_pager(path: &str, pairs: &[(&str, String)], page: &duoprov_registry::KeyPage) -> String {
    let mut out = format!("<p class=\"pager\">{} in all ", page.total);
    let link = |extra: Option<(&'static str, String)>| {
        let mut v: Vec<(&str, String)> = pairs.to_vec();
        v.extend(extra);
        href(path, &v)
    };
    if page.more_before {
        let _ = write!(out, "<a href=\"{}\">first page</a>", esc(&link(None)));
        if let Some(first) = page.rows.first() {
            let _ = write!(out, "<a rel=\"prev\" href=\"{}\">← previous</a>", esc(&link(Some(("before", first.name.clone())))));
        }
    }
    if page.more_after
        && let Some(last) = page.rows.last()
    {
        let _ = write!(out, "<a rel=\"next\" href=\"{}\">next →</a>", esc(&link(Some(("after", last.name.clone())))));
    }
    out.push_str("</p>");
    out
}

fn pager(path: &str, pairs: &[(&str, String)], page_no: u32, total: i64) -> String {
    let pages = ((total.max(0) as u64).div_ceil(u64::from(PAGE))).max(1);
    let mut out = format!("<p class=\"pager\">Page {} of {pages} ({total} in all) ", page_no + 1);
    let with_page = |p: u32| {
        let mut v: Vec<(&str, String)> = pairs.to_vec();
        v.push(("page", if p == 0 { String::new() } else { p.to_string() }));
        href(path, &v)
    };
    if page_no > 0 {
        let _ = write!(out, "<a rel=\"prev\" href=\"{}\">← previous</a>", esc(&with_page(page_no - 1)));
    }
    if u64::from(page_no) + 1 < pages {
        let _ = write!(out, "<a rel=\"next\" href=\"{}\">next →</a>", esc(&with_page(page_no + 1)));
    }
    out.push_str("</p>");
    out
}

/// `/provisioners/{name}`.
pub async fn provisioner(State(c): State<Arc<Console>>, Path(name): Path<String>, Query(q): Query<LinkQuery>, Extension(caller): Extension<Caller>) -> Response {
    let Some(info) = c.provisioners.get(&name) else { return not_found(&format!("This daemon runs no provisioner named {name}.")) };
    let now = duoprov_sync::now_ms();
    let status = c.shared.provisioners.lock().ok().and_then(|m| m.get(&name).cloned()).unwrap_or_default();
    let mut body = format!(
        "<p>Role: <strong>{}</strong>{} · full syncs {} · <a href=\"/provisioners/{}/runs\">run history</a></p>",
        esc(&status.role),
        if status.running_since_ms.is_some() { " (a run is under way)" } else { "" },
        esc(&info.schedule),
        seg(&name)
    );

    // Actions.
    body.push_str("<h2>Actions</h2>");
    // The requests wait in the registry for whichever daemon leads the provisioner.
    let requests = match c.store.console_requests(&name).await {
        Ok(r) => r,
        Err(e) => return failed(&format!("reading the console requests of {name}"), e),
    };
    let turn = if status.role == "standby" { "waiting for the daemon leading it" } else { "waiting for its turn" };
    let _ = write!(
        body,
        "<form class=\"inline\" method=\"post\" action=\"/provisioners/{}/full-sync\">{}<button type=\"submit\">Run a full sync now</button></form>",
        seg(&name),
        csrf_field(&caller)
    );
    for r in &requests {
        let state = if r.claimed_at_ms.is_some() { "under way" } else { turn };
        let what = match &r.kind {
            duoprov_registry::RequestKind::FullSync => "A full sync".to_owned(),
            duoprov_registry::RequestKind::Retry(object) => format!("A retry of {object}"),
        };
        let _ = write!(body, "<p class=\"note request\">{} asked for by {} {} is {state}.</p>", esc(&what), esc(&r.who), time(now, r.at_ms));
    }
    let _ = write!(body, "<p><a href=\"{}\">Explain a subject</a> (why it is, or is not, in a Duo group)</p>", esc(&href("/explain", &[("provisioner", name.clone())])));
    let approval = match c.store.pending_approval(&name).await {
        Ok(a) => a,
        Err(e) => return failed(&format!("reading the approval of {name}"), e),
    };

    // The refused plan, as the registry keeps it (one per provisioner, until a run succeeds).
    let refused = match c.store.refused_plan(&name).await {
        Ok(r) => r,
        Err(e) => return failed(&format!("reading the refused plan of {name}"), e),
    };
    body.push_str("<h2>Last refused plan</h2>");
    match refused {
        None => {
            body.push_str("<p class=\"empty\">No refused plan: no run has been refused, or a run has succeeded since.</p>");
            if let Some(a) = &approval {
                let _ = write!(
                    body,
                    "<p class=\"note\">The removals with digest <code class=\"digest\">{}</code>, approved by {} {}, wait for the next full sync.</p>",
                    esc(&a.digest),
                    esc(&a.who),
                    time(now, a.at_ms)
                );
            }
        }
        Some(r) => {
            let _ = write!(body, "<p>The {} sync {} was refused by the safety rules; nothing changed:</p><ul>", esc(&r.kind), time(now, r.at_ms));
            for reason in &r.reasons {
                let _ = write!(body, "<li>{}</li>", esc(reason));
            }
            let count = usize::try_from(r.removal_count).unwrap_or(0).max(r.removals.len());
            let _ = write!(body, "</ul><p>It would make {}, digest <code class=\"digest\">{}</code>:</p><ul class=\"removals\">", esc(&duoprov_model::counted(count, "removal", "removals")), esc(&r.digest));
            for removal in &r.removals {
                let _ = write!(body, "<li>{}</li>", esc(removal));
            }
            if count > r.removals.len() {
                let _ = write!(body, "<li class=\"note\">… and {} more (see <code>duoprov plan {}</code>)</li>", count - r.removals.len(), esc(&name));
            }
            body.push_str("</ul>");
            if let Some(a) = approval.as_ref().filter(|a| a.digest == r.digest) {
                let _ = write!(body, "<p class=\"note\">Approved by {} {}; the next full sync applies exactly these removals.</p>", esc(&a.who), time(now, a.at_ms));
            } else {
                let _ = write!(
                    body,
                    "<form method=\"post\" action=\"/provisioners/{}/approve\">{}<input type=\"hidden\" name=\"digest\" value=\"{}\">\
                     <button type=\"submit\">Approve exactly these removals</button> <span class=\"note\">(as <code>duoprov sync {} --approve {}</code>: the next full sync applies them, and is refused if the list has changed)</span></form>",
                    seg(&name),
                    csrf_field(&caller),
                    esc(&r.digest),
                    esc(&name),
                    esc(&r.digest)
                );
            }
        }
    }

    // Link counts.
    body.push_str("<h2>Links</h2>");
    // Kept with the links (migration 0019's triggers): exact, and three rows to read.
    let counts = match c.store.link_counts(&name).await {
        Ok(counts) => counts,
        Err(e) => return failed(&format!("counting the links of {name}"), e),
    };
    let rows: Vec<Vec<String>> = counts
        .iter()
        .map(|k| vec![esc(&k.kind), k.total.to_string(), k.in_target.to_string(), k.linked.to_string(), k.created_by_us.to_string(), k.in_error.to_string()])
        .collect();
    body.push_str(&table(&["Kind", "Links", "In target", "Linked in Duo", "Created by duoprov", "In error"], &rows, "No links."));

    // The searchable list.
    let kind = LinkKind::parse(&q.kind).unwrap_or(LinkKind::Groups);
    let search = q.q.trim().to_owned();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/provisioners/{}\"><label>Search <input type=\"search\" name=\"q\" value=\"{}\" title=\"groups: the start of the name, or of the name within a folder; users: the start of the login or the id (or SOURCE:ID…)\"></label> \
         <select name=\"kind\"><option value=\"groups\"{}>groups</option><option value=\"users\"{}>users</option></select> <button type=\"submit\">Search</button></form>",
        seg(&name),
        esc(&search),
        if kind == LinkKind::Groups { " selected" } else { "" },
        if kind == LinkKind::Users { " selected" } else { "" }
    );
    // User links by key (a deep page costs what the first does), searched by prefix through
    // an index; group links (thousands, not hundreds of thousands) by offset.
    let (links, key_page) = match kind {
        LinkKind::Users => {
            let cursor = match (key_of(q.after.trim()), key_of(q.before.trim())) {
                (Some(k), _) => duoprov_registry::Cursor::After(k),
                (None, Some(k)) => duoprov_registry::Cursor::Before(k),
                (None, None) => duoprov_registry::Cursor::First,
            };
            match c.store.user_link_page(&name, Some(&search), &cursor, PAGE).await {
                Ok(p) => (duoprov_registry::Paged { rows: p.rows.clone(), total: p.total }, Some(p)),
                Err(e) => return failed(&format!("reading the user links of {name}"), e),
            }
        }
        LinkKind::Groups => match c.store.link_page(&name, kind, Some(&search), q.page.saturating_mul(PAGE), PAGE).await {
            Ok(p) => (p, None),
            Err(e) => return failed(&format!("reading the links of {name}"), e),
        },
    };
    let rows: Vec<Vec<String>> = links
        .rows
        .iter()
        .map(|l| {
            let explain = match kind {
                LinkKind::Users => href("/explain", &[("provisioner", name.clone()), ("subject", l.name.clone())]),
                LinkKind::Groups => href("/explain", &[("provisioner", name.clone()), ("group", l.name.clone())]),
            };
            let mut name_cell = format!("<a href=\"{}\" title=\"explain\">{}</a>", esc(&explain), esc(&l.name));
            if let Some(login) = &l.login {
                let _ = write!(name_cell, " <span class=\"note\">({})</span>", esc(login));
            }
            if l.error_code.is_some() {
                let object_kind = if kind == LinkKind::Users { "user" } else { "group" };
                name_cell.push_str(&retry_form(&name, object_kind, &l.name, &caller));
            }
            vec![
                name_cell,
                l.duo_id.as_deref().map(esc).unwrap_or_else(|| "<span class=\"empty\">not in Duo</span>".into()),
                if l.in_target { "yes".into() } else { "no".into() },
                if l.created_by_us { "yes".into() } else { "adopted".into() },
                l.provisioned_at_ms.map(|t| time(now, t)).unwrap_or_default(),
                l.error_code.as_deref().map(|code| format!("<span class=\"bad\">{}</span> {}", grouper_code(code), esc(l.error_message.as_deref().unwrap_or("")))).unwrap_or_default(),
            ]
        })
        .collect();
    body.push_str(&table(&["Name", "Duo id", "In target", "Created by duoprov", "Last provisioned", "Error"], &rows, "No link matches."));
    let pairs = [("q", search.clone()), ("kind", kind.as_str().to_owned())];
    match &key_page {
        Some(p) => body.push_str(&key_pager(&format!("/provisioners/{}", seg(&name)), &pairs, p)),
        None => body.push_str(&pager(&format!("/provisioners/{}", seg(&name)), &pairs, q.page, links.total)),
    }

    // Objects in error.
    body.push_str("<h2>Objects in error</h2>");
    let errors = match c.store.object_errors(&name, 100).await {
        Ok(e) => e,
        Err(e) => return failed(&format!("reading the errors of {name}"), e),
    };
    let retries = c.store.retries(&name, None).await.unwrap_or_default();
    let mut uuids: Vec<String> = errors.iter().filter(|e| e.kind != "user").map(|e| e.object.split(' ').next().unwrap_or("").to_owned()).collect();
    uuids.extend(retries.iter().filter_map(|r| r.target.group_uuid().map(str::to_owned)));
    let names = c.store.group_names(&uuids).await.unwrap_or_default();
    let group = |uuid: &str| names.get(uuid).cloned().unwrap_or_else(|| format!("a group no longer in the registry ({uuid})"));
    let next_retry: HashMap<String, i64> = retries
        .iter()
        .map(|r| {
            let key = match &r.target {
                RetryTarget::Group { group_uuid } | RetryTarget::WholeGroup { group_uuid } => group_uuid.clone(),
                RetryTarget::User { subject } => format!("{}:{}", subject.source, subject.id),
                RetryTarget::Membership { group_uuid, subject } => format!("{group_uuid} {}:{}", subject.source, subject.id),
            };
            (key, r.next_at_ms.0)
        })
        .collect();
    let rows: Vec<Vec<String>> = errors
        .iter()
        .map(|e| {
            let retry = match e.kind.as_str() {
                "user" => retry_form(&name, "user", &e.object, &caller),
                "group" => names.get(&e.object).map(|g| retry_form(&name, "group", g, &caller)).unwrap_or_default(),
                _ => String::new(),
            };
            let object = match e.kind.as_str() {
                "group" => group(&e.object),
                "membership" => match e.object.split_once(' ') {
                    Some((uuid, subject)) => format!("{subject} in {}", group(uuid)),
                    None => e.object.clone(),
                },
                _ => e.object.clone(),
            };
            vec![
                format!("<span class=\"bad\" title=\"{}\">{}</span>", esc(&e.code), grouper_code(&e.code)),
                esc(&e.kind),
                esc(&object),
                esc(&e.message),
                time(now, e.at_ms.0),
                next_retry.get(&e.object).map(|t| time(now, *t)).unwrap_or_else(|| "at the next full sync".into()),
                retry,
            ]
        })
        .collect();
    body.push_str(&table(&["Code", "Kind", "Object", "Message", "Since", "Next retry", ""], &rows, "No object is in error."));

    // Settings and actions.
    let _ = write!(body, "<h2>Settings as understood</h2><pre>{}</pre>", esc(&info.settings));
    body.push_str("<h2 id=\"actions\">Console actions</h2>");
    let actions = match c.store.console_actions(&name, ACTIONS_SHOWN).await {
        Ok(a) => a,
        Err(e) => return failed(&format!("reading the console actions on {name}"), e),
    };
    let rows: Vec<Vec<String>> = actions.iter().map(|a| vec![time(now, a.at_ms), esc(&a.who), esc(&a.what)]).collect();
    body.push_str(&table(&["When", "Who", "What"], &rows, "No console action yet."));
    body.push_str("<p class=\"note\">Kept in the audit trail (<code>duoprov audit</code>).</p>");
    Html(page(&format!("Provisioner {name}"), &body)).into_response()
}

#[derive(Deserialize, Default)]
pub struct RunsQuery {
    /// Show runs older than this run id.
    #[serde(default)]
    before: Option<i64>,
}

/// `/provisioners/{name}/runs`.
pub async fn runs(State(c): State<Arc<Console>>, Path(name): Path<String>, Query(q): Query<RunsQuery>) -> Response {
    if !c.provisioners.contains_key(&name) {
        return not_found(&format!("This daemon runs no provisioner named {name}."));
    }
    let now = duoprov_sync::now_ms();
    let runs = match c.store.run_page(&name, q.before, PAGE).await {
        Ok(r) => r,
        Err(e) => return failed(&format!("reading the runs of {name}"), e),
    };
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let triggers = match c.store.run_triggers(&ids).await {
        Ok(t) => t,
        Err(e) => return failed(&format!("reading what triggered the runs of {name}"), e),
    };
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let v = RunView { r, triggered_by: triggers.get(&r.id) };
            let kind = if r.dry_run { format!("{} (dry run)", r.kind.as_str()) } else { r.kind.as_str().to_owned() };
            vec![
                format!("<a href=\"/runs/{}\">{}</a>", r.id, r.id),
                esc(&kind),
                esc(&v.trigger()),
                status_cell(r.status),
                time(now, r.started_at_ms.0),
                esc(&v.duration()),
                v.counts("groups"),
                v.counts("users"),
                v.counts("memberships"),
                v.calls().to_string(),
                v.rate_limited().to_string(),
            ]
        })
        .collect();
    let mut body = format!("<p><a href=\"/provisioners/{}\">← {}</a></p>", seg(&name), esc(&name));
    body.push_str(&table(&["Run", "Kind", "Trigger", "Result", "Started", "Duration", "Groups", "Users", "Memberships", "Duo calls", "429s"], &rows, "No run yet."));
    if runs.len() == PAGE as usize
        && let Some(last) = runs.last()
    {
        let _ = write!(body, "<p class=\"pager\"><a rel=\"next\" href=\"/provisioners/{}/runs?before={}\">older runs →</a></p>", seg(&name), last.id);
    }
    Html(page(&format!("Runs of {name}"), &body)).into_response()
}

/// `/runs/{id}`.
pub async fn run(State(c): State<Arc<Console>>, Path(id): Path<i64>) -> Response {
    let now = duoprov_sync::now_ms();
    let r = match c.store.run_by_id(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(&format!("There is no run {id} in the run log (it may have been pruned).")),
        Err(e) => return failed(&format!("reading run {id}"), e),
    };
    let triggers = match c.store.run_triggers(&[id]).await {
        Ok(t) => t,
        Err(e) => return failed(&format!("reading what triggered run {id}"), e),
    };
    let v = RunView { r: &r, triggered_by: triggers.get(&id) };
    let mut body = format!("<p><a href=\"/provisioners/{}/runs\">← runs of {}</a></p>", seg(&r.provisioner), esc(&r.provisioner));
    let facts = vec![
        vec!["Provisioner".into(), format!("<a href=\"/provisioners/{}\">{}</a>", seg(&r.provisioner), esc(&r.provisioner))],
        vec!["Kind".into(), esc(&format!("{}{}", r.kind.as_str(), if r.dry_run { " (dry run)" } else { "" }))],
        vec!["Trigger".into(), esc(&v.trigger())],
        vec!["Result".into(), status_cell(r.status)],
        vec!["Started".into(), time(now, r.started_at_ms.0)],
        vec!["Duration".into(), esc(&v.duration())],
        vec!["Groups".into(), v.counts("groups")],
        vec!["Users".into(), v.counts("users")],
        vec!["Memberships".into(), v.counts("memberships")],
        vec!["Duo calls".into(), format!("{} reads, {} writes, {} answered 429", v.n(&["read_calls"]), v.n(&["write_calls"]), v.rate_limited())],
        vec!["Message".into(), esc(r.message.as_deref().unwrap_or(""))],
    ];
    body.push_str(&table(&["", ""], &facts, ""));
    for (title, key) in [("Failures", "failures"), ("Held by plan errors", "held_objects")] {
        let _ = write!(body, "<h2>{title}</h2>");
        let items = r.counts[key].as_array().cloned().unwrap_or_default();
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|f| {
                let code = f["code"].as_str().unwrap_or("");
                vec![
                    format!("<span class=\"bad\" title=\"{}\">{}</span>", esc(code), grouper_code(code)),
                    esc(f["object"].as_str().unwrap_or("")),
                    esc(f["message"].as_str().unwrap_or("")),
                ]
            })
            .collect();
        body.push_str(&table(&["Code", "Object", "Message"], &rows, "None."));
    }
    let timings: Vec<Vec<String>> = match &r.timings {
        Value::Array(a) => a.iter().filter_map(|t| Some(vec![esc(t[0].as_str()?), esc(&duration_ms(t[1].as_i64()?))])).collect(),
        _ => Vec::new(),
    };
    body.push_str("<h2>Phases</h2>");
    body.push_str(&table(&["Phase", "Took"], &timings, "Not recorded."));
    Html(page(&format!("Run {id}"), &body)).into_response()
}

#[derive(Deserialize, Default, Clone)]
pub struct UsersQuery {
    #[serde(default)]
    provisioner: String,
    #[serde(default)]
    not_in_registry: Option<String>,
    #[serde(default)]
    not_enrolled: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    stale_login: String,
    /// Methods as `duoprov report --has/--lacks/--only`: comma-separated names, any case.
    #[serde(default)]
    has: String,
    #[serde(default)]
    lacks: String,
    #[serde(default)]
    only: String,
    #[serde(default)]
    page: u32,
}

impl UsersQuery {
    fn filter(&self) -> Result<duoprov_sync::duo_user_report::ReportFilter, String> {
        let stale = self.stale_login.trim();
        let stale_login_days = if stale.is_empty() {
            None
        } else {
            Some(stale.parse::<u32>().map_err(|_| format!("stale login: expected a whole number of days, not {stale:?}"))?)
        };
        Ok(duoprov_sync::duo_user_report::ReportFilter {
            not_in_registry: self.not_in_registry.is_some(),
            not_enrolled: self.not_enrolled.is_some(),
            status: Some(self.status.trim().to_owned()).filter(|s| !s.is_empty()),
            stale_login_days,
            has_methods: duoprov_sync::duo_user_report::parse_methods("has", std::slice::from_ref(&self.has))?,
            lacks_methods: duoprov_sync::duo_user_report::parse_methods("lacks", std::slice::from_ref(&self.lacks))?,
            only_methods: duoprov_sync::duo_user_report::parse_methods("only", std::slice::from_ref(&self.only))?,
        })
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("provisioner", self.provisioner.clone()),
            ("not_in_registry", self.not_in_registry.as_ref().map(|_| "1".to_owned()).unwrap_or_default()),
            ("not_enrolled", self.not_enrolled.as_ref().map(|_| "1".to_owned()).unwrap_or_default()),
            ("status", self.status.trim().to_owned()),
            ("stale_login", self.stale_login.trim().to_owned()),
            ("has", self.has.trim().to_owned()),
            ("lacks", self.lacks.trim().to_owned()),
            ("only", self.only.trim().to_owned()),
        ]
    }
}

/// How "not in the registry" was answered, for the page to say.
enum NotInRegistryBy {
    /// By the usernames the provisioner's runs recorded for its selected subjects (current
    /// under its rendering fingerprint), in SQL; when they were last replaced whole.
    Recorded { at_ms: Option<i64> },
    /// By rendering the username template for every registry subject here, and why.
    Rendered { why: &'static str },
}

/// The page of Duo users the query asks for, and the total: in SQL when every filter is —
/// "not in the registry" by the template through the recorded usernames when they are current
/// (an anti-join of `duo_user` against `rendered_username`) — else rendered here and cut.
async fn users_page(c: &Console, q: &UsersQuery, offset: u32, limit: u32) -> Result<(Vec<duoprov_registry::DuoUserRow>, i64, Option<NotInRegistryBy>), Response> {
    let filter = q.filter().map_err(|e| (StatusCode::BAD_REQUEST, Html(page("Duo users", &format!("<p class=\"bad\">{}</p>", esc(&e))))).into_response())?;
    let info = c.provisioners.get(&q.provisioner);
    let mapping = info.map(|p| p.mapping.clone());
    let now_secs = duoprov_sync::now_ms() / 1000;
    if filter.pages_in_sql(mapping.as_deref()) {
        let sql = filter.sql(mapping.as_deref(), now_secs);
        let paged = c.store.duo_user_page(&q.provisioner, &sql, offset, limit).await.map_err(|e| failed("reading the Duo users", e))?;
        return Ok((paged.rows, paged.total, None));
    }
    let state = c.store.rendered_report_state(&q.provisioner).await.map_err(|e| failed("reading the recorded usernames", e))?;
    let why = match (info.and_then(|i| i.rendering_fingerprint.as_deref()), state.fingerprint.as_deref()) {
        (None, _) => Some("this console does not know the provisioner's rendering settings"),
        (Some(_), None) => Some("no run of the provisioner has recorded its usernames yet"),
        (Some(now), Some(recorded)) if now != recorded => Some("the usernames were recorded under other templates or selection settings; the next run records them again"),
        _ if state.unkeyed_duo_users > 0 => Some("some Duo users were loaded by an older duoprov; the next load of the Duo users fixes this"),
        _ => None,
    };
    match why {
        None => {
            let mut sql = filter.sql(mapping.as_deref(), now_secs);
            sql.not_rendered_by = Some(q.provisioner.clone());
            let paged = c.store.duo_user_page(&q.provisioner, &sql, offset, limit).await.map_err(|e| failed("reading the Duo users", e))?;
            Ok((paged.rows, paged.total, Some(NotInRegistryBy::Recorded { at_ms: state.recorded_at_ms })))
        }
        Some(why) => {
            let rows = duoprov_sync::duo_user_report::rows(&*c.store, &*c.store, &q.provisioner, mapping.as_deref(), &filter, now_secs)
                .await
                .map_err(|e| failed("reading the Duo users", e))?;
            let total = rows.len() as i64;
            Ok((rows.into_iter().skip(offset as usize).take(limit as usize).collect(), total, Some(NotInRegistryBy::Rendered { why })))
        }
    }
}

/// `/duo-users`: `duoprov report P users` in the browser.
pub async fn duo_users(State(c): State<Arc<Console>>, Query(mut q): Query<UsersQuery>) -> Response {
    let now = duoprov_sync::now_ms();
    if q.provisioner.is_empty()
        && let Some(first) = c.provisioners.keys().next()
    {
        q.provisioner = first.clone();
    }
    let mut body = String::from("<form method=\"get\" action=\"/duo-users\"><label>Provisioner <select name=\"provisioner\">");
    for name in c.provisioners.keys() {
        let _ = write!(body, "<option value=\"{}\"{}>{}</option>", esc(name), if *name == q.provisioner { " selected" } else { "" }, esc(name));
    }
    let _ = write!(
        body,
        "</select></label> <label><input type=\"checkbox\" name=\"not_in_registry\" value=\"1\"{}> not in the registry</label> \
         <label><input type=\"checkbox\" name=\"not_enrolled\" value=\"1\"{}> not enrolled</label> \
         <label>Status <input type=\"text\" name=\"status\" size=\"10\" value=\"{}\"></label> \
         <label>No login for <input type=\"number\" min=\"0\" name=\"stale_login\" size=\"5\" value=\"{}\"> days</label> \
         <label title=\"at least one of each\">Has <input type=\"text\" name=\"has\" size=\"12\" value=\"{}\"></label> \
         <label title=\"none of each (known)\">Lacks <input type=\"text\" name=\"lacks\" size=\"12\" value=\"{}\"></label> \
         <label title=\"these methods and no other\">Only <input type=\"text\" name=\"only\" size=\"12\" value=\"{}\"></label> \
         <button type=\"submit\">Filter</button></form><p class=\"note\">Methods, comma-separated: {}.</p>",
        if q.not_in_registry.is_some() { " checked" } else { "" },
        if q.not_enrolled.is_some() { " checked" } else { "" },
        esc(q.status.trim()),
        esc(q.stale_login.trim()),
        esc(q.has.trim()),
        esc(q.lacks.trim()),
        esc(q.only.trim()),
        esc(&duoprov_registry::AuthMethod::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "))
    );
    if !c.provisioners.contains_key(&q.provisioner) {
        body.push_str("<p class=\"empty\">Choose a provisioner this daemon runs.</p>");
        return Html(page("Duo users", &body)).into_response();
    }
    let load = match c.store.duo_user_load(&q.provisioner).await {
        Ok(l) => l,
        Err(e) => return failed("reading when the Duo users were loaded", e),
    };
    let Some(load) = load else {
        let _ = write!(
            body,
            "<p class=\"empty\">No Duo users have been loaded for {}: run <code>duoprov load-users {}</code>, or set <code>load_duo_users = true</code>.</p>",
            esc(&q.provisioner),
            esc(&q.provisioner)
        );
        return Html(page("Duo users", &body)).into_response();
    };
    let (rows, total, by) = match users_page(&c, &q, q.page.saturating_mul(PAGE), PAGE).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let secs = |t: Option<i64>| t.map(|s| time(now, s * 1000)).unwrap_or_else(|| "never".into());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let o = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
            vec![esc(&r.user_name), o(&r.real_name), o(&r.email), o(&r.status), o(&r.is_enrolled), secs(r.last_login_time), secs(r.created_at), esc(&duoprov_sync::duo_user_report::methods_cell(r)), esc(&r.user_id)]
        })
        .collect();
    let _ = write!(
        body,
        "<p>{total} of {} Duo users loaded {} · <a href=\"{}\">download CSV</a> (every column, Grouper's names)</p>",
        load.users,
        time(now, load.loaded_at * 1000),
        esc(&href("/duo-users.csv", &q.pairs()))
    );
    match by {
        Some(NotInRegistryBy::Recorded { at_ms }) => {
            let _ = write!(
                body,
                "<p class=\"note\" id=\"not-in-registry\">Not in the registry: no subject the provisioner selects renders to the username, by the usernames its runs recorded (kept by every run; last recorded whole {}).</p>",
                at_ms.map(|t| time(now, t)).unwrap_or_else(|| "never".into())
            );
        }
        Some(NotInRegistryBy::Rendered { why }) => {
            let _ = write!(
                body,
                "<p class=\"note\" id=\"not-in-registry\">Not in the registry: no registry subject renders to the username, by the username template rendered now for every subject ({}).</p>",
                esc(why)
            );
        }
        None => {}
    }
    body.push_str(&table(&["Username", "Name", "Email", "Status", "Enrolled", "Last login", "Created", "Methods", "Duo id"], &cells, "No Duo user matches."));
    body.push_str(&pager("/duo-users", &q.pairs(), q.page, total));
    Html(page("Duo users", &body)).into_response()
}

/// `/duo-users.csv`: the whole filtered report as CSV.
pub async fn duo_users_csv(State(c): State<Arc<Console>>, Query(q): Query<UsersQuery>) -> Response {
    if !c.provisioners.contains_key(&q.provisioner) {
        return not_found(&format!("This daemon runs no provisioner named {}.", q.provisioner));
    }
    let (rows, _, _) = match users_page(&c, &q, 0, u32::MAX).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match duoprov_sync::duo_user_report::csv(&rows) {
        Ok(bytes) => {
            let disposition = format!("attachment; filename=\"duo-users-{}.csv\"", q.provisioner.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_', "_"));
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)], bytes).into_response()
        }
        Err(e) => failed("writing the CSV", e),
    }
}

/// The console actions shown on a provisioner's page.
const ACTIONS_SHOWN: u32 = 50;

/// A button retrying one user (`object` is `SOURCE:ID`) or group (its registry name) now.
pub(crate) fn retry_form(provisioner: &str, kind: &str, object: &str, caller: &Caller) -> String {
    format!(
        " <form class=\"inline\" method=\"post\" action=\"/provisioners/{}/retry\">{}<input type=\"hidden\" name=\"kind\" value=\"{}\">\
         <input type=\"hidden\" name=\"object\" value=\"{}\"><button type=\"submit\" title=\"sync this {} alone now, as duoprov sync --{}\">Retry now</button></form>",
        seg(provisioner),
        csrf_field(caller),
        esc(kind),
        esc(object),
        esc(kind),
        if kind == "user" { "subject" } else { "group" }
    )
}

#[derive(Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    csrf: String,
    /// `user` or `group`.
    #[serde(default)]
    kind: String,
    /// A subject (`SOURCE:ID`, id or login) or a registry group's full name.
    #[serde(default)]
    object: String,
}

/// `POST /provisioners/{name}/retry`: queues a sync of one user or group alone for the loop
/// (as `duoprov sync P --subject S` / `--group G`); its outcome joins the action log.
pub async fn retry(State(c): State<Arc<Console>>, Path(name): Path<String>, Extension(caller): Extension<Caller>, Form(form): Form<RetryForm>) -> Response {
    if let Some(refused) = csrf_refusal(&caller, &form.csrf) {
        return refused;
    }
    if !c.provisioners.contains_key(&name) {
        return not_found(&format!("This daemon runs no provisioner named {name}."));
    }
    let object = form.object.trim();
    let bad = |m: String| (StatusCode::BAD_REQUEST, Html(page("Not retried", &format!("<p class=\"bad\">{}</p><p><a href=\"/provisioners/{}\">Back</a></p>", esc(&m), seg(&name))))).into_response();
    let target = match form.kind.as_str() {
        "user" => match duoprov_sync::object::find_subject(&*c.store, object).await {
            Ok(s) => duoprov_registry::RequestedObject::Subject(s.key().to_string()),
            Err(e) => return bad(format!("retry: subject {object:?}: {e}")),
        },
        "group" => match duoprov_sync::object::find_group(&*c.store, object).await {
            Ok(g) => duoprov_registry::RequestedObject::Group(g.name.to_string()),
            Err(e) => return bad(format!("retry: group {object:?}: {e}")),
        },
        other => return bad(format!("retry: kind {other:?}: expected user or group")),
    };
    // Kept in the registry with its audit entry: the daemon leading the provisioner runs it (this
    // one, woken now, or another at its next poll), after a restart too.
    match c.store.request_retry(&name, &target, &caller.who, crate::steer::RETRIES_QUEUED).await {
        Ok(duoprov_registry::RetryQueued::Full) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page("Not retried", &format!("<p>{} retries of {} are already waiting; try again when they have run.</p>", crate::steer::RETRIES_QUEUED, esc(&name)))),
            )
                .into_response();
        }
        Ok(_) => {}
        Err(e) => return failed("recording the retry", e),
    }
    tracing::info!(provisioner = %name, who = %caller.who, "Console: retry of {target} requested.");
    c.shared.steering.wake(&name);
    Redirect::to(&format!("/provisioners/{}#actions", seg(&name))).into_response()
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    digest: String,
}

/// `POST /provisioners/{name}/full-sync`: wakes the loop for a full sync now.
pub async fn request_full(State(c): State<Arc<Console>>, Path(name): Path<String>, Extension(caller): Extension<Caller>, Form(form): Form<ActionForm>) -> Response {
    if let Some(refused) = csrf_refusal(&caller, &form.csrf) {
        return refused;
    }
    if !c.provisioners.contains_key(&name) {
        return not_found(&format!("This daemon runs no provisioner named {name}."));
    }
    // Kept in the registry with its audit entry: the daemon leading the provisioner runs it (this
    // one, woken now, or another at its next poll), after a restart too.
    if let Err(e) = c.store.request_full_sync(&name, &caller.who).await {
        return failed("recording the full sync request", e);
    }
    tracing::info!(provisioner = %name, who = %caller.who, "Console: full sync requested.");
    c.shared.steering.wake(&name);
    Redirect::to(&format!("/provisioners/{}", seg(&name))).into_response()
}

/// `POST /provisioners/{name}/approve`: approves the last refused plan by its digest.
pub async fn approve(State(c): State<Arc<Console>>, Path(name): Path<String>, Extension(caller): Extension<Caller>, Form(form): Form<ActionForm>) -> Response {
    if let Some(refused) = csrf_refusal(&caller, &form.csrf) {
        return refused;
    }
    if !c.provisioners.contains_key(&name) {
        return not_found(&format!("This daemon runs no provisioner named {name}."));
    }
    let refused = match c.store.refused_plan(&name).await {
        Ok(r) => r,
        Err(e) => return failed(&format!("reading the refused plan of {name}"), e),
    };
    match crate::steer::check_approval(refused.as_ref(), &form.digest) {
        Ok(digest) => {
            // The approval and its audit entry in one transaction: it outlives a restart.
            if let Err(e) = c.store.save_approval(&name, &digest, &caller.who).await {
                return failed("saving the approval", e);
            }
            tracing::info!(provisioner = %name, who = %caller.who, %digest, "Console: approved the removals with digest {digest}.");
            if let Err(e) = c.store.request_full_sync(&name, &caller.who).await {
                return failed("recording the full sync request", e);
            }
            c.shared.steering.wake(&name);
            Redirect::to(&format!("/provisioners/{}", seg(&name))).into_response()
        }
        Err(crate::steer::ApproveError::NothingRefused) => {
            (StatusCode::CONFLICT, Html(page("Not approved", &format!("<p>No refused plan of {} is waiting for approval.</p>", esc(&name))))).into_response()
        }
        Err(crate::steer::ApproveError::OtherDigest { last }) => (
            StatusCode::CONFLICT,
            Html(page(
                "Not approved",
                &format!(
                    "<p>The digest {} is not the last refused plan's ({}): the removals have changed since. Review them again on <a href=\"/provisioners/{}\">the provisioner's page</a>.</p>",
                    esc(&form.digest),
                    esc(&last),
                    seg(&name)
                ),
            )),
        )
            .into_response(),
    }
}
