//! Duo administrator roles from registry groups (Grouper's Duo role provisioner): the
//! configuration ([`AdminRoles`]: registry group → Duo role, the priority when a subject is in
//! several mapped groups, the subject attribute holding the e-mail address, the invitation on
//! create, what happens to a managed administrator who leaves every mapped group), and the pure
//! planner ([`plan_admins`]) that compares the administrators the registry wants (subject → one
//! role) with Duo's administrators and the provisioner's records of the ones it manages.
//!
//! Ownership works like users': administrators are matched by e-mail address, compared
//! case-insensitively. duoprov changes only administrators it created, or adopted (an existing
//! administrator whose address is a wanted subject's) and recorded as managed. A hand-made
//! administrator whose address matches no wanted subject is never touched, and an `Owner`
//! duoprov did not create is never demoted, disabled or deleted. Disables and deletes are
//! removals: the safety rules count them (`max_admin_removals`) and the removal digest covers
//! them.

use std::collections::{BTreeMap, HashMap, HashSet};

use duoprov_model::{admin_email_key, DuoAdmin, ManagedAdmin, Subject, SubjectKey};
use serde::{Deserialize, Serialize};

/// Duo's administrator roles, exactly as the Admin API spells them, highest first: the default
/// priority (Grouper's `pickHighestPriorityRoleName` order, with Duo's `Security Analyst` after
/// `User Manager` as Duo lists it).
pub const DUO_ADMIN_ROLES: [&str; 9] = [
    "Owner",
    "Administrator",
    "Application Manager",
    "User Manager",
    "Security Analyst",
    "Help Desk",
    "Billing",
    "Phishing Manager",
    "Read-only",
];

/// The role an `Owner` duoprov created is lowered to when it is disabled (Duo refuses to disable
/// an `Owner`), as Grouper's legacy admin sync did.
pub const DISABLED_OWNER_ROLE: &str = "Read-only";

/// What happens to a managed administrator whose subject leaves every mapped group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRemoveMode {
    /// `status=Disabled` (an `Owner` duoprov created also becomes `Read-only`); re-enabled with its
    /// role if the subject returns. The default: reversible.
    #[default]
    Disable,
    /// Deleted from Duo (permanent).
    Delete,
    /// Left as it is (still recorded as managed).
    Keep,
}

impl AdminRemoveMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRemoveMode::Disable => "disable",
            AdminRemoveMode::Delete => "delete",
            AdminRemoveMode::Keep => "keep",
        }
    }
}

/// The subject attribute that holds an administrator's e-mail address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailAttribute {
    #[default]
    Email,
    LoginId,
    Id,
}

impl EmailAttribute {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "email" => EmailAttribute::Email,
            "login_id" => EmailAttribute::LoginId,
            "id" => EmailAttribute::Id,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EmailAttribute::Email => "email",
            EmailAttribute::LoginId => "login_id",
            EmailAttribute::Id => "id",
        }
    }

    /// The subject's value of this attribute, trimmed; `None` when unset or empty.
    pub fn of(self, s: &Subject) -> Option<String> {
        let v = match self {
            EmailAttribute::Email => s.email.as_deref(),
            EmailAttribute::LoginId => s.login_id.as_deref(),
            EmailAttribute::Id => Some(s.id.as_str()),
        };
        v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
    }
}

/// `[provisioner.P.admin_roles]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRoles {
    /// Registry group name → Duo role, sorted by group name.
    pub groups: Vec<(String, String)>,
    /// Roles, highest first; every mapped role is in it.
    pub priority: Vec<String>,
    pub email_attribute: EmailAttribute,
    /// Ask Duo to e-mail the activation link to an administrator duoprov creates (`send_email=1`).
    pub send_email: bool,
    pub remove_mode: AdminRemoveMode,
}

