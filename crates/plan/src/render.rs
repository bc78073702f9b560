//! The plan for people: operations grouped by kind, each with its before → after values and its
//! reason; adoptions, users left disabled (disabled by someone else) and held objects
//! (per-object errors) listed after. A plan with nothing to
//! change says so only when nothing is held; otherwise it names every held object.

use std::fmt::Write;

use duoprov_model::counted;

use crate::plan::{Adoption, FieldChange, GroupRef, Op, Plan, UserRef};
use crate::policy::UserDeleteMode;

fn group_ref(g: &GroupRef) -> String {
    match g {
        GroupRef::Existing { name, group_id } => format!("{name} ({group_id})"),
        GroupRef::New { name, .. } => format!("{name} (new)"),
    }
}

/// An update's changes: `field: "before" → "after"`, separated by semicolons.
fn field_changes<F: std::fmt::Display>(changes: &[FieldChange<F>]) -> String {
    let c: Vec<String> = changes.iter().map(|c| format!("{}: {:?} → {:?}", c.field, c.before, c.after)).collect();
    c.join("; ")
}

fn user_ref(u: &UserRef) -> String {
    match u {
        UserRef::Existing { username, user_id } => format!("{username} ({user_id})"),
        UserRef::New { username, .. } => format!("{username} (new)"),
    }
}

/// The name a removal or deletion is listed by; empty for other operations.
fn removal_name(op: &Op) -> (String, String) {
    match op {
        Op::RemoveMember { group_name, username, .. } => (group_name.to_lowercase(), username.to_lowercase()),
        Op::DeleteGroup { name, .. } => (name.to_lowercase(), String::new()),
        Op::DeleteUser { username, .. } => (username.to_lowercase(), String::new()),
        _ => (String::new(), String::new()),
    }
}

/// Renders the plan as text.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let total = plan.ops.len() + plan.admins.ops.len();
    if total == 0 && plan.errors.is_empty() {
        let _ = writeln!(out, "Plan for {}: nothing to do; Duo matches the registry.", plan.provisioner);
    } else if total == 0 {
        let _ = writeln!(out, "Plan for {}: nothing to change, but {} held:", plan.provisioner, counted(plan.errors.len(), "object is", "objects are"));
        for e in &plan.errors {
            let _ = writeln!(out, "  ! {e}");
        }
    } else {
        let _ = writeln!(out, "Plan for {}: {}.", plan.provisioner, counted(total, "operation", "operations"));
    }
    // Within each kind, removals and deletions read in name order (the plan's own order, by
    // uuid, serves applying); other kinds keep the plan's order.
    let mut ops: Vec<(usize, &crate::plan::PlannedOp)> = plan.ops.iter().enumerate().collect();
    ops.sort_by_key(|(i, o)| (o.op.class(), removal_name(&o.op), *i));
    let mut last_class = u8::MAX;
    for (_, p) in ops {
        let class = p.op.class();
        if class != last_class {
            let restores = plan.ops.iter().any(|o| matches!(o.op, Op::RestoreUser { .. }));
            let enables = plan.ops.iter().any(|o| matches!(o.op, Op::EnableUser { .. }));
            let disables = plan.ops.iter().filter(|o| matches!(o.op, Op::DeleteUser { mode: UserDeleteMode::Disable, .. })).count();
            let deletes = plan.ops.iter().filter(|o| matches!(o.op, Op::DeleteUser { .. })).count();
            let title = match class {
                1 if restores && enables => "Create, restore and re-enable users",
                1 if restores => "Create and restore users",
                1 if enables => "Create and re-enable users",
                7 if disables == deletes => "Disable users",
                7 if disables > 0 => "Delete and disable users",
                _ => ["Create groups", "Create users", "Update groups", "Update users", "Remove members", "Add members", "Delete groups", "Delete users"][class as usize],
            };
            let n = plan.ops.iter().filter(|o| o.op.class() == class).count();
            let _ = writeln!(out, "\n{title} ({n}):");
            last_class = class;
        }
        let line = match &p.op {
            Op::CreateGroup { name, desc, .. } => format!("+ group {name:?} desc {desc:?}"),
            Op::CreateUser { username, realname, email, .. } => format!("+ user {username:?} realname {realname:?} email {email:?}"),
            Op::UpdateGroup { name, group_id, changes, .. } => format!("~ {name} ({group_id}): {}", field_changes(changes)),
            Op::UpdateUser { username, user_id, changes, .. } => format!("~ {username} ({user_id}): {}", field_changes(changes)),
            Op::RestoreUser { username, user_id, .. } => format!("^ user {username} ({user_id}) from Trash"),
            Op::EnableUser { username, user_id, .. } => format!("^ re-enable user {username} ({user_id})"),
            Op::RemoveMember { group_name, username, .. } => format!("- {username} from {group_name}"),
            Op::AddMember { group, user, .. } => format!("+ {} to {}", user_ref(user), group_ref(group)),
            Op::DeleteGroup { name, group_id, .. } => format!("- group {name} ({group_id})"),
            Op::DeleteUser { username, user_id, mode: UserDeleteMode::Disable, .. } => format!("- disable user {username} ({user_id}), kept in Duo"),
            Op::DeleteUser { username, user_id, mode, .. } => format!(
                "- user {username} ({user_id}) {}",
                match mode {
                    UserDeleteMode::Trash => "to Trash",
                    UserDeleteMode::DisableThenTrash => "disabled, to Trash",
                    UserDeleteMode::Delete | UserDeleteMode::Disable => "permanently",
                }
            ),
        };
        let _ = writeln!(out, "  {line}\n      because {}", p.reason);
    }
    if !plan.adoptions.is_empty() {
        let _ = writeln!(out, "\nAdopted (exist in Duo, not created by duoprov; managed, never deleted by default):");
        for a in &plan.adoptions {
            let _ = match a {
                Adoption::Group { registry_name, group_id, name, .. } => writeln!(out, "  = group {name} ({group_id}) for registry group {registry_name}"),
                Adoption::User { source, id, user_id, username } => writeln!(out, "  = user {username} ({user_id}) for subject {source}:{id}"),
            };
        }
    }
    admins(&mut out, &plan.admins);
    if !plan.kept_disabled.is_empty() {
        let _ = writeln!(out, "\nLeft disabled (disabled in Duo, not by duoprov; enable them in Duo if they should sign in):");
        for (subject, username) in &plan.kept_disabled {
            let _ = writeln!(out, "  = user {username} for subject {subject}");
        }
    }
    if !plan.errors.is_empty() && total > 0 {
        let _ = writeln!(out, "\nHeld ({} in error, left as they are until fixed):", counted(plan.errors.len(), "object", "objects"));
        for e in &plan.errors {
            let _ = writeln!(out, "  ! {e}");
        }
    }
    out
}

