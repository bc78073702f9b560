//! The registry commands: `subject`, `folder`, `group`, `member` and `provision`. Each parses
//! and validates its names, calls the store once (a command naming several members changes all
//! of them in one transaction, or none), and prints the outcome as text or JSON.

use anyhow::Result;
use duoprov_model::{
    FolderPath, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, Subject, SubjectKey,
    SubjectPatch,
};
use duoprov_registry::{NodeAttrs, Upsert};
use serde_json::json;

use super::Context;
use crate::args::{
    FolderCommand, GroupCommand, MarkerTargetArgs, MemberCommand, MemberTargets, NodeFields,
    ProvisionCommand, ScopeArg, SubjectCommand, SubjectFields,
};
use crate::{exit, output};

/// `provision list P --groups [--explain]`: what a sync of P would provision — the markers'
/// selection narrowed by P's selection rules and counted as a sync counts members — read through
/// the sync's own selection code. Without a `[provisioner.P]` in the configuration there are no
/// rules: the markers' selection is listed, with a note saying so.
async fn list_groups(ctx: &Context, store: &dyn duoprov_registry::Store, provisioner: &str, explain: bool) -> Result<()> {
    let (selected, excluded) = match ctx.settings.provisioners.get(provisioner) {
        Some(p) => duoprov_sync::provisioned_groups(store, &super::sync::settings_of(p)).await?,
        None => {
            eprintln!("note: provisioner {provisioner} is not in the configuration, so no selection rules (select_regex, only_policy_groups, subject_sources, eligible_group) are applied: these are the groups its markers select");
            let sel = store.provisioner_selection(provisioner).await?;
            let index_markers = store.markers(Some(provisioner)).await?;
            let index = duoprov_model::MarkerIndex::new(&index_markers);
            let mut groups: Vec<duoprov_sync::ListedGroup> = sel
                .groups
                .iter()
                .map(|g| duoprov_sync::ListedGroup {
                    name: g.group.name.to_string(),
                    uuid: g.group.uuid.clone(),
                    effective_members: g.members.len(),
                    why: index.deciding(g.group.name.as_str()).map(|d| d.to_string()).unwrap_or_else(|| "selected".to_owned()),
                })
                .collect();
            groups.sort_by(|a, b| a.name.cmp(&b.name));
            (groups, Vec::new())
        }
    };
    if ctx.json {
        let entry = |g: &duoprov_sync::ListedGroup, key: &str| {
            let mut v = json!({"name": g.name, "uuid": g.uuid, "effective_members": g.effective_members});
            if explain {
                v[key] = json!(g.why);
            }
            v
        };
        if explain {
            output::json(&json!({
                "selected": selected.iter().map(|g| entry(g, "selected_by")).collect::<Vec<_>>(),
                "excluded": excluded.iter().map(|g| entry(g, "excluded_by")).collect::<Vec<_>>(),
            }))?;
        } else {
            output::json(&selected.iter().map(|g| entry(g, "")).collect::<Vec<_>>())?;
        }
    } else if explain {
        let mut rows: Vec<Vec<String>> = selected.iter().map(|g| vec![g.name.clone(), g.effective_members.to_string(), format!("selected: {}", g.why)]).collect();
        rows.extend(excluded.iter().map(|g| vec![g.name.clone(), "-".to_owned(), format!("excluded: {}", g.why)]));
        output::table(&["GROUP", "EFFECTIVE_MEMBERS", "WHY"], &rows);
    } else {
        let rows: Vec<Vec<String>> = selected.iter().map(|g| vec![g.name.clone(), g.effective_members.to_string()]).collect();
        output::table(&["GROUP", "EFFECTIVE_MEMBERS"], &rows);
        if !excluded.is_empty() {
            eprintln!(
                "{} the markers include {} left out by the selection rules (see `duoprov provision list {provisioner} --groups --explain`)",
                duoprov_model::counted(excluded.len(), "group", "groups"),
                if excluded.len() == 1 { "is" } else { "are" }
            );
        }
    }
    Ok(())
}

/// An empty command-line value clears the attribute.
fn value(v: Option<String>) -> Option<Option<String>> {
    v.map(|v| if v.is_empty() { None } else { Some(v) })
}

fn patch(f: SubjectFields) -> SubjectPatch {
    SubjectPatch {
        name: value(f.name),
        login_id: value(f.login_id),
        email: value(f.email),
        first_name: value(f.first_name),
        last_name: value(f.last_name),
        description: value(f.description),
    }
}

