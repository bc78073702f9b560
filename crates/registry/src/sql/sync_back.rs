//! The `sync_back_group` table over SQL: which registry group each provisioner owns for its
//! sync-back, and its member writes (change log and audit in the same transaction).

use super::*;
use crate::audit::{AuditRecord, AuditTrigger};
use crate::sync_back::{SyncBackChanges, SyncBackStore};

/// The audit entries' source of sync-back writes.
const AUDIT_SOURCE: &str = "sync-back";

fn member_json(group: &GroupName, key: &SubjectKey) -> serde_json::Value {
    json!({"group": group, "member": GroupMember::Subject(key.clone())})
}

sql_impl! {
#[async_trait]
impl SyncBackStore for SqlStore<DB> {
    async fn sync_back_group(&self, provisioner: &str) -> Result<Option<Group>> {
        let name: Option<String> = sqlx::query_scalar("SELECT g.name FROM sync_back_group b JOIN grp g ON g.id = b.group_id WHERE b.provisioner = $1")
            .bind(provisioner)
            .fetch_optional(self.pool())
            .await
            .map_err(db(format!("reading the sync-back group of provisioner {provisioner}")))?;
        match name {
            Some(n) => self.group(&GroupName::parse(&n).map_err(|e| RegistryError::Refused(format!("stored group name {n:?}: {e}")))?).await,
            None => Ok(None),
        }
    }

    async fn create_sync_back_group(&self, provisioner: &str, name: &GroupName, description: &str, trigger: &AuditTrigger) -> Result<Group> {
        let attrs = NodeAttrs { display_name: None, description: Some(Some(description.to_owned())) };
        let (group, upsert) = self.add_group(name, &attrs, true).await?;
        if upsert != Upsert::Created {
            return Err(RegistryError::Refused(format!(
                "registry group {name} already exists and duoprov did not create it for the sync-back of provisioner {provisioner}; \
                 duoprov never writes a group it does not own: name a group that does not exist (duoprov creates it) or remove {name} first"
            )));
        }
        let mut tx = self.begin_write().await?;
        let g = Self::require_group(&mut tx, name).await?;
        sqlx::query(
            "INSERT INTO sync_back_group (provisioner, group_id, created_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (provisioner) DO UPDATE SET group_id = excluded.group_id, created_at_ms = excluded.created_at_ms",
        )
        .bind(provisioner)
        .bind(g.0)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db(format!("recording group {name} as the sync-back group of provisioner {provisioner}")))?;
        let record = AuditRecord {
            source: Some(AUDIT_SOURCE.to_owned()),
            provisioner: Some(provisioner.to_owned()),
            object_uuid: Some(group.uuid.clone()),
            after: Some(json!({"name": name, "description": description})),
            ..trigger.record("group", name.to_string(), "add")
        };
        Audit::append_in(&mut tx, &[record]).await?;
        Self::commit(tx).await?;
        Ok(group)
    }

    async fn apply_sync_back(&self, provisioner: &str, add: &[SubjectKey], remove: &[SubjectKey], trigger: &AuditTrigger) -> Result<SyncBackChanges> {
        let mut tx = self.begin_write().await?;
        let name: Option<String> = sqlx::query_scalar("SELECT g.name FROM sync_back_group b JOIN grp g ON g.id = b.group_id WHERE b.provisioner = $1")
            .bind(provisioner)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(format!("reading the sync-back group of provisioner {provisioner}")))?;
        let Some(name) = name else {
            return Err(RegistryError::Refused(format!("provisioner {provisioner} owns no sync-back group")));
        };
        let group = GroupName::parse(&name).map_err(|e| RegistryError::Refused(format!("stored group name {name:?}: {e}")))?;
        let g = Self::require_group(&mut tx, &group).await?;
        let mut changes = SyncBackChanges::default();
        let mut audit = Vec::new();
        let record = |key: &SubjectKey, action: &str, before: Option<serde_json::Value>, after: Option<serde_json::Value>| AuditRecord {
            source: Some(AUDIT_SOURCE.to_owned()),
            provisioner: Some(provisioner.to_owned()),
            object_uuid: Some(g.1.clone()),
            before,
            after,
            ..trigger.record("membership", format!("subject {key} in group {group}"), action)
        };
        for key in remove {
            if Memberships::remove_one_member(&mut tx, &g, &group, &GroupMember::Subject(key.clone())).await? {
                changes.removed += 1;
                audit.push(record(key, "remove", Some(member_json(&group, key)), None));
            }
        }
        for key in add {
            if Memberships::add_one_member(&mut tx, &g, &group, &GroupMember::Subject(key.clone())).await? {
                changes.added += 1;
                audit.push(record(key, "add", None, Some(member_json(&group, key))));
            }
        }
        Audit::append_in(&mut tx, &audit).await?;
        Self::commit(tx).await?;
        Ok(changes)
    }
}
}