impl AdminRoles {
    /// Checks the roles and the priority; the error names the field (`groups."G"`, `priority`).
    pub fn validate(&self) -> Result<(), String> {
        let known = |r: &str| DUO_ADMIN_ROLES.contains(&r);
        for (g, r) in &self.groups {
            if !known(r) {
                return Err(format!("groups.{g:?}: {r:?} is not a Duo administrator role; use one of {} (exact spelling)", DUO_ADMIN_ROLES.join(", ")));
            }
        }
        let mut seen = HashSet::new();
        for r in &self.priority {
            if !known(r) {
                return Err(format!("priority: {r:?} is not a Duo administrator role; use Duo's names: {}", DUO_ADMIN_ROLES.join(", ")));
            }
            if !seen.insert(r.as_str()) {
                return Err(format!("priority: {r:?} is listed twice"));
            }
        }
        for (g, r) in &self.groups {
            if !seen.contains(r.as_str()) {
                return Err(format!("priority: lacks {r:?}, the role of groups.{g:?}; list every mapped role, highest first"));
            }
        }
        if self.groups.is_empty() {
            return Err("groups: map at least one registry group to a Duo role".into());
        }
        Ok(())
    }

    /// The rank of a role: 0 is the highest.
    pub fn rank(&self, role: &str) -> usize {
        self.priority.iter().position(|r| r == role).unwrap_or(usize::MAX)
    }
}

/// An administrator the registry wants: a subject with one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredAdmin {
    pub subject: SubjectKey,
    pub email: String,
    pub name: String,
    pub role: String,
    /// The mapped group that gave the role.
    pub group: String,
}

/// A subject or administrator the planner leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminHeld {
    /// What it is about (`subject ldap:jdoe`, `administrator a@example.com`).
    pub object: String,
    /// `REQ`, `INV`, `MAT` (as per-object errors).
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for AdminHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]: {}", self.object, self.code, self.message)
    }
}

/// One change to a Duo administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminOp {
    /// `POST /admin/v1/admins`.
    CreateAdmin { source: String, id: String, email: String, name: String, role: String, send_email: bool },
    /// `POST /admin/v1/admins/{id}`: a new role and/or `status=Active` (one duoprov disabled).
    UpdateAdmin { source: String, id: String, admin_id: String, email: String, role_before: String, role: String, enable: bool },
    /// `POST /admin/v1/admins/{id}` with `status=Disabled` (and `role`, for an `Owner`). A removal.
    DisableAdmin { admin_id: String, email: String, role: String, demote_to: Option<String> },
    /// `DELETE /admin/v1/admins/{id}`. A removal.
    DeleteAdmin { admin_id: String, email: String, role: String },
}

impl AdminOp {
    /// Disables and deletes, which the safety rules count.
    pub fn is_removal(&self) -> bool {
        matches!(self, AdminOp::DisableAdmin { .. } | AdminOp::DeleteAdmin { .. })
    }

    /// The line a refusal lists a removal by; `None` for other operations.
    pub fn describe_removal(&self) -> Option<String> {
        match self {
            AdminOp::DisableAdmin { email, role, demote_to: Some(to), .. } => Some(format!("disable administrator {email} ({role}, lowered to {to})")),
            AdminOp::DisableAdmin { email, role, .. } => Some(format!("disable administrator {email} ({role})")),
            AdminOp::DeleteAdmin { email, role, .. } => Some(format!("delete administrator {email} ({role}, permanently)")),
            _ => None,
        }
    }

    /// The operation for people.
    pub fn describe(&self) -> String {
        match self {
            AdminOp::CreateAdmin { email, name, role, send_email, .. } => {
                format!("create administrator {email} ({name}) as {role}{}", if *send_email { ", activation link e-mailed" } else { "" })
            }
            AdminOp::UpdateAdmin { email, role_before, role, enable, .. } => {
                let mut parts = Vec::new();
                if role_before != role {
                    parts.push(format!("role {role_before:?} → {role:?}"));
                }
                if *enable {
                    parts.push("status Disabled → Active".to_owned());
                }
                format!("update administrator {email}: {}", parts.join("; "))
            }
            _ => self.describe_removal().unwrap_or_default(),
        }
    }
}

/// The admin-role part of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPlan {
    pub ops: Vec<AdminOp>,
    /// Existing administrators matched by e-mail to record as managed (adopted), before the
    /// operations run.
    pub adopt: Vec<ManagedAdmin>,
    /// Records to forget: administrators gone from Duo, and `Owner`s duoprov did not create whose
    /// subjects left (never demoted: released instead).
    pub release: Vec<String>,
    pub held: Vec<AdminHeld>,
    /// Administrators recorded as managed before this plan.
    pub managed: usize,
    /// Administrators the registry wants (for the empty-registry rule).
    pub wanted: usize,
}