fn attrs(f: NodeFields) -> NodeAttrs {
    NodeAttrs { display_name: value(f.display_name), description: value(f.description) }
}

fn verb(outcome: Upsert) -> &'static str {
    match outcome {
        Upsert::Created => "created",
        Upsert::Updated => "updated",
        Upsert::Unchanged => "unchanged",
    }
}

fn subject_fields(s: &Subject) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("source", Some(s.source.clone())),
        ("id", Some(s.id.clone())),
        ("name", s.name.clone()),
        ("login_id", s.login_id.clone()),
        ("email", s.email.clone()),
        ("first_name", s.first_name.clone()),
        ("last_name", s.last_name.clone()),
        ("description", s.description.clone()),
    ]
}

fn subject_row(s: &Subject) -> Vec<String> {
    vec![s.source.clone(), s.id.clone(), output::opt(&s.name), output::opt(&s.login_id), output::opt(&s.email)]
}

const SUBJECT_HEADERS: [&str; 5] = ["SOURCE", "ID", "NAME", "LOGIN_ID", "EMAIL"];

pub async fn subject(ctx: &Context, command: SubjectCommand) -> Result<u8> {
    let store = ctx.store().await?;
    match command {
        SubjectCommand::Add { subject, fields } => {
            let key = SubjectKey::new(subject.source, subject.id);
            let (s, outcome) = store.upsert_subject(&key, &patch(fields)).await?;
            report_subject(ctx, &s, outcome)?;
        }
        SubjectCommand::Update { subject, fields } => {
            let key = SubjectKey::new(subject.source, subject.id);
            let (s, outcome) = store.update_subject(&key, &patch(fields)).await?;
            report_subject(ctx, &s, outcome)?;
        }
        SubjectCommand::Remove { subject } => {
            let key = SubjectKey::new(subject.source, subject.id);
            store.remove_subject(&key).await?;
            done(ctx, json!({"removed": format!("subject {key}")}), format!("removed subject {key}"))?;
        }
        SubjectCommand::Show { subject } => {
            let key = SubjectKey::new(subject.source, subject.id);
            let s = store.subject(&key).await?.ok_or_else(|| anyhow::anyhow!("subject {key} does not exist"))?;
            if ctx.json {
                output::json(&s)?;
            } else {
                output::record(&subject_fields(&s));
            }
        }
        SubjectCommand::List { source } => {
            let subjects = store.subjects(source.as_deref()).await?;
            if ctx.json {
                output::json(&subjects)?;
            } else {
                output::table(&SUBJECT_HEADERS, &subjects.iter().map(subject_row).collect::<Vec<_>>());
            }
        }
    }
    Ok(exit::OK)
}

fn report_subject(ctx: &Context, s: &Subject, outcome: Upsert) -> Result<()> {
    if ctx.json {
        output::json(&json!({"outcome": outcome, "subject": s}))
    } else {
        println!("{} subject {}", verb(outcome), s.key());
        Ok(())
    }
}

fn done(ctx: &Context, json_value: serde_json::Value, text: String) -> Result<()> {
    if ctx.json {
        output::json(&json_value)
    } else {
        println!("{text}");
        Ok(())
    }
}

pub async fn folder(ctx: &Context, command: FolderCommand) -> Result<u8> {
    let store = ctx.store().await?;
    match command {
        FolderCommand::Add { path, fields, create_parents } => {
            let path = FolderPath::parse(&path)?;
            let (f, outcome) = store.add_folder(&path, &attrs(fields), create_parents).await?;
            done(ctx, json!({"outcome": outcome, "folder": f}), format!("{} folder {}", verb(outcome), f.path))?;
        }
        FolderCommand::Update { path, rename_to, fields } => {
            let path = FolderPath::parse(&path)?;
            let to = rename_to.as_deref().map(FolderPath::parse).transpose()?;
            let f = store.update_folder(&path, to.as_ref(), &attrs(fields)).await?;
            done(ctx, json!({"folder": f}), format!("updated folder {}", f.path))?;
        }
        FolderCommand::Remove { path, recursive } => {
            let path = FolderPath::parse(&path)?;
            store.remove_folder(&path, recursive).await?;
            done(ctx, json!({"removed": format!("folder {path}")}), format!("removed folder {path}"))?;
        }
        FolderCommand::Show { path } => {
            let path = FolderPath::parse(&path)?;
            let f = store.folder(&path).await?.ok_or_else(|| anyhow::anyhow!("folder {path} does not exist"))?;
            if ctx.json {
                output::json(&f)?;
            } else {
                output::record(&[("path", Some(f.path.to_string())), ("display_name", f.display_name), ("description", f.description)]);
            }
        }
        FolderCommand::List { under } => {
            let under = under.as_deref().map(FolderPath::parse).transpose()?;
            let folders = store.folders(under.as_ref()).await?;
            if ctx.json {
                output::json(&folders)?;
            } else {
                let rows: Vec<Vec<String>> = folders
                    .iter()
                    .map(|f| vec![f.path.to_string(), output::opt(&f.display_name), output::opt(&f.description)])
                    .collect();
                output::table(&["PATH", "DISPLAY_NAME", "DESCRIPTION"], &rows);
            }
        }
    }
    Ok(exit::OK)
}

