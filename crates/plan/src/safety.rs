//! The safety rules checked before anything is applied: refuse when the registry suddenly
//! selects nothing while Duo holds managed objects, and when removals or deletions exceed the
//! thresholds — unless the run carries an approval of exactly that list of removals: the digest
//! a refusal (or `duoprov plan`) showed for it, or a saved plan whose fingerprints still match.
//! An approval digest that does not match the plan's removals refuses the run whatever the
//! thresholds say: the list changed since it was reviewed.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::plan::{Op, Plan};
use crate::policy::{Policy, UserDeleteMode};

/// An explicit, one-run approval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    /// The digest of the removal list the operator reviewed (`--approve DIGEST`): approves that
    /// exact list, and refuses any other.
    pub digest: Option<String>,
    /// The plan applied is a saved plan whose fingerprints match both states: its removals were
    /// reviewed with it (`duoprov plan --out` / `duoprov sync --plan`).
    pub saved_plan: bool,
}

impl Approval {
    /// Approves exactly the removals of `plan` (what `--approve` with its digest does).
    pub fn exactly(plan: &Plan) -> Self {
        Approval { digest: Some(removal_digest(plan)), saved_plan: false }
    }
}

/// Why a plan is refused, and what it would have removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub reasons: Vec<String>,
    /// Every removal and deletion of the plan, as one line each, sorted, by name.
    pub removals: Vec<String>,
    /// The digest of that list, which `--approve` names to apply exactly it.
    pub digest: String,
    /// Whether every reason is a threshold of `[provisioner.P.thresholds]`, so raising it would
    /// also lift the refusal; false when a reason only an approval or a fixed registry lifts (an
    /// empty selection, a digest that does not match).
    pub thresholds_help: bool,
}

impl Refusal {
    /// The command that approves exactly this list.
    pub fn approve_command(&self, provisioner: &str) -> String {
        format!("duoprov sync {provisioner} --approve {}", self.digest)
    }

    /// The message shown to people: the reasons, every removal, its digest and how to approve.
    pub fn message(&self, provisioner: &str) -> String {
        let mut out = format!("refused to apply the plan of provisioner {provisioner}; nothing was changed:\n");
        for r in &self.reasons {
            out.push_str(&format!("  - {r}\n"));
        }
        out.push_str(&format!("it would remove or delete {} (removal digest {}):\n", duoprov_model::counted(self.removals.len(), "object", "objects"), self.digest));
        for r in &self.removals {
            out.push_str(&format!("    {r}\n"));
        }
        out.push_str(&format!(
            "to apply exactly {} {}, run `{}` (refused again if the list changes); \
             or save and review the plan with `duoprov plan {provisioner} --out FILE` and apply it with `duoprov sync {provisioner} --plan FILE`; ",
            if self.removals.len() == 1 { "this" } else { "these" },
            duoprov_model::counted(self.removals.len(), "removal", "removals"),
            self.approve_command(provisioner)
        ));
        if self.thresholds_help {
            out.push_str(&format!("or fix the registry, or raise the thresholds in [provisioner.{provisioner}.thresholds]"));
        } else {
            out.push_str("or fix the registry. Raising thresholds does not lift this refusal: only an approval of this exact list, or a registry that selects what it should, does");
        }
        out
    }
}

/// One removal or deletion for people, by name; `None` for other operations.
pub fn describe(op: &Op) -> Option<String> {
    Some(match op {
        Op::RemoveMember { group_name, username, .. } => format!("remove {username} from group {group_name}"),
        Op::DeleteGroup { name, .. } => format!("delete group {name}"),
        Op::DeleteUser { username, mode: UserDeleteMode::Trash, .. } => format!("delete user {username} (to Trash)"),
        Op::DeleteUser { username, mode: UserDeleteMode::DisableThenTrash, .. } => format!("delete user {username} (disabled, to Trash)"),
        Op::DeleteUser { username, mode: UserDeleteMode::Delete, .. } => format!("delete user {username} (permanently)"),
        Op::DeleteUser { username, mode: UserDeleteMode::Disable, .. } => format!("disable user {username} (kept in Duo)"),
        _ => return None,
    })
}

/// Every removal and deletion of the plan, one line each: group deletions, user deletions, then
/// membership removals, each sorted by name.
pub fn removals(plan: &Plan) -> Vec<String> {
    let order = |op: &Op| match op {
        Op::DeleteGroup { .. } => 0,
        Op::DeleteUser { .. } => 1,
        _ => 2,
    };
    let mut lines: Vec<(u8, String)> = plan.ops.iter().filter_map(|o| describe(&o.op).map(|l| (order(&o.op), l))).collect();
    lines.extend(plan.admins.removals().filter_map(|o| o.describe_removal().map(|l| (3, l))));
    lines.sort();
    lines.into_iter().map(|(_, l)| l).collect()
}

