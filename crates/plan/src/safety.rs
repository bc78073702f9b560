//! The safety rules checked before anything is applied: refuse when the registry suddenly
//! selects nothing while Duo holds managed objects, and when removals or deletions exceed the
//! thresholds — unless the run carries an explicit approval for that many.

use std::collections::HashMap;

use serde::Serialize;

use crate::plan::{Op, Plan};
use crate::policy::Policy;

/// An explicit, one-run approval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Approval {
    /// Approves up to this many removals and deletions in total (`--allow-deletes N`).
    pub allow_deletes: Option<usize>,
}

/// Why a plan is refused, and what it would have removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub reasons: Vec<String>,
    /// Every removal and deletion of the plan, as one line each.
    pub removals: Vec<String>,
}

impl Refusal {
    /// The message shown to people: the reasons, what would go, and how to approve.
    pub fn message(&self, provisioner: &str) -> String {
        let mut out = format!("refused to apply the plan of provisioner {provisioner}:\n");
        for r in &self.reasons {
            out.push_str(&format!("  - {r}\n"));
        }
        out.push_str(&format!("it would remove or delete {}:\n", self.removals.len()));
        const SHOWN: usize = 50;
        for r in self.removals.iter().take(SHOWN) {
            out.push_str(&format!("    {r}\n"));
        }
        if self.removals.len() > SHOWN {
            out.push_str(&format!("    … and {} more (see `duoprov plan {provisioner}`)\n", self.removals.len() - SHOWN));
        }
        out.push_str(&format!(
            "to approve, re-run with --allow-deletes {} (this run only), or raise the thresholds in [provisioner.{provisioner}]",
            self.removals.len()
        ));
        out
    }
}

fn describe(op: &Op) -> Option<String> {
    Some(match op {
        Op::RemoveMember { group_name, username, .. } => format!("remove {username} from group {group_name}"),
        Op::DeleteGroup { name, group_id, .. } => format!("delete group {name} ({group_id})"),
        Op::DeleteUser { username, user_id, .. } => format!("delete user {username} ({user_id})"),
        _ => return None,
    })
}

/// Checks a plan. `selected_groups` is how many groups the registry selects (held ones included).
pub fn check(plan: &Plan, policy: &Policy, selected_groups: usize, approval: Approval) -> Result<(), Refusal> {
    let removals: Vec<String> = plan.ops.iter().filter_map(|o| describe(&o.op)).collect();
    let mut reasons = Vec::new();
    if selected_groups == 0 && plan.managed_groups > 0 {
        reasons.push(format!(
            "the registry selects no group while Duo holds {} group(s) this provisioner manages; an empty or unreadable registry must not empty Duo",
            plan.managed_groups
        ));
    }
    let t = &policy.thresholds;
    let count = |f: fn(&Op) -> bool| plan.ops.iter().filter(|o| f(&o.op)).count();
    let group_deletes = count(|o| matches!(o, Op::DeleteGroup { .. }));
    let user_deletes = count(|o| matches!(o, Op::DeleteUser { .. }));
    let member_removals = count(|o| matches!(o, Op::RemoveMember { .. }));
    if group_deletes > t.max_group_deletes {
        reasons.push(format!("{group_deletes} group deletions exceed max_group_deletes = {}", t.max_group_deletes));
    }
    if user_deletes > t.max_user_deletes {
        reasons.push(format!("{user_deletes} user deletions exceed max_user_deletes = {}", t.max_user_deletes));
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
    if reasons.is_empty() {
        return Ok(());
    }
    if approval.allow_deletes.is_some_and(|n| removals.len() <= n) {
        return Ok(());
    }
    Err(Refusal { reasons, removals })
}