pub async fn group(ctx: &Context, command: GroupCommand) -> Result<u8> {
    let store = ctx.store().await?;
    match command {
        GroupCommand::Add { name, fields, create_parents } => {
            let name = GroupName::parse(&name)?;
            let (g, outcome) = store.add_group(&name, &attrs(fields), create_parents).await?;
            done(ctx, json!({"outcome": outcome, "group": g}), format!("{} group {} ({})", verb(outcome), g.name, g.uuid))?;
        }
        GroupCommand::Update { name, rename_to, fields, create_parents } => {
            let name = GroupName::parse(&name)?;
            let to = rename_to.as_deref().map(GroupName::parse).transpose()?;
            let g = store.update_group(&name, to.as_ref(), &attrs(fields), create_parents).await?;
            done(ctx, json!({"group": g}), format!("updated group {} ({})", g.name, g.uuid))?;
        }
        GroupCommand::Remove { name } => {
            let name = GroupName::parse(&name)?;
            store.remove_group(&name).await?;
            done(ctx, json!({"removed": format!("group {name}")}), format!("removed group {name}"))?;
        }
        GroupCommand::Show { name } => {
            let name = GroupName::parse(&name)?;
            let g = store.group(&name).await?.ok_or_else(|| anyhow::anyhow!("group {name} does not exist"))?;
            let members = store.members(&name).await?;
            let effective = store.effective_members(&name).await?;
            if ctx.json {
                output::json(&json!({
                    "uuid": g.uuid, "name": g.name, "extension": g.extension(), "display_name": g.display_name,
                    "description": g.description, "immediate_members": members.len(), "effective_members": effective.len(),
                }))?;
            } else {
                output::record(&[
                    ("name", Some(g.name.to_string())),
                    ("uuid", Some(g.uuid.clone())),
                    ("extension", Some(g.extension().to_owned())),
                    ("display_name", g.display_name.clone()),
                    ("description", g.description.clone()),
                    ("immediate_members", Some(members.len().to_string())),
                    ("effective_members", Some(effective.len().to_string())),
                ]);
            }
        }
        GroupCommand::List { under } => {
            let under = under.as_deref().map(FolderPath::parse).transpose()?;
            let groups = store.groups(under.as_ref()).await?;
            if ctx.json {
                output::json(&groups)?;
            } else {
                let rows: Vec<Vec<String>> =
                    groups.iter().map(|g| vec![g.name.to_string(), g.uuid.clone(), output::opt(&g.description)]).collect();
                output::table(&["NAME", "UUID", "DESCRIPTION"], &rows);
            }
        }
    }
    Ok(exit::OK)
}

fn targets(t: &MemberTargets) -> Result<(GroupName, Vec<GroupMember>)> {
    let group = GroupName::parse(&t.group)?;
    let mut members: Vec<GroupMember> =
        t.subjects.iter().map(|id| GroupMember::Subject(SubjectKey::new(t.source.clone(), id.clone()))).collect();
    for name in &t.groups {
        members.push(GroupMember::Group { name: GroupName::parse(name)? });
    }
    if members.is_empty() {
        anyhow::bail!("name at least one subject id or --group NAME to add or remove");
    }
    Ok((group, members))
}