impl AdminPlan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.adopt.is_empty() && self.release.is_empty() && self.held.is_empty() && self.managed == 0 && self.wanted == 0
    }

    pub fn removals(&self) -> impl Iterator<Item = &AdminOp> {
        self.ops.iter().filter(|o| o.is_removal())
    }
}

/// What the admin-role planner reads.
pub struct AdminInputs<'a> {
    /// Each mapped group's effective members (`None`: the group is not in the registry).
    pub members: &'a BTreeMap<String, Option<Vec<Subject>>>,
    /// Duo's administrators.
    pub duo: &'a [DuoAdmin],
    /// The administrators this provisioner manages.
    pub managed: &'a [ManagedAdmin],
    /// Administrators other provisioners of the same Duo account manage: admin id → provisioner.
    pub foreign: &'a HashMap<String, String>,
}

/// The administrators the registry wants, one role each (the highest by `priority`), and the
/// subjects held (no usable e-mail address; two subjects with one address). Also returns the
/// e-mail keys that must not be treated as unwanted (held ones), so a hold never disables.
fn desired(config: &AdminRoles, members: &BTreeMap<String, Option<Vec<Subject>>>, held: &mut Vec<AdminHeld>) -> (BTreeMap<String, DesiredAdmin>, HashSet<String>) {
    let mut by_email: BTreeMap<String, DesiredAdmin> = BTreeMap::new();
    let mut protected = HashSet::new();
    let mut clash: HashSet<String> = HashSet::new();
    let attr = config.email_attribute.as_str();
    for (group, role) in &config.groups {
        let Some(Some(subjects)) = members.get(group) else { continue };
        for s in subjects {
            let key = s.key();
            let Some(email) = config.email_attribute.of(s) else {
                held.push(AdminHeld { object: format!("subject {key}"), code: "REQ".into(), message: format!("member of {group} (role {role}) has no {attr}; set the subject's {attr}, or choose another admin_roles.email_attribute") });
                continue;
            };
            if !valid_email(&email) {
                held.push(AdminHeld { object: format!("subject {key}"), code: "INV".into(), message: format!("member of {group} (role {role}): {attr} {email:?} is not an e-mail address") });
                continue;
            }
            let ek = admin_email_key(&email);
            let name = s.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(email.as_str()).to_owned();
            let candidate = DesiredAdmin { subject: key.clone(), email: email.clone(), name, role: role.clone(), group: group.clone() };
            match by_email.get_mut(&ek) {
                Some(d) if d.subject != key => {
                    if clash.insert(ek.clone()) {
                        held.push(AdminHeld { object: format!("administrator {email}"), code: "MAT".into(), message: format!("subjects {} and {key} both have this address; give each its own", d.subject) });
                    }
                }
                Some(d) => {
                    if config.rank(role) < config.rank(&d.role) {
                        *d = candidate;
                    }
                }
                None => {
                    by_email.insert(ek, candidate);
                }
            }
        }
    }
    for ek in &clash {
        by_email.remove(ek);
        protected.insert(ek.clone());
    }
    (by_email, protected)
}

fn valid_email(e: &str) -> bool {
    let mut parts = e.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None) if !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Plans the administrators of one provisioner.
