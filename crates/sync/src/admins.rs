//! Duo administrator roles in a full sync: read what the mapped registry groups want, Duo's
//! administrators and the provisioner's records of the ones it manages ([`read`], then the pure
//! planner `duoprov_plan::plan_admins`), and apply the plan's administrator operations after the
//! user and group phases ([`apply`]): adoptions recorded first, then creates, updates, disables
//! and deletes one call each, every one recorded in `duo_admin` and appended to the audit log with
//! Duo's answer. Incremental and one-object runs do not plan administrators; every full sync
//! (the daemon's schedule, `duoprov sync`, `duoprov plan`) does.

use std::collections::{BTreeMap, HashMap};

use duoprov_duo::{AdminUpdate, DuoClient, DuoError, ErrorKind, NewAdmin};
use duoprov_model::{DuoAdmin, GroupName, ManagedAdmin, SubjectKey};
use duoprov_plan::{AdminInputs, AdminOp, AdminPlan, AdminRoles};
use duoprov_registry::{AuditRecord, AuditTrigger, DuoAnswer, Store};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::SyncError;
use crate::report::Failure;
use crate::settings::SyncSettings;

/// Everything the admin-role planner reads, kept for the fingerprints.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AdminRead {
    pub members: BTreeMap<String, Option<Vec<duoprov_model::Subject>>>,
    pub duo: Vec<DuoAdmin>,
    pub managed: Vec<ManagedAdmin>,
    pub foreign: BTreeMap<String, String>,
}

/// Reads both sides for `config`: each mapped group's effective members (`None` when the group
/// is not in the registry), Duo's administrators, and the records of this provisioner and of
/// those sharing its Duo account.
pub(crate) async fn read(store: &dyn Store, duo: &DuoClient, settings: &SyncSettings, config: &AdminRoles) -> Result<AdminRead, SyncError> {
    let mut members = BTreeMap::new();
    for (group, _) in &config.groups {
        let name = GroupName::parse(group).map_err(|e| SyncError::Scope(format!("admin_roles.groups.{group:?}: {}", e.message)))?;
        let found = match store.group(&name).await? {
            Some(_) => {
                let mut subjects: Vec<duoprov_model::Subject> = store.effective_members(&name).await?.into_iter().map(|m| m.subject).collect();
                subjects.sort_by_key(|s| s.key());
                Some(subjects)
            }
            None => None,
        };
        members.insert(group.clone(), found);
    }
    let mut duo_admins: Vec<DuoAdmin> = duo
        .list_admins()
        .await
        .map_err(|mut e| {
            if let ErrorKind::Forbidden { message, .. } = &mut e.kind {
                message.push_str(
                    "; admin_roles needs the Admin API application's 'Grant administrators' permission: tick it under Permissions in the Duo Admin Panel (Applications), or remove admin_roles",
                );
            }
            SyncError::DuoRead(e)
        })?
        .into_iter()
        .map(|a| DuoAdmin { admin_id: a.admin_id, name: a.name, email: a.email, role: a.role, status: a.status })
        .collect();
    duo_admins.sort_by(|a, b| a.admin_id.cmp(&b.admin_id));
    let managed = store.managed_admins(&settings.provisioner).await?;
    let mut foreign = BTreeMap::new();
    for other in &settings.shares_duo_with {
        for m in store.managed_admins(other).await? {
            foreign.insert(m.admin_id, other.clone());
        }
    }
    Ok(AdminRead { members, duo: duo_admins, managed, foreign })
}

/// Plans the administrators from what [`read`] returned.
pub(crate) fn plan(config: &AdminRoles, read: &AdminRead) -> AdminPlan {
    let foreign: HashMap<String, String> = read.foreign.clone().into_iter().collect();
    duoprov_plan::plan_admins(config, &AdminInputs { members: &read.members, duo: &read.duo, managed: &read.managed, foreign: &foreign })
}

/// What applying the administrator operations did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub counts: crate::report::AdminCounts,
    pub failures: Vec<Failure>,
}

/// Why a Duo call failed, for people: a 403 names the permission administrators need.
fn failure(object: String, e: &DuoError) -> Failure {
    if matches!(e.kind, ErrorKind::Forbidden { .. }) {
        Failure {
            object,
            code: crate::report::FORBIDDEN.into(),
            message: format!("{e} (administrators need the Admin API application's 'Grant administrators' permission; tick it in the Duo Admin Panel and check with `duoprov doctor`)"),
        }
    } else {
        Failure { object, code: "ERR".into(), message: e.to_string() }
    }
}

fn answer(result: &Result<(), &DuoError>) -> DuoAnswer {
    match result {
        Ok(()) => DuoAnswer::ok(),
        Err(e) => {
            let code = match &e.kind {
                ErrorKind::Auth { code, .. } | ErrorKind::Forbidden { code, .. } | ErrorKind::NotFound { code, .. } | ErrorKind::InvalidParameter { code, .. } | ErrorKind::Server { code, .. } => *code,
                _ => None,
            };
            DuoAnswer::fail(code.map(i64::from), e.to_string())
        }
    }
}

fn admin_json(a: &duoprov_duo::Admin) -> Value {
    json!({"admin_id": a.admin_id, "email": a.email, "name": a.name, "role": a.role, "status": a.status})
}