/// The digest of the plan's removals: the first 12 hex digits of SHA-256 over the provisioner's
/// name and the sorted JSON forms of its removal operations (names and Duo ids both), one per
/// line. Two plans share it only if they remove exactly the same objects.
pub fn removal_digest(plan: &Plan) -> String {
    let mut ops: Vec<String> = plan.ops.iter().filter(|o| o.op.is_removal()).map(|o| serde_json::to_string(&o.op).unwrap_or_default()).collect();
    // Administrator removals join the list only when there are any, so a plan without them keeps
    // the digest it always had.
    ops.extend(plan.admins.removals().map(|o| serde_json::to_string(o).unwrap_or_default()));
    ops.sort();
    short_digest("duoprov removals v1\n", &plan.provisioner, ops.iter().map(String::as_str))
}

/// The first 12 hex digits of SHA-256 over `tag`, `owner` and each of `lines` after a newline:
/// the form of every removal digest an operator approves (the caller orders the lines).
pub fn short_digest<'a>(tag: &str, owner: &str, lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tag.as_bytes());
    hasher.update(owner.as_bytes());
    for line in lines {
        hasher.update(b"\n");
        hasher.update(line.as_bytes());
    }
    let mut digest = hex::encode(hasher.finalize());
    digest.truncate(12);
    digest
}

/// Checks a plan. `selected_groups` is how many groups the registry selects (held ones included).
pub fn check(plan: &Plan, policy: &Policy, selected_groups: usize, approval: &Approval) -> Result<(), Refusal> {
    let digest = removal_digest(plan);
    let mut reasons = Vec::new();
    let approved = match &approval.digest {
        Some(given) if given.trim().eq_ignore_ascii_case(&digest) => true,
        Some(given) => {
            reasons.push(format!(
                "the approval names digest {}, which does not match this plan's removals (digest {digest}): the list changed since it was shown, or the digest is wrong",
                given.trim()
            ));
            false
        }
        None => approval.saved_plan,
    };
    // Reasons before this point are lifted only by an approval or a fixed registry.
    let mut only_approval = !reasons.is_empty();
    if selected_groups == 0 && plan.managed_groups > 0 {
        only_approval = true;
        reasons.push(format!(
            "the registry selects no group while Duo holds {} this provisioner manages; an empty or unreadable registry must not empty Duo",
            duoprov_model::counted(plan.managed_groups, "group", "groups")
        ));
    }
    let t = &policy.thresholds;
    let count = |f: fn(&Op) -> bool| plan.ops.iter().filter(|o| f(&o.op)).count();
    let group_deletes = count(|o| matches!(o, Op::DeleteGroup { .. }));
    let user_deletes = count(|o| matches!(o, Op::DeleteUser { .. }));
    let member_removals = count(|o| matches!(o, Op::RemoveMember { .. }));
    let admin_removals = plan.admins.removals().count();
    if admin_removals > 0 && plan.admins.wanted == 0 && plan.admins.managed > 0 {
        only_approval = true;
        reasons.push(format!(
            "no subject of the mapped admin-role groups is wanted as an administrator while duoprov manages {}; an empty or unreadable registry must not disable or delete every administrator",
            duoprov_model::counted(plan.admins.managed, "administrator", "administrators")
        ));
    }
    if admin_removals > t.max_admin_removals {
        reasons.push(format!("{admin_removals} administrator removals (disables or deletes) exceed max_admin_removals = {}", t.max_admin_removals));
    }
    if group_deletes > t.max_group_deletes {
        reasons.push(format!("{group_deletes} group deletions exceed max_group_deletes = {}", t.max_group_deletes));
    }
    if user_deletes > t.max_user_deletes {
        let what = if policy.user_delete_mode == UserDeleteMode::Disable { "user disables" } else { "user deletions" };
        reasons.push(format!("{user_deletes} {what} exceed max_user_deletes = {}", t.max_user_deletes));
    }
    if member_removals > t.max_membership_removals {
        reasons.push(format!("{member_removals} membership removals exceed max_membership_removals = {}", t.max_membership_removals));
    }
    let sizes: HashMap<&str, usize> = plan.group_sizes.iter().map(|(g, n)| (g.as_str(), *n)).collect();
    let mut per_group: HashMap<&str, (usize, &str)> = HashMap::new();
    for o in &plan.ops {
        if let Op::RemoveMember { group_id, group_name, .. } = &o.op {
            per_group.entry(group_id.as_str()).or_insert((0, group_name.as_str())).0 += 1;
        }
    }
    let mut over: Vec<String> = per_group
        .iter()
        .filter_map(|(id, (n, name))| {
            let size = *sizes.get(id)?;
            (size >= t.percent_rule_min_members && (*n as u64) * 100 > (size as u64) * u64::from(t.max_group_removal_percent))
                .then(|| format!("{n} of {size} members of group {name} would be removed, over max_group_removal_percent = {}", t.max_group_removal_percent))
        })
        .collect();
    over.sort();
    reasons.extend(over);
    if reasons.is_empty() || approved {
        return Ok(());
    }
    Err(Refusal { reasons, removals: removals(plan), digest, thresholds_help: !only_approval })
}