pub async fn member(ctx: &Context, command: MemberCommand) -> Result<u8> {
    let store = ctx.store().await?;
    match command {
        MemberCommand::Add(t) => {
            let (group, members) = targets(&t)?;
            let added = store
                .add_members(&group, &members)
                .await
                .map_err(|e| anyhow::anyhow!("nothing changed in group {group}: {e}"))?;
            let mut results = Vec::new();
            for (m, added) in members.iter().zip(added) {
                results.push(json!({"member": m, "added": added}));
                if !ctx.json {
                    output::line(&if added { format!("added {m} to group {group}") } else { format!("{m} is already a member of group {group}") });
                }
            }
            if ctx.json {
                output::json(&results)?;
            }
        }
        MemberCommand::Remove(t) => {
            let (group, members) = targets(&t)?;
            let removed = store
                .remove_members(&group, &members)
                .await
                .map_err(|e| anyhow::anyhow!("nothing changed in group {group}: {e}"))?;
            let mut results = Vec::new();
            for (m, removed) in members.iter().zip(removed) {
                results.push(json!({"member": m, "removed": removed}));
                if !ctx.json {
                    output::line(&if removed { format!("removed {m} from group {group}") } else { format!("{m} is not a member of group {group}") });
                }
            }
            if ctx.json {
                output::json(&results)?;
            }
        }
        MemberCommand::List { group, effective } => {
            let group = GroupName::parse(&group)?;
            if effective {
                let members = store.effective_members(&group).await?;
                if ctx.json {
                    output::json(&members.iter().map(|m| json!({
                        "source": m.subject.source, "id": m.subject.id, "name": m.subject.name,
                        "login_id": m.subject.login_id, "email": m.subject.email, "immediate": m.immediate,
                    })).collect::<Vec<_>>())?;
                } else {
                    let rows: Vec<Vec<String>> = members
                        .iter()
                        .map(|m| {
                            let mut row = subject_row(&m.subject);
                            row.push(if m.immediate { "immediate" } else { "nested" }.into());
                            row
                        })
                        .collect();
                    output::table(&["SOURCE", "ID", "NAME", "LOGIN_ID", "EMAIL", "VIA"], &rows);
                }
            } else {
                let members = store.members(&group).await?;
                if ctx.json {
                    output::json(&members)?;
                } else {
                    let rows: Vec<Vec<String>> = members
                        .iter()
                        .map(|m| match m {
                            GroupMember::Subject(k) => vec!["subject".into(), k.to_string()],
                            GroupMember::Group { name } => vec!["group".into(), name.to_string()],
                        })
                        .collect();
                    output::table(&["TYPE", "MEMBER"], &rows);
                }
            }
        }
    }
    Ok(exit::OK)
}

fn marker_target(t: &MarkerTargetArgs) -> Result<MarkerTarget> {
    Ok(match (&t.folder, &t.group) {
        (Some(f), None) => MarkerTarget::Folder(FolderPath::parse(f)?),
        (None, Some(g)) => MarkerTarget::Group(GroupName::parse(g)?),
        _ => anyhow::bail!("name exactly one of --folder PATH or --group NAME"),
    })
}

pub async fn provision(ctx: &Context, command: ProvisionCommand) -> Result<u8> {
    let store = ctx.store().await?;
    match command {
        ProvisionCommand::Assign { provisioner, target, scope, exclude } => {
            let marker = Marker {
                provisioner: provisioner.clone(),
                target: marker_target(&target)?,
                scope: match scope {
                    ScopeArg::One => MarkerScope::One,
                    ScopeArg::Sub => MarkerScope::Sub,
                },
                provision: !exclude,
            };
            let outcome = store.assign_marker(&marker).await?;
            let what = if exclude { "excluded from" } else { "provisioned to" };
            done(
                ctx,
                json!({"outcome": outcome, "marker": marker}),
                format!("{} marker: {} {what} {provisioner} (scope {})", verb(outcome), marker.target, marker.scope),
            )?;
        }
        ProvisionCommand::Unassign { provisioner, target } => {
            let target = marker_target(&target)?;
            let removed = store.unassign_marker(&provisioner, &target).await?;
            if !removed {
                anyhow::bail!("{target} has no marker for provisioner {provisioner}");
            }
            done(ctx, json!({"removed": true}), format!("removed the {provisioner} marker from {target}"))?;
        }
        ProvisionCommand::List { provisioner, groups, explain } => {
            if groups {
                let provisioner = provisioner.unwrap_or_default();
                list_groups(ctx, &*store, &provisioner, explain).await?;
            } else {
                let markers = store.markers(provisioner.as_deref()).await?;
                if ctx.json {
                    output::json(&markers)?;
                } else {
                    let rows: Vec<Vec<String>> = markers
                        .iter()
                        .map(|m| {
                            vec![
                                m.provisioner.clone(),
                                m.target.to_string(),
                                m.scope.to_string(),
                                if m.provision { "provision".into() } else { "exclude".into() },
                            ]
                        })
                        .collect();
                    output::table(&["PROVISIONER", "TARGET", "SCOPE", "ACTION"], &rows);
                }
            }
        }
    }
    Ok(exit::OK)
}