/// Applies the administrator part of a plan: records adoptions and releases, then each
/// operation, recording every answered one (and forgetting deleted administrators) and auditing
/// each with Duo's answer. A failed operation is reported and leaves the record as it was; the
/// next full sync plans it again.
pub(crate) async fn apply(store: &dyn Store, duo: &DuoClient, provisioner: &str, plan: &AdminPlan, trigger: &AuditTrigger) -> Result<Applied, SyncError> {
    let mut out = Applied::default();
    if !plan.adopt.is_empty() || !plan.release.is_empty() {
        store.record_admins(provisioner, &plan.adopt, &plan.release).await?;
        out.counts.adopted = plan.adopt.len();
    }
    let mut records: Vec<ManagedAdmin> = Vec::new();
    let mut forget: Vec<String> = Vec::new();
    let mut audit: Vec<AuditRecord> = Vec::new();
    let by_id: HashMap<&str, &ManagedAdmin> = plan.adopt.iter().map(|m| (m.admin_id.as_str(), m)).collect();
    let managed = store.managed_admins(provisioner).await?;
    let known: HashMap<&str, &ManagedAdmin> = managed.iter().map(|m| (m.admin_id.as_str(), m)).chain(by_id).collect();
    for op in &plan.ops {
        let mut rec = |action: &str, email: &str, before: Option<Value>, after: Option<Value>, result: Result<(), &DuoError>| {
            audit.push(AuditRecord { provisioner: Some(provisioner.to_owned()), before, after, duo: Some(answer(&result)), ..trigger.record("administrator", email, action) });
        };
        match op {
            AdminOp::CreateAdmin { source, id, email, name, role, send_email } => {
                let new = NewAdmin { name: name.clone(), email: email.clone(), role: role.clone(), send_email: *send_email };
                let intended = json!({"email": email, "name": name, "role": role, "send_email": send_email});
                match duo.create_admin(&new).await {
                    Ok(a) => {
                        rec("create", email, None, Some(admin_json(&a)), Ok(()));
                        records.push(ManagedAdmin { admin_id: a.admin_id.clone(), email: a.email.clone(), subject: SubjectKey::new(source, id), role: a.role.clone(), created_by_us: true, disabled_by_us: false });
                        out.counts.created += 1;
                    }
                    Err(e) => {
                        rec("create", email, None, Some(intended), Err(&e));
                        out.failures.push(failure(format!("administrator {email}"), &e));
                    }
                }
            }
            AdminOp::UpdateAdmin { source, id, admin_id, email, role_before, role, enable } => {
                let update = AdminUpdate { role: (role != role_before).then(|| role.clone()), status: enable.then(|| "Active".to_owned()) };
                let before = json!({"admin_id": admin_id, "email": email, "role": role_before, "status": if *enable { "Disabled" } else { "Active" }});
                let action = if *enable { "enable" } else { "update" };
                match duo.update_admin(admin_id, &update).await {
                    Ok(a) => {
                        rec(action, email, Some(before), Some(admin_json(&a)), Ok(()));
                        let created_by_us = known.get(admin_id.as_str()).is_some_and(|m| m.created_by_us);
                        records.push(ManagedAdmin { admin_id: a.admin_id.clone(), email: a.email.clone(), subject: SubjectKey::new(source, id), role: a.role.clone(), created_by_us, disabled_by_us: false });
                        out.counts.updated += 1;
                    }
                    Err(e) => {
                        rec(action, email, Some(before), None, Err(&e));
                        out.failures.push(failure(format!("administrator {email}"), &e));
                    }
                }
            }
            AdminOp::DisableAdmin { admin_id, email, role, demote_to } => {
                let update = AdminUpdate { role: demote_to.clone(), status: Some("Disabled".to_owned()) };
                let before = json!({"admin_id": admin_id, "email": email, "role": role, "status": "Active"});
                match duo.update_admin(admin_id, &update).await {
                    Ok(a) => {
                        rec("disable", email, Some(before), Some(admin_json(&a)), Ok(()));
                        if let Some(m) = known.get(admin_id.as_str()) {
                            records.push(ManagedAdmin { role: a.role.clone(), disabled_by_us: true, ..(*m).clone() });
                        }
                        out.counts.disabled += 1;
                    }
                    Err(e) => {
                        rec("disable", email, Some(before), None, Err(&e));
                        out.failures.push(failure(format!("administrator {email}"), &e));
                    }
                }
            }
            AdminOp::DeleteAdmin { admin_id, email, role } => {
                let before = json!({"admin_id": admin_id, "email": email, "role": role});
                match duo.delete_admin(admin_id).await {
                    Ok(()) => {
                        rec("delete", email, Some(before), None, Ok(()));
                        forget.push(admin_id.clone());
                        out.counts.deleted += 1;
                    }
                    Err(e) => {
                        rec("delete", email, Some(before), None, Err(&e));
                        out.failures.push(failure(format!("administrator {email}"), &e));
                    }
                }
            }
        }
    }
    if !records.is_empty() || !forget.is_empty() {
        store.record_admins(provisioner, &records, &forget).await?;
    }
    if !audit.is_empty() {
        store.append_audit(&audit).await?;
    }
    out.counts.failed = out.failures.len();
    Ok(out)
}
