//! Matching, diff and ordering: the desired state against what Duo holds and what duoprov
//! remembers (links), under a policy, gives the plan — the exact, ordered operations a sync would
//! perform, each with its reason. Identical inputs give an identical plan; equal states give an
//! empty one.
//!
//! Matching takes links first (the Duo id duoprov recorded), then the group name (exact) or the
//! username as the account compares them ([`duoprov_model::DuoSnapshot::usernames`]:
//! case-insensitive through [`duoprov_model::username_key`] by default, the field diff then
//! ignoring a difference of case only; exact when a recorded probe found Duo case-sensitive).
//! Without a recorded probe, an unlinked Duo user whose username differs only in case is held
//! with `MAT` naming `duoprov doctor P --probe` (it is the subject's user under one reading and
//! someone else's under the other). Two candidates for one object is error `MAT` on that object and
//! nothing is guessed; so is a username that is another Duo user's alias. A selected user found
//! in Duo's Trash is restored; one duoprov created stays linked (parked) while in Trash. Under
//! `user_delete_mode = "disable"` a leaving user is disabled instead of deleted (once: an already
//! disabled user needs no call), and re-enabled when selected again only if the links record
//! that duoprov disabled it; a user disabled by anyone else stays disabled. A Duo object matched by name that duoprov did not create is *adopted*:
//! shown in the plan, managed from then on, but never counted as created by duoprov (so never
//! deleted under the default policy, and its fields rewritten only with `update_adopted`).
//!
//! A link without a Duo id but with a pending name records a create whose outcome is unknown:
//! only the one unlinked Duo object of exactly that name (for users: created at or after the
//! intent was recorded) is *claimed* as duoprov's own; anything else of a matching name is
//! adopted. Duo objects linked by other provisioners of the same Duo account are never adopted,
//! deleted or emptied: a group is held with `MAT`, a user is only shared (matched, never owned,
//! never rewritten or deleted).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use duoprov_model::{DuoSnapshot, Links, SubjectKey};
use serde::{Deserialize, Serialize};

use crate::desired::DesiredState;
use crate::error::{ErrorCode, ErrorObject, ObjectError};
use crate::policy::{DeletePolicy, Policy, UserDeleteMode};

/// Most groups one Duo user may be in.
pub const MAX_GROUPS_PER_USER: usize = 100;

/// A name shared by many operations (a group's id and name appear in every membership of it),
/// so cloning it into each is a reference-count increment, not an allocation.
pub type Shared = Arc<str>;

/// A group an operation acts on: one that exists in Duo, or one this plan creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupRef {
    Existing { group_id: Shared, name: Shared },
    New { uuid: Shared, name: Shared },
}

impl GroupRef {
    pub fn name(&self) -> &str {
        match self {
            GroupRef::Existing { name, .. } | GroupRef::New { name, .. } => name,
        }
    }
}

/// A user an operation acts on: one that exists in Duo, or one this plan creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UserRef {
    Existing { user_id: Shared, username: Shared },
    New { source: Shared, id: Shared, username: Shared },
}

impl UserRef {
    pub fn username(&self) -> &str {
        match self {
            UserRef::Existing { username, .. } | UserRef::New { username, .. } => username,
        }
    }
}

/// One field's change: a [`GroupField`] or a [`UserField`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange<F> {
    pub field: F,
    pub before: String,
    pub after: String,
}

/// A Duo group field an update sets; saved and shown by its Duo parameter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupField {
    Name,
    Desc,
}

impl GroupField {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupField::Name => "name",
            GroupField::Desc => "desc",
        }
    }
}

impl std::fmt::Display for GroupField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Duo user field an update sets; saved and shown by its Duo parameter name (`alias1` to
/// `alias4` for the alias slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserField {
    Username,
    Realname,
    Email,
    Firstname,
    Lastname,
    Alias1,
    Alias2,
    Alias3,
    Alias4,
}

impl UserField {
    pub fn as_str(self) -> &'static str {
        match self {
            UserField::Username => "username",
            UserField::Realname => "realname",
            UserField::Email => "email",
            UserField::Firstname => "firstname",
            UserField::Lastname => "lastname",
            UserField::Alias1 => "alias1",
            UserField::Alias2 => "alias2",
            UserField::Alias3 => "alias3",
            UserField::Alias4 => "alias4",
        }
    }

    /// The field of alias slot `slot` (1 to 4).
    pub fn alias(slot: u8) -> Option<UserField> {
        match slot {
            1 => Some(UserField::Alias1),
            2 => Some(UserField::Alias2),
            3 => Some(UserField::Alias3),
            4 => Some(UserField::Alias4),
            _ => None,
        }
    }

    /// The alias slot this field sets, if it is an alias.
    pub fn alias_slot(self) -> Option<u8> {
        match self {
            UserField::Alias1 => Some(1),
            UserField::Alias2 => Some(2),
            UserField::Alias3 => Some(3),
            UserField::Alias4 => Some(4),
            _ => None,
        }
    }
}

impl std::fmt::Display for UserField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a registry object came to be paired with a Duo object, or not: its link names it
/// (`linked`), a recorded create intent claims it (`claimed`), a released link to the same Duo
/// object is taken over (`taken over`), it is found by name or shared with another provisioner
/// of the Duo account (`adopted`), or nothing matches and it is created (`create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provenance {
    Linked,
    Claimed,
    TakenOver,
    Adopted,
    Create,
}