/// The admin-role section: administrator changes, adoptions, releases and holds, by e-mail.
fn admins(out: &mut String, a: &crate::admins::AdminPlan) {
    if !a.ops.is_empty() {
        let _ = writeln!(out, "\nAdministrators ({}):", a.ops.len());
        for op in &a.ops {
            let _ = writeln!(out, "  {}", op.describe());
        }
    }
    if !a.adopt.is_empty() {
        let _ = writeln!(out, "\nAdministrators adopted (exist in Duo, matched by e-mail; managed from now on):");
        for m in &a.adopt {
            let _ = writeln!(out, "  = administrator {} ({}) for subject {}", m.email, m.role, m.subject);
        }
    }
    if !a.held.is_empty() {
        let _ = writeln!(out, "\nAdministrators held (left as they are):");
        for h in &a.held {
            let _ = writeln!(out, "  ! {h}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlannedOp;

    #[test]
    fn removals_and_deletions_are_listed_in_name_order_whatever_the_plan_order() {
        let delete = |name: &str, id: &str| PlannedOp {
            op: Op::DeleteGroup { uuid: format!("u-{id}"), group_id: id.into(), name: name.into() },
            reason: "gone".into(),
        };
        let remove = |group: &str, user: &str| PlannedOp {
            op: Op::RemoveMember { group_id: "DG1".into(), group_name: group.into(), user_id: "DU1".into(), username: user.into() },
            reason: "left".into(),
        };
        let plan = Plan {
            provisioner: "p".into(),
            ops: vec![remove("staff", "zed"), remove("staff", "amy"), delete("zeta", "DG3"), delete("alpha", "DG1"), delete("Mid", "DG2")],
            ..Plan::default()
        };
        let text = text(&plan);
        let lines: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("- ")).map(str::trim).collect();
        assert_eq!(lines, ["- amy from staff", "- zed from staff", "- group alpha (DG1)", "- group Mid (DG2)", "- group zeta (DG3)"], "{text}");
    }
}
