//! "Why is (or isn't) this person in that Duo group?": [`explain`] gathers, for one subject under
//! one provisioner, the registry memberships (direct, or through which chain of nested groups),
//! the marker that decides each group (most specific wins), the subject's eligibility (and why
//! not), its username and fields as the templates render them (and a clash, with whom), its link
//! and ownership in the sync state, the errors recorded on it and its retries, and the last run —
//! from the registry and the sync state only. [`next_run`] adds, reading Duo, the exact
//! operations `duoprov sync P --subject S` would apply now: the plan of [`crate::object`], the
//! same planner and scope as every other run. The result is `Serialize` for the console and
//! `--json`; the CLI only formats it.

use std::collections::{HashMap, HashSet};

use duoprov_duo::DuoClient;
use duoprov_model::{GroupMember, GroupName, MarkerDecision, MarkerIndex, Subject, SubjectKey};
use duoprov_plan::error::ErrorObject;
use duoprov_plan::{DesiredState, PlannedOp};
use duoprov_registry::{RetryTarget, Store};
use serde::Serialize;

use crate::error::SyncError;
use crate::object::{ObjectTarget, find_group, find_subject};
use crate::registry_read::{filter_registry, read_links};
use crate::settings::SyncSettings;

/// Most membership paths shown per group (a subject reached through many nested groups).
const MAX_PATHS: usize = 20;

/// Everything duoprov knows about one subject under one provisioner.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub provisioner: String,
    pub subject: Subject,
    /// The group asked about (`--group`), if any.
    pub asked_group: Option<String>,
    /// The groups the explanation covers: the asked group, or every group the provisioner
    /// selects that the subject is an effective member of.
    pub groups: Vec<GroupExplanation>,
    pub eligibility: Eligibility,
    /// The Duo fields the templates render for the subject (`None` when a template fails).
    pub rendered: Option<duoprov_plan::mapping::UserFields>,
    /// Why the planner holds the subject or its memberships (codes REQ, LEN, INV, MAT).
    pub held: Vec<Held>,
    /// Other subjects the provisioner selects whose username renders the same (a clash: all held).
    pub clash_with: Vec<String>,
    /// The link to a Duo user in the sync state, if any.
    pub link: Option<UserLinkState>,
    /// Errors recorded on the subject and its memberships by earlier runs.
    pub recorded_errors: Vec<RecordedError>,
    /// Retry rows of the subject and its memberships.
    pub retries: Vec<RetryState>,
    /// The provisioner's last run.
    pub last_run: Option<duoprov_registry::RunRecord>,
    /// What `duoprov sync P --subject S` would do now (read from Duo: only with `--live`).
    pub next_run: Option<NextRun>,
}