impl Provenance {
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Linked => "linked",
            Provenance::Claimed => "claimed",
            Provenance::TakenOver => "taken over",
            Provenance::Adopted => "adopted",
            Provenance::Create => "create",
        }
    }
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Duo operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    CreateGroup { uuid: String, name: String, desc: String },
    CreateUser {
        source: String,
        id: String,
        username: String,
        realname: String,
        email: String,
        firstname: String,
        lastname: String,
        /// Configured aliases by slot (1 to 4).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        aliases: Vec<(u8, String)>,
    },
    /// Restores a selected user from Duo's Trash (`bulk_restore`), before its memberships are
    /// added; `reactivate` also sets `status=active` (users trashed by `disable_then_trash`).
    RestoreUser { source: String, id: String, user_id: String, username: String, reactivate: bool },
    /// Sets `status=active` on a selected user duoprov disabled (`user_delete_mode = "disable"`)
    /// when its subject left every selected group.
    EnableUser { source: String, id: String, user_id: String, username: String },
    UpdateGroup { uuid: String, group_id: String, name: String, changes: Vec<FieldChange<GroupField>> },
    UpdateUser { source: String, id: String, user_id: String, username: String, changes: Vec<FieldChange<UserField>> },
    RemoveMember { group_id: String, group_name: String, user_id: String, username: String },
    AddMember { group_uuid: Shared, source: Shared, id: Shared, group: GroupRef, user: UserRef },
    DeleteGroup { uuid: String, group_id: String, name: String },
    DeleteUser { source: String, id: String, user_id: String, username: String, mode: UserDeleteMode },
}

impl Op {
    /// Position in the plan: creates, updates, membership removals, additions, deletes.
    pub fn class(&self) -> u8 {
        match self {
            Op::CreateGroup { .. } => 0,
            Op::CreateUser { .. } | Op::RestoreUser { .. } | Op::EnableUser { .. } => 1,
            Op::UpdateGroup { .. } => 2,
            Op::UpdateUser { .. } => 3,
            Op::RemoveMember { .. } => 4,
            Op::AddMember { .. } => 5,
            Op::DeleteGroup { .. } => 6,
            Op::DeleteUser { .. } => 7,
        }
    }

    /// Removals and deletions (a disable counts as a user deletion), which the safety rules count.
    pub fn is_removal(&self) -> bool {
        matches!(self, Op::RemoveMember { .. } | Op::DeleteGroup { .. } | Op::DeleteUser { .. })
    }
}

/// An operation and why it is planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOp {
    #[serde(flatten)]
    pub op: Op,
    pub reason: String,
}

/// A Duo object duoprov starts managing without having created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Adoption {
    Group { uuid: String, registry_name: String, group_id: String, name: String },
    User { source: String, id: String, user_id: String, username: String },
}

/// A registry group paired with a Duo group (to be recorded as a link).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMatch {
    pub uuid: String,
    pub group_id: String,
    pub created_by_us: bool,
}

/// A registry subject paired with a Duo user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMatch {
    pub source: String,
    pub id: String,
    pub user_id: String,
    pub created_by_us: bool,
}

/// The plan of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub provisioner: String,
    pub ops: Vec<PlannedOp>,
    pub adoptions: Vec<Adoption>,
    pub errors: Vec<ObjectError>,
    /// Existing pairs to record (links confirmed or taken over).
    pub group_matches: Vec<GroupMatch>,
    pub user_matches: Vec<UserMatch>,
    /// Groups that leave management without being deleted (uuids).
    pub released_groups: Vec<String>,
    /// Subjects whose Duo users leave management without being deleted.
    pub released_users: Vec<SubjectKey>,
    /// Groups duoprov created that leave management but stay in Duo: their links are kept (out
    /// of target), so if they are selected again they are duoprov's own, not adopted.
    #[serde(default)]
    pub parked_groups: Vec<String>,
    /// Subjects whose Duo users duoprov created leave management but stay in Duo, links kept.
    #[serde(default)]
    pub parked_users: Vec<SubjectKey>,
    /// Selected subjects whose Duo users are disabled, but not by duoprov (an administrator's
    /// choice): left disabled, and said in the plan. (subject, Duo username)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_disabled: Vec<(SubjectKey, String)>,
    /// Subjects whose "disabled by duoprov" record no longer holds (their Duo user is active
    /// again, re-enabled by someone else, or gone): the record is cleared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_cleared: Vec<SubjectKey>,
    /// How many groups and users duoprov manages in Duo before this plan (for the safety rules).
    pub managed_groups: usize,
    pub managed_users: usize,
    /// Duo member counts of the groups this plan removes members from, by group id, for the
    /// percentage rule. The planner counts the members in its snapshot: the real size when the
    /// snapshot holds every user (a full sync). A scoped snapshot holds only some members (a
    /// lower bound), so an incremental run replaces each count with the one Duo reports before
    /// the safety check, wherever the real size could change the rule's outcome.
    pub group_sizes: Vec<(String, usize)>,
    /// Duo administrators (admin roles; empty unless configured and planned by a full sync).
    #[serde(default, skip_serializing_if = "crate::admins::AdminPlan::is_empty")]
    pub admins: crate::admins::AdminPlan,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.admins.ops.is_empty()
    }
}

/// Whether a Duo user is in Duo's Trash (status "pending deletion").
pub fn in_trash(du: &duoprov_model::DuoUser) -> bool {
    du.status.eq_ignore_ascii_case("pending deletion")
}

/// Whether a Duo user is disabled (status "disabled").
pub fn is_disabled(du: &duoprov_model::DuoUser) -> bool {
    du.status.eq_ignore_ascii_case("disabled")
}

/// Positions of Duo's users by normalised username (as this account compares them,
/// [`DuoSnapshot::usernames`]: case-insensitively unless a probe found otherwise).
fn users_by_lowercase_name(duo: &DuoSnapshot) -> HashMap<String, Vec<usize>> {
    let mut m: HashMap<String, Vec<usize>> = HashMap::with_capacity(duo.users.len());
    for (i, du) in duo.users.iter().enumerate() {
        m.entry(duo.usernames.key(&du.username)).or_default().push(i);
    }
    m
}

/// Positions of Duo's users by normalised alias: Duo keeps usernames and aliases unique together,
/// so a desired username equal to someone's alias names that user, and a create would be refused.
fn users_by_alias(duo: &DuoSnapshot) -> HashMap<String, Vec<usize>> {
    let mut m: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, du) in duo.users.iter().enumerate() {
        for a in du.aliases.iter().filter(|a| !a.is_empty()) {
            m.entry(duo.usernames.key(a)).or_default().push(i);
        }
    }
    m
}