pub fn plan_admins(config: &AdminRoles, input: &AdminInputs<'_>) -> AdminPlan {
    let mut plan = AdminPlan { managed: input.managed.len(), ..Default::default() };
    let mut missing_group = false;
    for (group, role) in &config.groups {
        if matches!(input.members.get(group), None | Some(None)) {
            missing_group = true;
            plan.held.push(AdminHeld {
                object: format!("group {group}"),
                code: "DNE".into(),
                message: format!("mapped to role {role} in admin_roles.groups but not in the registry; no administrator is disabled or deleted until it exists or the mapping is removed"),
            });
        }
    }
    let (wanted, protected) = desired(config, input.members, &mut plan.held);
    plan.wanted = wanted.len();

    let duo_by_id: HashMap<&str, &DuoAdmin> = input.duo.iter().map(|a| (a.admin_id.as_str(), a)).collect();
    let mut duo_by_email: HashMap<String, Vec<&DuoAdmin>> = HashMap::new();
    for a in input.duo {
        duo_by_email.entry(admin_email_key(&a.email)).or_default().push(a);
    }
    let managed_by_id: HashMap<&str, &ManagedAdmin> = input.managed.iter().map(|m| (m.admin_id.as_str(), m)).collect();
    // Records of administrators gone from Duo are forgotten.
    for m in input.managed {
        if !duo_by_id.contains_key(m.admin_id.as_str()) {
            plan.release.push(m.admin_id.clone());
        }
    }

    let mut matched: HashSet<&str> = HashSet::new();
    for (ek, d) in &wanted {
        let candidates = duo_by_email.get(ek).map(Vec::as_slice).unwrap_or(&[]);
        let a = match candidates {
            [] => {
                plan.ops.push(AdminOp::CreateAdmin {
                    source: d.subject.source.clone(),
                    id: d.subject.id.clone(),
                    email: d.email.clone(),
                    name: d.name.clone(),
                    role: d.role.clone(),
                    send_email: config.send_email,
                });
                continue;
            }
            [a] => *a,
            _ => {
                plan.held.push(AdminHeld { object: format!("administrator {}", d.email), code: "MAT".into(), message: "Duo holds more than one administrator with this address; nothing is guessed".into() });
                for a in candidates {
                    matched.insert(a.admin_id.as_str());
                }
                continue;
            }
        };
        matched.insert(a.admin_id.as_str());
        if let Some(other) = input.foreign.get(&a.admin_id) {
            plan.held.push(AdminHeld {
                object: format!("administrator {}", a.email),
                code: "MAT".into(),
                message: format!("managed by provisioner {other} of the same Duo account; one provisioner manages an administrator"),
            });
            continue;
        }
        let record = managed_by_id.get(a.admin_id.as_str()).copied();
        let created_by_us = record.is_some_and(|m| m.created_by_us);
        if record.is_none() {
            plan.adopt.push(ManagedAdmin {
                admin_id: a.admin_id.clone(),
                email: a.email.clone(),
                subject: d.subject.clone(),
                role: a.role.clone(),
                created_by_us: false,
                disabled_by_us: false,
            });
        }
        let owner_not_ours = a.role == "Owner" && !created_by_us;
        let role_differs = a.role != d.role;
        if role_differs && owner_not_ours {
            plan.held.push(AdminHeld {
                object: format!("administrator {}", a.email),
                code: "INV".into(),
                message: format!("is an Owner duoprov did not create; wanted as {} (group {}), but duoprov never demotes such an Owner; change it in Duo by hand", d.role, d.group),
            });
        }
        let enable = a.is_disabled() && record.is_some_and(|m| m.disabled_by_us);
        let new_role = if role_differs && !owner_not_ours { d.role.clone() } else { a.role.clone() };
        if new_role != a.role || enable {
            plan.ops.push(AdminOp::UpdateAdmin {
                source: d.subject.source.clone(),
                id: d.subject.id.clone(),
                admin_id: a.admin_id.clone(),
                email: a.email.clone(),
                role_before: a.role.clone(),
                role: new_role,
                enable,
            });
        }
    }

    // Managed administrators nobody wants any more.
    for m in input.managed {
        let Some(a) = duo_by_id.get(m.admin_id.as_str()) else { continue };
        let ek = admin_email_key(&a.email);
        if matched.contains(a.admin_id.as_str()) || wanted.contains_key(&ek) || protected.contains(&ek) {
            continue;
        }
        if a.role == "Owner" && !m.created_by_us {
            plan.held.push(AdminHeld {
                object: format!("administrator {}", a.email),
                code: "INV".into(),
                message: "left every mapped group, but is an Owner duoprov did not create: never demoted, disabled or deleted; released from management".into(),
            });
            plan.release.push(m.admin_id.clone());
            continue;
        }
        if missing_group {
            continue;
        }
        match config.remove_mode {
            AdminRemoveMode::Keep => {}
            AdminRemoveMode::Disable if a.is_disabled() => {}
            AdminRemoveMode::Disable => plan.ops.push(AdminOp::DisableAdmin {
                admin_id: a.admin_id.clone(),
                email: a.email.clone(),
                role: a.role.clone(),
                demote_to: (a.role == "Owner").then(|| DISABLED_OWNER_ROLE.to_owned()),
            }),
            AdminRemoveMode::Delete => plan.ops.push(AdminOp::DeleteAdmin { admin_id: a.admin_id.clone(), email: a.email.clone(), role: a.role.clone() }),
        }
    }
    plan.release.sort();
    plan.release.dedup();
    plan
}