/// One registry group and the subject's place in it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupExplanation {
    pub name: String,
    pub uuid: String,
    /// Whether the provisioner selects the group (its deciding marker includes it).
    pub selected: bool,
    /// The marker that decides it, `None` when none reaches it.
    pub marker: Option<MarkerDecision>,
    /// What selected it (its marker and the provisioner's selection rules), or which selection
    /// rule (`select_regex`, `only_policy_groups`) leaves it out although its marker includes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// How the subject is a member: each path runs from this group down through nested groups to
    /// the group the subject is an immediate member of (`[name]` alone: a direct member). Empty:
    /// not a member.
    pub paths: Vec<Vec<String>>,
    /// Whether the subject is an immediate member.
    pub direct: bool,
    /// Whether the plan wants the subject's Duo user in the group's Duo group.
    pub desired_member: bool,
    /// The group's link in the sync state.
    pub link: Option<GroupLinkState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupLinkState {
    pub duo_group_id: Option<String>,
    /// `created by duoprov`, `adopted`, or `create pending`.
    pub ownership: String,
    pub in_target: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Eligibility {
    /// Whether the subject is one of the provisioner's Duo users (held ones included).
    pub eligible: bool,
    /// Why not, one reason a line.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Held {
    pub object: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserLinkState {
    pub duo_user_id: Option<String>,
    /// `created by duoprov`, `adopted` (found in Duo by name, not created by duoprov), `shared`
    /// (another provisioner of the Duo account links it), or `create pending` (a create whose
    /// outcome is unknown).
    pub ownership: String,
    pub in_target: bool,
    pub pending_name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordedError {
    pub object: String,
    pub code: String,
    pub message: String,
    pub at_ms: duoprov_model::EpochMillis,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryState {
    pub object: String,
    pub attempts: u32,
    pub next_at_ms: duoprov_model::EpochMillis,
    pub last_error: String,
}

/// The exact operations on the subject a sync of it would apply now, and what it would hold.
#[derive(Debug, Clone, Serialize)]
pub struct NextRun {
    pub ops: Vec<PlannedOp>,
    pub held: Vec<Held>,
}

fn held_of(e: &duoprov_plan::ObjectError) -> Held {
    Held { object: e.object.to_string(), code: e.code.to_string(), message: e.message.clone() }
}

/// Every path from `group` down to a group `subject` is an immediate member of (memoised; the
/// registry refuses nesting cycles, and a group seen on the current path is skipped anyway).
async fn paths_to(
    store: &dyn duoprov_registry::RegistryReader,
    group: &str,
    subject: &SubjectKey,
    memo: &mut HashMap<String, Vec<Vec<String>>>,
    on_path: &mut Vec<String>,
) -> Result<Vec<Vec<String>>, SyncError> {
    if let Some(p) = memo.get(group) {
        return Ok(p.clone());
    }
    let name = match GroupName::parse(group) {
        Ok(n) => n,
        Err(_) => return Ok(Vec::new()),
    };
    let members = store.members(&name).await?;
    let mut paths: Vec<Vec<String>> = Vec::new();
    if members.iter().any(|m| matches!(m, GroupMember::Subject(k) if k == subject)) {
        paths.push(vec![group.to_owned()]);
    }
    on_path.push(group.to_owned());
    for m in &members {
        if let GroupMember::Group { name: inner } = m {
            let inner = inner.to_string();
            if on_path.contains(&inner) || paths.len() >= MAX_PATHS {
                continue;
            }
            for p in Box::pin(paths_to(store, &inner, subject, memo, on_path)).await? {
                let mut full = vec![group.to_owned()];
                full.extend(p);
                paths.push(full);
            }
        }
    }
    on_path.pop();
    paths.truncate(MAX_PATHS);
    memo.insert(group.to_owned(), paths.clone());
    Ok(paths)
}

/// Explains `subject` (`SOURCE:ID`, id or login) under the provisioner of `settings`, optionally
/// about one registry group: from the registry and the sync state, without reading Duo.
pub async fn explain(store: &dyn Store, settings: &SyncSettings, subject: &str, group: Option<&str>) -> Result<Explanation, SyncError> {
    let name = settings.provisioner.as_str();
    let subject = find_subject(store, subject).await?;
    let key = subject.key();
    let asked = match group {
        Some(g) => Some(find_group(store, g).await?),
        None => None,
    };
    let (selection, eligible) = match &settings.eligible_group {
        Some(g) => {
            let (selection, members) = store.provisioner_selection_with_eligible(name, g).await?;
            (selection, Some(members.into_iter().map(|m| m.subject.key()).collect::<HashSet<SubjectKey>>()))
        }
        None => (store.provisioner_selection(name).await?, None),
    };
    let raw_member_of: HashSet<String> = match selection.subjects.binary_search_by(|s| s.key().cmp(&key)) {
        Ok(i) => selection.groups.iter().filter(|g| g.members.contains(&(i as u32))).map(|g| g.group.uuid.clone()).collect(),
        Err(_) => HashSet::new(),
    };
    let selected_names: Vec<(String, String)> = selection.groups.iter().map(|g| (g.group.uuid.clone(), g.group.name.to_string())).collect();
    let mut selection = selection;
    let (selected_by, rule_excluded) = crate::registry_read::apply_selection_rules(store, settings, &mut selection).await?;
    let registry = filter_registry(settings, selection, eligible);
    let desired = DesiredState::build(&registry.selection, &settings.mapping, registry.eligible.as_ref());
    let links = read_links(store, settings).await?;
    let markers = store.markers(Some(name)).await?;
    let index = MarkerIndex::new(&markers);

    // Eligibility, and why not.
    let user_index = desired.users.iter().position(|u| u.key == key);
    let held_user = desired.held_users.contains(&key);
    let mut reasons = Vec::new();
    if user_index.is_none() && !held_user {
        if raw_member_of.is_empty() {
            reasons.push(format!("not an effective member of any group provisioner {name} selects"));
        }
        if let Some(sources) = &settings.subject_sources
            && !sources.contains(&subject.source)
        {
            reasons.push(format!("its subject source {} is not among the provisioner's subject_sources ({})", subject.source, sources.join(", ")));
        }
        if let (Some(g), Some(e)) = (&settings.eligible_group, &registry.eligible)
            && !e.contains(&key)
        {
            reasons.push(format!("not an effective member of the eligibility group {g} (eligible_group)"));
        }
    }
    let eligibility = Eligibility { eligible: user_index.is_some() || held_user, reasons };

    let concerns = |o: &ErrorObject| match o {
        ErrorObject::User { source, id } | ErrorObject::Membership { source, id, .. } => *source == key.source && *id == key.id,
        ErrorObject::Group { .. } => false,
    };
    let held: Vec<Held> = desired.errors.iter().filter(|e| concerns(&e.object)).map(held_of).collect();
    let rendered = settings.mapping.user_fields(&subject).ok();
    // Who else renders to the same username, among the subjects that would be Duo users.
    let mut clash_with = Vec::new();
    if let Some(mine) = &rendered
        && desired.errors.iter().any(|e| concerns(&e.object) && e.code == duoprov_plan::ErrorCode::Mat)
    {
        let mut is_member = vec![false; registry.selection.subjects.len()];
        for g in &registry.selection.groups {
            for m in &g.members {
                is_member[*m as usize] = true;
            }
        }
        let wanted = duoprov_model::username_key(&mine.username);
        for (i, s) in registry.selection.subjects.iter().enumerate() {
            let k = s.key();
            if !is_member[i] || k == key || registry.eligible.as_ref().is_some_and(|e| !e.contains(&k)) {
                continue;
            }
            if let Ok(f) = settings.mapping.user_fields(s)
                && duoprov_model::username_key(&f.username) == wanted
            {
                clash_with.push(match &s.login_id {
                    Some(login) if *login != s.id => format!("{k} ({login})"),
                    _ => k.to_string(),
                });
            }
        }
    }

    // Groups: the asked one, or every selected group the subject is an effective member of.
    let mut covered: Vec<(String, String)> = match &asked {
        Some(g) => vec![(g.uuid.clone(), g.name.to_string())],
        None => selected_names.iter().filter(|(uuid, _)| raw_member_of.contains(uuid)).cloned().collect(),
    };
    covered.sort_by(|a, b| a.1.cmp(&b.1));
    let selected: HashSet<&str> = selected_by.keys().map(String::as_str).collect();
    let mut memo = HashMap::new();
    let mut groups = Vec::new();
    for (uuid, gname) in covered {
        let paths = paths_to(store, &gname, &key, &mut memo, &mut Vec::new()).await?;
        let desired_member = match user_index {
            Some(u) => desired.groups.iter().any(|g| g.uuid == uuid && g.members.contains(&(u as u32))),
            None => false,
        };
        let link = links.groups.iter().find(|l| l.group_uuid == uuid).map(|l| GroupLinkState {
            duo_group_id: l.duo_group_id.clone(),
            ownership: ownership(l.created_by_us, l.duo_group_id.is_none() && l.pending_name.is_some(), None),
            in_target: l.in_target,
        });
        groups.push(GroupExplanation {
            direct: paths.iter().any(|p| p.len() == 1),
            selected: selected.contains(uuid.as_str()),
            marker: index.deciding(&gname),
            rule: selected_by.get(&uuid).or_else(|| rule_excluded.get(&uuid)).cloned(),
            name: gname,
            uuid,
            paths,
            desired_member,
            link,
        });
    }

    let link = links.users.iter().find(|l| l.subject == key).map(|l| {
        let shared = l.duo_user_id.as_deref().and_then(|id| links.foreign.users.get(id)).map(|f| f.provisioner.clone());
        UserLinkState {
            duo_user_id: l.duo_user_id.clone(),
            ownership: ownership(l.created_by_us, l.duo_user_id.is_none() && l.pending_name.is_some(), shared.as_deref()),
            in_target: l.in_target,
            pending_name: l.pending_name.clone(),
        }
    });
    let group_name: HashMap<&str, &str> = selected_names.iter().map(|(u, n)| (u.as_str(), n.as_str())).collect();
    let named = |uuid: &str| group_name.get(uuid).map(|n| (*n).to_owned()).unwrap_or_else(|| uuid.to_owned());
    let user_object = key.to_string();
    let recorded_errors = store
        .object_errors(name, u32::MAX)
        .await?
        .into_iter()
        .filter_map(|e| match e.kind.as_str() {
            "user" if e.object == user_object => Some(RecordedError { object: format!("user {user_object}"), code: e.code, message: e.message, at_ms: e.at_ms }),
            "membership" => {
                let (g, s) = e.object.split_once(' ')?;
                (s == user_object).then(|| RecordedError { object: format!("membership of {user_object} in {}", named(g)), code: e.code, message: e.message, at_ms: e.at_ms })
            }
            _ => None,
        })
        .collect();
    let retries = store
        .retries(name, None)
        .await?
        .into_iter()
        .filter(|r| r.target.subject() == Some(&key))
        .map(|r| RetryState {
            object: match &r.target {
                RetryTarget::Membership { group_uuid, .. } => format!("membership of {user_object} in {}", named(group_uuid)),
                _ => format!("user {user_object}"),
            },
            attempts: r.attempts,
            next_at_ms: r.next_at_ms,
            last_error: r.last_error,
        })
        .collect();
    let last_run = store.runs(Some(name), 1).await?.into_iter().next();
    Ok(Explanation {
        provisioner: name.to_owned(),
        subject,
        asked_group: asked.map(|g| g.name.to_string()),
        groups,
        eligibility,
        rendered,
        held,
        clash_with,
        link,
        recorded_errors,
        retries,
        last_run,
        next_run: None,
    })
}

fn ownership(created_by_us: bool, pending: bool, shared_with: Option<&str>) -> String {
    match (pending, created_by_us, shared_with) {
        (true, _, _) => "create pending (outcome unknown; the next run claims exactly the object it asked for)".into(),
        (false, true, _) => "created by duoprov".into(),
        (false, false, Some(p)) => format!("shared (linked by provisioner {p}; never rewritten or deleted here)"),
        (false, false, None) => "adopted (found in Duo by name, not created by duoprov)".into(),
    }
}

/// Reads Duo for the subject and fills [`Explanation::next_run`] with what
/// `duoprov sync P --subject S` would apply now (only the asked group's memberships, with
/// `--group`, besides the user's own operations).
pub async fn next_run(store: &dyn Store, duo: &DuoClient, settings: &SyncSettings, explanation: &mut Explanation) -> Result<(), SyncError> {
    let target = ObjectTarget::Subject { reference: explanation.subject.key().to_string() };
    let prepared = crate::object::prepare_object(store, duo, settings, &target).await?;
    let asked: Option<(&str, HashSet<&str>)> = explanation.asked_group.as_ref().and_then(|_| explanation.groups.first()).map(|g| {
        (g.uuid.as_str(), g.link.as_ref().and_then(|l| l.duo_group_id.as_deref()).into_iter().collect())
    });
    let ops = prepared
        .plan
        .ops
        .iter()
        .filter(|o| match (&o.op, &asked) {
            (duoprov_plan::Op::AddMember { group_uuid, .. }, Some((uuid, _))) => &**group_uuid == *uuid,
            (duoprov_plan::Op::RemoveMember { group_id, .. }, Some((_, ids))) => ids.contains(group_id.as_str()),
            _ => true,
        })
        .cloned()
        .collect();
    explanation.next_run = Some(NextRun { ops, held: prepared.plan.errors.iter().map(held_of).collect() });
    Ok(())
}