/// Builds the plan. `provisioner` names it; the rest is pure data.
pub fn build_plan(provisioner: &str, desired: &DesiredState, duo: &DuoSnapshot, links: &Links, policy: &Policy) -> Plan {
    let mut plan = Plan { provisioner: provisioner.to_owned(), errors: desired.errors.clone(), ..Default::default() };
    let mut ops: Vec<PlannedOp> = Vec::new();

    // Indexes of Duo's side.
    let group_by_id: HashMap<&str, usize> = duo.groups.iter().enumerate().map(|(i, g)| (g.group_id.as_str(), i)).collect();
    let mut groups_by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, g) in duo.groups.iter().enumerate() {
        groups_by_name.entry(g.name.as_str()).or_default().push(i);
    }
    let user_by_id: HashMap<&str, usize> = duo.users.iter().enumerate().map(|(i, u)| (u.user_id.as_str(), i)).collect();
    // Built on first need: a steady-state sync matches every user by its link.
    let mut users_by_name: Option<HashMap<String, Vec<usize>>> = None;
    let mut aliases: Option<HashMap<String, Vec<usize>>> = None;
    let mut members_of: Vec<Vec<usize>> = vec![Vec::new(); duo.groups.len()];
    for (i, u) in duo.users.iter().enumerate() {
        for g in &u.groups {
            if let Some(gi) = group_by_id.get(g.as_str()) {
                members_of[*gi].push(i);
            }
        }
    }

    // ---------------------------------------------------------------- groups
    let desired_uuids: HashSet<&str> = desired.groups.iter().map(|g| g.uuid.as_str()).collect();
    let group_link: HashMap<&str, &duoprov_model::GroupLink> = links.groups.iter().map(|l| (l.group_uuid.as_str(), l)).collect();
    plan.managed_groups = links.groups.iter().filter(|l| l.in_target && l.duo_group_id.as_deref().is_some_and(|id| group_by_id.contains_key(id))).count();
    // Duo groups held by links of groups that stay selected (or are held) cannot be matched by name.
    let mut claimed_groups: HashSet<&str> = HashSet::new();
    for l in &links.groups {
        if (desired_uuids.contains(l.group_uuid.as_str()) || desired.held_groups.contains(&l.group_uuid))
            && let Some(id) = l.duo_group_id.as_deref().filter(|id| group_by_id.contains_key(id))
        {
            claimed_groups.insert(id);
        }
    }
    // Links of groups no longer selected, by their Duo id: a desired group matching such a Duo
    // group by name takes the link over (a registry group deleted and re-created).
    let released_link_by_duo_id: HashMap<&str, &duoprov_model::GroupLink> = links
        .groups
        .iter()
        .filter(|l| !desired_uuids.contains(l.group_uuid.as_str()) && !desired.held_groups.contains(&l.group_uuid))
        .filter_map(|l| l.duo_group_id.as_deref().map(|id| (id, l)))
        .collect();
    let mut taken_over: HashSet<&str> = HashSet::new();
    let linked_group_ids: HashSet<&str> = links.groups.iter().filter_map(|l| l.duo_group_id.as_deref()).collect();
    let foreign_groups = &links.foreign.groups;
    // The Duo group an intended create with an unknown outcome made: the one group of exactly the
    // intended name that no link (of this provisioner or another of its Duo account) holds.
    // Groups carry no creation time; an intent without a time (recorded by a version that kept
    // intents after refused creates) claims nothing.
    let intended_group = |l: &duoprov_model::GroupLink, claimed: &HashSet<&str>| -> Option<usize> {
        let name = l.pending_name.as_deref().filter(|_| l.created_by_us && l.duo_group_id.is_none() && l.pending_at.is_some())?;
        let free: Vec<usize> = groups_by_name
            .get(name)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|i| {
                        let id = duo.groups[*i].group_id.as_str();
                        !claimed.contains(id) && !linked_group_ids.contains(id) && !foreign_groups.contains_key(id)
                    })
                    .collect()
            })
            .unwrap_or_default();
        (free.len() == 1).then(|| free[0])
    };
    // uuid → where its members go.
    let mut group_target: HashMap<&str, GroupRef> = HashMap::new();
    for g in &desired.groups {
        let link = group_link.get(g.uuid.as_str()).copied();
        let linked = link.and_then(|l| l.duo_group_id.as_deref()).and_then(|id| group_by_id.get(id).copied());
        let intended = if linked.is_none() { link.and_then(|l| intended_group(l, &claimed_groups)) } else { None };
        let (index, owned, how) = match (linked, intended) {
            (Some(i), _) => {
                let owned = link.is_some_and(|l| l.created_by_us);
                if let Some(other) = foreign_groups.get(duo.groups[i].group_id.as_str()).filter(|_| !owned) {
                    plan.errors.push(ObjectError {
                        object: ErrorObject::Group { uuid: g.uuid.clone(), name: g.registry_name.clone() },
                        code: ErrorCode::Mat,
                        message: format!(
                            "Duo group {:?} is also linked by provisioner {}; it is held until only one provisioner of this Duo account links it",
                            duo.groups[i].name, other.provisioner
                        ),
                    });
                    continue;
                }
                (Some(i), owned, Provenance::Linked)
            }
            (None, Some(i)) => {
                claimed_groups.insert(duo.groups[i].group_id.as_str());
                (Some(i), true, Provenance::Claimed)
            }
            (None, None) => {
                let same_name: &[usize] = groups_by_name.get(g.fields.name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                let candidates: Vec<usize> = same_name
                    .iter()
                    .copied()
                    .filter(|i| !claimed_groups.contains(duo.groups[*i].group_id.as_str()) && !foreign_groups.contains_key(duo.groups[*i].group_id.as_str()))
                    .collect();
                match candidates.len() {
                    // Another provisioner of this Duo account manages the only group of that name.
                    0 if let Some(other) = same_name.iter().find_map(|i| foreign_groups.get(duo.groups[*i].group_id.as_str())) => {
                        plan.errors.push(ObjectError {
                            object: ErrorObject::Group { uuid: g.uuid.clone(), name: g.registry_name.clone() },
                            code: ErrorCode::Mat,
                            message: format!(
                                "Duo group {:?} is managed by provisioner {}; two provisioners of one Duo account cannot share a group (rename one of the groups, or select it in one provisioner only)",
                                g.fields.name, other.provisioner
                            ),
                        });
                        continue;
                    }
                    0 if policy.create_groups => (None, true, Provenance::Create),
                    0 => {
                        plan.errors.push(ObjectError {
                            object: ErrorObject::Group { uuid: g.uuid.clone(), name: g.registry_name.clone() },
                            code: ErrorCode::Dne,
                            message: format!(
                                "Duo has no group {:?} and this provisioner only matches groups (create_groups = false); create it in Duo, or change the group name template",
                                g.fields.name
                            ),
                        });
                        continue;
                    }
                    1 => {
                        let i = candidates[0];
                        let id = duo.groups[i].group_id.as_str();
                        claimed_groups.insert(id);
                        match released_link_by_duo_id.get(id) {
                            Some(old) => {
                                taken_over.insert(old.group_uuid.as_str());
                                (Some(i), old.created_by_us, Provenance::TakenOver)
                            }
                            None => (Some(i), false, Provenance::Adopted),
                        }
                    }
                    n => {
                        plan.errors.push(ObjectError {
                            object: ErrorObject::Group { uuid: g.uuid.clone(), name: g.registry_name.clone() },
                            code: ErrorCode::Mat,
                            message: format!("{n} Duo groups are named {:?}; rename or link one", g.fields.name),
                        });
                        continue;
                    }
                }
            }
        };
        match index {
            None => {
                ops.push(PlannedOp {
                    op: Op::CreateGroup { uuid: g.uuid.clone(), name: g.fields.name.clone(), desc: g.fields.desc.clone() },
                    reason: match desired.selected_by.get(&g.uuid) {
                        Some(why) => format!("registry group {} is selected ({why}) and Duo has no group {:?}", g.registry_name, g.fields.name),
                        None => format!("registry group {} is selected and Duo has no group {:?}", g.registry_name, g.fields.name),
                    },
                });
                group_target.insert(&g.uuid, GroupRef::New { uuid: g.uuid.as_str().into(), name: g.fields.name.as_str().into() });
            }
            Some(i) => {
                let dg = &duo.groups[i];
                if how == Provenance::Adopted {
                    plan.adoptions.push(Adoption::Group {
                        uuid: g.uuid.clone(),
                        registry_name: g.registry_name.clone(),
                        group_id: dg.group_id.clone(),
                        name: dg.name.clone(),
                    });
                }
                plan.group_matches.push(GroupMatch { uuid: g.uuid.clone(), group_id: dg.group_id.clone(), created_by_us: owned });
                if policy.create_groups && (owned || policy.update_adopted) {
                    let mut changes = Vec::new();
                    if dg.name != g.fields.name {
                        changes.push(FieldChange { field: GroupField::Name, before: dg.name.clone(), after: g.fields.name.clone() });
                    }
                    if dg.desc != g.fields.desc && !desired.unmanaged.contains("group_desc") {
                        changes.push(FieldChange { field: GroupField::Desc, before: dg.desc.clone(), after: g.fields.desc.clone() });
                    }
                    if !changes.is_empty() {
                        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
                        ops.push(PlannedOp {
                            op: Op::UpdateGroup { uuid: g.uuid.clone(), group_id: dg.group_id.clone(), name: g.fields.name.clone(), changes: changes.clone() },
                            reason: format!("registry group {} changed: {}", g.registry_name, fields.join(", ")),
                        });
                    }
                }
                group_target.insert(&g.uuid, GroupRef::Existing { group_id: dg.group_id.as_str().into(), name: g.fields.name.as_str().into() });
            }
        }
    }
    // Links taken over by a re-created registry group are forgotten (the new link replaces them);
    // kept, they would make the next run delete the Duo group the new link now uses.
    plan.released_groups.extend(taken_over.iter().map(|u| (*u).to_owned()));
    // Groups no longer selected.
    let mut leaving: Vec<&duoprov_model::GroupLink> = links
        .groups
        .iter()
        .filter(|l| !desired_uuids.contains(l.group_uuid.as_str()) && !desired.held_groups.contains(&l.group_uuid))
        .filter(|l| !taken_over.contains(l.group_uuid.as_str()))
        .collect();
    leaving.sort_by(|a, b| a.group_uuid.cmp(&b.group_uuid));
    let mut deleted_groups: HashSet<&str> = HashSet::new();
    for l in leaving {
        let mut present = l.duo_group_id.as_deref().and_then(|id| group_by_id.get(id).copied());
        // In target, or parked (kept out of target with its Duo id); never a group another
        // provisioner of this Duo account links, unless duoprov created it here.
        let mut ours = (l.in_target || l.duo_group_id.is_some())
            && (l.created_by_us || !l.duo_group_id.as_deref().is_some_and(|id| foreign_groups.contains_key(id)));
        // A create whose outcome was unknown: exactly the Duo group it asked for is duoprov's own.
        if l.duo_group_id.is_none()
            && let Some(i) = intended_group(l, &claimed_groups)
        {
            present = Some(i);
            ours = true;
        }
        let delete = policy.create_groups && match policy.group_delete {
            DeletePolicy::Never => false,
            DeletePolicy::CreatedByUs => l.created_by_us,
            DeletePolicy::NotInSource => true,
            // Only duoprov's own groups: a hand-made Duo group it adopted is released, never deleted.
            DeletePolicy::RegistryDeleted => l.created_by_us && desired.deleted_groups.contains(&l.group_uuid),
        };
        match present {
            Some(i) if delete && ours => {
                let dg = &duo.groups[i];
                deleted_groups.insert(dg.group_id.as_str());
                ops.push(PlannedOp {
                    op: Op::DeleteGroup { uuid: l.group_uuid.clone(), group_id: dg.group_id.clone(), name: dg.name.clone() },
                    reason: {
                        let left = match desired.rule_excluded.get(&l.group_uuid) {
                            Some(rule) => format!("no longer selected by the registry ({rule})"),
                            None => "no longer selected by the registry".to_owned(),
                        };
                        if policy.group_delete == DeletePolicy::RegistryDeleted {
                            "its registry group was deleted (group delete policy: registry_deleted)".into()
                        } else if l.created_by_us {
                            format!("{left}, and duoprov created it")
                        } else {
                            format!("{left} (group delete policy: not_in_source)")
                        }
                    },
                });
            }
            // Ours and still in Duo: kept, out of management, remembered as ours.
            Some(_) if l.created_by_us && l.duo_group_id.is_some() => plan.parked_groups.push(l.group_uuid.clone()),
            _ => plan.released_groups.push(l.group_uuid.clone()),
        }
    }

    // ----------------------------------------------------------------- users
    let desired_keys: HashSet<&SubjectKey> = desired.users.iter().map(|u| &u.key).collect();
    let user_link: HashMap<&SubjectKey, &duoprov_model::UserLink> = links.users.iter().map(|l| (&l.subject, l)).collect();
    plan.managed_users = links.users.iter().filter(|l| l.in_target && l.duo_user_id.as_deref().is_some_and(|id| user_by_id.contains_key(id))).count();
    let mut claimed_users: HashSet<&str> = HashSet::new();
    let mut held_user_ids: HashSet<&str> = HashSet::new();
    for l in &links.users {
        let keep = desired_keys.contains(&l.subject) || desired.held_users.contains(&l.subject);
        if let Some(id) = l.duo_user_id.as_deref().filter(|id| user_by_id.contains_key(id)) {
            if keep {
                claimed_users.insert(id);
            }
            if desired.held_users.contains(&l.subject) {
                held_user_ids.insert(id);
            }
        }
    }
    let released_user_by_duo_id: HashMap<&str, &duoprov_model::UserLink> = links
        .users
        .iter()
        .filter(|l| !desired_keys.contains(&l.subject) && !desired.held_users.contains(&l.subject))
        .filter_map(|l| l.duo_user_id.as_deref().map(|id| (id, l)))
        .collect();
    let mut users_taken_over: HashSet<&SubjectKey> = HashSet::new();
    let linked_user_ids: HashSet<&str> = links.users.iter().filter_map(|l| l.duo_user_id.as_deref()).collect();
    let foreign_users = &links.foreign.users;
    // The Duo user an intended create with an unknown outcome made: the one user of the intended
    // username (case-insensitively) that no link holds and that Duo created at or after the
    // intent was recorded. Anything else of that name is someone else's.
    let intended_user = |l: &duoprov_model::UserLink, claimed: &HashSet<&str>, by_name: &HashMap<String, Vec<usize>>| -> Option<usize> {
        let name = l.pending_name.as_deref().filter(|_| l.created_by_us && l.duo_user_id.is_none())?;
        // Duo reports whole seconds: a user made in the intent's second counts as after it.
        let at = l.pending_at?.whole_secs();
        let free: Vec<usize> = by_name
            .get(&duo.usernames.key(name))
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|i| {
                        let du = &duo.users[*i];
                        let id = du.user_id.as_str();
                        !claimed.contains(id) && !linked_user_ids.contains(id) && !foreign_users.contains_key(id) && du.created.is_some_and(|c| c >= at)
                    })
                    .collect()
            })
            .unwrap_or_default();
        (free.len() == 1).then(|| free[0])
    };
    // Duo users duoprov made itself without a recorded id: those a pending create intent of any
    // subject could claim (its name case-insensitively, made at or after the intent).
    let intended_ids: HashSet<&str> = {
        let pending: Vec<&duoprov_model::UserLink> =
            links.users.iter().filter(|l| l.created_by_us && l.duo_user_id.is_none() && l.pending_name.is_some() && l.pending_at.is_some()).collect();
        if pending.is_empty() {
            HashSet::new()
        } else {
            let by_name = users_by_name.get_or_insert_with(|| users_by_lowercase_name(duo));
            pending
                .iter()
                .filter_map(|l| Some((by_name.get(&duo.usernames.key(l.pending_name.as_deref()?))?, l.pending_at?.whole_secs())))
                .flat_map(|(v, at)| v.iter().filter(move |i| duo.users[**i].created.is_some_and(|c| c >= at)))
                .map(|i| duo.users[*i].user_id.as_str())
                .collect()
        }
    };
    let mut user_target: Vec<Option<UserRef>> = vec![None; desired.users.len()];
    for (ui, u) in desired.users.iter().enumerate() {
        let link = user_link.get(&u.key).copied();
        let linked = link.and_then(|l| l.duo_user_id.as_deref()).and_then(|id| user_by_id.get(id).copied());
        let object = || ErrorObject::User { source: u.key.source.clone(), id: u.key.id.clone() };
        let intended = match (linked, link) {
            (None, Some(l)) if l.pending_name.is_some() => {
                let by_name = users_by_name.get_or_insert_with(|| users_by_lowercase_name(duo));
                intended_user(l, &claimed_users, by_name)
            }
            _ => None,
        };
        let (index, owned, how) = match (linked, intended) {
            (Some(i), _) => (Some(i), link.is_some_and(|l| l.created_by_us), Provenance::Linked),
            (None, Some(i)) => {
                claimed_users.insert(duo.users[i].user_id.as_str());
                (Some(i), true, Provenance::Claimed)
            }
            // The same subject's user, linked by another provisioner of this Duo account: shared.
            (None, None)
                if let Some(i) = links
                    .foreign
                    .user_of_subject
                    .get(&u.key.to_string())
                    .and_then(|id| user_by_id.get(id.as_str()).copied())
                    .filter(|i| !claimed_users.contains(duo.users[*i].user_id.as_str())) =>
            {
                claimed_users.insert(duo.users[i].user_id.as_str());
                (Some(i), false, Provenance::Adopted)
            }
            (None, None) => {
                let by_name = users_by_name.get_or_insert_with(|| users_by_lowercase_name(duo));
                let same_key: &[usize] = by_name.get(&duo.usernames.key(&u.fields.username)).map(Vec::as_slice).unwrap_or_default();
                let candidates: Vec<usize> = same_key.iter().copied().filter(|i| !claimed_users.contains(duo.users[*i].user_id.as_str())).collect();
                // Duo holds this name only in other cases (claimed by others or not): the same
                // user if Duo compares case-insensitively, another if it compares exactly. Only a
                // user duoprov made itself (for this subject or another) is known without a probe.
                let made_by_us = |i: usize| {
                    let id = duo.users[i].user_id.as_str();
                    released_user_by_duo_id.contains_key(id) || intended_ids.contains(id)
                };
                let case_only = !duo.usernames.probed()
                    && !same_key.is_empty()
                    && same_key.iter().all(|i| duo.users[*i].username != u.fields.username)
                    && (candidates.len() != 1 || !made_by_us(candidates[0]));
                let alias_of = if candidates.is_empty() {
                    let by_alias = aliases.get_or_insert_with(|| users_by_alias(duo));
                    by_alias.get(&duo.usernames.key(&u.fields.username)).and_then(|v| v.first().copied())
                } else {
                    None
                };
                match candidates.len() {
                    // Duo keeps usernames and aliases unique together: a create would be refused.
                    0 if let Some(i) = alias_of => {
                        plan.errors.push(ObjectError {
                            object: object(),
                            code: ErrorCode::Mat,
                            message: format!(
                                "username {} is an alias of Duo user {}; Duo refuses a user whose username is another user's alias (remove the alias from {} in Duo, or change this subject's username template)",
                                u.fields.username, duo.users[i].username, duo.users[i].username
                            ),
                        });
                        continue;
                    }
                    0 if policy.create_users => (None, true, Provenance::Create),
                    0 => {
                        plan.errors.push(ObjectError {
                            object: object(),
                            code: ErrorCode::Dne,
                            message: format!("Duo has no user {:?} and this provisioner does not create users", u.fields.username),
                        });
                        continue;
                    }
                    // A Duo user whose username differs only in case is this subject's user if
                    // Duo compares case-insensitively, and someone else if it compares exactly:
                    // without a probe, neither adopted nor doubled by a create, but held.
                    _ if case_only => {
                        // Unclaimed candidates keep their memberships while the subject is held.
                        held_user_ids.extend(candidates.iter().map(|i| duo.users[*i].user_id.as_str()));
                        plan.errors.push(ObjectError {
                            object: object(),
                            code: ErrorCode::Mat,
                            message: format!(
                                "Duo user {:?} differs from username {:?} only in case: it is this subject's user if Duo compares usernames case-insensitively, and another person's (a create would then be allowed) if Duo compares them exactly; held until `duoprov doctor {provisioner} --probe` records which",
                                duo.users[same_key[0]].username, u.fields.username
                            ),
                        });
                        continue;
                    }
                    1 => {
                        let i = candidates[0];
                        let id = duo.users[i].user_id.as_str();
                        claimed_users.insert(id);
                        match released_user_by_duo_id.get(id) {
                            Some(old) => {
                                users_taken_over.insert(&old.subject);
                                (Some(i), old.created_by_us, Provenance::TakenOver)
                            }
                            None => (Some(i), false, Provenance::Adopted),
                        }
                    }
                    n => {
                        plan.errors.push(ObjectError {
                            object: object(),
                            code: ErrorCode::Mat,
                            message: format!("{n} Duo users match the username {:?} (case-insensitively)", u.fields.username),
                        });
                        continue;
                    }
                }
            }
        };
        match index {
            None => {
                let f = &u.fields;
                ops.push(PlannedOp {
                    op: Op::CreateUser {
                        source: u.key.source.clone(),
                        id: u.key.id.clone(),
                        username: f.username.clone(),
                        realname: f.realname.clone(),
                        email: f.email.clone(),
                        firstname: f.firstname.clone(),
                        lastname: f.lastname.clone(),
                        aliases: f.aliases.clone(),
                    },
                    reason: format!("subject {} is a member of a selected group and Duo has no user {:?}", u.key, f.username),
                });
                user_target[ui] = Some(UserRef::New { source: u.key.source.as_str().into(), id: u.key.id.as_str().into(), username: f.username.as_str().into() });
            }
            Some(i) => {
                let du = &duo.users[i];
                if how == Provenance::Adopted {
                    plan.adoptions.push(Adoption::User {
                        source: u.key.source.clone(),
                        id: u.key.id.clone(),
                        user_id: du.user_id.clone(),
                        username: du.username.clone(),
                    });
                }
                plan.user_matches.push(UserMatch { source: u.key.source.clone(), id: u.key.id.clone(), user_id: du.user_id.clone(), created_by_us: owned });
                // Selected again while in Duo's Trash: restored before memberships are added, or
                // Duo would purge a user the registry wants.
                if in_trash(du) {
                    ops.push(PlannedOp {
                        op: Op::RestoreUser {
                            source: u.key.source.clone(),
                            id: u.key.id.clone(),
                            user_id: du.user_id.clone(),
                            username: du.username.clone(),
                            reactivate: owned && policy.user_delete_mode == UserDeleteMode::DisableThenTrash,
                        },
                        reason: format!("subject {} is selected and Duo user {} is in Duo's Trash", u.key, du.username),
                    });
                }
                // Selected again after duoprov disabled it: re-enabled. A user disabled by
                // anyone else stays disabled (an administrator's choice), and the plan says so.
                let disabled_by_us = links.disabled_by_us.contains(&u.key);
                if is_disabled(du) && disabled_by_us {
                    ops.push(PlannedOp {
                        op: Op::EnableUser { source: u.key.source.clone(), id: u.key.id.clone(), user_id: du.user_id.clone(), username: du.username.clone() },
                        reason: format!("subject {} is selected again and duoprov disabled Duo user {} when it left", u.key, du.username),
                    });
                } else if is_disabled(du) {
                    plan.kept_disabled.push((u.key.clone(), du.username.clone()));
                } else if disabled_by_us {
                    plan.disabled_cleared.push(u.key.clone());
                }
                // A user another provisioner of this Duo account links is shared: its fields
                // belong to that provisioner (or whoever made it), never rewritten here.
                let shared = !owned && foreign_users.contains_key(du.user_id.as_str());
                if owned || (policy.update_adopted && !shared) {
                    let f = &u.fields;
                    let mut changes = Vec::new();
                    // Duo stores usernames lowercased: a difference of case only is no change.
                    if !duo.usernames.same(&du.username, &f.username) {
                        changes.push(FieldChange { field: UserField::Username, before: du.username.clone(), after: f.username.clone() });
                    }
                    for (field, before, after) in [
                        (UserField::Realname, &du.realname, &f.realname),
                        (UserField::Email, &du.email, &f.email),
                        (UserField::Firstname, &du.firstname, &f.firstname),
                        (UserField::Lastname, &du.lastname, &f.lastname),
                    ] {
                        // An unmanaged field keeps whatever Duo holds (these fields' names are
                        // their configuration keys).
                        if before != after && !desired.unmanaged.contains(field.as_str()) {
                            changes.push(FieldChange { field, before: before.clone(), after: after.clone() });
                        }
                    }
                    // A configured alias Duo's user does not carry (compared as usernames are) is
                    // set in its slot; Duo's other aliases are left alone.
                    for (slot, alias) in &f.aliases {
                        if !du.aliases.iter().any(|a| duo.usernames.same(a, alias))
                            && let Some(field) = UserField::alias(*slot)
                        {
                            changes.push(FieldChange { field, before: du.aliases.join(", "), after: alias.clone() });
                        }
                    }
                    if !changes.is_empty() {
                        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
                        ops.push(PlannedOp {
                            op: Op::UpdateUser { source: u.key.source.clone(), id: u.key.id.clone(), user_id: du.user_id.clone(), username: f.username.clone(), changes: changes.clone() },
                            reason: format!("subject {} changed: {}", u.key, fields.join(", ")),
                        });
                    }
                }
                user_target[ui] = Some(UserRef::Existing { user_id: du.user_id.as_str().into(), username: u.fields.username.as_str().into() });
            }
        }
    }
    // Memberships work on positions in Duo's lists, not on id strings: one hash per object,
    // then plain arrays.
    let duo_group_index: HashMap<&str, u32> = duo.groups.iter().enumerate().map(|(i, g)| (g.group_id.as_str(), i as u32)).collect();
    let mut known_user = vec![false; duo.users.len()];
    for l in &links.users {
        if let Some(i) = l.duo_user_id.as_deref().and_then(|id| user_by_id.get(id)) {
            known_user[*i] = true;
        }
    }
    let mut held_user = vec![false; duo.users.len()];
    for id in &held_user_ids {
        if let Some(i) = user_by_id.get(id) {
            held_user[*i] = true;
        }
    }
    let target_index: Vec<Option<usize>> = user_target
        .iter()
        .map(|t| match t {
            Some(UserRef::Existing { user_id, .. }) => user_by_id.get(&**user_id).copied(),
            _ => None,
        })
        .collect();
    // Groups each existing user will be in after this plan, for Duo's 100-group limit; and the
    // same for each user this plan creates (by position in the desired users).
    let mut group_count: Vec<usize> = duo.users.iter().map(|u| u.groups.len()).collect();
    let mut new_user_count: Vec<usize> = vec![0; desired.users.len()];
    let mut wanted_mark = vec![u32::MAX; duo.users.len()];
    let mut current_mark = vec![u32::MAX; duo.users.len()];
    let mut removals: Vec<PlannedOp> = Vec::new();
    for (gpos, g) in desired.groups.iter().enumerate() {
        let Some(target) = group_target.get(g.uuid.as_str()) else { continue };
        let stamp = gpos as u32;
        for u in &g.members {
            if let Some(i) = target_index[*u as usize] {
                wanted_mark[i] = stamp;
            }
        }
        if let GroupRef::Existing { group_id, name } = target {
            let members = duo_group_index.get(&**group_id).map(|gi| members_of[*gi as usize].as_slice()).unwrap_or(&[]);
            let mut removed = 0;
            for &ui in members {
                if wanted_mark[ui] == stamp || held_user[ui] {
                    continue;
                }
                let remove = match policy.membership_delete {
                    DeletePolicy::Never | DeletePolicy::RegistryDeleted => false,
                    DeletePolicy::CreatedByUs => known_user[ui],
                    DeletePolicy::NotInSource => true,
                };
                if remove {
                    let du = &duo.users[ui];
                    removed += 1;
                    group_count[ui] = group_count[ui].saturating_sub(1);
                    removals.push(PlannedOp {
                        op: Op::RemoveMember { group_id: group_id.to_string(), group_name: name.to_string(), user_id: du.user_id.clone(), username: du.username.clone() },
                        reason: format!("{} is not an effective member of registry group {}", du.username, g.registry_name),
                    });
                }
            }
            if removed > 0 {
                plan.group_sizes.push((group_id.to_string(), members.len()));
            }
        }
    }
    // Additions, once every removal is counted: a user's removals make room under Duo's limit
    // whatever the order of the groups (the applier sends removals first, too).
    for (gpos, g) in desired.groups.iter().enumerate() {
        let Some(target) = group_target.get(g.uuid.as_str()) else { continue };
        let stamp = gpos as u32;
        if let GroupRef::Existing { group_id, .. } = target {
            for &ui in duo_group_index.get(&**group_id).map(|gi| members_of[*gi as usize].as_slice()).unwrap_or(&[]) {
                current_mark[ui] = stamp;
            }
        }
        let group_uuid: Shared = g.uuid.as_str().into();
        let reason_tail = format!(" is an effective member of registry group {}", g.registry_name);
        for u in &g.members {
            let Some(user) = &user_target[*u as usize] else { continue };
            let du = &desired.users[*u as usize];
            let count = match target_index[*u as usize] {
                Some(i) if current_mark[i] == stamp => continue,
                Some(i) => &mut group_count[i],
                None => &mut new_user_count[*u as usize],
            };
            if *count >= MAX_GROUPS_PER_USER {
                let message = match user {
                    UserRef::Existing { .. } => format!("Duo user {} is already in {MAX_GROUPS_PER_USER} groups, Duo's limit", user.username()),
                    UserRef::New { .. } => format!(
                        "new Duo user {} would be added to more than {MAX_GROUPS_PER_USER} groups, Duo's limit; it gets the first {MAX_GROUPS_PER_USER} selected",
                        user.username()
                    ),
                };
                plan.errors.push(ObjectError {
                    object: ErrorObject::Membership {
                        group_uuid: g.uuid.clone(),
                        source: du.key.source.clone(),
                        id: du.key.id.clone(),
                        group_name: g.registry_name.clone(),
                    },
                    code: ErrorCode::Inv,
                    message,
                });
                continue;
            }
            *count += 1;
            let (source, id): (Shared, Shared) = match user {
                UserRef::New { source, id, .. } => (source.clone(), id.clone()),
                UserRef::Existing { .. } => (du.key.source.as_str().into(), du.key.id.as_str().into()),
            };
            let mut reason = String::with_capacity(9 + source.len() + 1 + id.len() + reason_tail.len());
            reason.push_str("subject ");
            reason.push_str(&source);
            reason.push(':');
            reason.push_str(&id);
            reason.push_str(&reason_tail);
            ops.push(PlannedOp { reason, op: Op::AddMember { group_uuid: group_uuid.clone(), source, id, group: target.clone(), user: user.clone() } });
        }
    }
    // Members of groups about to be deleted need no removal call.
    removals.retain(|r| !matches!(&r.op, Op::RemoveMember { group_id, .. } if deleted_groups.contains(group_id.as_str())));
    ops.extend(removals);

    // Links taken over by a re-created subject are forgotten, as for groups.
    plan.released_users.extend(users_taken_over.iter().map(|k| (*k).clone()));
    // Users no longer selected.
    let mut leaving_users: Vec<&duoprov_model::UserLink> = links
        .users
        .iter()
        .filter(|l| !desired_keys.contains(&l.subject) && !desired.held_users.contains(&l.subject) && !users_taken_over.contains(&l.subject))
        .collect();
    leaving_users.sort_by(|a, b| a.subject.cmp(&b.subject));
    for l in leaving_users {
        let mut present = l.duo_user_id.as_deref().and_then(|id| user_by_id.get(id).copied());
        // Never a user another provisioner of this Duo account links, unless duoprov created it here.
        let mut ours = (l.in_target || l.duo_user_id.is_some()) && (l.created_by_us || !l.duo_user_id.as_deref().is_some_and(|id| foreign_users.contains_key(id)));
        // A create whose outcome was unknown: exactly the Duo user it asked for is duoprov's own.
        if l.duo_user_id.is_none() && l.pending_name.is_some() {
            let by_name = users_by_name.get_or_insert_with(|| users_by_lowercase_name(duo));
            if let Some(i) = intended_user(l, &claimed_users, by_name) {
                present = Some(i);
                ours = true;
            }
        }
        let delete = match policy.user_delete {
            DeletePolicy::Never | DeletePolicy::RegistryDeleted => false,
            DeletePolicy::CreatedByUs => l.created_by_us,
            DeletePolicy::NotInSource => true,
        };
        // Already in Duo's Trash (sent there by an earlier run): kept there, link parked, so a
        // return within the retention period restores duoprov's own user.
        let trashed = present.is_some_and(|i| in_trash(&duo.users[i])) && policy.user_delete_mode != UserDeleteMode::Delete;
        // `disable`: a user already disabled needs no call. One duoprov disabled keeps its link
        // as it is (parked when it was disabled), so a return re-enables it; one disabled by
        // someone else is left to the rules below.
        let disabled = present.is_some_and(|i| is_disabled(&duo.users[i])) && policy.user_delete_mode == UserDeleteMode::Disable;
        let disabled_by_us = links.disabled_by_us.contains(&l.subject);
        if disabled_by_us && present.is_none() {
            plan.disabled_cleared.push(l.subject.clone());
        }
        if disabled && disabled_by_us && delete && ours {
            continue;
        }
        match present {
            Some(i) if delete && ours && !trashed && !disabled => {
                let du = &duo.users[i];
                let mode = policy.user_delete_mode;
                ops.push(PlannedOp {
                    op: Op::DeleteUser { source: l.subject.source.clone(), id: l.subject.id.clone(), user_id: du.user_id.clone(), username: du.username.clone(), mode },
                    reason: format!(
                        "subject {} is no longer in any selected group ({})",
                        l.subject,
                        match mode {
                            UserDeleteMode::Trash => "to Duo's Trash, restorable",
                            UserDeleteMode::DisableThenTrash => "disabled, then to Duo's Trash, restorable",
                            UserDeleteMode::Delete => "deleted permanently",
                            UserDeleteMode::Disable => "disabled, kept in Duo; re-enabled if selected again",
                        }
                    ),
                });
            }
            Some(_) if l.created_by_us && l.duo_user_id.is_some() => plan.parked_users.push(l.subject.clone()),
            _ => plan.released_users.push(l.subject.clone()),
        }
    }

    // Membership adds of a group that is not selected cannot happen; keep ops ordered.
    // Each class was generated in a deterministic order (sorted inputs); order the classes.
    ops.sort_by_key(|o| o.op.class());
    plan.ops = ops;
    plan.errors.sort_by(|a, b| a.object.cmp(&b.object).then(a.code.cmp(&b.code)));
    plan.group_matches.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    plan.user_matches.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
    plan.released_groups.sort();
    plan.released_users.sort();
    plan.parked_groups.sort();
    plan.parked_users.sort();
    plan.kept_disabled.sort();
    plan.disabled_cleared.sort();
    plan.disabled_cleared.dedup();
    plan.group_sizes.sort();
    plan
}
